"""Where the wizard keeps its files (XDG base directories)."""

from __future__ import annotations

from pathlib import Path

from xdg_base_dirs import xdg_state_home


def state_dir() -> Path:
    """Runs' state and logs: $XDG_STATE_HOME/wizard (~/.local/state/wizard)."""
    return xdg_state_home() / "wizard"


def runs_dir() -> Path:
    return state_dir() / "runs"


def data_dir(name: str) -> Path:
    """A folder of data shipped with the wizard (`steps`, `snapshots`): inside the installed
    package (the wheel puts them under wizard/data), else beside it in a source checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "data" / name
    return installed if installed.is_dir() else package.parent / name
