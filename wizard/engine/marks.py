"""How a status looks, for every front end: its mark, the mark's ASCII stand-in for a
stream that cannot encode it, and its colour, as Rich names it (the CLI writes the same
colour as an SGR code)."""

from __future__ import annotations

from dataclasses import dataclass

from checks.base import Status
from wizard.engine.recipes import state as st

_SGR = {"green": "32", "yellow": "33", "red": "31", "dim": "2", "magenta": "35", "cyan": "36"}


@dataclass(frozen=True)
class Mark:
    sign: str
    ascii: str
    colour: str  # a Rich style: "green", "dim"

    @property
    def sgr(self) -> str:
        """The colour as an ANSI SGR code, for `\\033[<code>m`."""
        return _SGR.get(self.colour, "0")

    def text(self, *, ascii_only: bool = False) -> str:
        return self.ascii if ascii_only else self.sign


FINDING: dict[Status, Mark] = {
    Status.OK: Mark("✓", "+", "green"),
    Status.WARN: Mark("!", "!", "yellow"),
    Status.FAIL: Mark("✗", "x", "red"),
    Status.SKIP: Mark("-", "-", "dim"),
    Status.CRASH: Mark("☠", "X", "magenta"),
}

STEP: dict[str, Mark] = {
    st.DONE: Mark("✓", "+", "green"),
    st.SKIPPED: Mark("-", "-", "dim"),
    st.FAILED: Mark("✗", "x", "red"),
    st.CANCELLED: Mark("✗", "x", "yellow"),
    st.RUNNING: Mark("▶", ">", "cyan"),
    st.PENDING: Mark("·", ".", "dim"),
}

UNKNOWN = Mark("?", "?", "")  # a status this wizard does not know (a newer one's state)


def step_mark(status: str) -> Mark:
    return STEP.get(status, UNKNOWN)
