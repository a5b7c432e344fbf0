"""python.env and conda: which environments exist, which is active, and whether the Python
the wizard checks is the active one. conda itself cannot be installed here (it comes from
conda-forge, not PyPI or Debian), so its layout stands in: a prefix with conda-meta/ is an
environment (as `conda env list` counts them), here a real venv so python3 runs for real."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cli import run_wizard


@pytest.fixture
def home(tmp_path: Path) -> Path:
    """~/miniconda3 (base) with envs/train, and ~/.conda/environments.txt naming another
    environment outside it, as `conda create -p PATH` leaves it."""
    home = tmp_path / "home"
    base = home / "miniconda3"
    (base / "conda-meta").mkdir(parents=True)
    for prefix in (base / "envs" / "train", tmp_path / "elsewhere" / "flagscale"):
        subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(prefix)], check=True)
        (prefix / "conda-meta").mkdir()
    (home / ".conda").mkdir()
    (home / ".conda" / "environments.txt").write_text(
        f"{base}\n{base / 'envs' / 'train'}\n{tmp_path / 'elsewhere' / 'flagscale'}\n"
    )
    return home


def python_env(home: Path, **env: str) -> dict:
    done = run_wizard({**os.environ, "HOME": str(home), "NO_COLOR": "1", **env}, "doctor", "--json")
    return next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "python.env")


def test_the_active_conda_env_is_the_python_checked(home: Path) -> None:
    train = home / "miniconda3" / "envs" / "train"
    found = python_env(
        home,
        CONDA_PREFIX=str(train),
        CONDA_DEFAULT_ENV="train",
        PATH=f"{train / 'bin'}:{os.environ['PATH']}",
    )
    assert found["status"] == "warn"  # a venv made --without-pip: no pip there
    assert found["facts"]["python.env"] == "conda env"
    assert found["facts"]["python.conda_active"] == "train"
    assert set(found["facts"]["python.conda_envs"].split(",")) == {"base", "train", "flagscale"}
    assert found["facts"]["python.executable"] == str(train / "bin" / "python3")


def test_an_active_env_whose_python_is_not_first_on_path_is_named(home: Path) -> None:
    train = home / "miniconda3" / "envs" / "train"
    found = python_env(home, CONDA_PREFIX=str(train), CONDA_DEFAULT_ENV="train")
    assert found["status"] == "warn"
    assert "not the active conda env's (train at " in found["summary"]
    assert found["fixes"][0]["commands"] == [
        f'export PATH={shlex.quote(f"{train}/bin")}:"$PATH"   # or: conda activate train'
    ]


def test_conda_installed_but_no_env_active(home: Path) -> None:
    found = python_env(home)
    assert found["facts"]["python.conda"] == str(home / "miniconda3")
    assert found["facts"]["python.conda_active"] == ""
    assert any("no conda env is active" in line for line in found["details"])


def test_no_conda(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    found = python_env(tmp_path / "empty")
    assert found["facts"]["python.conda"] == ""
