"""`wizard run`, `resume`, `status` and `steps`: recipes from the command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.console import Console
from wizard.engine import recipe as recipes
from wizard.engine import state as st
from wizard.engine.cluster import Builder, Cluster, ClusterError
from wizard.engine.doctor import run_doctor
from wizard.engine.hostlist import HostSpec
from wizard.engine.run import (
    Cancelled,
    ParamError,
    execute,
    failing_requirements,
    parse_sets,
    plan,
    prior_runs,
    recipe_facts,
    resolve,
    stop_leftovers,
)
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from wizard.host import LocalHost
from wizard.hosts_report import hosts_of
from wizard.paths import writable_state_dir

if TYPE_CHECKING:
    from wizard.engine.fleet import HostResult


def _load(name: str) -> recipes.Recipe:
    try:
        return recipes.load(name)
    except recipes.RecipeError as exc:
        raise UsageError(str(exc)) from None


def _doctor(recipe: recipes.Recipe, force: bool, out: Console) -> dict[str, Any] | None:
    """Run the checks for their facts; None when a check the recipe requires fails."""
    report = run_doctor(LocalHost())
    failing = failing_requirements(recipe, report)
    for finding in failing:
        out.write(f"{'warning' if force else 'blocked'}: {finding.id}: {finding.summary}")
    if failing and not force:
        out.write("Run `wizard doctor` for the fixes, or pass --force to run anyway.")
        return None
    return recipe_facts(report)


def _values(
    recipe: recipes.Recipe,
    facts: dict[str, Any],
    answers: dict[str, str],
    run_dir: Any,
    ask: bool,
    across: Across | None = None,
) -> dict[str, Any]:
    while True:
        try:
            values = resolve(
                recipe, facts, answers, run_dir, cluster=across.cluster if across else None
            )
            if across:
                across.local = values
                across.check_values(answers)
            return values
        except ClusterError as exc:
            raise UsageError(str(exc)) from None
        except ParamError as exc:
            missing = exc.missing
            if not (ask and missing and sys.stdin.isatty()):
                raise UsageError(str(exc)) from None
            param = recipe.params[missing]
            answers[missing] = input(f"{missing}{f' ({param.help})' if param.help else ''}: ")


class Across:
    """A run across hosts: the cluster, and each builder's parameter values (its own
    doctor's facts, so each host builds for what it has)."""

    def __init__(
        self, recipe: recipes.Recipe, cluster: Cluster, answers: dict[str, str], run_dir: Path
    ) -> None:
        self.recipe, self.cluster, self.answers, self.run_dir = recipe, cluster, answers, run_dir
        self.local: dict[str, Any] = {}

    def values_for(self, builder: Builder) -> dict[str, Any]:
        if builder.host is None:
            return self.local
        return resolve(
            self.recipe, builder.host.facts, self.answers, self.run_dir, cluster=self.cluster
        )

    def source_notes(self) -> list[str]:
        """Which commit of the shared folder each host has: ranks of one run should run one
        FlagCX; a host without it gets it from the source step."""
        if not self.recipe.shared:
            return []
        folder = recipes.render(self.recipe.shared, self.local, quote=False)
        commits = self.cluster.commits(folder)
        found = {c for c in commits.values() if c}
        if not found:
            return []
        listed = ", ".join(f"{h} {c or '(none)'}" for h, c in commits.items())
        if len(found) == 1 and all(commits.values()):
            return [f"{folder} is at {found.pop()} on every host."]
        return [
            f"warning: {folder} differs across the hosts: {listed}. Ranks of one run should "
            f"run one commit: `git -C {folder} checkout COMMIT` on the others (hosts without "
            "it clone it in the source step)."
        ]

    def check_values(self, answers: dict[str, str]) -> None:
        """Every host's values, now: a parameter one host has no value for is an error
        before anything runs, not halfway through a build."""
        self.answers = answers
        for host in self.cluster.hosts:
            try:
                resolve(self.recipe, host.facts, answers, self.run_dir, cluster=self.cluster)
            except ParamError as exc:
                raise UsageError(f"{host.label}: {exc}") from None


