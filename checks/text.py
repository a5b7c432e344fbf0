"""Tools' output as text."""

from __future__ import annotations

import re

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(line: str) -> str:
    """The line without terminal colour codes (mpirun gives ranks a pty, so gtest colours)."""
    return _ANSI.sub("", line) if "\x1b" in line else line
