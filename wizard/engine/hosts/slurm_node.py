"""What `wizard doctor --slurm` runs on each node, as one task of a job step: the doctor
there, then every observation it made as JSON on stdout, compressed and cut into short
lines (srun cuts long lines of several tasks into pieces). The wizard replays them where
it runs (a SnapshotHost per node), so each node's findings are judged and compared
exactly as a host's over SSH are, with one srun instead of a connection per node.

With `--toward NODE=ADDRESS,...` the task also asks `ip` for its route toward ADDRESS (the
first other node): recorded with the rest, so the wizard reads each node's interface
(FLAGCX_SOCKET_IFNAME's value) from the replay as it reads a host's over SSH.

    python3 -m wizard.engine.hosts.slurm_node [--target TARGET] [--deep] [--toward ...]
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
import zlib
from typing import Any

MARK = "wizard-node-snapshot "
LINE = 512  # characters of payload a line


def encode(node: str, data: dict[str, Any]) -> list[str]:
    """`data` as lines `MARK NODE INDEX COUNT PIECE`, each whole on its own."""
    text = base64.b64encode(zlib.compress(json.dumps(data).encode())).decode()
    pieces = [text[i : i + LINE] for i in range(0, len(text), LINE)] or [""]
    return [f"{MARK}{node} {i} {len(pieces)} {piece}" for i, piece in enumerate(pieces)]


def decode(lines: list[str]) -> dict[str, dict[str, Any]]:
    """Each node's data from the lines encode() made, wherever they are among others (a
    `--label` prefix before the mark is fine); a node with pieces missing is left out."""
    pieces: dict[str, dict[int, str]] = {}
    counts: dict[str, int] = {}
    for line in lines:
        _, mark, rest = line.partition(MARK)
        fields = rest.split(" ") if mark else []
        if len(fields) != 4 or not (fields[1].isdigit() and fields[2].isdigit()):
            continue
        node, index, count, piece = fields
        pieces.setdefault(node, {})[int(index)] = piece
        counts[node] = int(count)
    found = {}
    for node, got in pieces.items():
        if len(got) == counts[node]:
            text = "".join(got[i] for i in range(counts[node]))
            found[node] = json.loads(zlib.decompress(base64.b64decode(text)))
    return found


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python3 -m wizard.engine.hosts.slurm_node")
    parser.add_argument("--target")
    parser.add_argument("--deep", action="store_true")
    parser.add_argument("--toward", default="", help="NODE=ADDRESS,...: whom each node routes to")
    args = parser.parse_args(argv)

    import psutil

    from wizard.engine.doctor.diagnosis import run_doctor
    from wizard.engine.hosts.network import route
    from wizard.host import LocalHost
    from wizard.host.snapshot import snapshot_data

    host = LocalHost()
    node = os.environ.get("SLURMD_NODENAME") or host.name
    report = run_doctor(host, args.target, deep=args.deep)
    toward = dict(pair.partition("=")[::2] for pair in args.toward.split(",") if "=" in pair)
    route(lambda argv: host.run(argv).stdout, toward.get(node, ""))  # recorded, read there
    ran = [f.id for f in report.findings]
    data = snapshot_data(host, note=f"Slurm node {node}", checks=ran)
    # The task's whole time on the node, the interpreter's start included: what the node
    # costs the run (the checks alone are report.wall_s).
    task_s = time.time() - psutil.Process().create_time()
    data.update(host=node, wall_s=report.wall_s, task_s=round(task_s, 3))
    sys.stdout.write("".join(line + "\n" for line in encode(node, data)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
