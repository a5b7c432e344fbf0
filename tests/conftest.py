from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.treehost import TreeHost, recorded_output
from wizard.engine.doctor.diagnosis import STRICT_FACTS

# Every doctor in the tests (and in the wizards they start) fails on a check that reads a
# fact from a check it does not declare.
os.environ[STRICT_FACTS] = "1"

UBUNTU_2404 = """PRETTY_NAME="Ubuntu 24.04.3 LTS"
NAME="Ubuntu"
VERSION_ID="24.04"
VERSION="24.04.3 LTS (Noble Numbat)"
VERSION_CODENAME=noble
ID=ubuntu
ID_LIKE=debian
"""


@pytest.fixture
def env(tmp_path: Path) -> dict[str, str]:
    """The environment of a wizard run as a real process: its state in the test's folder."""
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}


@pytest.fixture
def tree(tmp_path: Path) -> TreeHost:
    """An empty Ubuntu 24.04 tree (os-release only), run as root, with no GPU driver."""
    host = TreeHost(tmp_path)
    host.write("/etc/os-release", UBUNTU_2404)
    host.program("/usr/bin/uname", recorded_output("uname -srm"))
    host.program("/usr/bin/id", recorded_output("id -u"))
    return host
