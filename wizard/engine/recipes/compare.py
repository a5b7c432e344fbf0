"""FlagCX against NCCL: the bandwidth tables of chosen runs (the latest of each kind by
default), per collective, each figure checked for plausibility, side by side where both
measured a collective, and set against the peak of the GPUs' links.

busbw is nccl-tests' bus bandwidth: the algorithm bandwidth (bytes / time) times a factor that
makes it comparable with the link's speed whatever the rank count n: 2(n-1)/n for allreduce,
(n-1)/n for allgather and reducescatter. FlagCX's perf tests print the same figure.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from wizard.engine.recipes import state as st
from wizard.engine.recipes.parsers import megatron_summary, training_summary
from wizard.engine.recipes.plausible import memory_gbs, suspect

GAP = 0.9  # below this ratio, at sizes where bandwidth matters, the gap is a finding
LARGE = 16 << 20
CAUSES = (
    "FlagCX and nccl-tests use different NCCL libraries (compare CCL_HOME with NCCL_HOME "
    "and `wizard doctor -v`)",
    "different GPUs or rank placement (CUDA_VISIBLE_DEVICES, -np)",
    "NCCL variables set for one run but not the other (NCCL_ALGO, NCCL_PROTO, NCCL_NVLS_ENABLE)",
    "FlagCX's own settings (FLAGCX_* variables, a topology file)",
)
# What each recipe's perf tables are called in a report; other recipes go by their id.
SOURCES = {"flagcx": "FlagCX", "nccl-tests": "nccl-tests", "torch-nccl": "torch"}
TRAINING = ("deepspeed", "flagscale")  # recipes whose runs log loss and throughput
# The collectives in the order they are shown; a perf step's id names its collective, with or
# without dashes (FlagCX's `allreduce`, nccl-tests' `all-reduce`).
ORDER = (
    "allreduce",
    "allgather",
    "reducescatter",
    "alltoall",
    "alltoallv",
    "broadcast",
    "reduce",
    "gather",
    "scatter",
    "sendrecv",
)


def collective_of(step_id: str) -> str:
    return step_id.replace("-", "").replace("_", "")


@dataclass
class Row:
    size_bytes: int
    flagcx: float
    nccl: float
    torch: float | None = None  # torch.distributed's, from a torch-nccl run
    suspect: list[str] = field(default_factory=list)  # why a figure of the row is implausible

    @property
    def ratio(self) -> float | None:
        return self.flagcx / self.nccl if self.nccl and not self.suspect else None


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
        and with `torch` torch.distributed's; "-" where there is none, "suspect" for a ratio
        left out because a figure is implausible."""
        ours, theirs = self.of_peak(row.flagcx), self.of_peak(row.nccl)
        ratio = "suspect" if row.suspect else f"{row.ratio:.3f}" if row.ratio is not None else "-"
        shown = [
            f"{row.flagcx:.2f}",
            f"{row.nccl:.2f}",
            ratio,
            f"{ours:.0%}" if ours is not None else "-",
            f"{theirs:.0%}" if theirs is not None else "-",
        ]
        if torch:
            shown.append(f"{row.torch:.2f}" if row.torch is not None else "-")
        return shown

    def gaps(self) -> list[Row]:
        """Rows from 16M up where FlagCX is more than 10% below NCCL (suspect rows never)."""
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
                    "suspect": r.suspect,
                }
                for r in self.rows
            ],
            "gaps": [r.size_bytes for r in self.gaps()],
        }


@dataclass
class Series:
    """One run's table for one collective; a row whose figures cannot be real has a
    "suspect" key with the reason."""

    source: str  # FlagCX, nccl-tests, torch
    run_id: str
    step: str
    rows: list[dict[str, Any]]

    def suspects(self) -> list[dict[str, Any]]:
        return [r for r in self.rows if r.get("suspect")]


@dataclass
class CollectiveResults:
    name: str
    metric: str  # busbw with 2+ ranks, algbw with one (busbw is 0 there)
    series: list[Series]
    comparison: Comparison | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "collective": self.name,
            "metric": self.metric,
            "series": [
                {"source": s.source, "run": s.run_id, "step": s.step, "rows": s.rows}
                for s in self.series
            ],
            "comparison": self.comparison.to_dict() if self.comparison else None,
        }


@dataclass
class TrainingSeries:
    """A training run's loss and throughput over its logged steps."""

    run_id: str
    step: str
    summary: str
    unit: str  # what `throughput` counts: samples/s, or TFLOP/s per GPU
    points: list[dict[str, float]]  # {"step", "loss", "throughput"}


@dataclass
class RunInfo:
    run_id: str
    recipe: str
    created: str
    hosts: list[str]  # the hosts of a run across hosts; [] for one on this machine


