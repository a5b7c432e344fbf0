"""The real `wizard` in a real terminal (tmux): from the start screen to the results."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent
H100 = ROOT.parent / "snapshots" / "h100-ubuntu2404.yaml"
DEMO = ROOT / "fixtures" / "recipes" / "demo.yaml"
PERF_LOG = ROOT / "data" / "flagcx-h100-allreduce.log"

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by .ci/run")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True).stdout


def screen(session: str) -> str:
    return tmux("capture-pane", "-p", "-t", session)


def wait_for_any(session: str, *texts: str, seconds: float = 60) -> str:
    """The screen once one of `texts` is on it."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        shown = screen(session)
        if any(text in shown for text in texts):
            return shown
        time.sleep(0.2)
    raise AssertionError(f"none of {texts!r} appeared; the screen shows:\n{screen(session)}")


def wait_for(session: str, text: str, seconds: float = 60) -> str:
    return wait_for_any(session, text, seconds=seconds)


def start(tmp_path: Path, work: Path, *options: str) -> str:
    """The real `wizard` in a new 120x40 tmux session; its exit code is printed at the end."""
    session = f"wizard-test-{os.getpid()}-{len(options)}"
    command = shlex.join(
        [
            sys.executable,
            "-m",
            "wizard",
            *options,
            "--recipe",
            str(DEMO),
            "--set",
            f"work={work}",
            "--set",
            f"log={PERF_LOG}",
        ]
    )
    shell = (
        f"cd {shlex.quote(str(ROOT.parent))} && XDG_STATE_HOME={shlex.quote(str(tmp_path))} "
        f"{command}; echo WIZARD-EXIT=$?; sleep 60"
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", shell)
    return session


def test_wizard_from_start_to_results_in_tmux(tmp_path: Path) -> None:
    """This machine's own checks (whatever they find: the demo recipe requires none), then
    the recipe, then the results."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "go").touch()
    session = start(tmp_path, work)
    try:
        wait_for(session, "Check this machine")
        tmux("send-keys", "-t", session, "C-n")
        shown = wait_for(session, "block")  # "Nothing blocks ..." or "2 problem(s) block ..."
        assert "NVIDIA GPUs" in shown and "NCCL header" in shown
        tmux("send-keys", "-t", session, "n")
        shown = wait_for(session, "All steps done")
        assert "100%" in shown and "Wait for the go file" in shown
        tmux("send-keys", "-t", session, "n")
        shown = wait_for(session, "bandwidth by message size")
        assert "perf: algbw (one rank), GB/s" in shown  # the chart, above the table
        assert "128K" in shown and "4G" in shown  # its size axis
        assert "52.07" in shown  # the 256K row of the real H100 log
        tmux("send-keys", "-t", session, "q")
        wait_for(session, "WIZARD-EXIT=0")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)


def test_a_replay_in_tmux_shows_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    session = start(tmp_path, work, "--snapshot", str(H100))
    try:
        wait_for(session, "Check this machine")
        tmux("send-keys", "-t", session, "C-n")
        wait_for(session, "Nothing blocks the demo recipe")
        tmux("send-keys", "-t", session, "n")
        wait_for(session, "Nothing is built or run here")
        tmux("send-keys", "-t", session, "q")
        wait_for(session, "WIZARD-EXIT=0")
        assert list(work.iterdir()) == []
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)


def test_the_plain_prompts_run_the_recipe_in_tmux(tmp_path: Path) -> None:
    """`wizard --plain` on a terminal: the doctor, questionary's two questions, then the
    run, as one process from the first prompt to the last step."""
    recipe = tmp_path / "one.yaml"
    recipe.write_text("id: one\ntitle: One\nsteps:\n  - id: echo\n    run: echo plain-ran\n")
    session = f"wizard-plain-{os.getpid()}"
    command = shlex.join([sys.executable, "-m", "wizard", "--plain", "--recipe", str(recipe)])
    shell = (
        f"cd {shlex.quote(str(ROOT.parent))} && XDG_STATE_HOME={shlex.quote(str(tmp_path))} "
        f"NO_COLOR=1 {command}; echo WIZARD-EXIT=$?; sleep 60"
    )
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", shell)
    try:
        fixes, build = "Look at the fixes now?", "recipe now (build and test)?"
        shown = wait_for_any(session, fixes, build)  # the doctor's text may say "unknown"
        if fixes in shown:  # this machine has blocking findings
            tmux("send-keys", "-t", session, "n")
        wait_for(session, "recipe now (build and test)?")
        tmux("send-keys", "-t", session, "y")
        shown = wait_for(session, "WIZARD-EXIT=")
        assert "WIZARD-EXIT=0" in shown and "plain-ran" in shown, shown
        assert "internal error" not in shown
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)


def test_a_recipe_typo_is_said_before_the_app_opens(tmp_path: Path) -> None:
    session = f"wizard-typo-{os.getpid()}"
    command = shlex.join([sys.executable, "-m", "wizard", "--recipe", "googletst"])
    shell = f"cd {shlex.quote(str(ROOT.parent))} && {command}; echo WIZARD-EXIT=$?; sleep 60"
    tmux("new-session", "-d", "-s", session, "-x", "120", "-y", "40", shell)
    try:
        shown = wait_for(session, "WIZARD-EXIT=")
        assert "WIZARD-EXIT=2" in shown and "did you mean 'googletest'?" in shown, shown
        assert "Traceback" not in shown
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], check=False, capture_output=True)
