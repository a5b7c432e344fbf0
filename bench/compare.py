"""FlagCX's allreduce bandwidth over NCCL's at 256M, from the latest stored runs.

Run `wizard run flagcx` and `wizard run nccl-tests` first (same GPUs), then
`python bench/compare.py`. The goal on NVIDIA hardware, where FlagCX uses NCCL underneath,
is a ratio of at least 0.97.
"""

from __future__ import annotations

import sys

from wizard.engine.compare import NoResults, latest

SIZE = 256 << 20
GOAL = 0.97


def main() -> int:
    try:
        result = latest()
    except NoResults as exc:
        print(exc, file=sys.stderr)
        return 1
    ratio = result.ratio_at(SIZE)
    if ratio is None:
        print("no 256M row in both runs", file=sys.stderr)
        return 1
    print(f"FlagCX run {result.flagcx_run}, nccl-tests run {result.nccl_run}")
    print(f"allreduce {result.metric} at 256M: FlagCX/NCCL = {ratio:.3f} (goal {GOAL})")
    return 0 if ratio >= GOAL else 1


if __name__ == "__main__":
    raise SystemExit(main())
