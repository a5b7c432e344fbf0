"""A HOME that cannot be used (unset, missing, not writable): clear errors, nothing created
where it should not be, no fix pointing into it, and internal errors that name their log."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

from checks.base import Status
from tests.cli import run_wizard
from tests.treehost import TreeHost, recorded_nvml
from wizard import main as entry
from wizard.cli import doctor as doctor_command
from wizard.engine.doctor import fixes
from wizard.engine.doctor.diagnosis import run_doctor

RECIPE = "id: one\ntitle: One\nsteps:\n  - id: echo\n    run: echo ran\n"


@pytest.fixture
def recipe(tmp_path: Path) -> Path:
    path = tmp_path / "one.yaml"
    path.write_text(RECIPE)
    return path


def without_state(**env: str) -> dict[str, str]:
    base = {k: v for k, v in os.environ.items() if k not in ("HOME", "XDG_STATE_HOME")}
    return {**base, **env, "NO_COLOR": "1"}


def test_unset_home_is_a_clear_error(recipe: Path) -> None:
    done = run_wizard(without_state(), "run", str(recipe))
    assert done.returncode == 2 and "ran" not in done.stdout
    assert "HOME is not set" in done.stderr and "XDG_STATE_HOME" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_missing_home_is_never_created(recipe: Path, tmp_path: Path) -> None:
    home = tmp_path / "nonexistent"
    for args in (("run", str(recipe)), ("doctor", "--fix", "--yes", "--only", "gtest")):
        done = run_wizard(without_state(HOME=str(home)), *args)
        assert done.returncode == 2, done.stdout + done.stderr
        assert f"HOME={home} is not a folder" in done.stderr
    assert not home.exists()


def test_the_guided_wizard_says_so_before_any_screen(tmp_path: Path) -> None:
    home = tmp_path / "nonexistent"
    done = run_wizard(without_state(HOME=str(home)), "--plain")
    assert done.returncode == 2 and f"HOME={home} is not a folder" in done.stderr
    assert "Traceback" not in done.stderr and not home.exists()


def test_xdg_state_home_rescues_a_missing_home(recipe: Path, tmp_path: Path) -> None:
    env = without_state(HOME=str(tmp_path / "nonexistent"), XDG_STATE_HOME=str(tmp_path / "s"))
    done = run_wizard(env, "run", str(recipe))
    assert done.returncode == 0 and "ran" in done.stdout
    assert (tmp_path / "s" / "wizard" / "runs").is_dir()


def test_a_state_folder_that_cannot_be_made_is_a_clear_error(recipe: Path, tmp_path: Path) -> None:
    """Where even root cannot write (under a regular file), as a user cannot in a folder of
    root's: the error names the folder, the reason and the variable."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    env = without_state(HOME=str(tmp_path), XDG_STATE_HOME=str(blocker / "state"))
    done = run_wizard(env, "run", str(recipe))
    assert done.returncode == 2 and "ran" not in done.stdout
    assert (
        f"cannot write the wizard's state and logs in {blocker}/state/wizard (Not a directory)"
        in done.stderr
    )
    assert "Set XDG_STATE_HOME to a folder you can write" in done.stderr


def test_an_internal_error_names_its_log_and_exits_70(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def broken(args: object) -> int:
        raise RuntimeError("a bug")

    monkeypatch.setattr(doctor_command, "doctor", broken)
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert entry.main(["doctor"]) == 70
    log = tmp_path / "state" / "wizard" / "crash.log"
    assert f"the traceback is in {log}" in capsys.readouterr().err
    assert "RuntimeError: a bug" in log.read_text()
    # With no usable state folder, the log goes to the temporary folder instead.
    monkeypatch.delenv("XDG_STATE_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "nonexistent"))
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    assert entry.main(["doctor"]) == 70
    err = capsys.readouterr().err
    crash = next(tmp_path.glob("wizard-crash-*.log"))
    assert f"the traceback is in {crash}" in err and "RuntimeError" in crash.read_text()


def test_no_fix_points_into_an_unset_home(tmp_path: Path) -> None:
    tree = TreeHost(tmp_path, nvml=recorded_nvml())
    tree.env.pop("HOME", None)
    tree.write("/opt/nccl/include/nccl.h", "#define NCCL_MAJOR 2\n")
    tree.write("/opt/nccl/lib/libnccl.so.2.21.5", "\x7fELF")
    tree.symlink("/opt/nccl/lib/libnccl.so.2", "libnccl.so.2.21.5")
    tree.env["NCCL_HOME"] = "/opt/nccl"
    findings = {f.id: f for f in run_doctor(tree).findings}
    library = findings["nccl.library"]
    assert library.status is Status.FAIL
    commands = [c for f in findings.values() for fix in f.fixes for c in fix.commands]
    assert not any("~" in c for c in commands)
    (link,) = library.fixes
    assert link.needs_root and "/usr/local/nccl/lib" in link.commands[0]


def test_a_rootless_fix_into_a_missing_home_is_not_offered_as_usable(tmp_path: Path) -> None:
    home = str(tmp_path / "nonexistent")
    tree = TreeHost(tmp_path / "root", env={"HOME": home}, nvml=recorded_nvml())
    tree.root.mkdir()
    finding = next(f for f in run_doctor(tree).findings if f.id == "mpi")
    wheel = next(fix for fix in finding.fixes if fix.home)
    assert wheel.home == home
    (choice,) = [c for c in fixes.choices(finding, root=False, sudo=None) if c.fix is wheel]
    assert not choice.usable
    assert choice.why == f"installs under HOME={home}, which is not a folder you can write"