@dataclass
class PerfReport:
    """What the chosen runs measured. `missing` says what a comparison still needs."""

    runs: list[RunInfo]
    collectives: list[CollectiveResults]
    link: str
    peak_gbs: float | None
    machine: dict[str, str]
    missing: list[str]
    training: list[TrainingSeries] = field(default_factory=list)
    torch_run: str | None = None  # the torch-nccl run whose figures are the third column

    @property
    def comparisons(self) -> list[Comparison]:
        return [c.comparison for c in self.collectives if c.comparison]

    def gaps(self) -> list[tuple[str, Row]]:
        return [(c.collective, row) for c in self.comparisons for row in c.gaps()]

    def suspects(self) -> list[tuple[str, Series, dict[str, Any]]]:
        return [(c.name, s, r) for c in self.collectives for s in c.series for r in s.suspects()]

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema": SCHEMA,
            "runs": [vars(r) for r in self.runs],
            "machine": self.machine,
            "torch_run": self.torch_run,
            "link": self.link,
            "link_peak_gbs": self.peak_gbs,
            "results": [c.to_dict() for c in self.collectives],
            "collectives": [c.to_dict() for c in self.comparisons],
            "training": [vars(t) for t in self.training],
            "missing": self.missing,
            "gaps": [{"collective": name, "size_bytes": r.size_bytes} for name, r in self.gaps()],
            "ok": not self.gaps(),
        }


SCHEMA = 1  # the version of to_dict's shape, documented in README.md


class NoResults(Exception):
    """There is no saved run to report on; the message says which to run."""


class UnknownRun(Exception):
    """A run asked for by id is not saved here."""


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
    rows = [
        Row(
            int(a["size_bytes"]),
            float(a[key]),
            float(b[key]),
            suspect=[
                f"{who}: {r['suspect']}"
                for who, r in (("FlagCX", a), ("NCCL", b))
                if r.get("suspect")
            ],
        )
        for a, b in both
    ]
    return Comparison(flagcx_run, nccl_run, metric, rows, collective, peak_gbs)


def link_peak(run: st.RunState) -> float | None:
    """The link peak the doctor gave a run (recipes with a `link_peak_gbs` parameter)."""
    try:
        return float(run.params.get("link_peak_gbs") or 0) or None
    except (TypeError, ValueError):
        return None


def chosen_runs(run_ids: Sequence[str] = ()) -> list[st.RunState]:
    """The runs named, or the latest of each recipe a report shows."""
    if run_ids:
        saved = set(st.saved_runs())
        unknown = [r for r in run_ids if r not in saved]
        if unknown:
            raise UnknownRun(
                f"no saved run {', '.join(unknown)}: `wizard status` lists the saved runs"
            )
        return [st.load(r, set_aside=False) for r in dict.fromkeys(run_ids)]
    runs = []
    for run_id in latest_ids():
        try:
            runs.append(st.load(run_id, set_aside=False))
        except st.StateError:
            continue  # an unreadable run is reported by `wizard status`, not here
    return runs


def latest_ids() -> list[str]:
    """The latest run of each recipe a report shows by default."""
    return [r for r in map(st.latest_for, (*SOURCES, *TRAINING)) if r is not None]


def gather(run_ids: Sequence[str] = ()) -> PerfReport:
    """The report on the runs named (the latest of each kind by default): every perf table,
    each row checked for plausibility, FlagCX beside NCCL where both measured a collective."""
    return report_on(chosen_runs(run_ids))


def report_on(runs: list[st.RunState]) -> PerfReport:
    """The report on these runs (see gather)."""
    perf = [r for r in runs if any(s.results.get("table") for s in r.steps.values())]
    training = [t for r in runs for t in training_series(r)]
    if not perf and not training:
        raise NoResults(
            "no run with results yet: `wizard run flagcx` measures FlagCX, "
            "`wizard run nccl-tests` NCCL beside it"
        )
    machine = machine_of(runs)
    peak = next((p for p in map(link_peak, runs) if p), None)
    memory = memory_gbs(machine.get("gpus", ""))
    labels = _labels(perf)
    found: dict[str, list[Series]] = {}
    for run in perf:
        for step_id, saved in run.steps.items():
            rows = saved.results.get("table")
            if rows:
                checked = [_checked(row, peak, memory) for row in rows]
                series = Series(labels[run.run_id], run.run_id, step_id, checked)
                found.setdefault(collective_of(step_id), []).append(series)
    order = {name: i for i, name in enumerate(ORDER)}
    collectives = []
    for name in sorted(found, key=lambda n: (order.get(n, len(order)), n)):
        series = found[name]
        metric = "busbw" if all(r["busbw_gbs"] > 0 for s in series for r in s.rows) else "algbw"
        collectives.append(CollectiveResults(name, metric, series, _comparison(name, series, peak)))
    torch = next((r.run_id for r in perf if r.recipe == "torch-nccl"), None)
    return PerfReport(
        runs=[RunInfo(r.run_id, r.recipe, r.created, _hosts(r)) for r in runs],
        collectives=collectives,
        link=machine.get("link", ""),
        peak_gbs=peak,
        machine=machine,
        missing=_missing(perf, collectives),
        training=training,
        torch_run=torch,
    )


