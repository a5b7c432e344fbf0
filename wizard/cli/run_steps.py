"""A recipe's steps from the command line, once the run is set up: its values (asked for
where missing), the hosts judged for a run across them, and the run itself with its
stops (Ctrl-C, SIGTERM, a closed output). `wizard run`/`resume` (wizard.cli.run) and
runs in a Slurm allocation (wizard.cli.slurm_run) share them."""

from __future__ import annotations

import argparse
import contextlib
import errno
import os
import signal
import sys
from pathlib import Path
from typing import Any

from wizard.cli.console import Console, OutputClosed
from wizard.engine.hosts import run_across
from wizard.engine.hosts.across import Cluster, ClusterError
from wizard.engine.hosts.doctor_all import HostResult
from wizard.engine.hosts.run_across import Across, Verdict
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.engine.recipes.run import Cancelled, ParamError, execute, resolve
from wizard.engine.recipes.runner import StepRunner
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from wizard.host import LocalHost


def values_of(
    recipe: recipes.Recipe,
    facts: dict[str, Any],
    answers: dict[str, str],
    run_dir: Any,
    ask: bool,
    across: Across | None = None,
) -> dict[str, Any]:
    """The run's parameter values; one that is missing is asked for at a terminal (with
    `ask`), else a usage error. Across hosts, every host's values are checked now too."""
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
    verdict, across = run_across.judged(
        recipe, results, cluster, answers, run_dir, force=args.force
    )
    say_verdict(verdict, out, hosts_option)
    return across


def say_verdict(verdict: Verdict, out: Console, hosts_option: str) -> None:
    """What stops a run across hosts, or warns about it, and the ranks each host takes."""
    word = "warning" if verdict.force else "blocked"
    for host in verdict.hosts:
        if host.error is not None:
            out.write(f"unreachable: {host.label}: {host.error}")
            continue
        for finding in host.failing:
            out.write(f"{word}: {host.label}: {finding.id}: {finding.summary}")
        out.write(f"  {host.label}: {host.slots} rank(s), {host.target}")
    for diff in verdict.blocking:
        shown = ", ".join(f"{k}={v}" for k, v in diff.values.items())
        out.write(f"{word}: {diff.fact} differs: {shown}")
        out.write(f"  ({diff.why})")
    if verdict.stops:
        out.write(f"Run `wizard doctor {hosts_option}` for the details, or pass --force.")
        return
    for label in verdict.one_gpu:
        out.write(
            f"note: {label} has one GPU: FlagCX falls back to host-based communication "
            "between hosts (correct, much slower; GPU utilisation stays near 0%)."
        )


def _sigterm_as_interrupt() -> None:
    """SIGTERM (kill) and SIGHUP (the terminal or tmux closed) stop the run as Ctrl-C does:
    the running step is ended and the state saved, not left running unsupervised."""

    def handler(signum: int, frame: Any) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGHUP, handler)


def go(
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
            across=across,
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
