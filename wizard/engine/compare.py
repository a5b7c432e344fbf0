"""FlagCX against NCCL: the bandwidth tables of the latest runs, side by side, per collective,
and each set against the peak of the GPUs' links.

busbw is nccl-tests' bus bandwidth: the algorithm bandwidth (bytes / time) times a factor that
makes it comparable with the link's speed whatever the rank count n: 2(n-1)/n for allreduce,
(n-1)/n for allgather and reducescatter. FlagCX's perf tests print the same figure.
"""

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


@dataclass(frozen=True)
class Collective:
    name: str
    flagcx_step: str  # the step of the flagcx recipe that measures it
    nccl_step: str  # and of the nccl-tests recipe


COLLECTIVES = (
    Collective("allreduce", "allreduce", "all-reduce"),
    Collective("allgather", "allgather", "all-gather"),
    Collective("reducescatter", "reducescatter", "reduce-scatter"),
)


@dataclass
class Row:
    size_bytes: int
    flagcx: float
    nccl: float
    torch: float | None = None  # torch.distributed's, from a torch-nccl run

    @property
    def ratio(self) -> float | None:
        return self.flagcx / self.nccl if self.nccl else None


@dataclass
class Comparison:
    flagcx_run: str
    nccl_run: str
    metric: str  # "busbw" or, with one rank (where busbw is 0), "algbw"
    rows: list[Row]
    collective: str = "allreduce"
    peak_gbs: float | None = None  # the link's peak per direction; busbw is set against it

    def ratio_at(self, size: int) -> float | None:
        return next((r.ratio for r in self.rows if r.size_bytes == size), None)

    def of_peak(self, value: float) -> float | None:
        """busbw as a share of the link's peak (never for algbw, which is not comparable)."""
        return value / self.peak_gbs if self.peak_gbs and self.metric == "busbw" else None

    def figures(self, row: Row, *, torch: bool = False) -> list[str]:
        """A row's figures as shown: FlagCX, NCCL, their ratio, each as a share of the peak,
        and with `torch` torch.distributed's; "-" where there is none."""
        ours, theirs = self.of_peak(row.flagcx), self.of_peak(row.nccl)
        shown = [
            f"{row.flagcx:.2f}",
            f"{row.nccl:.2f}",
            f"{row.ratio:.3f}" if row.ratio is not None else "-",
            f"{ours:.0%}" if ours is not None else "-",
            f"{theirs:.0%}" if theirs is not None else "-",
        ]
        if torch:
            shown.append(f"{row.torch:.2f}" if row.torch is not None else "-")
        return shown

    def gaps(self) -> list[Row]:
        return [
            r for r in self.rows if r.size_bytes >= LARGE and r.ratio is not None and r.ratio < GAP
        ]

    def to_dict(self) -> dict[str, Any]:
        return {
            "collective": self.collective,
            "flagcx_run": self.flagcx_run,
            "nccl_run": self.nccl_run,
            "metric": self.metric,
            "link_peak_gbs": self.peak_gbs,
            "rows": [
                {
                    "size_bytes": r.size_bytes,
                    "flagcx_gbs": r.flagcx,
                    "nccl_gbs": r.nccl,
                    "ratio": r.ratio,
                    "flagcx_of_peak": self.of_peak(r.flagcx),
                    "nccl_of_peak": self.of_peak(r.nccl),
                    "torch_gbs": r.torch,
                }
                for r in self.rows
            ],
            "gaps": [r.size_bytes for r in self.gaps()],
        }


@dataclass
class Report:
    """Every collective both latest runs measured; `missing` says which one side lacks."""

    comparisons: list[Comparison]
    link: str
    peak_gbs: float | None
    missing: list[str]
    torch_run: str | None = None  # the torch-nccl run whose busbw is the third column

    def to_dict(self) -> dict[str, Any]:
        return {
            "torch_run": self.torch_run,
            "link": self.link,
            "link_peak_gbs": self.peak_gbs,
            "collectives": [c.to_dict() for c in self.comparisons],
            "missing": self.missing,
        }


class NoResults(Exception):
    """There is no finished run to compare; the message says which to run."""


def latest_run(recipe_id: str) -> st.RunState:
    run_id = st.latest_for(recipe_id)
    if run_id is None:
        raise NoResults(f"no {recipe_id} run yet: run `wizard run {recipe_id}`")
    return st.load(run_id, set_aside=False)


def table(run: st.RunState, step_id: str) -> list[dict[str, Any]]:
    return run.steps.get(step_id, st.StepState()).results.get("table") or []


def compare(
    flagcx: list[dict[str, Any]],
    nccl: list[dict[str, Any]],
    flagcx_run: str = "",
    nccl_run: str = "",
    *,
    collective: str = "allreduce",
    peak_gbs: float | None = None,
) -> Comparison:
    by_size = {int(r["size_bytes"]): r for r in nccl}
    both = [(r, by_size[int(r["size_bytes"])]) for r in flagcx if int(r["size_bytes"]) in by_size]
    metric = "busbw" if all(a["busbw_gbs"] > 0 and b["busbw_gbs"] > 0 for a, b in both) else "algbw"
    key = f"{metric}_gbs"
    rows = [Row(int(a["size_bytes"]), float(a[key]), float(b[key])) for a, b in both]
    return Comparison(flagcx_run, nccl_run, metric, rows, collective, peak_gbs)


def link_peak(run: st.RunState) -> float | None:
    """The link peak the doctor gave a run (recipes with a `link_peak_gbs` parameter)."""
    try:
        return float(run.params.get("link_peak_gbs") or 0) or None
    except (TypeError, ValueError):
        return None


def latest() -> Report:
    """The latest flagcx and nccl-tests runs, compared collective by collective, with the
    latest torch-nccl run's figures beside them when there is one."""
    flagcx, nccl = latest_run("flagcx"), latest_run("nccl-tests")
    try:
        torch: st.RunState | None = latest_run("torch-nccl")
    except (NoResults, st.StateError):
        torch = None
    peak = link_peak(flagcx) or link_peak(nccl)
    link = str(flagcx.params.get("link") or nccl.params.get("link") or "")
    comparisons, missing = [], []
    for c in COLLECTIVES:
        ours, theirs = table(flagcx, c.flagcx_step), table(nccl, c.nccl_step)
        if ours and theirs:
            comparison = compare(
                ours, theirs, flagcx.run_id, nccl.run_id, collective=c.name, peak_gbs=peak
            )
            if torch is not None:
                _add_torch(comparison, table(torch, c.nccl_step))
            comparisons.append(comparison)
        elif ours or theirs:
            recipe, step = ("nccl-tests", c.nccl_step) if ours else ("flagcx", c.flagcx_step)
            missing.append(f"{c.name}: the latest {recipe} run has no {step} results")
    if not comparisons:
        raise NoResults(
            f"the latest flagcx run ({flagcx.run_id}) and nccl-tests run ({nccl.run_id}) share "
            "no collective with results: run `wizard run flagcx --from allreduce` and "
            "`wizard run nccl-tests --from all-reduce`"
        )
    return Report(comparisons, link, peak, missing, torch.run_id if torch else None)


def _add_torch(comparison: Comparison, rows: list[dict[str, Any]]) -> None:
    key = f"{comparison.metric}_gbs"
    by_size = {int(r["size_bytes"]): float(r[key]) for r in rows}
    for row in comparison.rows:
        row.torch = by_size.get(row.size_bytes)
