"""`wizard run`, `resume`, `status` and `steps`: recipes from the command line."""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import signal
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.cli.console import Console, OutputClosed
from wizard.cli.hosts_doctor import check_ssh_config, hosts_of
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.hosts.across import Builder, Cluster, ClusterError
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.engine.recipes.run import (
    UNSAVED_RUN,
    Cancelled,
    ParamError,
    drop_lost_steps,
    execute,
    failing_requirements,
    parse_sets,
    plan,
    prior_runs,
    recipe_facts,
    refresh_checkout,
    resolve,
    start_run,
    stop_leftovers,
)
from wizard.engine.recipes.runner import StepRunner
from wizard.engine.recipes.saved import judge, unfinished_runs
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from wizard.host import LocalHost
from wizard.paths import writable_state_dir

if TYPE_CHECKING:
    from wizard.engine.hosts.doctor_all import HostResult


@dataclass
class RunRequest:
    """What `wizard run` is asked to do, whoever asks (the command line or the plain prompts)."""

    recipe: str
    sets: list[str] = field(default_factory=list)
    start: str | None = None
    yes: bool = False
    force: bool = False
    hosts: str | None = None
    hostfile: str | None = None
    ssh_config: str | None = None
    # A Slurm allocation (--slurm, and salloc's options when the wizard asks for one).
    slurm: bool = False
    nodes: int | None = None
    partition: str | None = None
    gpus_per_node: int | None = None
    time: str | None = None
    account: str | None = None
    slurm_wait: int | None = None
    batch: bool = False
    slurm_mpirun: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> RunRequest:
        given = {name: getattr(args, name, None) for name in SLURM_FIELDS}
        return cls(
            recipe=args.recipe,
            sets=args.sets,
            start=args.start,
            yes=args.yes,
            force=args.force,
            hosts=args.hosts,
            hostfile=args.hostfile,
            ssh_config=args.ssh_config,
            **{name: value for name, value in given.items() if value is not None},
        )


