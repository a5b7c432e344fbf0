"""How steps run, stop and are supervised, as real processes: exit codes and signals,
cancels whenever they come, output that cannot be written, one live wizard per run, a second
Ctrl-C, SIGHUP, and children that leave the step's session."""

from __future__ import annotations

import json
import multiprocessing
import os
import shlex
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from tests.cli import run_wizard as wizard
from tests.test_run import lines, wait_for
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import run as run_module
from wizard.engine.recipes import state as st
from wizard.engine.recipes.recipe import DoneIf, Step
from wizard.engine.recipes.run import Cancelled, execute, leftover_processes, resolve
from wizard.engine.recipes.runner import Outcome, StepRunner
from wizard.host import LocalHost


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


def start_waiting(
    env: dict, work: Path, *args: str, recipe_text: str = WAITING
) -> subprocess.Popen[str]:
    """`wizard run` of the waiting recipe, returned once its step two waits for go."""
    recipe = work.parent / "waiting.yaml"
    recipe.write_text(recipe_text)
    (work / "two.started").unlink(missing_ok=True)
    argv = [sys.executable, "-m", "wizard", "run", str(recipe), "--set", f"work={work}", *args]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(work / "two.started")
    return proc


def end(proc: subprocess.Popen[str]) -> None:
    """A wizard a test started, ended as a user would (so its step ends with it)."""
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


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
        end(first)
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
        end(first)
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


LOUD = """\
id: loud
title: A step with much output
steps:
  - id: quiet
    run: echo quiet
  - id: loud
    run: seq {count}
    timeout: {timeout}
"""


def loud_recipe(tmp_path: Path, count: int, timeout: int = 600) -> Path:
    """A recipe whose second step prints the numbers up to count (300000: 2 MB)."""
    path = tmp_path / "loud.yaml"
    path.write_text(LOUD.format(count=count, timeout=timeout))
    return path


