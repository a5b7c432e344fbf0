"""The saved runs that stopped before their end, as `wizard resume` and the app offer them:
each with how to continue it, or why it no longer can and how to drop it."""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.engine.recipes.run import misfit


@dataclass
class Unfinished:
    run: st.RunState
    recipe: recipes.Recipe | None  # None: its recipe file cannot be loaded any more
    problem: str | None = None  # why it cannot continue, or None

    @property
    def step(self) -> str:
        """Where it stopped: the first unfinished step and its status."""
        step = self.run.first_unfinished() or ""
        return f"{step} ({self.run.steps[step].status})" if step else ""

    @property
    def how(self) -> str:
        """The command that continues it, or the one that drops it."""
        if self.problem:
            return f"rm -r {shlex.quote(str(self.run.folder))}"
        return f"wizard resume --run {self.run.run_id}"

    def line(self) -> str:
        """One line for a list of runs: which, where it stopped, what to type."""
        if self.problem:
            return f"{self.run.run_id}: cannot continue, {self.problem}; drop it with: {self.how}"
        return f"{self.run.run_id}: stopped at {self.step}; continue with: {self.how}"


def judge(run: st.RunState) -> Unfinished:
    """A saved run with what stands in its way, if anything."""
    try:
        recipe = recipes.load(run.recipe_path)
    except recipes.RecipeError as exc:
        return Unfinished(run, None, f"its recipe cannot be loaded ({exc})")
    return Unfinished(run, recipe, misfit(recipe, run))


def unfinished_runs() -> list[Unfinished]:
    """Every saved run that stopped before its end, newest first. Files that cannot be read
    are left to `wizard status` and `wizard resume --run`, which say why."""
    found = []
    for run_id in st.saved_runs():
        try:
            run = st.load(run_id, set_aside=False)
        except st.StateError:
            continue
        if run.first_unfinished() is not None:
            found.append(judge(run))
    return found
