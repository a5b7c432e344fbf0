"""How steps run, stop and are supervised, as real processes: exit codes and signals,
cancels whenever they come, output that cannot be written, one live wizard per run, a second
Ctrl-C, SIGHUP, and children that leave the step's session."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli import run_wizard as wizard


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
