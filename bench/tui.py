"""The app's speed: time to the first screen, and a 200k-line log flood.

Run: python bench/tui.py. Prints the time from starting Python to the first screen drawn
(headless), the flood's rate of lines shown or buffered, the lines the log widget holds
(capped; the full log is on disk), memory before and after, and how long a key press took
to be handled in the middle of the flood.
"""

from __future__ import annotations

import asyncio
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIRST_SCREEN = """
import time
started = time.perf_counter()
import asyncio
from wizard.app.app import Session, WizardApp
from wizard.app.screens.start import StartScreen
from wizard.host import LocalHost

async def main():
    app = WizardApp(Session(LocalHost))
    async with app.run_test(size=(120, 40)) as pilot:
        while not isinstance(app.screen, StartScreen):
            await pilot.pause(0.01)
        print(time.perf_counter() - started)
asyncio.run(main())
"""

FLOOD = """\
id: flood
title: Log flood
params:
  lines: {{default: {lines}, kind: int}}
steps:
  - id: flood
    title: Print many lines
    run: >-
      {python} -c "import sys; w = sys.stdout.write;
      [w(f'line {{i}} of a long build log\\\\n') for i in range({{{{ lines }}}})]"
"""


def first_screen() -> float:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", FIRST_SCREEN], capture_output=True, text=True, check=True
    ).stdout
    inner = float(out.strip().splitlines()[-1])
    return max(time.perf_counter() - started, inner)


async def flood(lines: int) -> dict[str, float]:
    from wizard.app.app import Session, WizardApp
    from wizard.app.screens.steps import StepsScreen
    from wizard.app.widgets.log_pane import LogPane
    from wizard.host import load_snapshot

    folder = Path(tempfile.mkdtemp())
    recipe = folder / "flood.yaml"
    recipe.write_text(FLOOD.format(lines=lines, python=sys.executable))
    snapshot = Path(__file__).resolve().parent.parent / "snapshots" / "ci-debian12.yaml"
    app = WizardApp(Session(lambda: load_snapshot(snapshot), recipe_name=str(recipe)))
    handled: list[float] = []
    original = StepsScreen.action_follow

    def follow(screen: StepsScreen) -> None:
        handled.append(time.perf_counter())
        original(screen)

    StepsScreen.action_follow = follow  # type: ignore[method-assign]
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.press("ctrl+n")
        while app.session.report is None:
            await pilot.pause(0.01)
        await pilot.press("n")
        while not isinstance(app.screen, StepsScreen):
            await pilot.pause(0.01)
        await pilot.press("y")  # the CI machine's checks fail: run anyway
        log = app.screen.query_one("#log", LogPane)
        while log.received < lines // 2:
            await pilot.pause(0.005)
        pressed = time.perf_counter()
        await pilot.press("f")
        started = time.perf_counter()
        while app.work is not None or log.received < lines:
            await pilot.pause(0.01)
        step = app.session.run.steps["flood"]  # type: ignore[union-attr]
        await pilot.pause(0.2)
        held = len(log.lines)
    rss_after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {
        "lines": log.received,
        "step_s": step.duration_s or 0.0,
        "rate": log.received / (step.duration_s or 1),
        "held": held,
        "key_ms": (handled[0] - pressed) * 1000 if handled else float("nan"),
        "rss_before": rss_before,
        "rss_after": rss_after,
        "after_key_s": time.perf_counter() - started,
    }


def main() -> None:
    screen = min(first_screen() for _ in range(3))
    print(f"time to first screen (headless, best of 3): {screen:.3f} s")
    result = asyncio.run(flood(200_000))
    print(
        f"flood: {result['lines']:.0f} lines in {result['step_s']:.2f} s through the app: "
        f"{result['rate'] / 1000:.0f}k lines/s shown or buffered"
    )
    print(f"log widget holds {result['held']:.0f} lines (capped; the full log is on disk)")
    print(
        f"peak memory: {result['rss_before']:.0f} MiB before the flood, "
        f"{result['rss_after']:.0f} MiB after"
    )
    print(f"key press during the flood handled in {result['key_ms']:.0f} ms")


if __name__ == "__main__":
    main()