def test_a_closed_pipe_under_wizard_run_stops_the_step_and_says_so(
    env: dict, tmp_path: Path
) -> None:
    """`wizard run ... | head`: the step's output can no longer be shown, so the step is
    stopped (it blocked on a full pipe, with the wizard waiting for it, forever)."""
    recipe = loud_recipe(tmp_path, 300_000)
    shell = (
        f"{shlex.quote(sys.executable)} -m wizard run {shlex.quote(str(recipe))} "
        f"2>{tmp_path}/err | head -c 100000 >/dev/null; echo ${{PIPESTATUS[0]}} > {tmp_path}/code"
    )
    subprocess.run(["bash", "-c", shell], env=env, timeout=120, check=True)
    err = (tmp_path / "err").read_text()
    assert (tmp_path / "code").read_text().strip() == "1", err
    assert "the output was closed (the command reading it, as `| head`, ended)" in err
    assert "wizard resume --run loud-" in err and "internal error" not in err
    run = state(env)
    assert run["steps"]["loud"]["status"] == "failed"
    assert "stopped: the wizard's output was closed" in run["steps"]["loud"]["reason"]
    assert not leftover_processes(run["run_id"])


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 1 MiB tmpfs, mounted by the test (as root) for the state folder."""
    folder = tmp_path / "state"
    folder.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs (root is needed): {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


def test_a_full_disk_stops_the_step_and_resume_says_so_until_there_is_room(
    env: dict, tmp_path: Path, small_disk: Path
) -> None:
    recipe = loud_recipe(tmp_path, 300_000, timeout=60)
    started = time.monotonic()
    full = wizard(env, "run", str(recipe), timeout=120)
    assert time.monotonic() - started < 60  # the timeout was not needed: nothing hung
    said = full.stdout + full.stderr
    assert full.returncode == 1, said
    assert "stopped: its log" in said and "cannot be written (No space left on device)" in said
    assert "cannot save the state of run loud-" in said and "internal error" not in said
    resumed = wizard(env, "resume")  # the disk is still full
    said = resumed.stdout + resumed.stderr
    assert resumed.returncode == 1 and "No space left on device" in said, said
    assert "internal error" not in said
    subprocess.run(["mount", "-o", "remount,size=64m", str(small_disk)], check=True)
    again = wizard(env, "resume")
    assert again.returncode == 0, again.stdout + again.stderr
    assert state(env)["steps"]["loud"]["status"] == "done"


def test_a_run_folder_made_read_only_mid_run_still_records_how_steps_ended(
    env: dict, tmp_path: Path
) -> None:
    """The folder takes no new file (a read-only mount here; a chmod for a plain user):
    the state is written over itself, so the step that finished is not left "running",
    and the next step fails for want of a log instead of the wizard crashing."""
    work = tmp_path / "work"
    work.mkdir()
    first = start_waiting(env, work, recipe_text=WAITING + "  - id: three\n    run: echo three\n")
    folder = tmp_path / "state" / "wizard" / "runs" / state(env)["run_id"]
    bound = subprocess.run(["mount", "--bind", str(folder), str(folder)], check=False)
    if bound.returncode != 0:
        end(first)
        pytest.skip("cannot bind-mount (root is needed)")
    try:
        subprocess.run(["mount", "-o", "remount,ro,bind", str(folder)], check=True)
        (work / "go").touch()
        out, err = first.communicate(timeout=60)
        saved = state(env)["steps"]  # what the read-only folder holds
    finally:
        end(first)
        subprocess.run(["umount", "-l", str(folder)], check=False)
    assert first.returncode == 1, out + err
    assert "internal error" not in err
    assert f"✗ three: failed (cannot open its log {folder}/03-three.log" in out
    assert saved["two"]["status"] == "done"
    assert saved["three"]["status"] == "failed"
    assert "(Read-only file system)" in saved["three"]["reason"]
    resumed = wizard(env, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert lines(work / "two.count") == 1


def test_runs_being_a_file_is_a_message(env: dict, tmp_path: Path) -> None:
    runs = tmp_path / "state" / "wizard" / "runs"
    runs.parent.mkdir(parents=True)
    runs.write_text("not a folder\n")
    done = wizard(env, "run", str(loud_recipe(tmp_path, 10)))
    assert done.returncode == 1, done.stderr
    assert f"{runs} is not a folder: the wizard keeps its runs there; move it away" in done.stderr


def test_a_done_if_command_past_its_limit_counts_as_not_done(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The limit is 60 s; shortened here. The command and what it started are ended."""
    monkeypatch.setattr(run_module, "DONE_IF_TIMEOUT_S", 1.0)
    step = Step("slow", "Slow", "true", done_if=DoneIf(command="true && sleep 31.25"))
    started = time.monotonic()
    assert run_module.done_reason(step, {}) is None
    assert time.monotonic() - started < 10
    sleeping = [
        p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", "31.25"]
    ]
    assert not sleeping, "the done_if command's child survived its timeout"


