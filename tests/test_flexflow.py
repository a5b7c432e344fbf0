"""The flexflow recipe on tests/fixtures/flexflow-like (FlexFlow's build interface, see its
README): real git with a real submodule, real make, a real SIGSEGV, and nvidia-smi answers
recorded on the 2x H200 (tests/data)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_wizard

ROOT = Path(__file__).resolve().parent
FIXTURE = ROOT / "fixtures" / "flexflow-like"
BUSY = ROOT / "data" / "nvidia-smi-memory-2xh200-gpu0-busy.csv"
pytestmark = pytest.mark.integration


def git(*args: str, cwd: Path) -> None:
    subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "protocol.file.allow=always",
         *args],
        cwd=cwd, check=True, capture_output=True,
    )  # fmt: skip


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """FlexFlow cloned without --recursive, as the user who forgot it has it: Legion, a
    submodule, is an empty folder."""
    legion = tmp_path / "legion-origin"
    shutil.copytree(FIXTURE / "deps" / "legion", legion)
    git("init", "-q", cwd=legion)
    git("add", "-A", cwd=legion)
    git("commit", "-q", "-m", "legion", cwd=legion)
    origin = tmp_path / "flexflow-origin"
    shutil.copytree(FIXTURE, origin, ignore=shutil.ignore_patterns("legion"))
    git("init", "-q", cwd=origin)
    git("submodule", "add", "-q", str(legion), "deps/legion", cwd=origin)
    git("add", "-A", cwd=origin)
    git("commit", "-q", "-m", "flexflow", cwd=origin)
    src = tmp_path / "FlexFlow"
    git("clone", "-q", str(origin), str(src), cwd=tmp_path)
    assert not (src / "deps" / "legion" / "CMakeLists.txt").exists()
    return src


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """nvidia-smi answers as the 2x H200 did with 10 GiB taken on GPU 0; git may fetch the
    submodule from a local path (as a user's config would allow)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    smi = tools / "nvidia-smi"
    smi.write_text(f"#!/bin/sh\ncat {BUSY}\n")
    smi.chmod(0o755)
    return {
        **os.environ,
        "PATH": f"{tools}:{os.environ['PATH']}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "NO_COLOR": "1",
        "GIT_CONFIG_COUNT": "1",
        "GIT_CONFIG_KEY_0": "protocol.file.allow",
        "GIT_CONFIG_VALUE_0": "always",
        "FLEXFLOW_LIKE_GPU_MIB": "143153",  # GPU 1's free memory there
    }


def flexflow(env: dict[str, str], src: Path, *sets: str, command: str = "run") -> tuple:
    args = [command] + (["flexflow"] if command == "run" else [])
    args += ["--force", "--yes", "--set", f"src={src}", *[a for s in sets for a in ("--set", s)]]
    done = run_wizard(env, *args, timeout=300)
    state = json.loads(run_wizard(env, "status", "--json").stdout)
    return done.returncode, done.stdout + done.stderr, state["steps"]


def test_submodules_fetched_configured_built_and_mnist_on_the_free_gpu(
    env: dict[str, str], checkout: Path
) -> None:
    code, out, steps = flexflow(env, checkout, "cuda_arch=90")
    assert code == 0, out
    assert steps["submodules"]["status"] == "done"  # the forgotten --recursive, fetched
    assert (checkout / "deps" / "legion" / "CMakeLists.txt").exists()
    assert "-- FF_CUDA_ARCH=90 " in out  # passed as config.linux's variable
    assert steps["build"]["command"].startswith("make -j${JOBS:-")
    assert "GPU 1, -ll:fsize 114522, -ll:zsize " in out  # GPU 0 was busy; 80% of 143153 MiB
    assert steps["mnist"]["results"]["flexflow"] == {
        "accuracy_pct": 90.581665,
        "correct": 54349,
        "samples": 60000,
        "epochs": 1,
        "seconds": 2.4817,
        "samples_s": 24176.97,
    }
    assert "mnist: accuracy 90.58% (54349/60000), 1 epoch(s) in 2.48 s, 24177 samples/s" in out
    again = flexflow(env, checkout, "cuda_arch=90")[1]
    assert "(build): skipped, already done" in again  # make's product is newer than its inputs


def test_a_failed_configure_clears_build_and_the_next_try_starts_clean(
    env: dict[str, str], checkout: Path
) -> None:
    code, out, steps = flexflow(env, checkout, "cuda_arch=sm90")
    assert code == 1 and steps["configure"]["status"] == "failed"
    assert "FF_CUDA_ARCH=sm90 is not a list of CUDA architectures" in out
    assert "configure failed: build/ was cleared" in out
    assert not (checkout / "build").exists()
    code, out, steps = flexflow(env, checkout, "cuda_arch=90", command="resume")
    assert code == 0, out
    assert steps["submodules"]["status"] == "done" and steps["mnist"]["status"] == "done"


def test_a_segfault_names_the_memory_sizes(env: dict[str, str], checkout: Path) -> None:
    code, out, steps = flexflow(env, checkout, "cuda_arch=90", "fsize=200000")
    assert code == 1 and steps["mnist"]["status"] == "failed"
    assert "killed by signal 11 (SIGSEGV: a segmentation fault)" in out
    assert "likely cause: FlexFlow (Legion) dies this way when -ll:fsize asks for more" in out


def test_the_sizes_from_recorded_nvidia_smi_answers() -> None:
    from steps.tools.ff_sizes import choose, gpus  # type: ignore[import-not-found]

    busy = gpus(BUSY.read_text())
    assert busy == [(0, 10767, 132390), (1, 4, 143153)]
    assert choose(busy, available_mib=257_229) == (1, 114522, 20000)
    idle = gpus((ROOT / "data" / "nvidia-smi-memory-2xh200-idle.csv").read_text())
    assert choose(idle, available_mib=2048) == (0, 114524, 1024)
