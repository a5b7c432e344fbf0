"""Run the wizard's command line as a user would: a real process, output captured."""

from __future__ import annotations

import subprocess
import sys


def run_wizard(
    env: dict[str, str], *args: str, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "wizard", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
