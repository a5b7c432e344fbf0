"""The results screen shows every kind of result the parsers make, in the words the CLI's
summary uses (wizard.engine.recipes.parsers.summary): here DeepSpeed's ds_report, as the 2x
H200 printed it, and FlexFlow's mnist, as FlexFlow prints it."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from textual.widgets import Static

from wizard.app.app import Session, WizardApp
from wizard.cli.console import Console
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.engine.recipes.parsers import DsReport, FlexFlow, Parser
from wizard.host import load_snapshot

ROOT = Path(__file__).resolve().parent
H100 = ROOT.parent / "snapshots" / "h100-ubuntu2404.yaml"
DS_REPORT = ROOT / "data" / "ds_report-2xh200.txt"
# FlexFlow's own lines (PerfMetrics::print, examples/python/native/mnist_mlp.py), as the
# flexflow-like fixture's stand-in for flexflow_python prints them.
MNIST = (ROOT / "fixtures" / "flexflow-like" / "tools" / "flexflow_python.in").read_text()


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def parsed(parser: Parser, text: str) -> dict[str, object]:
    parser.feed(text.splitlines())
    return parser.results()


def mnist_lines() -> str:
    """The two lines the stand-in echoes, as FlexFlow prints them."""
    echoed = [line for line in MNIST.splitlines() if line.startswith('echo "[Metrics]')]
    echoed += [line for line in MNIST.splitlines() if line.startswith('echo "epochs')]
    return "\n".join(line.split('"')[1] for line in echoed)


def shown(app: WizardApp) -> str:
    return "\n".join(str(s.render()) for s in app.screen.query(Static))


async def test_ds_report_and_flexflow_are_shown_as_the_cli_says_them(tmp_path: Path) -> None:
    run = st.new_run("mixed", "mixed", ["report", "mnist"], {})
    run.step("report").status = st.DONE
    run.step("report").results = parsed(DsReport(), DS_REPORT.read_text())
    run.step("mnist").status = st.DONE
    run.step("mnist").results = parsed(FlexFlow(), mnist_lines())
    run.save()
    app = WizardApp(Session(lambda: load_snapshot(H100), run=run))
    async with app.run_test(size=(120, 40)) as pilot:
        app.open("results")
        await pilot.pause(0.3)
        text = shown(app)
        details = str(app.screen.query_one("#details-report", Static).render())
    assert "report: 20 of 23 DeepSpeed ops can be built here (0 prebuilt); ninja found" in text
    assert "cannot be built here: async_io, evoformer_attn, gds" in details
    assert "warning: async_io: please install the libaio-dev package with apt" in details
    assert "mnist: accuracy 90.58% (54349/60000), 1 epoch(s) in 2.48 s, 24177 samples/s" in text
    # The CLI's summary of the same run says the same, line for line.
    path = tmp_path / "mixed.yaml"  # the two steps, as a recipe that ran them
    path.write_text(
        "id: mixed\ntitle: Mixed\nsteps:\n"
        "  - id: report\n    run: ds_report\n  - id: mnist\n    run: flexflow_python\n"
    )
    recipe = recipes.load(str(path))
    out = io.StringIO()
    Console(out).summary(recipe, run)
    printed = out.getvalue()
    for line in (
        "report: 20 of 23 DeepSpeed ops can be built here (0 prebuilt); ninja found",
        "  cannot be built here: async_io, evoformer_attn, gds",
        "mnist: accuracy 90.58% (54349/60000), 1 epoch(s) in 2.48 s, 24177 samples/s",
    ):
        assert line in printed.splitlines()
