"""The `wizard` command as a user runs it: output, JSON, exit codes, no tracebacks."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"
H100 = str(SNAPSHOTS / "h100-ubuntu2404.yaml")
CI = str(SNAPSHOTS / "ci-debian12.yaml")


def wizard(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wizard", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        check=False,
    )


def test_doctor_text_on_a_gpu_machine() -> None:
    done = wizard("doctor", "--snapshot", H100)
    assert done.returncode == 0, done.stderr
    assert "✓ NVIDIA GPUs" in done.stdout and "1 × NVIDIA H100 80GB HBM3" in done.stdout
    assert "Nothing blocks flagcx-nvidia." in done.stdout
    assert "CCL_HOME=/usr MPI_HOME=/usr/lib/x86_64-linux-gnu/openmpi" in done.stdout
    assert "\033[" not in done.stdout  # not a terminal: no colour


def test_doctor_verbose_shows_facts_and_details() -> None:
    done = wizard("doctor", "-v", "--snapshot", H100)
    assert "driver.cuda = 13.0" in done.stdout
    assert "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl/include/nccl.h" in done.stdout


def test_doctor_json_schema() -> None:
    done = wizard("doctor", "--json", "--snapshot", CI)
    assert done.returncode == 1
    data = json.loads(done.stdout)
    assert {"host", "target", "findings", "ok", "blocking"} <= set(data)
    assert data["target"] == "flagcx-nvidia" and data["ok"] is False
    assert data["blocking"] == ["gpu.nvidia", "nccl.header"]
    for finding in data["findings"]:
        assert finding["status"] in {"ok", "warn", "fail", "skip"}
        assert isinstance(finding["summary"], str) and isinstance(finding["facts"], dict)
        assert all(
            isinstance(v, (str, int, float, bool)) or v is None for v in finding["facts"].values()
        )
        for fix in finding["fixes"]:
            assert isinstance(fix["commands"], list) and isinstance(fix["needs_root"], bool)
    ids = [f["id"] for f in data["findings"]]
    assert ids[:3] == ["os", "build.tools", "python.env"]  # by group: System first


def test_doctor_blocking_text_and_fix_commands() -> None:
    done = wizard("doctor", "--snapshot", CI)
    assert done.returncode == 1
    assert "2 problems block flagcx-nvidia: gpu.nvidia, nccl.header" in done.stdout
    assert "$ /root/.local/nccl/venv/bin/python -m pip install nvidia-nccl-cu13" in done.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["doctor", "--target", "flagcx-bogus"], "unknown target 'flagcx-bogus'"),
        (["doctor", "--snapshot", "/nonexistent.yaml"], "no snapshot at /nonexistent.yaml"),
        (["doctor", "--frobnicate"], "unrecognized arguments"),
        (["snapshot"], "the following arguments are required: -o/--output"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args: list[str], message: str) -> None:
    done = wizard(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert "Traceback" not in done.stderr


def test_corrupt_snapshot_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_bytes(b"\xff\xfe not yaml {")
    done = wizard("doctor", "--snapshot", str(bad))
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_snapshot_then_replay_gives_the_same_findings(tmp_path: Path) -> None:
    out = tmp_path / "here.yaml"
    done = wizard("snapshot", "-o", str(out))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Replay gives the same findings" in done.stdout
    import yaml

    import checks

    assert yaml.safe_load(out.read_text())["checks"] == sorted(checks.REGISTRY)
    live = json.loads(wizard("doctor", "--json").stdout)
    replayed = json.loads(wizard("doctor", "--json", "--snapshot", str(out)).stdout)
    strip = lambda d: [{k: v for k, v in f.items() if k != "duration_s"} for f in d["findings"]]  # noqa: E731
    assert strip(live) == strip(replayed)


def test_snapshot_to_an_unwritable_place(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    done = wizard("snapshot", "-o", str(blocker / "x.yaml"))
    assert done.returncode == 2 and "cannot write" in done.stderr
    assert "Traceback" not in done.stderr


def test_help_lists_the_commands() -> None:
    done = wizard("--help")
    assert done.returncode == 0
    assert "doctor" in done.stdout and "snapshot" in done.stdout and "Exit codes" in done.stdout


def test_no_terminal_gives_the_plain_flow_and_changes_nothing(tmp_path: Path) -> None:
    env = {**__import__("os").environ, "XDG_STATE_HOME": str(tmp_path)}
    for args in (["--snapshot", CI], ["--plain", "--snapshot", CI]):
        done = subprocess.run(
            [sys.executable, "-m", "wizard", *args],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            stdin=subprocess.DEVNULL,
            check=False,
        )
        assert done.returncode == 1  # the CI machine's blocking findings
        assert "2 problems block flagcx-nvidia" in done.stdout
        assert "No terminal to ask on, so nothing was changed" in done.stdout
    assert not (tmp_path / "wizard").exists()


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--recipe", "googletst"], "no recipe named 'googletst' (did you mean 'googletest'?)"),
        (
            ["--recipe", "googletest", "--set", "sourc=~/gt"],
            "recipe googletest has no parameter sourc (did you mean 'source'?)",
        ),
        (  # flagcx is blocked on this machine: the typo is said before what blocks it
            ["--recipe", "flagcx", "--set", "gpu=8"],
            "recipe flagcx has no parameter gpu (did you mean 'gpus'?)",
        ),
    ],
)
def test_the_guided_wizard_refuses_a_recipe_typo_as_run_does(args: list[str], said: str) -> None:
    """Before any prompt (here, no terminal: the plain flow), like `wizard run`."""
    guided = wizard("--snapshot", CI, *args)
    assert guided.returncode == 2 and said in guided.stderr, guided.stderr
    assert guided.stdout == "" and "Traceback" not in guided.stderr
    name, *sets = args[1:]
    ran = wizard("run", name, *sets, "--yes")
    assert ran.returncode == 2 and said in ran.stderr
    assert ran.stdout == "", "nothing of the doctor before the usage error"


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (
            ["--snapshot", H100, "doctor"],
            "--snapshot goes after the command: wizard doctor --snapshot FILE",
        ),
        (
            ["--snapshot", H100, "run", "googletest", "--yes"],
            "--snapshot is for the guided app (wizard --snapshot FILE); `wizard run` has no",
        ),
        (["--set", "prefix=/x", "run", "googletest"], "--set goes after the command: wizard run"),
    ],
)
def test_a_guided_option_before_a_command_is_a_usage_error(
    args: list[str], said: str, tmp_path: Path
) -> None:
    """Not lost unseen: before, these checked or built on this machine."""
    env = {**__import__("os").environ, "XDG_STATE_HOME": str(tmp_path)}
    done = wizard(*args, env=env)
    assert done.returncode == 2 and said in done.stderr, done.stderr
    assert done.stdout == "" and not (tmp_path / "wizard").exists()


def test_a_dry_run_of_the_fixes_replays_a_snapshot_but_a_real_fix_does_not(
    tmp_path: Path,
) -> None:
    env = {**__import__("os").environ, "XDG_STATE_HOME": str(tmp_path)}
    fresh = str(SNAPSHOTS / "h100-fresh.yaml")
    shown = wizard("doctor", "--snapshot", fresh, "--fix", "--dry-run", env=env)
    assert shown.returncode == 1, shown.stderr  # the blockers still block: nothing changed
    assert "$ apt-get install -y openmpi-bin libopenmpi-dev" in shown.stdout, shown.stdout
    assert "Dry run: nothing was changed." in shown.stdout
    refused = wizard("doctor", "--snapshot", fresh, "--fix", "--yes", env=env)
    assert refused.returncode == 2 and "add --dry-run" in refused.stderr
    assert not (tmp_path / "wizard").exists()


def make_venv(venv: Path) -> Path:
    """A venv that sees this Python's packages (the wizard's needs); its python3."""
    subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(venv)],
        check=True,
    )
    return venv / "bin" / "python3"


def python_found_by(python: Path, env: dict[str, str]) -> dict:
    """The python.env finding of `wizard doctor --json` run by that Python."""
    done = subprocess.run(
        [str(python), "-m", "wizard", "doctor", "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    return next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "python.env")


def test_the_doctor_never_takes_the_wizards_own_venv_for_the_users_python(
    tmp_path: Path,
) -> None:
    """Installed as the README says, in a venv of its own, with that venv's bin on PATH
    (or activated): `python3` there is the wizard's, not the user's."""
    import os

    venv = tmp_path / "wizard-venv"
    own = make_venv(venv)
    path = f"{venv / 'bin'}:{os.environ['PATH']}"
    env = {**os.environ, "PATH": path, "VIRTUAL_ENV": str(venv)}
    python = python_found_by(own, env)
    assert python["facts"]["python.executable"] != str(own), python
    assert str(venv) not in python["summary"]

    recipe = tmp_path / "which.yaml"
    recipe.write_text("id: which\ntitle: Which\nsteps:\n  - id: py\n    run: command -v python3\n")
    ran = subprocess.run(
        [str(own), "-m", "wizard", "run", str(recipe), "--yes"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**env, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"},
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert python["facts"]["python.executable"] in ran.stdout  # the steps' python3 too
    assert str(own) not in ran.stdout


def test_a_training_venv_the_wizard_is_installed_in_stays_the_users_python(
    tmp_path: Path,
) -> None:
    """Installed into the venv that holds PyTorch (as on the lent GPU machines, whose
    python3 is /opt/torch/.venv's): that venv's python3 is the one the user trains with."""
    import os
    import sysconfig

    venv = tmp_path / "train-venv"
    own = make_venv(venv)
    site = subprocess.run(
        [str(own), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip
    assert site != sysconfig.get_paths()["purelib"]
    (Path(site) / "torch").mkdir(parents=True)  # where pip puts PyTorch (the rule looks only there)
    env = {**os.environ, "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    python = python_found_by(own, env)
    assert python["facts"]["python.executable"] == str(own), python


def test_the_readmes_install_line_puts_wizard_on_path(tmp_path: Path) -> None:
    """The "Two commands" install line, as written, in a fresh HOME: it installs, links
    `wizard` where a login PATH finds it, and runs it (no terminal: the plain flow)."""
    import os
    import re

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text()
    block = re.search(r"## Two commands\n.*?```sh\n(.*?)```", readme, re.S)
    assert block is not None
    install = block.group(1).splitlines()[0].split("   # ")[0]
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "XDG_STATE_HOME")}
    env.update(HOME=str(home), NO_COLOR="1")
    done = subprocess.run(
        ["bash", "-c", install],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
        cwd=Path(__file__).resolve().parent.parent,
        check=False,
    )
    assert done.returncode in (0, 1), done.stdout + done.stderr  # the doctor's verdict
    assert "No terminal to ask on, so nothing was changed" in done.stdout
    login = {**env, "PATH": f"{home / '.local' / 'bin'}:/usr/bin:/bin"}
    found = subprocess.run(
        ["bash", "-c", "command -v wizard && wizard --version"],
        capture_output=True,
        text=True,
        env=login,
        check=False,
    )
    assert found.returncode == 0 and f"{home}/.local/bin/wizard" in found.stdout, found


def test_help_says_every_command_what_it_does_and_every_exit_code() -> None:
    mistyped = wizard("doctr")
    assert mistyped.returncode == 2
    assert "no command 'doctr' (did you mean 'doctor'?)" in mistyped.stderr
    for command in ("status", "report", "steps"):
        shown = wizard(command, "--help").stdout
        assert shown.split("\n\n")[1].strip(), shown  # a description under the usage
    top = " ".join(wizard("--help").stdout.split())
    for code in ("0 nothing blocks", "1 a finding", "2 usage error", "70 internal error"):
        assert code in top
    assert "130 interrupted" in top
    doctor = " ".join(wizard("doctor", "--help").stdout.split())
    assert "Nothing is changed." not in doctor
    assert "Nothing is changed unless --fix is given" in doctor


def test_the_readme_names_only_files_a_clone_has() -> None:
    """Every relative path the README puts in backticks (a file or folder of this
    repository: it ends in .md, .py, .yaml or /) exists in a checkout."""
    import re

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    named = set(re.findall(r"`((?:\.\./|[\w.-]+/)[\w./-]*(?:\.md|\.py|\.yaml|/))`", readme))
    relative = {n for n in named if not n.startswith(("~", "/"))}
    assert relative, "the README names no files"
    missing = sorted(n for n in relative if not (root / n).exists())
    assert not missing, missing
