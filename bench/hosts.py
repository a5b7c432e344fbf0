"""`wizard doctor --hosts` over many real hosts: sshd servers in network namespaces.

Run as root on a machine with openssh-server: python bench/hosts.py [--hosts 16] [--runs 3].
Prints the whole command's wall time, each host's own time in that run (the slowest is what
the run cannot beat), and one host checked alone, as medians of the runs; then one run with
--ssh-mesh (every host tries every other).
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

from tests import netns


def doctor(lab: netns.Lab, names: list[str], *extra: str) -> tuple[float, list[float]]:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "wizard", "doctor", "--json", "--hosts", ",".join(names),
         "--ssh-config", str(lab.config), *extra],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - started
    hosts = json.loads(done.stdout)["hosts"]
    assert all(h["reachable"] for h in hosts), [h.get("error") for h in hosts]
    return wall, [h["wall_s"] for h in hosts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--hosts", type=int, default=16)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    if why := netns.available():
        sys.exit(f"cannot build the hosts here: {why}")
    with tempfile.TemporaryDirectory() as folder, netns.Lab(Path(folder), args.hosts) as lab:
        names = [h.name for h in lab.hosts]
        alone = [doctor(lab, names[:1])[0] for _ in range(args.runs)]
        walls, slowest, fastest = [], [], []
        for _ in range(args.runs):
            wall, each = doctor(lab, names)
            walls.append(wall)
            slowest.append(max(each))
            fastest.append(min(each))
        mesh = doctor(lab, names, "--ssh-mesh")[0]
    whole, worst = statistics.median(walls), statistics.median(slowest)
    print(f"hosts: {args.hosts}, runs: {args.runs} (medians)")
    print(f"one host alone, whole command:      {statistics.median(alone):.2f} s")
    print(f"{args.hosts} hosts, whole command:        {whole:.2f} s")
    print(f"  each host's own time, fastest:    {statistics.median(fastest):.2f} s")
    print(f"  each host's own time, slowest:    {worst:.2f} s")
    print(f"  whole - slowest host:             {whole - worst:.2f} s  (goal: <= 1 s)")
    logins = args.hosts * (args.hosts - 1)
    print(f"{args.hosts} hosts with --ssh-mesh, once:    {mesh:.2f} s  ({logins} logins)")


if __name__ == "__main__":
    main()
