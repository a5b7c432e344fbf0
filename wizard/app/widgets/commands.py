"""Exact commands as the screens show them: each whole, wrapped at spaces under its `$`."""

from __future__ import annotations

from collections.abc import Sequence

from rich.table import Table
from rich.text import Text


def command_block(commands: Sequence[str], indent: int = 2) -> Table:
    """One row a command: `$ ` in its own column, the command wrapping beside it (a word
    longer than the pane, a URL, folds), so no part of it is ever cut off."""
    block = Table.grid(padding=0)
    block.add_column(width=indent + 2, no_wrap=True)
    block.add_column(overflow="fold")
    for command in commands:
        block.add_row(" " * indent + "$ ", Text(command, overflow="fold"))
    return block