SLURM_FIELDS = (
    "slurm", "nodes", "partition", "gpus_per_node", "time", "account", "slurm_wait", "batch",
    "slurm_mpirun",
)  # fmt: skip


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
        if builder.host is None:  # read again: an earlier step may have cloned the checkout
            return refresh_checkout(self.recipe, self.local, self.answers)
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
    args: RunRequest | argparse.Namespace,
    answers: dict[str, str],
    run_dir: Path,
    out: Console,
) -> Across | None:
    """The doctor on every host over SSH, then the cluster, as judged() finds it."""
    from wizard.engine.hosts.across import discover
    from wizard.engine.hosts.ssh import connect

    check_ssh_config(args.ssh_config)
    per_host = answers.get("gpus")
    out.write(f"Checking {len(specs)} hosts over SSH ...")
    results, cluster = discover(
        specs,
        lambda spec: connect(spec, args.ssh_config),
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
    from wizard.engine.hosts.doctor_all import differences

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
    """SIGTERM (kill) and SIGHUP (the terminal or tmux closed) stop the run as Ctrl-C does:
    the running step is ended and the state saved, not left running unsupervised."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def _go(
    recipe: recipes.Recipe,
    state: st.RunState,
    values: dict[str, Any],
    out: Console,
    start: str | None,
    across: Across | None = None,
) -> int:
    _sigterm_as_interrupt()
    runner = StepRunner(LocalHost())
    try:
        return _steps(recipe, state, values, out, start, runner, across)
    except OutputClosed as exc:
        return _output_gone(exc, state, EXIT_INTERRUPTED if runner.cancelled else EXIT_FAILED)
    except KeyboardInterrupt:  # while no step ran (a done_if, a save) or again after a stop
        with contextlib.suppress(OSError):
            print(
                f"\nwizard: interrupted; run {state.run_id} is saved as it stands. Continue "
                f"with: wizard resume --run {state.run_id}",
                file=sys.stderr,
            )
        return EXIT_INTERRUPTED


def _steps(
    recipe: recipes.Recipe,
    state: st.RunState,
    values: dict[str, Any],
    out: Console,
    start: str | None,
    runner: StepRunner,
    across: Across | None,
) -> int:
    shown = {k: v for k, v in values.items() if k in recipe.params}
    out.write(f"Run {state.run_id}: {recipe.title}")
    out.write(
        "Parameters: "
        + " ".join(f"{k}={' '.join(v) if isinstance(v, list) else v}" for k, v in shown.items())
    )
    try:
        if across:
            state.cluster = across.cluster.to_dict()
            state.save()
            for note in across.source_notes():
                out.write(note)
        ok = execute(
            recipe,
            state,
            values,
            out,
            start=start,
            runner=runner,
            cluster=across.cluster if across else None,
            values_for=across.values_for if across else None,
        )
    except Cancelled as stopped:
        out.summary(recipe, state)
        what = (
            f"during {stopped.step_id}; {stopped.stopped}"
            if stopped.started
            else f"before {stopped.step_id}, which did not start"
        )
        out.write(f"Stopped {what}. Continue with: wizard resume --run {state.run_id}")
        return EXIT_INTERRUPTED
    except ClusterError as exc:  # found when a step learns who shares what
        out.summary(recipe, state)
        out.write(f"wizard: {exc}")
        out.write(f"Then continue with: wizard resume --run {state.run_id}")
        return EXIT_FAILED
    except st.StateError as exc:  # a full disk, a folder made read-only
        out.summary(recipe, state)
        out.write(f"wizard: error: {exc}")
        return EXIT_FAILED
    out.summary(recipe, state)
    if ok:
        return EXIT_OK
    out.write(f"Fix what failed, then continue with: wizard resume --run {state.run_id}")
    return EXIT_FAILED


def _output_gone(exc: OutputClosed, state: st.RunState, code: int) -> int:
    """Standard output is gone (`| head` ended, the terminal closed): the running step was
    stopped and saved; say so on stderr, if it is still there."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())  # Python's last flush at exit must not fail too
    why = (
        "the output was closed (the command reading it, as `| head`, ended)"
        if exc.errno == errno.EPIPE
        else f"the output cannot be written ({exc.strerror})"
    )
    with contextlib.suppress(OSError):
        print(
            f"wizard: {why}, so run {state.run_id} stopped; its state is saved. "
            f"Continue with: wizard resume --run {state.run_id}",
            file=sys.stderr,
        )
    return code


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


def run(args: RunRequest) -> int:
    from wizard.cli.slurm_doctor import check_slurm_args, wants_slurm

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
            state = st.load(previous, lock=True)
            answers = {**state.answers, **answers}
            state.answers = answers
        except st.RunBusy as exc:
            print(f"wizard: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        except st.StateError as exc:
            out.write(f"warning: {exc}")
            state = None
    if wants_slurm(args):
        from wizard.cli.slurm_run import run_on_slurm

        return run_on_slurm(recipe, args, state, answers, facts, out)
    specs = hosts_of(args)
    if state is not None and state.cluster and not specs:  # --from continues on its hosts
        specs, args.ssh_config = Cluster.specs_from(state.cluster), state.cluster["ssh_config"]
    folder = state.folder if state else UNSAVED_RUN
    across = _across(recipe, specs, args, answers, folder, out) if specs else None
    if specs and across is None:
        return EXIT_FAILED
    values = _values(recipe, facts, answers, folder, ask=not args.yes, across=across)
    if state is None:  # saved only now that it starts: a usage error above saves nothing
        try:
            state = start_run(recipe, answers, values)
        except st.StateError as exc:  # runs/ is a file, the disk is full
            print(f"wizard: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if across:
            across.run_dir = state.folder
    state.answers = answers
    return _go(recipe, state, values, out, args.start, across)


def _unfinished_others(out: Console, run_id: str) -> None:
    """Every other unfinished run, and how to continue (or drop) each."""
    others = [u for u in unfinished_runs() if u.run.run_id != run_id]
    if others:
        out.write("Other unfinished runs, newest first:")
        for other in others:
            out.write(f"  {other.line()}")


def resume(args: argparse.Namespace) -> int:
    out = Console()
    try:
        state = st.load(args.run, lock=True)  # before its leftovers are stopped
    except (st.StateError, st.RunBusy) as exc:
        print(f"wizard: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    saved = judge(state)
    if saved.recipe is not None and (lost := drop_lost_steps(saved.recipe, state)):
        out.write(
            f"The recipe {state.recipe_path} no longer has the step(s) {', '.join(lost)} "
            f"that run {state.run_id} recorded: they are left out of the run."
        )
    if saved.recipe is not None and state.first_unfinished() is None:
        out.summary(saved.recipe, state)
        out.write(f"Nothing left to do in run {state.run_id}.")
        _unfinished_others(out, state.run_id)
        return EXIT_OK
    if saved.recipe is None or saved.problem:
        print(f"wizard: run {saved.line()}", file=sys.stderr)
        _unfinished_others(out, state.run_id)
        return EXIT_FAILED
    recipe = saved.recipe
    _unfinished_others(out, state.run_id)
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
        from wizard.cli.slurm_run import run_on_slurm

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
        values = resolve(recipe, facts, _sets(args.sets), UNSAVED_RUN, missing=missing)
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
            try:
                script = recipes.render(item.step.script(values), values, quote=True)
            except recipes.NoCommand as exc:
                out.write(out.paint(f"       ({exc})", "33"))
                continue
            for line in script.splitlines():
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
    """The chosen runs' results in the asked format; exit 1 only for a FlagCX/NCCL gap."""
    from wizard.engine.recipes.compare import NoResults, PerfReport, UnknownRun, gather
    from wizard.engine.recipes.perf_report import render

    form = "json" if args.json else args.format
    try:
        result = gather(args.runs or ())
    except UnknownRun as exc:
        raise UsageError(str(exc)) from None
    except NoResults as exc:
        if form == "text":
            print(f"Nothing to report yet: {exc}.")
            return EXIT_OK
        result = PerfReport([], [], "", None, {}, [str(exc)])  # says so in its own format
    body = render(result, form)
    if args.output:
        try:
            Path(args.output).write_text(body, encoding="utf-8")
        except OSError as exc:
            print(f"wizard: error: cannot write {args.output}: {exc.strerror}", file=sys.stderr)
            return EXIT_FAILED
        print(f"Wrote the {form} report to {args.output}")
    else:
        sys.stdout.write(body)
    return EXIT_FAILED if result.gaps() else EXIT_OK
