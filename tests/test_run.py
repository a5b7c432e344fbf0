"""`wizard run`, `resume`, `status` and `steps` as real processes: live output, saved state,
resume after failure, Ctrl-C and SIGKILL, and the flagcx recipe on the fixture project."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cli import run_wizard
from wizard.engine.recipes.run import leftover_processes

FIXTURE = Path(__file__).parent / "fixtures" / "flagcx-like"

COUNTING = """\
id: counting
title: Counting steps
params:
  work: {kind: path}
  pause: {default: "0"}
steps:
  - id: one
    run: echo one >> {{ work }}/one.count
  - id: two
    title: The slow one
    run:
      - echo started > {{ work }}/two.started
      - if [ ! -f {{ work }}/go ]; then sleep {{ pause }}; fi
      - test -f {{ work }}/go || test {{ pause }} = 0
      - echo two >> {{ work }}/two.count
  - id: three
    run: echo three >> {{ work }}/three.count
    done_if:
      exists: "{{ work }}/three.done"
"""


@pytest.fixture
def counting(tmp_path: Path) -> Path:
    path = tmp_path / "counting.yaml"
    path.write_text(COUNTING)
    (tmp_path / "work").mkdir()
    return path


wizard = run_wizard  # the tests below read as the commands a user types


def start_slow_run(recipe: Path, work: Path, env: dict, **popen: Any) -> subprocess.Popen:
    """`wizard run` of the counting recipe, returned once its step two has started to wait
    a minute for a go file."""
    argv = [
        sys.executable,
        "-m",
        "wizard",
        "run",
        str(recipe),
        "--set",
        f"work={work}",
        "--set",
        "pause=60",
    ]
    proc = subprocess.Popen(argv, env=env, **popen)
    wait_for(work / "two.started")
    return proc


def lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def state(env: dict[str, str]) -> dict:
    done = wizard(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def wait_for(path: Path, seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_failure_gives_exit_1_and_resume_continues(
    env: dict, counting: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    failed = wizard(env, "run", str(counting), "--set", f"work={work}", "--set", "pause=x")
    assert failed.returncode == 1
    assert "✗ two: failed (exit code 1)" in failed.stdout
    assert "continue with: wizard resume --run counting-" in failed.stdout
    assert state(env)["steps"]["two"]["status"] == "failed"
    (work / "go").touch()
    resumed = wizard(env, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "skipped, done earlier in this run" in resumed.stdout
    assert (lines(work / "one.count"), lines(work / "two.count"), lines(work / "three.count")) == (
        1,
        1,
        1,
    )
    again = wizard(env, "resume")
    assert again.returncode == 0 and "Nothing left to do" in again.stdout


def test_sigkill_mid_step_then_resume_reruns_that_step_only(
    env: dict, counting: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    proc = start_slow_run(
        counting,
        work,
        env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait()
    saved = state(env)["steps"]
    assert saved["one"]["status"] == "done" and saved["two"]["status"] == "running"
    (work / "go").touch()
    resumed = wizard(env, "resume")
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert "process(es) left running by the interrupted wizard" in resumed.stdout  # bash, sleep
    assert lines(work / "one.count") == 1  # finished work is not redone
    assert lines(work / "two.count") == 1 and lines(work / "three.count") == 1
    assert not leftover_processes(state(env)["run_id"])


def test_ctrl_c_stops_the_whole_step_and_saves(env: dict, counting: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = start_slow_run(
        counting,
        work,
        env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    time.sleep(0.2)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 130
    assert "Stopped during two; its processes were ended" in out
    assert "wizard resume --run counting-" in out
    run = state(env)
    assert run["steps"]["two"]["status"] == "cancelled"
    assert not leftover_processes(run["run_id"]), "the step's sleep survived Ctrl-C"


def test_sigterm_is_handled_like_ctrl_c(env: dict, counting: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    proc = start_slow_run(
        counting,
        work,
        env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    proc.terminate()
    assert proc.wait(timeout=30) == 130


def test_from_reruns_the_named_step_and_after(env: dict, counting: Path, tmp_path: Path) -> None:
    work = tmp_path / "work"
    (work / "go").touch()
    assert wizard(env, "run", str(counting), "--set", f"work={work}").returncode == 0
    again = wizard(env, "run", str(counting), "--from", "two")
    assert again.returncode == 0, again.stdout
    assert "skipped, before --from two" in again.stdout
    assert (lines(work / "one.count"), lines(work / "two.count"), lines(work / "three.count")) == (
        1,
        2,
        2,
    )
    bad = wizard(env, "run", str(counting), "--from", "tow")
    assert bad.returncode == 2 and "no step 'tow' (did you mean 'two'?)" in bad.stderr


def test_done_if_skips_finished_work_on_a_new_run(
    env: dict, counting: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    (work / "go").touch()
    (work / "three.done").touch()
    plan = wizard(env, "steps", str(counting), "--set", f"work={work}")
    assert plan.returncode == 0
    assert f"skip three: three  (already done: {work}/three.done exists)" in plan.stdout
    assert f"$ echo one >> {work}/one.count" in plan.stdout
    done = wizard(env, "run", str(counting), "--set", f"work={work}")
    assert done.returncode == 0 and lines(work / "three.count") == 0


def test_a_hung_step_times_out(env: dict, tmp_path: Path) -> None:
    path = tmp_path / "slow.yaml"
    path.write_text(
        "id: slow\ntitle: Slow\nsteps:\n  - id: wait\n    run: sleep 60\n    timeout: 1\n"
    )
    started = time.monotonic()
    done = wizard(env, "run", str(path))
    assert done.returncode == 1 and time.monotonic() - started < 30
    assert "failed (timed out after 1 s)" in done.stdout


def finished_run(env: dict, counting: Path, tmp_path: Path) -> str:
    """A whole run of the counting recipe; its id."""
    work = tmp_path / "work"
    (work / "go").touch()
    wizard(env, "run", str(counting), "--set", f"work={work}")
    return state(env)["run_id"]


def test_corrupt_state_is_reported_and_kept_aside(
    env: dict, counting: Path, tmp_path: Path
) -> None:
    run_id = finished_run(env, counting, tmp_path)
    state_file = Path(env["XDG_STATE_HOME"]) / "wizard" / "runs" / run_id / "state.yaml"
    state_file.write_text("wizard_run: 1\nsteps: [unclosed\n")
    done = wizard(env, "resume")
    assert done.returncode == 1
    assert "cannot be read" in done.stderr and "it was kept as" in done.stderr
    assert "Traceback" not in done.stderr
    kept = list(state_file.parent.glob("state.yaml.corrupt-*"))
    assert len(kept) == 1 and "unclosed" in kept[0].read_text()


def test_a_state_cut_at_a_line_boundary_is_corrupt_and_older_runs_are_offered(
    env: dict, counting: Path, tmp_path: Path
) -> None:
    older = finished_run(env, counting, tmp_path)
    time.sleep(1.1)  # run ids are stamped to the second
    newer = finished_run(env, counting, tmp_path)
    state_file = Path(env["XDG_STATE_HOME"]) / "wizard" / "runs" / newer / "state.yaml"
    lines = state_file.read_text().splitlines(keepends=True)
    assert lines[-1].startswith("# end of wizard state, sha256 ")
    cut = next(i for i, line in enumerate(lines) if line.startswith("  two:"))
    state_file.write_text("".join(lines[:cut]))  # still valid YAML, steps two and three gone

    looked = wizard(env, "status")  # read-only: reports, renames nothing
    assert looked.returncode == 1 and "it was cut short" in looked.stderr
    assert f"Other saved runs, newest first: {older}" in looked.stderr
    assert state_file.exists() and not list(state_file.parent.glob("state.yaml.corrupt-*"))

    resumed = wizard(env, "resume")
    assert resumed.returncode == 1 and "it was kept as" in resumed.stderr
    assert "Nothing left to do" not in resumed.stdout
    assert f"`wizard resume --run {older}`" in resumed.stderr
    again = wizard(env, "status")  # the latest now names what happened, and the others
    assert "its state was unreadable and kept as" in again.stderr and older in again.stderr
    assert wizard(env, "status", "--run", older).returncode == 0


def test_a_changed_state_fails_its_checksum_and_an_old_format_still_loads(
    env: dict, counting: Path, tmp_path: Path
) -> None:
    finished_run(env, counting, tmp_path)
    state_file = Path(state(env)["path"])
    text = state_file.read_text()
    state_file.write_text(text.replace("status: done", "status: failed", 1))
    done = wizard(env, "status")
    assert done.returncode == 1 and "its checksum does not match" in done.stderr
    body = text.rsplit("# end of wizard state", 1)[0]
    state_file.write_text(body.replace("wizard_run: 2", "wizard_run: 1"))
    assert wizard(env, "status").returncode == 0  # format 1 files had no marker


def test_usage_errors(env: dict, tmp_path: Path) -> None:
    unknown = wizard(env, "run", "flagx")
    assert unknown.returncode == 2 and "did you mean 'flagcx'" in unknown.stderr
    bad_set = wizard(env, "run", "googletest", "--set", "prefix")
    assert bad_set.returncode == 2 and "--set takes key=value" in bad_set.stderr
    nothing = wizard(env, "resume")
    assert nothing.returncode == 1 and "no saved run yet" in nothing.stderr


def test_caller_environment_reaches_every_mpirun_rank(env: dict, tmp_path: Path) -> None:
    path = tmp_path / "envcheck.yaml"
    path.write_text(
        "id: envcheck\ntitle: Env\nparams:\n  flags: {fact: mpi.run_flags, default: '', kind: args}\n"
        "steps:\n  - id: ranks\n"
        "    run: mpirun {{ flags }} {{ mpi_env }} --oversubscribe -np 2 "
        "sh -c 'echo \"probe=$FLAGCX_WIZARD_PROBE nvls=$NCCL_NVLS_ENABLE\"'\n"
    )
    done = wizard({**env, "FLAGCX_WIZARD_PROBE": "42"}, "run", str(path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.count("probe=42 nvls=0") == 2, done.stdout
    assert "-x FLAGCX_WIZARD_PROBE" in done.stdout and "-x NCCL_NVLS_ENABLE" in done.stdout


def test_steps_shows_the_whole_plan_when_a_parameter_has_no_value(
    env: dict, tmp_path: Path
) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(
        "id: plan\ntitle: Plan\nparams:\n  src: {kind: path, help: the checkout}\n"
        "  flags: {kind: args, default: ''}\n"
        "steps:\n  - id: build\n    run: make {{ flags }} -C {{ src }}\n"
        "  - id: test\n    run: mpirun {{ flags }} -np 2 {{ src }}/test {{ flags }}\n"
    )
    done = wizard(env, "steps", str(path))
    assert done.returncode == 1, done.stderr
    assert "1. run  build" in done.stdout and "2. run  test" in done.stdout
    assert "$ make -C '<src?>'" in done.stdout
    assert "$ mpirun -np 2 '<src?>'/test\n" in done.stdout  # no doubled or trailing spaces
    assert "--set src=VALUE   the checkout" in done.stdout


def test_an_offline_clone_says_to_pass_an_existing_checkout(env: dict, tmp_path: Path) -> None:
    done = wizard(
        env,
        "run",
        "flagcx",
        "--force",
        "--yes",
        "--set",
        f"src={tmp_path / 'FlagCX'}",
        "--set",
        "repo=https://offline.invalid/FlagOpen/FlagCX.git",
    )
    assert done.returncode == 1
    assert "Could not resolve host: offline.invalid" in done.stdout
    assert (
        "likely cause: this machine cannot reach https://offline.invalid/FlagOpen/FlagCX.git "
        "(offline?): clone it where the network reaches, copy the checkout here, and pass "
        "--set src=PATH of that checkout"
    ) in " ".join(done.stdout.split())


@pytest.mark.integration
def test_flagcx_recipe_on_the_fixture_project(env: dict, tmp_path: Path) -> None:
    src = tmp_path / "FlagCX"
    shutil.copytree(FIXTURE, src)
    args = [
        "run",
        "flagcx",
        "--force",
        "--yes",
        "--set",
        f"src={src}",
        "--set",
        "gpus=2",
        "--set",
        "perf_args=-b 128K -e 1M -f 2 -p 1",
    ]
    done = wizard(env, *args, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    run = state(env)
    steps = run["steps"]
    assert [s for s, v in steps.items() if v["status"] == "done"] == [
        "build",
        "perf-build",
        "allreduce",
        "unittest-build",
        "unittest",
    ]
    table = steps["allreduce"]["results"]["table"]
    assert [row["size_bytes"] for row in table] == [131072, 262144, 524288, 1048576]
    assert all(row["busbw_gbs"] > 0 for row in table)
    assert steps["unittest"]["results"] == {"passed": 2, "failed": 0, "ranks": 2}
    # The detected homes reached make as variables: the library reports what it was built with.
    assert "flagcx build: nvidia /usr/local/cuda" in Path(steps["allreduce"]["log"]).read_text()
    assert "MPI_HOME=/usr/lib/x86_64-linux-gnu/openmpi" in steps["build"]["command"]
    assert (
        "      128K" in done.stdout
        and "2 tests passed, 0 failed (on each of 2 ranks)" in done.stdout
    )
    # A second run finds the builds done and only runs what has no done_if.
    again = wizard(env, *args, timeout=300)
    assert "build: Build libflagcx (build): skipped, already done" in again.stdout.replace(
        "── [3/19] ", "build: "
    )
    saved = yaml.safe_load(Path(run["path"]).read_text())
    assert saved["params"]["gpus"] == 2


def test_a_recipe_after_another_takes_values_from_its_finished_run(
    env: dict, tmp_path: Path
) -> None:
    """`after: [counting]`: blocked (and the plan says why) until a counting run finishes,
    then its `work` comes from that run."""
    first = tmp_path / "counting.yaml"
    first.write_text(COUNTING)
    (tmp_path / "work").mkdir()
    second = tmp_path / "second.yaml"
    second.write_text(
        "id: second\ntitle: Built on counting\nafter: [counting]\n"
        "params:\n  work: {run: counting.work}\n"
        "steps:\n  - id: use\n    run: cat {{ work }}/one.count\n"
    )
    plan = wizard(env, "steps", str(second))
    assert plan.returncode == 1
    assert "After: second builds on a finished counting run, and there is none yet" in plan.stdout
    assert "<work?>" in plan.stdout
    blocked = wizard(env, "run", str(second), "--yes")
    assert blocked.returncode == 1 and "blocked: second builds on a finished counting" in (
        blocked.stdout
    )
    done = wizard(env, "run", str(first), "--set", f"work={tmp_path / 'work'}", "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    after = wizard(env, "run", str(second), "--yes")
    assert after.returncode == 0, after.stdout + after.stderr
    assert "After: counting run counting-" in after.stdout and "\none\n" in after.stdout


def test_after_must_name_the_recipe_a_value_comes_from(tmp_path: Path, env: dict) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "id: bad\ntitle: Bad\nparams:\n  work: {run: counting.work}\n"
        "steps:\n  - id: one\n    run: 'true'\n"
    )
    done = wizard(env, "steps", str(bad))
    assert done.returncode == 2
    assert "takes a value from a run of 'counting', which 'after' does not name" in done.stderr


JUDGED_AT_START = """\
id: judged
title: done_if is judged when a step starts
params:
  work: {kind: path}
