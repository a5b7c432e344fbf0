"""FlagCX against NCCL: the two bandwidth tables of the latest runs, side by side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from wizard.engine import state as st

GAP = 0.9  # below this ratio, at sizes where bandwidth matters, the gap is a finding
LARGE = 16 << 20
CAUSES = (
    "FlagCX and nccl-tests use different NCCL libraries (compare CCL_HOME with NCCL_HOME "
    "and `wizard doctor -v`)",
    "different GPUs or rank placement (CUDA_VISIBLE_DEVICES, -np)",
    "NCCL variables set for one run but not the other (NCCL_ALGO, NCCL_PROTO, NCCL_NVLS_ENABLE)",
    "FlagCX's own settings (FLAGCX_* variables, a topology file)",
)


@dataclass
class Row:
    size_bytes: int
    flagcx: float
    nccl: float

    @property
    def ratio(self) -> float | None:
        return self.flagcx / self.nccl if self.nccl else None


@dataclass
class Comparison:
    flagcx_run: str
    nccl_run: str
    metric: str  # "busbw" or, with one rank (where busbw is 0), "algbw"
    rows: list[Row]

    def ratio_at(self, size: int) -> float | None:
        return next((r.ratio for r in self.rows if r.size_bytes == size), None)

    def gaps(self) -> list[Row]:
        return [
            r for r in self.rows if r.size_bytes >= LARGE and r.ratio is not None and r.ratio < GAP
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "flagcx_run": self.flagcx_run,
            "nccl_run": self.nccl_run,
            "metric": self.metric,
            "rows": [
                {
                    "size_bytes": r.size_bytes,
                    "flagcx_gbs": r.flagcx,
                    "nccl_gbs": r.nccl,
                    "ratio": r.ratio,
                }
                for r in self.rows
            ],
            "gaps": [r.size_bytes for r in self.gaps()],
        }


class NoResults(Exception):
    """There is no finished run to compare; the message says which to run."""


def table_of(recipe_id: str, step_id: str) -> tuple[str, list[dict[str, Any]]]:
    run_id = st.latest_for(recipe_id)
    if run_id is None:
        raise NoResults(f"no {recipe_id} run yet: run `wizard run {recipe_id}`")
    run = st.load(run_id)
    table = run.steps.get(step_id, st.StepState()).results.get("table")
    if not table:
        raise NoResults(
            f"the latest {recipe_id} run ({run_id}) has no {step_id} results: "
            f"run `wizard run {recipe_id} --from {step_id}`"
        )
    return run_id, table


def compare(
    flagcx: list[dict[str, Any]],
    nccl: list[dict[str, Any]],
    flagcx_run: str = "",
    nccl_run: str = "",
) -> Comparison:
    by_size = {int(r["size_bytes"]): r for r in nccl}
    both = [(r, by_size[int(r["size_bytes"])]) for r in flagcx if int(r["size_bytes"]) in by_size]
    metric = "busbw" if all(a["busbw_gbs"] > 0 and b["busbw_gbs"] > 0 for a, b in both) else "algbw"
    key = f"{metric}_gbs"
    rows = [Row(int(a["size_bytes"]), float(a[key]), float(b[key])) for a, b in both]
    return Comparison(flagcx_run, nccl_run, metric, rows)


def latest() -> Comparison:
    flagcx_run, flagcx = table_of("flagcx", "allreduce")
    nccl_run, nccl = table_of("nccl-tests", "all-reduce")
    return compare(flagcx, nccl, flagcx_run, nccl_run)