def _labels(runs: list[st.RunState]) -> dict[str, str]:
    """Each run's source name; the run id is added where two runs have the same source."""
    names = [SOURCES.get(r.recipe, r.recipe) for r in runs]
    return {
        r.run_id: name if names.count(name) == 1 else f"{name} {r.run_id}"
        for r, name in zip(runs, names, strict=True)
    }


def _checked(row: dict[str, Any], peak: float | None, memory: tuple[float, str]) -> dict[str, Any]:
    reason = suspect(row, link_peak=peak, memory=memory)
    return {**row, "suspect": reason} if reason else dict(row)


def _comparison(name: str, series: list[Series], peak: float | None) -> Comparison | None:
    ours = next((s for s in series if s.source.startswith("FlagCX")), None)
    theirs = next((s for s in series if s.source.startswith("nccl-tests")), None)
    if ours is None or theirs is None:
        return None
    comparison = compare(
        ours.rows, theirs.rows, ours.run_id, theirs.run_id, collective=name, peak_gbs=peak
    )
    torch = next((s for s in series if s.source.startswith("torch")), None)
    if torch is not None:
        key = f"{comparison.metric}_gbs"
        by_size = {int(r["size_bytes"]): r for r in torch.rows}
        for row in comparison.rows:
            theirs_row = by_size.get(row.size_bytes)
            if theirs_row is None:
                continue
            if theirs_row.get("suspect"):
                row.suspect.append(f"torch: {theirs_row['suspect']}")
            else:
                row.torch = float(theirs_row[key])
    return comparison


def _missing(perf: list[st.RunState], collectives: list[CollectiveResults]) -> list[str]:
    """What a FlagCX/NCCL comparison still needs, in words with the command to run."""
    recipes = {r.recipe for r in perf}
    if "flagcx" not in recipes and "nccl-tests" not in recipes:
        return ["FlagCX and NCCL: run `wizard run flagcx` and `wizard run nccl-tests`"]
    if "nccl-tests" not in recipes:
        return ["NCCL's figures: run `wizard run nccl-tests` on the same GPUs"]
    if "flagcx" not in recipes:
        return ["FlagCX's figures: run `wizard run flagcx` on the same GPUs"]
    missing = []
    for c in collectives:
        sources = {s.source for s in c.series}
        if c.comparison is None and ("FlagCX" in sources or "nccl-tests" in sources):
            lacking = "nccl-tests" if "FlagCX" in sources else "flagcx"
            missing.append(f"{c.name}: the {lacking} run has no {c.name} results")
    return missing


def _hosts(run: st.RunState) -> list[str]:
    return [str(h["host"]) for h in run.cluster.get("hosts", [])]


# The machine line: a report parameter of the perf recipes (filled from the doctor's facts)
# for each part; the first run that has one gives it.
MACHINE = (
    ("gpus", "gpu_model"),
    ("link", "link"),
    ("driver", "driver"),
    ("cuda", "cuda_version"),
    ("nccl", "nccl_version"),
    ("flagcx_commit", "flagcx_commit"),
    ("mpi", "mpi_version"),
)


def machine_of(runs: list[st.RunState]) -> dict[str, str]:
    """GPUs, link, driver, CUDA, NCCL, FlagCX commit, MPI and hosts, as far as the runs know."""
    machine: dict[str, str] = {}
    for key, param in MACHINE:
        value = next((str(r.params[param]) for r in runs if r.params.get(param)), "")
        if not value:  # the FlagCX commit may be a step's result (the build learns it)
            found = (s.results.get(param) for r in runs for s in r.steps.values())
            value = str(next((v for v in found if v), ""))
        if value:
            machine[key] = value
    count = next((str(r.params["gpus"]) for r in runs if r.params.get("gpus")), "")
    if count:
        machine["gpus"] = f"{count}x {machine.get('gpus', 'GPU')}"
    hosts = next((h for h in map(_hosts, runs) if h), [])
    if hosts:
        machine["hosts"] = ", ".join(hosts)
    return machine


def training_series(run: st.RunState) -> list[TrainingSeries]:
    """Loss and throughput over steps, from the training steps of a run (DeepSpeed's
    `training` parser, FlagScale's `megatron`)."""
    found = []
    for step_id, saved in run.steps.items():
        results = saved.results
        if results.get("progress"):
            points = [
                {"step": p["step"], "loss": p["loss"], "throughput": p["samples_s"]}
                for p in results["progress"]
            ]
            summary = training_summary(results) if "training" in results else ""
            found.append(TrainingSeries(run.run_id, step_id, summary, "samples/s", points))
        elif results.get("iterations"):
            rows = results["iterations"]
            if all("tflops_per_gpu" in p for p in rows):
                unit, rates = "TFLOP/s per GPU", [p["tflops_per_gpu"] for p in rows]
            else:
                unit, rates = "iterations/s", [1000.0 / p["ms"] if p["ms"] else 0.0 for p in rows]
            points = [
                {"step": p["iteration"], "loss": p["loss"], "throughput": rate}
                for p, rate in zip(rows, rates, strict=True)
            ]
            found.append(
                TrainingSeries(run.run_id, step_id, megatron_summary(results), unit, points)
            )
    return found