steps:
  - id: remove
    run: rm {{ work }}/made
  - id: make-again
    run: echo made > {{ work }}/made
    done_if:
      exists: "{{ work }}/made"
  - id: rebuild-lib
    run: touch {{ work }}/lib.so
  - id: perf-build
    run: touch {{ work }}/perf
    done_if:
      newer: "{{ work }}/perf"
      than: ["{{ work }}/lib.so"]
"""


def test_done_if_is_judged_when_the_step_starts_not_in_the_plan(env: dict, tmp_path: Path) -> None:
    recipe, work = tmp_path / "judged.yaml", tmp_path / "work"
    recipe.write_text(JUDGED_AT_START)
    work.mkdir()
    (work / "made").touch()
    (work / "lib.so").touch()
    os.utime(work / "lib.so", (time.time() - 60, time.time() - 60))  # built a minute ago
    (work / "perf").touch()  # and perf built against it since
    preview = wizard(env, "steps", str(recipe), "--set", f"work={work}")
    assert "skip make-again" in preview.stdout and "skip perf-build" in preview.stdout
    done = wizard(env, "run", str(recipe), "--set", f"work={work}")
    assert done.returncode == 0, done.stdout + done.stderr
    assert (work / "made").read_text() == "made\n"  # step 1 removed it: step 2 made it again
    steps = state(env)["steps"]
    assert steps["make-again"]["status"] == "done"
    assert steps["perf-build"]["status"] == "done"  # lib.so was rebuilt in this very run
    assert (work / "perf").stat().st_mtime >= (work / "lib.so").stat().st_mtime


def saved_run_ids(env: dict[str, str]) -> list[str]:
    runs = Path(env["XDG_STATE_HOME"]) / "wizard" / "runs"
    return sorted(p.parent.name for p in runs.glob("*/state.yaml"))


def test_usage_errors_save_no_run(env: dict) -> None:
    unknown = wizard(env, "run", "googletest", "--set", "nosuchkey=1")
    assert unknown.returncode == 2 and "has no parameter nosuchkey" in unknown.stderr
    no_tarball = wizard(env, "run", "mpi", "--yes")
    assert no_tarball.returncode == 2 and "parameter 'tarball' has no value" in no_tarball.stderr
    assert saved_run_ids(env) == []
    nothing = wizard(env, "resume")
    assert nothing.returncode == 1 and "no saved run yet" in nothing.stderr


NOTED = """\
id: noted
title: A recipe that later drops a parameter
params:
  work: {kind: path}
  note: {default: ""}