def _across(
    recipe: recipes.Recipe,
    specs: list[HostSpec],
    args: argparse.Namespace,
    answers: dict[str, str],
    run_dir: Path,
    out: Console,
) -> Across | None:
    """The doctor on every host over SSH, then the cluster, as judged() finds it."""
    from wizard.engine.cluster import discover
    from wizard.host.ssh import SshHost

    if args.ssh_config and not Path(args.ssh_config).is_file():
        raise UsageError(f"--ssh-config {args.ssh_config}: no such file")

    def connect(spec: HostSpec) -> SshHost:
        return SshHost(
            spec.name, user=spec.user, port=spec.port, ssh_config=args.ssh_config, label=spec.label
        )

    per_host = answers.get("gpus")
    out.write(f"Checking {len(specs)} hosts over SSH ...")
    results, cluster = discover(
        specs,
        connect,
        ssh_config=args.ssh_config,
        ranks_per_host=int(per_host) if per_host and per_host.isdigit() else None,
    )
    return judged(recipe, results, cluster, args, answers, run_dir, out, "--hosts ...")


def judged(
    recipe: recipes.Recipe,
    results: list[HostResult],
    cluster: Cluster,
    args: argparse.Namespace,
    answers: dict[str, str],
    run_dir: Path,
    out: Console,
    hosts_option: str,
) -> Across | None:
    """The run across the hosts the doctor reached; None (after saying why) when a host
    cannot be reached, or (without --force) blocks the recipe or differs where it must not."""
    from wizard.engine.fleet import differences

    stop = False
    for result, host in zip(results, cluster.hosts, strict=True):
        if result.report is None:
            out.write(f"unreachable: {host.label}: {result.error}")
            stop = True
            continue
        failing = failing_requirements(recipe, result.report)
        for finding in failing:
            word = "warning" if args.force else "blocked"
            out.write(f"{word}: {host.label}: {finding.id}: {finding.summary}")
        stop |= bool(failing) and not args.force
        out.write(f"  {host.label}: {host.slots} rank(s), {result.report.target.id}")
    for diff in differences(results):
        if diff.blocking:
            shown = ", ".join(f"{k}={v}" for k, v in diff.values.items())
            out.write(f"{'warning' if args.force else 'blocked'}: {diff.fact} differs: {shown}")
            out.write(f"  ({diff.why})")
            stop |= not args.force
    if stop:
        out.write(f"Run `wizard doctor {hosts_option}` for the details, or pass --force.")
        return None
    for label in cluster.one_gpu_hosts():
        out.write(
            f"note: {label} has one GPU: FlagCX falls back to host-based communication "
            "between hosts (correct, much slower; GPU utilisation stays near 0%)."
        )
    return Across(recipe, cluster, answers, run_dir)


def _sigterm_as_interrupt() -> None:
    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)


def _go(
    recipe: recipes.Recipe,
    state: st.RunState,
    values: dict[str, Any],
    out: Console,
    start: str | None,
    across: Across | None = None,
) -> int:
    _sigterm_as_interrupt()
    shown = {k: v for k, v in values.items() if k in recipe.params}
    out.write(f"Run {state.run_id}: {recipe.title}")
    out.write(
        "Parameters: "
        + " ".join(f"{k}={' '.join(v) if isinstance(v, list) else v}" for k, v in shown.items())
    )
    if across:
        state.cluster = across.cluster.to_dict()
        state.save()
        for note in across.source_notes():
            out.write(note)
    try:
        ok = execute(
            recipe,
            state,
            values,
            out,
            start=start,
            cluster=across.cluster if across else None,
            values_for=across.values_for if across else None,
        )
    except Cancelled as stopped:
        out.summary(recipe, state)
        out.write(
            f"Stopped during {stopped}; its processes were ended. Continue with: "
            f"wizard resume --run {state.run_id}"
        )
        return EXIT_INTERRUPTED
    except ClusterError as exc:  # found when a step learns who shares what
        out.summary(recipe, state)
        out.write(f"wizard: {exc}")
        out.write(f"Then continue with: wizard resume --run {state.run_id}")
        return EXIT_FAILED
    out.summary(recipe, state)
    if ok:
        return EXIT_OK
    out.write(f"Fix what failed, then continue with: wizard resume --run {state.run_id}")
    return EXIT_FAILED


