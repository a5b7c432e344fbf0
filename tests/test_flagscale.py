"""The flagscale recipe on tests/fixtures/flagscale-like (FlagScale's training interface, see
its README), after a real flagcx run on the flagcx-like fixture: real processes, a venv so
the plugin's .pth goes into a Python of the test's own."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_wizard

ROOT = Path(__file__).resolve().parent
pytestmark = pytest.mark.integration


@pytest.fixture
def ready(tmp_path: Path) -> tuple[dict[str, str], Path, Path]:
    """A finished flagcx run (its checkout has a torch plugin package, as a built one does),
    FlagScale's stand-in, and a venv to train with."""
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
    flagcx = tmp_path / "FlagCX"
    shutil.copytree(ROOT / "fixtures" / "flagcx-like", flagcx)
    plugin = flagcx / "plugin" / "torch" / "flagcx"
    plugin.mkdir(parents=True)
    (plugin / "__init__.py").write_text("# the torch plugin's package, as build_ext leaves it\n")
    done = run_wizard(
        env, "run", "flagcx", "--force", "--yes", "--set", f"src={flagcx}",
        "--set", "perf_args=-b 128K -e 256K -f 2 -p 1", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    flagscale = tmp_path / "FlagScale"
    shutil.copytree(ROOT / "fixtures" / "flagscale-like", flagscale)
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    return env, flagscale, venv / "bin" / "python"


def flagscale(env: dict[str, str], src: Path, python: Path, *sets: str) -> tuple:
    args = ["run", "flagscale", "--force", "--yes", "--set", f"src={src}",
            "--set", f"python={python}", "--set", "train_iters=5"]  # fmt: skip
    args += [a for s in sets for a in ("--set", s)]
    done = run_wizard(env, *args, timeout=300)
    state = json.loads(run_wizard(env, "status", "--json").stdout)
    return done.returncode, done.stdout + done.stderr, state["steps"]


def test_a_tiny_model_trains_with_the_flagcx_backend(ready: tuple) -> None:
    env, src, python = ready
    code, out, steps = flagscale(env, src, python)
    assert code == 0, out
    assert "After: flagcx run flagcx-" in out
    assert "flagcx plugin: " in out  # importable by the Python FlagScale trains with
    assert "tiny model on generated data" in out
    assert "── the run script FlagScale generated:" in out and "nohup bash -c" in out
    assert "> initialized with distributed backend flagcx" in out  # the log, followed
    rows = steps["train"]["results"]["iterations"]
    assert [r["iteration"] for r in rows] == [1, 2, 3, 4, 5]
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert "train: iteration 5/5: lm loss 7.779 -> 2.343, 512.3 ms per iteration" in out


def test_a_missing_tokenizer_file_is_named_before_anything_starts(
    ready: tuple, tmp_path: Path
) -> None:
    env, src, python = ready
    tokenizer = tmp_path / "tokenizer"
    tokenizer.mkdir()
    (tokenizer / "tokenizer.json").write_text("{}")
    code, out, steps = flagscale(env, src, python, f"tokenizer_path={tokenizer}")
    assert code == 1 and steps["inputs"]["status"] == "failed"
    assert f"missing: {tokenizer}/tokenizer_config.json {tokenizer}/config.json" in out
    assert steps["start"]["status"] == "pending"  # nothing was started
