"""Which GPU FlexFlow's mnist_mlp runs on, and its Legion memory sizes, printed as shell
assignments: `GPU=1 FSIZE=106000 ZSIZE=20000`.

The GPU is the least-used one (the most free memory, from `nvidia-smi --query-gpu=index,
memory.used,memory.free`): a GPU someone else fills makes the run fail or crawl.
-ll:fsize (MiB of GPU framebuffer Legion reserves) is 80% of that GPU's free memory, so
the CUDA context and cuDNN's workspace still fit; -ll:zsize (MiB of pinned host memory) is
a quarter of MemAvailable, at most 20000 (the sizes FlexFlow's own examples use) and at
least 1024. Too large a size, or too small for the model, ends in a segmentation fault.
"""

from __future__ import annotations

import subprocess
import sys

FSIZE_SHARE = 0.8
ZSIZE_SHARE = 0.25
ZSIZE_MAX, ZSIZE_MIN = 20000, 1024


def gpus(text: str) -> list[tuple[int, int, int]]:
    """(index, used MiB, free MiB) from nvidia-smi's csv."""
    rows = []
    for line in text.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3 and all(f.isdigit() for f in fields):
            rows.append((int(fields[0]), int(fields[1]), int(fields[2])))
    return rows


def mem_available_mib(meminfo: str) -> int:
    for line in meminfo.splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) // 1024
    return 0


def choose(rows: list[tuple[int, int, int]], available_mib: int) -> tuple[int, int, int]:
    index, _, free = max(rows, key=lambda row: (row[2], -row[1], -row[0]))
    zsize = max(ZSIZE_MIN, min(ZSIZE_MAX, int(available_mib * ZSIZE_SHARE)))
    return index, int(free * FSIZE_SHARE), zsize


def main() -> int:
    query = ["nvidia-smi", "--query-gpu=index,memory.used,memory.free"]
    query += ["--format=csv,noheader,nounits"]
    try:
        text = subprocess.run(query, capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError) as exc:
        print(f"ff_sizes: cannot ask nvidia-smi: {exc}", file=sys.stderr)
        return 1
    rows = gpus(text)
    if not rows:
        print("ff_sizes: nvidia-smi listed no GPU", file=sys.stderr)
        return 1
    with open("/proc/meminfo") as f:
        available = mem_available_mib(f.read())
    gpu, fsize, zsize = choose(rows, available)
    print(f"GPU={gpu} FSIZE={fsize} ZSIZE={zsize}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
