"""FlagCX's bandwidth over NCCL's, per collective, from the latest stored runs.

Run `wizard run flagcx --set all_perf=1` and `wizard run nccl-tests` first (same GPUs), then
`python bench/compare.py`. Prints, for each collective both runs measured, the FlagCX/NCCL
ratio at 256M and the lowest ratio from 16M up, and busbw at 256M as a share of the link's
peak. The goal on NVIDIA hardware, where FlagCX uses NCCL underneath, is a ratio of at least
0.97 from 16M up.
"""

from __future__ import annotations

import sys

from wizard.engine.recipes.compare import LARGE, NoResults, gather

SIZE = 256 << 20
GOAL = 0.97


def main() -> int:
    try:
        report = gather()
    except NoResults as exc:
        print(exc, file=sys.stderr)
        return 1
    if not report.comparisons:
        print("nothing to compare: " + "; ".join(report.missing), file=sys.stderr)
        return 1
    first = report.comparisons[0]
    print(f"FlagCX run {first.flagcx_run}, nccl-tests run {first.nccl_run}, links {report.link}")
    met = True
    for c in report.comparisons:
        large = [r.ratio for r in c.rows if r.size_bytes >= LARGE and r.ratio is not None]
        at = c.ratio_at(SIZE)
        row = next((r for r in c.rows if r.size_bytes == SIZE), None)
        share = c.of_peak(row.flagcx) if row else None
        print(
            f"{c.collective:>13} {c.metric}: FlagCX/NCCL at 256M "
            + (f"{at:.3f}" if at is not None else "-")
            + (f", lowest from 16M up {min(large):.3f}" if large else "")
            + (f", FlagCX busbw at 256M = {share:.0%} of the link's peak" if share else "")
        )
        met = met and bool(large) and min(large) >= GOAL
    print(f"goal: FlagCX/NCCL >= {GOAL} from 16M up: {'met' if met else 'not met'}")
    return 0 if met else 1


if __name__ == "__main__":
    raise SystemExit(main())
