"""How long `wizard doctor` takes, next to its slowest probe and to PyTorch's collect_env.

Run: python bench/doctor.py [--runs N]. Prints one line per figure; medians of N runs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time


def timed(argv: list[str]) -> tuple[float, str]:
    started = time.perf_counter()
    done = subprocess.run(argv, capture_output=True, text=True, check=False)
    return time.perf_counter() - started, done.stdout


NVML_TIMED = (
    "import json, time, pynvml; from wizard.host.nvml import query; t = time.perf_counter(); "
    "a = query(); print(json.dumps([time.perf_counter() - t, a]))"
)


def nvml_query() -> tuple[float, dict] | None:
    """The NVML query's own time (every GPU, every NVLink index, every pair) and its answer."""
    done = subprocess.run(
        [sys.executable, "-c", NVML_TIMED], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return None
    seconds, answer = json.loads(done.stdout)
    return None if "error" in answer else (seconds, answer)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument(
        "--no-torch", action="store_true", help="skip collect_env and import torch (seconds each)"
    )
    args = parser.parse_args()
    wizard = [sys.executable, "-m", "wizard"]

    walls, inner, slowest = [], [], []
    for _ in range(args.runs):
        wall, out = timed([*wizard, "doctor", "--json"])
        data = json.loads(out)
        walls.append(wall)
        inner.append(data["timing"]["wall_s"])
        slowest.append(data["timing"]["slowest_probe"])
    helps = [timed([*wizard, "--help"])[0] for _ in range(args.runs)]
    probe = max(slowest, key=lambda p: p["seconds"])

    whole, checks = statistics.median(walls), statistics.median(inner)
    worst = statistics.median(p["seconds"] for p in slowest)
    print(f"runs: {args.runs} (medians)")
    print(f"wizard doctor, whole process:       {whole:.3f} s")
    print(f"wizard doctor, checks only:         {checks:.3f} s")
    print(f"slowest single probe:               {worst:.3f} s  ({probe['probe'][:60]})")
    print(f"checks / slowest probe:             {checks / worst:.2f}x")
    print(f"whole process / slowest probe:      {whole / worst:.2f}x")
    print(f"wizard --help:                      {statistics.median(helps):.3f} s")
    nvml = [nvml_query() for _ in range(args.runs)]
    if all(nvml):
        answer = nvml[0][1]
        links = sum(g.get("nvlinks", 0) for g in answer["gpus"])
        seconds = statistics.median(n[0] for n in nvml)
        print(f"NVML query alone (after import):    {seconds:.3f} s", end="")
        print(f"  ({len(answer['gpus'])} GPUs, {links} active NVLink links)")

    python3 = shutil.which("python3")
    has_torch = (
        python3
        and subprocess.run(
            [python3, "-c", "import importlib.util as u; exit(u.find_spec('torch') is None)"],
            check=False,
        ).returncode
        == 0
    )
    if args.no_torch:
        return
    if not has_torch:
        print("python3 -m torch.utils.collect_env: skipped (no torch in python3)")
        return
    collect = timed([python3, "-m", "torch.utils.collect_env"])[0]
    imported = timed([python3, "-c", "import torch; torch.cuda.is_available()"])[0]
    print(f"python3 -m torch.utils.collect_env: {collect:.3f} s")
    print(f"import torch + cuda.is_available(): {imported:.3f} s")


if __name__ == "__main__":
    main()
