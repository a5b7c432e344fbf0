"""What a recipe's source checkout has, read where the recipe says (`checkout:`).

Read before the plan and again before each step: a checkout cloned by an earlier step of
the same run, or moved to another commit, is seen as it is when the step starts.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from checks.flagcx import read_checkout as flagcx
from wizard.host import Host, LocalHost

READERS: dict[str, Callable[[Host, str], dict[str, Any]]] = {"flagcx": flagcx}


def read(reader: str, path: str) -> dict[str, Any]:
    """The reader's facts of the checkout at `path` on this machine (where the plan and the
    launch steps run; builders on other hosts build the same shared folder)."""
    return READERS[reader](LocalHost(), path)
