"""How steps run, stop and are supervised, as real processes: exit codes and signals,
cancels whenever they come, output that cannot be written, one live wizard per run, a second
Ctrl-C, SIGHUP, and children that leave the step's session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli import run_wizard as wizard
from wizard.engine import recipe as recipes
from wizard.engine import state as st
from wizard.engine.recipe import Step
from wizard.engine.run import Cancelled, execute, resolve
from wizard.engine.runner import Outcome, StepRunner
from wizard.host import LocalHost


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}


def state(env: dict[str, str]) -> dict:
    done = wizard(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_an_exit_code_of_128_plus_n_is_an_exit_code_and_a_signal_is_a_signal(
    env: dict, tmp_path: Path
) -> None:
    """mpirun exits 132 when it cannot start a rank: nothing was killed. Only the wait
    status (the step's bash itself ended by SIGILL) says "killed by signal"."""
    path = tmp_path / "codes.yaml"
    path.write_text(
        "id: codes\ntitle: Codes\nsteps:\n"
        "  - id: exits\n    optional: true\n    run: bash -c 'exit 132'\n"
        "  - id: killed\n    optional: true\n    run: kill -ILL $$\n"
    )
    done = wizard(env, "run", str(path))
    assert done.returncode == 1
    assert "✗ exits: failed (exit code 132)" in done.stdout
    assert "✗ killed: failed (killed by signal 4 (SIGILL))" in done.stdout
    assert done.stdout.count("[wizard] killed by signal") == 1  # under the killed step only
    steps = state(env)["steps"]
    assert steps["exits"]["exit_code"] == 132 and steps["killed"]["exit_code"] == -4


class CancelAtEnd:
    """A listener that presses cancel as a step ends (the app's key, between two steps)."""

    def __init__(self, runner: StepRunner, step_id: str) -> None:
        self.runner, self.step_id = runner, step_id

    def step_started(self, index: int, total: int, step: Step, command: str) -> None:
        pass

    def lines(self, texts: list[str]) -> None:
        pass

    def step_skipped(self, index: int, total: int, step: Step, reason: str) -> None:
        pass

    def step_finished(self, step: Step, result: st.StepState, outcome: Outcome) -> None:
        if step.id == self.step_id:
            self.runner.cancel()


def test_a_cancel_between_two_steps_stops_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    path = tmp_path / "two.yaml"
    path.write_text(
        "id: two\ntitle: Two\nparams:\n  work: {kind: path}\nsteps:\n"
        "  - id: one\n    run: touch {{ work }}/one\n"
        "  - id: two\n    run: touch {{ work }}/two\n"
    )
    recipe = recipes.load(str(path))
    run = st.new_run(recipe.id, str(path), [s.id for s in recipe.steps], {})
    values = resolve(recipe, {}, {"work": str(tmp_path)}, run.folder)
    runner = StepRunner(LocalHost())
    with pytest.raises(Cancelled) as stopped:
        execute(recipe, run, values, CancelAtEnd(runner, "one"), runner=runner)
    assert stopped.value.step_id == "two" and not stopped.value.started
    assert (tmp_path / "one").exists() and not (tmp_path / "two").exists()
    assert st.load(run.run_id).steps["two"].status == st.PENDING  # a resume runs it


def test_a_part_of_a_step_cancelled_before_it_starts_does_not_start(tmp_path: Path) -> None:
    """A step across hosts runs a sibling runner per host: a cancel that comes after they
    are made and before one starts reaches it."""
    runner = StepRunner(LocalHost())
    part = runner.sibling()
    runner.cancel()
    later = runner.sibling()
    for each in (part, later):
        outcome = each.run(
            f"touch {tmp_path}/ran", cwd=None, env=dict(os.environ), timeout=10,
            log_path=tmp_path / "part.log", on_lines=lambda lines: None,
        )  # fmt: skip
        assert outcome.cancelled
    assert not (tmp_path / "ran").exists()