def _after(recipe: recipes.Recipe, out: Console, *, blocking: bool) -> bool:
    """Say which finished runs this recipe builds on; False when one is missing."""
    ready = True
    for recipe_id, run in prior_runs(recipe).items():
        if run is not None:
            out.write(f"After: {recipe_id} run {run.run_id} (finished {run.updated})")
            continue
        ready = False
        word = "blocked" if blocking else "After"
        out.write(
            f"{word}: {recipe.id} builds on a finished {recipe_id} run, and there is none yet: "
            f"`wizard run {recipe_id}` first"
        )
    return ready


def run(args: argparse.Namespace) -> int:
    from wizard.slurm_report import check_slurm_args, wants_slurm

    out = Console()
    recipe = _load(args.recipe)
    answers = _sets(args.sets)
    check_slurm_args(args)
    if args.start:
        _check_step(recipe, args.start)
    writable_state_dir()  # the run's state and logs: say so before the doctor and the build
    if recipe.after and not _after(recipe, out, blocking=True):
        return EXIT_FAILED
    facts = _doctor(recipe, args.force, out)
    if facts is None:
        return EXIT_FAILED
    state = None
    if args.start and (previous := st.latest_for(recipe.id)):
        try:
            state = st.load(previous)
            answers = {**state.answers, **answers}
            state.answers = answers
        except st.StateError as exc:
            out.write(f"warning: {exc}")
            state = None
    if wants_slurm(args):
        from wizard.slurm_run import run_on_slurm

        return run_on_slurm(recipe, args, state, answers, facts, out)
    specs = hosts_of(args)
    if state is None:
        state = st.new_run(recipe.id, str(recipe.path), [s.id for s in recipe.steps], answers)
    elif state.cluster and not specs:  # --from continues the run on its hosts
        specs, args.ssh_config = Cluster.specs_from(state.cluster), state.cluster["ssh_config"]
    across = _across(recipe, specs, args, answers, state.folder, out) if specs else None
    if specs and across is None:
        return EXIT_FAILED
    values = _values(recipe, facts, answers, state.folder, ask=not args.yes, across=across)
    state.answers = answers
    return _go(recipe, state, values, out, args.start, across)


