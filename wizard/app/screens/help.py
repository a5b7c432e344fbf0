"""Help: the keys of every screen."""

from __future__ import annotations

from typing import ClassVar

from rich.table import Table
from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

KEYS: tuple[tuple[str, tuple[tuple[str, str], ...]], ...] = (
    (
        "Anywhere",
        (
            ("?, f1", "this help (f1 in a text field, where ? is typed)"),
            (
                "q, ctrl+q",
                "quit (ctrl+q in a text field); a step running for more than a few seconds "
                "is stopped only after you confirm (y, or q again), its state saved",
            ),
        ),
    ),
    (
        "Start",
        (
            (
                "ctrl+n",
                "check this machine; its steps then run here, or across the Other hosts named",
            ),
            ("ctrl+o", "check the hosts named under Other hosts (a,b,user@c:8010)"),
            (
                "ctrl+s",
                "where Slurm is: check the nodes of the allocation the wizard runs in, "
                "else of one salloc asks for (given back after)",
            ),
            ("ctrl+r", "resume the saved run"),
        ),
    ),
    (
        "Checks",
        (
            ("arrows", "select a check: its details, facts and fixes"),
            ("f", "fixes"),
            ("n", "build and test"),
            ("r", "check again"),
            ("escape", "back"),
        ),
    ),
    (
        "Fixes",
        (
            ("space", "tick a fix (a manual one is done by hand)"),
            ("c", "copy the highlighted fix's commands"),
            ("a", "apply the ticked fixes (asks first)"),
            ("escape", "back"),
        ),
    ),
    (
        "Steps",
        (
            ("c", "cancel the running step"),
            ("r", "retry or resume"),
            ("s", "skip the failed step"),
            ("h", "run from the highlighted step"),
            ("f", "follow the log on or off (scrolling up stops it)"),
            ("end", "the log's last line, and follow it"),
            ("/", "search the log"),
            ("e", "jump to the first error"),
            ("n", "results"),
            ("escape", "back"),
        ),
    ),
    (
        "Hosts",
        (
            ("r", "check every host again (SSH or srun, each host's doctor, what differs)"),
            ("escape", "back"),
        ),
    ),
    ("Results", (("escape", "back to the steps"),)),
)
ABOUT = (
    "Every step's state is saved as it runs: after a failure, Ctrl-C or a reboot, start the "
    "wizard again and choose Resume, or run `wizard resume`. Full logs stay on disk.\n\n"
    "Press escape or ? to close."
)


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(Text("Keys (ctrl+p opens the command palette, which lists them too)"))
            yield Static(_keys_table())
            yield Static(Text(ABOUT))


def _keys_table() -> Table:
    """One row a key, under its screen's name: it wraps within its column at any width."""
    table = Table.grid(padding=(0, 2))
    table.add_column(style="cyan", no_wrap=True)
    table.add_column()
    for screen, keys in KEYS:
        table.add_row(Text(screen, style="bold"), "")
        for key, what in keys:
            table.add_row("  " + key, what)
    return table