steps:
  - id: fails
    run: test -f {{ work }}/go
"""


def test_a_run_whose_answers_no_longer_fit_says_so_and_how_to_drop_it(
    env: dict, tmp_path: Path
) -> None:
    recipe, work = tmp_path / "noted.yaml", tmp_path / "work"
    recipe.write_text(NOTED)
    work.mkdir()
    failed = wizard(env, "run", str(recipe), "--set", f"work={work}", "--set", "note=hi")
    assert failed.returncode == 1
    (run_id,) = saved_run_ids(env)
    recipe.write_text(NOTED.replace('  note: {default: ""}\n', ""))  # the recipe moved on
    resumed = wizard(env, "resume")
    assert resumed.returncode == 1 and "Traceback" not in resumed.stderr
    folder = Path(env["XDG_STATE_HOME"]) / "wizard" / "runs" / run_id
    assert (
        f"wizard: run {run_id}: cannot continue, its answers no longer fit the noted recipe: "
        f"it has no parameter note; drop it with: rm -r {folder}"
    ) in resumed.stderr


def test_resume_names_every_unfinished_run_and_how_to_continue_each(
    env: dict, counting: Path, tmp_path: Path
) -> None:
    work = tmp_path / "work"
    failed = wizard(env, "run", str(counting), "--set", f"work={work}", "--set", "pause=x")
    assert failed.returncode == 1
    older = state(env)["run_id"]
    other = tmp_path / "other.yaml"
    other.write_text("id: other\ntitle: Other\nsteps:\n  - id: only\n    run: 'true'\n")
    assert wizard(env, "run", str(other)).returncode == 0
    resumed = wizard(env, "resume")
    assert resumed.returncode == 0
    assert "Nothing left to do in run other-" in resumed.stdout
    assert (
        f"  {older}: stopped at two (failed); continue with: wizard resume --run {older}"
        in resumed.stdout
    )


@pytest.mark.integration
def test_googletest_builds_in_its_run_for_each_prefix_and_verifies_that_prefix_only(
    env: dict, tmp_path: Path
) -> None:
    """Real cmake builds of Debian's googletest sources: a second run for another prefix
    configures and installs there (the first run's build is its own), and verify looks at
    the prefix alone, though g++ would also find /usr's gtest."""
    first, second, empty = tmp_path / "A", tmp_path / "B", tmp_path / "empty"
    ran = wizard(env, "run", "googletest", "--yes", "--set", f"prefix={first}", timeout=900)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    one = state(env)
    assert one["steps"]["configure"]["status"] == "done"
    assert f"-B {one['params']['run_dir']}/build " in one["steps"]["configure"]["command"]
    again = wizard(env, "run", "googletest", "--yes", "--set", f"prefix={second}", timeout=900)
    assert again.returncode == 0, again.stdout + again.stderr
    two = state(env)
    assert two["steps"]["configure"]["status"] == "done"  # not "already done" by run one's
    assert (second / "include" / "gtest" / "gtest.h").is_file()
    assert two["steps"]["verify"]["results"]["passed"] == 1
    empty.mkdir()
    checked = wizard(
        env, "run", "googletest", "--yes", "--set", f"prefix={empty}", "--from", "verify"
    )
    assert checked.returncode == 1
    assert f"no gtest/gtest.h in {empty}/include" in checked.stdout