def resume(args: argparse.Namespace) -> int:
    out = Console()
    try:
        state = st.load(args.run)
    except st.StateError as exc:
        print(f"wizard: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    recipe = _load(state.recipe_path)
    if state.first_unfinished() is None:
        out.summary(recipe, state)
        out.write(f"Nothing left to do in run {state.run_id}.")
        return EXIT_OK
    leftovers = stop_leftovers(state.run_id)
    if leftovers:
        out.write(f"Stopped {len(leftovers)} process(es) left running by the interrupted wizard.")
    facts = _doctor(recipe, args.force, out)
    if facts is None:
        return EXIT_FAILED
    answers = {**state.answers, **_sets(args.sets)}
    state.answers = answers
    across = None
    if state.cluster and "slurm" in state.cluster:  # a new allocation, as the run asked
        from wizard.slurm_run import run_on_slurm

        saved = state.cluster["slurm"]["request"]
        return run_on_slurm(recipe, args, state, answers, facts, out, saved_request=saved)
    if state.cluster:  # the hosts the run started with
        args.ssh_config = state.cluster.get("ssh_config")
        specs = Cluster.specs_from(state.cluster)
        across = _across(recipe, specs, args, answers, state.folder, out)
        if across is None:
            return EXIT_FAILED
    values = _values(recipe, facts, answers, state.folder, ask=not args.yes, across=across)
    return _go(recipe, state, values, out, None, across)


def status(args: argparse.Namespace) -> int:
    try:
        state = st.load(args.run, set_aside=False)
    except st.StateError as exc:
        print(f"wizard: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        data = asdict(state)
        data["path"] = str(state.path)
        print(json.dumps(data, indent=2))
        return EXIT_OK
    Console().summary(_load(state.recipe_path), state)
    return EXIT_OK


def steps(args: argparse.Namespace) -> int:
    out = Console()
    recipe = _load(args.recipe)
    if args.start:
        _check_step(recipe, args.start)
    facts = recipe_facts(run_doctor(LocalHost()))
    missing: list[str] = []
    try:
        values = resolve(recipe, facts, _sets(args.sets), Path("<run folder>"), missing=missing)
    except ParamError as exc:
        raise UsageError(str(exc)) from None
    out.write(f"{recipe.title} ({recipe.path})")
    if recipe.after:
        _after(recipe, out, blocking=False)
    for item in plan(recipe, values, None, args.start):
        verb = "run " if item.action == "run" else "skip"
        why = f"  ({item.reason})" if item.reason and item.action == "skip" else ""
        out.write(f" {item.index + 1:>2}. {verb} {item.step.id}: {item.step.title}{why}")
        if item.action == "run":
            for line in recipes.render(item.step.run, values, quote=True).splitlines():
                out.write(out.paint(f"       $ {line}", "2"))
    if not missing:
        return EXIT_OK
    out.write()
    out.write(out.paint("Missing parameters (shown above as <name?>):", "33"))
    for name in missing:
        param = recipe.params[name]
        how = f"; the doctor found no {param.fact}" if param.fact else ""
        out.write(f"  --set {name}=VALUE   {param.help or ''}{how}")
    return EXIT_FAILED


def _sets(pairs: list[str]) -> dict[str, str]:
    try:
        return parse_sets(pairs)
    except ParamError as exc:
        raise UsageError(str(exc)) from None


def _check_step(recipe: recipes.Recipe, step_id: str) -> None:
    try:
        recipe.index(step_id)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None


def report(args: argparse.Namespace) -> int:
    from wizard.console import size_text
    from wizard.engine.compare import CAUSES, NoResults, latest

    try:
        result = latest()
    except (NoResults, st.StateError) as exc:
        print(f"wizard: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
        return EXIT_FAILED if any(c.gaps() for c in result.comparisons) else EXIT_OK
    out = Console()
    first = result.comparisons[0]
    out.write(f"FlagCX run {first.flagcx_run} against nccl-tests run {first.nccl_run}")
    if result.torch_run:
        out.write(f"torch: torch.distributed's figures from run {result.torch_run}")
    if result.peak_gbs:
        out.write(f"Links: {result.link}, peak {result.peak_gbs:g} GB/s per direction")
    else:
        out.write("Links: peak unknown (the doctor read no NVLink or PCIe speed)")
    gaps = []
    for comparison in result.comparisons:
        out.write()
        out.write(f"{comparison.collective}, {comparison.metric} (GB/s)")
        torch = bool(result.torch_run)
        out.write(_aligned(_REPORT_COLUMNS if torch else _REPORT_COLUMNS[:-1]))
        for row in comparison.rows:
            out.write(_aligned([size_text(row.size_bytes), *comparison.figures(row, torch=torch)]))
        if comparison.metric == "algbw":
            out.write("One rank: bus bandwidth is 0 for both, so algorithm bandwidth is compared.")
        gaps += [(comparison.collective, row) for row in comparison.gaps()]
    for note in result.missing:
        out.write(f"Not compared: {note}.")
    out.write()
    if not gaps:
        out.write("No large gap: FlagCX is within 10% of NCCL from 16M up.")
        return EXIT_OK
    where = ", ".join(f"{name} {size_text(row.size_bytes)}" for name, row in gaps)
    out.write(
        out.paint(f"Gap: FlagCX is more than 10% below NCCL at {where}. Likely causes:", "33")
    )
    for cause in CAUSES:
        out.write(f"  - {cause}")
    return EXIT_FAILED


_REPORT_COLUMNS = ("size", "FlagCX", "NCCL", "ratio", "FlagCX/peak", "NCCL/peak", "torch")
_REPORT_WIDTHS = (8, 10, 10, 7, 12, 10, 9)


def _aligned(cells: Sequence[str]) -> str:
    """Right-aligned in the report's columns (the last, torch, only when it is shown)."""
    return " ".join(f"{cell:>{w}}" for cell, w in zip(cells, _REPORT_WIDTHS, strict=False))