def start_step(env: dict, tmp_path: Path, script: str) -> subprocess.Popen[str]:
    """`wizard run` of a one-step recipe running `script`, returned once the step has
    written {{ work }}/started."""
    work = tmp_path / "work"
    work.mkdir(exist_ok=True)
    recipe = tmp_path / "one.yaml"
    recipe.write_text(
        "id: one\ntitle: One step\nparams:\n  work: {kind: path}\nsteps:\n  - id: step\n"
        f"    run: {json.dumps(script)}\n"
    )
    argv = [sys.executable, "-m", "wizard", "run", str(recipe), "--set", f"work={work}"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    wait_for(work / "started")
    return proc


def sleeping(seconds: str) -> list[psutil.Process]:
    return [p for p in psutil.process_iter(["cmdline"]) if p.info["cmdline"] == ["sleep", seconds]]


def test_a_second_ctrl_c_within_the_grace_kills_the_step_and_says_so(
    env: dict, tmp_path: Path
) -> None:
    """A step that ignores SIGTERM: the first Ctrl-C asks, the second kills its group."""
    proc = start_step(
        env, tmp_path, "trap '' TERM; touch {{ work }}/started; sleep 61.25; sleep 61.25"
    )
    try:
        proc.send_signal(signal.SIGINT)
        time.sleep(1)  # within the 5 s grace
        assert proc.poll() is None and sleeping("61.25")
        second = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        end(proc)
    assert time.monotonic() - second < 3  # not the rest of the grace
    assert proc.returncode == 130, out + err
    assert "Stopped during step; a second interrupt killed its processes (SIGKILL)" in out
    assert "nothing was changed" not in err
    assert not sleeping("61.25")


def test_a_cancel_ends_the_children_that_left_the_steps_session(env: dict, tmp_path: Path) -> None:
    """One child calls setsid (found by the token in its environment), one also clears its
    environment (found as a descendant of the step)."""
    script = "setsid sleep 62.25 & env -i setsid sleep 63.25 & touch {{ work }}/started; wait"
    proc = start_step(env, tmp_path, script)
    try:
        deadline = time.monotonic() + 10
        while not (sleeping("62.25") and sleeping("63.25")):
            assert time.monotonic() < deadline
            time.sleep(0.05)
        for seconds in ("62.25", "63.25"):
            (daemon,) = sleeping(seconds)
            assert os.getsid(daemon.pid) != os.getsid(proc.pid)
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        end(proc)
    assert proc.returncode == 130, out + err
    assert "Stopped during step; its processes were ended." in out
    assert not sleeping("62.25") and not sleeping("63.25"), "a setsid child survived"


@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by .ci/run")
def test_a_closed_terminal_stops_the_step_as_ctrl_c_does(env: dict, tmp_path: Path) -> None:
    """tmux kill-session hangs up the terminal (SIGHUP): the step is ended and saved as
    cancelled, not left running with nobody watching it."""
    work = tmp_path / "work"
    work.mkdir()
    recipe = tmp_path / "waiting.yaml"
    recipe.write_text(WAITING)
    session = f"wizard-hup-{os.getpid()}"
    command = shlex.join(
        [sys.executable, "-m", "wizard", "run", str(recipe), "--set", f"work={work}"]
    )
    shell = f"cd {shlex.quote(os.getcwd())} && XDG_STATE_HOME={shlex.quote(env['XDG_STATE_HOME'])} NO_COLOR=1 {command}"
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "80", "-y", "24", shell], check=True
    )
    try:
        wait_for(work / "two.started")
        run_id = state(env)["run_id"]
        assert leftover_processes(run_id)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    deadline = time.monotonic() + 20
    while leftover_processes(run_id) or state(env)["steps"]["two"]["status"] == "running":
        assert time.monotonic() < deadline, "the step outlived its terminal"
        time.sleep(0.1)
    assert state(env)["steps"]["two"]["status"] == "cancelled"


def test_ctrl_c_while_a_done_if_command_runs_ends_it_and_says_where_the_run_is(
    env: dict, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    work.mkdir()
    recipe = tmp_path / "judged.yaml"
    recipe.write_text(
        "id: judged\ntitle: Judged\nparams:\n  work: {kind: path}\nsteps:\n  - id: step\n"
        "    run: 'true'\n    done_if:\n"
        "      command: touch {{ work }}/started && sleep 64.25\n"
    )
    argv = [sys.executable, "-m", "wizard", "run", str(recipe), "--set", f"work={work}"]
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        wait_for(work / "started")
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=60)
    finally:
        end(proc)
    assert time.monotonic() - sent < 10  # not the rest of the done_if command
    assert proc.returncode == 130, out + err
    assert "nothing was changed" not in err
    assert "interrupted; run judged-" in err and "wizard resume --run judged-" in err
    assert not sleeping("64.25")
