"""`wizard run`, `resume`, `status` and `steps`: recipes from the command line."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from wizard.console import Console
from wizard.engine import recipe as recipes
from wizard.engine import state as st
from wizard.engine.doctor import run_doctor
from wizard.engine.run import (
    Cancelled,
    ParamError,
    execute,
    failing_requirements,
    parse_sets,
    plan,
    recipe_facts,
    resolve,
    stop_leftovers,
)
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError
from wizard.host import LocalHost
from wizard.paths import writable_state_dir


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
    recipe: recipes.Recipe, facts: dict[str, Any], answers: dict[str, str], run_dir: Any, ask: bool
) -> dict[str, Any]:
    while True:
        try:
            return resolve(recipe, facts, answers, run_dir)
        except ParamError as exc:
            missing = exc.missing
            if not (ask and missing and sys.stdin.isatty()):
                raise UsageError(str(exc)) from None
            param = recipe.params[missing]
            answers[missing] = input(f"{missing}{f' ({param.help})' if param.help else ''}: ")


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
) -> int:
    _sigterm_as_interrupt()
    shown = {k: v for k, v in values.items() if k in recipe.params}
    out.write(f"Run {state.run_id}: {recipe.title}")
    out.write(
        "Parameters: "
        + " ".join(f"{k}={' '.join(v) if isinstance(v, list) else v}" for k, v in shown.items())
    )
    try:
        ok = execute(recipe, state, values, out, start=start)
    except Cancelled as stopped:
        out.summary(recipe, state)
        out.write(
            f"Stopped during {stopped}; its processes were ended. Continue with: "
            f"wizard resume --run {state.run_id}"
        )
        return EXIT_INTERRUPTED
    out.summary(recipe, state)
    if ok:
        return EXIT_OK
    out.write(f"Fix what failed, then continue with: wizard resume --run {state.run_id}")
    return EXIT_FAILED


def run(args: argparse.Namespace) -> int:
    out = Console()
    recipe = _load(args.recipe)
    answers = _sets(args.sets)
    if args.start:
        _check_step(recipe, args.start)
    writable_state_dir()  # the run's state and logs: say so before the doctor and the build
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
    if state is None:
        state = st.new_run(recipe.id, str(recipe.path), [s.id for s in recipe.steps], answers)
    values = _values(recipe, facts, answers, state.folder, ask=not args.yes)
    state.answers = answers
    return _go(recipe, state, values, out, args.start)


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
    values = _values(recipe, facts, answers, state.folder, ask=not args.yes)
    return _go(recipe, state, values, out, None)


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
