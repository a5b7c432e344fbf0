"""What `wizard run flagcx` costs beyond its steps: the whole run's wall time against the sum
of the times its steps took (as the state records them). The goal is <= 1% on a real build.

Run: python bench/run_overhead.py [--src CHECKOUT] [--runs N] [--set KEY=VALUE ...]
Without --src it copies tests/fixtures/flagcx-current (FlagCX v0.7+'s build interface, whose
steps take seconds, so the wizard's fixed cost is a larger share there than on a real build).
Each run starts from a clean build (`make clean` is not needed: a fresh copy, or the given
checkout's build folders removed). Prints one line per run and the median.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "flagcx-current"
JSON_HEADERS = Path("/usr/include/nlohmann")


def one_run(src: Path, sets: list[str], state: Path) -> tuple[float, float, int]:
    env = {**os.environ, "XDG_STATE_HOME": str(state), "NO_COLOR": "1"}
    argv = [sys.executable, "-m", "wizard", "run", "flagcx", "--force", "--yes"]
    argv += ["--set", f"src={src}", *(a for s in sets for a in ("--set", s))]
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, check=False)
    wall = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"the run failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}")
    status = subprocess.run(
        [sys.executable, "-m", "wizard", "status", "--json"],
        capture_output=True, text=True, env=env, check=True,
    )  # fmt: skip
    steps = json.loads(status.stdout)["steps"].values()
    ran = [s for s in steps if s["status"] == "done"]
    return wall, sum(s["duration_s"] or 0 for s in ran), len(ran)


def fresh_checkout(given: Path | None, folder: Path) -> Path:
    if given is None:
        src = folder / "FlagCX"
        shutil.copytree(FIXTURE, src)
        shutil.copytree(JSON_HEADERS, src / "third-party/json/single_include/nlohmann")
        return src
    for build in given.glob("**/build"):
        if build.is_dir() and "third-party" not in build.parts:
            shutil.rmtree(build)
    return given


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--src", type=Path, help="a FlagCX checkout (its build folders go)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--set", dest="sets", action="append", default=[], metavar="KEY=VALUE")
    args = parser.parse_args()
    sets = args.sets or ["gpus=2", "collectives=all", "perf_args=-b 128K -e 64M -f 2"]
    shares = []
    for n in range(args.runs):
        with tempfile.TemporaryDirectory() as tmp:
            src = fresh_checkout(args.src, Path(tmp))
            wall, steps, count = one_run(src, sets, Path(tmp) / "state")
        overhead = wall - steps
        shares.append(overhead / wall)
        print(
            f"run {n + 1}: whole {wall:.2f} s, {count} steps {steps:.2f} s, "
            f"overhead {overhead:.2f} s ({100 * overhead / wall:.1f}%)"
        )
    print(f"median overhead: {100 * statistics.median(shares):.1f}% of the whole run")


if __name__ == "__main__":
    main()
