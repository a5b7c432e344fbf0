"""`wizard run`, `resume`, `status` and `steps`: recipes from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from wizard.cli.console import Console
from wizard.cli.hosts_doctor import check_ssh_config, hosts_of
from wizard.cli.run_steps import go, say_verdict, values_of
from wizard.cli.slurm_doctor import check_slurm_args, wants_slurm
from wizard.cli.slurm_run import run_on_slurm
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.hosts.across import Cluster
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.run_across import Across, over_ssh
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.engine.recipes.run import (
    UNSAVED_RUN,
    ParamError,
    check_answers,
    drop_lost_steps,
    failing_requirements,
    parse_sets,
    plan,
    prior_runs,
    recipe_facts,
    resolve,
    start_run,
    stop_leftovers,
)
from wizard.engine.recipes.saved import judge, unfinished_runs
from wizard.errors import EXIT_FAILED, EXIT_OK, UsageError
from wizard.host import LocalHost
from wizard.paths import writable_state_dir


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


def _across(
    recipe: recipes.Recipe,
    specs: list[HostSpec],
    args: RunRequest | argparse.Namespace,
    answers: dict[str, str],
    run_dir: Path,
    out: Console,
) -> Across | None:
    """The doctor on every host over SSH, then the run across them, as judged() says."""
    check_ssh_config(args.ssh_config)
    out.write(f"Checking {len(specs)} hosts over SSH ...")
    verdict, across = over_ssh(
        recipe, specs, ssh_config=args.ssh_config, answers=answers, run_dir=run_dir,
        force=args.force,
    )  # fmt: skip
    say_verdict(verdict, out, "--hosts ...")
    return across


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
    out = Console()
    recipe = _load(args.recipe)
    answers = _sets(args.sets, recipe)
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
        return run_on_slurm(recipe, args, state, answers, facts, out)
    specs = hosts_of(args)
    if state is not None and state.cluster and not specs:  # --from continues on its hosts
        specs, args.ssh_config = Cluster.specs_from(state.cluster), state.cluster["ssh_config"]
    folder = state.folder if state else UNSAVED_RUN
    across = _across(recipe, specs, args, answers, folder, out) if specs else None
    if specs and across is None:
        return EXIT_FAILED
    values = values_of(recipe, facts, answers, folder, ask=not args.yes, across=across)
    if state is None:  # saved only now that it starts: a usage error above saves nothing
        try:
            state = start_run(recipe, answers, values)
        except st.StateError as exc:  # runs/ is a file, the disk is full
            print(f"wizard: error: {exc}", file=sys.stderr)
            return EXIT_FAILED
        if across:
            across.run_dir = state.folder
    state.answers = answers
    return go(recipe, state, values, out, args.start, across)


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
    sets = _sets(args.sets, recipe)
    facts = _doctor(recipe, args.force, out)
    if facts is None:
        return EXIT_FAILED
    answers = {**state.answers, **sets}
    state.answers = answers
    across = None
    if state.cluster and "slurm" in state.cluster:  # a new allocation, as the run asked
        saved = state.cluster["slurm"]["request"]
        return run_on_slurm(recipe, args, state, answers, facts, out, saved_request=saved)
    if state.cluster:  # the hosts the run started with
        args.ssh_config = state.cluster.get("ssh_config")
        specs = Cluster.specs_from(state.cluster)
        across = _across(recipe, specs, args, answers, state.folder, out)
        if across is None:
            return EXIT_FAILED
    values = values_of(recipe, facts, answers, state.folder, ask=not args.yes, across=across)
    return go(recipe, state, values, out, None, across)


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
    answers = _sets(args.sets, recipe)
    facts = recipe_facts(run_doctor(LocalHost()))
    missing: list[str] = []
    try:
        values = resolve(recipe, facts, answers, UNSAVED_RUN, missing=missing)
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


def _sets(pairs: list[str], recipe: recipes.Recipe) -> dict[str, str]:
    """The --set answers, each naming one of the recipe's parameters: said before the
    doctor runs, so a typo is not hidden behind what the doctor finds."""
    try:
        answers = parse_sets(pairs)
        check_answers(recipe, answers)
    except ParamError as exc:
        raise UsageError(str(exc)) from None
    return answers


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
