"""The runner's overhead on a step that floods output: 200k lines through the wizard vs raw.

Run: python bench/runner.py [--lines N] [--repeat R]. Prints wall times (medians), the
overhead in percent, and peak memory after a small and a large flood (it must stay flat:
lines go to the log file, only a bounded tail is kept).
"""

from __future__ import annotations

import argparse
import os
import resource
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from wizard.cli.console import Console
from wizard.engine.recipes.parsers import FlagcxPerf
from wizard.engine.recipes.runner import StepRunner
from wizard.host import LocalHost

BUILD = "Compiling /root/FlagCX/build/obj/flagcx/core/file_{i}.o"
LINE = (
    "Comm size: {i} bytes; Elapsed time: 0.000021 sec; Algo bandwidth: 6.2 GB/s; "
    "Bus bandwidth: 6.2 GB/s"
)


def producer(lines: int) -> str:
    """A step printing `lines` lines as fast as Python can: a build log with a perf-test line
    every thousand lines (so the parser has real work, and its results stay small)."""
    code = "\n".join(
        [
            "import sys",
            "w = sys.stdout.write",
            f"for i in range({lines}):",
            f"    w(({LINE!r} if i % 1000 == 0 else {BUILD!r}).format(i=i) + '\\n')",
        ]
    )
    return f"{shlex.quote(sys.executable)} -c {shlex.quote(code)}"


def raw(script: str, log: Path) -> float:
    """The step run by hand, keeping a log the usual way: `step 2>&1 | tee log`."""
    started = time.perf_counter()
    command = f"({script}) 2>&1 | tee {shlex.quote(str(log))} > /dev/null"
    subprocess.run(["bash", "-o", "pipefail", "-c", command], check=True)
    return time.perf_counter() - started


def through_wizard(script: str, log: Path) -> float:
    runner = StepRunner(LocalHost())
    parser = FlagcxPerf()
    with open(os.devnull, "w") as sink:
        console = Console(sink)

        def on_lines(texts: list[str]) -> None:
            parser.feed(texts)
            console.lines(texts)

        started = time.perf_counter()
        outcome = runner.run(
            script, cwd=None, env=dict(os.environ), timeout=None, log_path=log, on_lines=on_lines
        )
        elapsed = time.perf_counter() - started
    assert outcome.ok and len(parser.rows) > 0
    return elapsed


def peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=9)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "step.log"
        through_wizard(producer(args.lines // 10), log)
        small = peak_mib()
        script = producer(args.lines)
        raws, wizards = [], []
        for _ in range(args.repeat):
            log.unlink(missing_ok=True)
            raws.append(raw(script, log))
            log.unlink(missing_ok=True)
            wizards.append(through_wizard(script, log))
        large = peak_mib()
    # The fastest of interleaved runs: the least disturbed by whatever else the machine does.
    r, w = min(raws), min(wizards)
    print(
        f"lines: {args.lines}, runs: {args.repeat} each, interleaved (fastest; medians "
        f"{statistics.median(raws):.3f} s raw, {statistics.median(wizards):.3f} s wizard)"
    )
    print(f"raw step (| tee log):            {r:.3f} s")
    print(f"through the wizard (log+parse):  {w:.3f} s")
    print(f"overhead:                        {(w - r) / r * 100:+.1f} %")
    print(f"throughput through the wizard:   {args.lines / w / 1000:.0f}k lines/s")
    print(
        f"peak memory after {args.lines // 10} lines: {small:.1f} MiB; after {args.lines}: "
        f"{large:.1f} MiB"
    )


if __name__ == "__main__":
    main()
