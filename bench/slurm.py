"""`wizard doctor --slurm` over many Slurm nodes: tests/slurmlab.py's cluster on this machine.

Run as root with Debian's slurmctld, slurmd and munge installed: python bench/slurm.py
[--nodes 16] [--runs 3]. Prints, as medians of the runs: the whole command (salloc, one srun
step running the doctor on every node, the replays and comparison here, scancel), each
node's own doctor time in that run (the slowest is what the run cannot beat), and one node
alone. All nodes share this machine's cores, so with more nodes than cores each node's
doctor is slower than on a cluster, where each has its own.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests import slurmlab


def doctor(lab: slurmlab.SlurmLab, nodes: int) -> tuple[float, list[float]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "wizard", "doctor", "--json", "--slurm", f"-N{nodes}"],
        capture_output=True, text=True, check=False, env=lab.env,
    )  # fmt: skip
    wall = time.perf_counter() - started
    hosts = json.loads(done.stdout)["hosts"]
    assert len(hosts) == nodes and all(h["reachable"] for h in hosts), done.stderr
    return wall, [h["wall_s"] for h in hosts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if why := slurmlab.available():
        sys.exit(f"cannot start the Slurm lab here: {why}")
    with (
        tempfile.TemporaryDirectory() as folder,
        slurmlab.SlurmLab(Path(folder), args.nodes) as lab,
    ):
        alone = [doctor(lab, 1)[0] for _ in range(args.runs)]
        walls, slowest, fastest = [], [], []
        for _ in range(args.runs):
            wall, each = doctor(lab, args.nodes)
            walls.append(wall)
            slowest.append(max(each))
            fastest.append(min(each))
            lab.idle()
    whole, worst = statistics.median(walls), statistics.median(slowest)
    print(f"nodes: {args.nodes}, runs: {args.runs} (medians)")
    print(f"one node alone, whole command:      {statistics.median(alone):.2f} s")
    print(f"{args.nodes} nodes, whole command:        {whole:.2f} s")
    print(f"  each node's own doctor, fastest:  {statistics.median(fastest):.2f} s")
    print(f"  each node's own doctor, slowest:  {worst:.2f} s")
    print(f"  whole - slowest node:             {whole - worst:.2f} s  (goal: <= 1 s)")


if __name__ == "__main__":
    main()
