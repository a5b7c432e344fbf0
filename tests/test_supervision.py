"""How steps run, stop and are supervised, as real processes: exit codes and signals,
cancels whenever they come, output that cannot be written, one live wizard per run, a second
Ctrl-C, SIGHUP, and children that leave the step's session."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_wizard as wizard
from tests.test_run import lines, wait_for
from wizard.engine import recipe as recipes
from wizard.engine import state as st
from wizard.engine.recipe import Step
from wizard.engine.run import Cancelled, execute, leftover_processes, resolve
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


WAITING = """\
id: waiting
title: A step that waits for a go file
params:
  work: {kind: path}
steps:
  - id: one
    run: echo one >> {{ work }}/one.count
  - id: two
    run:
      - echo started > {{ work }}/two.started
      - while [ ! -f {{ work }}/go ]; do sleep 0.1; done
      - echo two >> {{ work }}/two.count
"""


def start_waiting(env: dict, work: Path, *args: str) -> subprocess.Popen[str]:
    """`wizard run` of the waiting recipe, returned once its step two waits for go."""
    recipe = work.parent / "waiting.yaml"
    recipe.write_text(WAITING)
    (work / "two.started").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "wizard", "run", str(recipe), "--set", f"work={work}", *args]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(work / "two.started")
    return proc


def test_a_second_wizard_of_a_live_run_is_refused_and_the_first_goes_on(
    env: dict, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    first = start_waiting(env, work)
    try:
        second = wizard(env, "resume")
        assert second.returncode == 1, second.stdout + second.stderr
        assert f"is in use by another wizard (pid {first.pid})" in second.stderr
        assert first.poll() is None and leftover_processes(state(env)["run_id"])
        (work / "go").touch()
        out, err = first.communicate(timeout=60)
    finally:
        first.kill()
    assert first.returncode == 0, out + err
    assert lines(work / "two.count") == 1


def test_two_runs_from_one_step_at_once_run_it_once(env: dict, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    (work / "go").touch()
    assert start_waiting(env, work).wait(timeout=60) == 0
    (work / "go").unlink()
    first = start_waiting(env, work, "--from", "two")
    try:
        second = wizard(env, "run", str(tmp_path / "waiting.yaml"), "--from", "two")
        assert second.returncode == 1, second.stdout + second.stderr
        assert "is in use by another wizard" in second.stderr
        (work / "go").touch()
        assert first.wait(timeout=60) == 0
    finally:
        first.kill()
    assert lines(work / "two.count") == 2  # the first run's and the first --from's


def _new_runs(state_home: str) -> None:
    os.environ["XDG_STATE_HOME"] = state_home
    for _ in range(15):
        st.new_run("many", "many.yaml", ["one"], {})


def test_eight_wizards_starting_runs_at_once_each_get_their_own(tmp_path: Path) -> None:
    """Eight processes, 15 new runs each, mostly within the same second: every run gets its
    own folder and `latest` is always whole (no shared temporary file)."""
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=_new_runs, args=(str(tmp_path / "state"),)) for _ in range(8)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(timeout=120)
    assert [w.exitcode for w in workers] == [0] * 8
    runs = tmp_path / "state" / "wizard" / "runs"
    assert len(list(runs.glob("many-*/state.yaml"))) == 8 * 15
    assert (runs / (runs / "latest").read_text().strip() / "state.yaml").is_file()
    assert not list(runs.glob(".latest*"))
