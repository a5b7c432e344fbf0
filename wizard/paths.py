"""Where the wizard keeps its files (XDG base directories), and whether it can."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from xdg_base_dirs import xdg_state_home

from wizard.errors import UsageError

_EXAMPLE = "export XDG_STATE_HOME=/tmp/wizard-state-$(id -un)"


class UnusableFolder(UsageError):
    """The state folder cannot be made or written; the message names it and the variable."""


def state_dir() -> Path:
    """Runs' state and logs: $XDG_STATE_HOME/wizard (~/.local/state/wizard)."""
    return xdg_state_home() / "wizard"


def runs_dir() -> Path:
    return state_dir() / "runs"


def writable_state_dir() -> Path:
    """state_dir(), made if missing and proved writable. HOME itself is never created: a
    HOME that is unset or names no folder (user `nobody`'s /nonexistent) is an error that
    says which variable to set, as is a folder that cannot be written."""
    folder = state_dir()
    if not os.environ.get("XDG_STATE_HOME"):
        home = os.environ.get("HOME", "")
        if not home or not os.path.isdir(home):
            shown = f"HOME={home} is not a folder" if home else "HOME is not set"
            raise UnusableFolder(
                f"{shown}, so the wizard has nowhere to keep its state "
                f"and logs ({folder}). Set HOME, or XDG_STATE_HOME to a folder you can "
                f"write: {_EXAMPLE}"
            )
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UnusableFolder(
            f"cannot write the wizard's state and logs in {folder} ({exc.strerror or exc}). "
            f"Set XDG_STATE_HOME to a folder you can write: {_EXAMPLE}"
        ) from None
    return folder


def recipe_ids() -> list[str]:
    """The recipes shipped in steps/, by id: a folder listing that reads no YAML, so
    `wizard --help` can name them and stay fast."""
    return sorted(p.stem for p in data_dir("steps").glob("*.yaml"))


def data_dir(name: str) -> Path:
    """A folder of data shipped with the wizard (`steps`, `snapshots`): inside the installed
    package (the wheel puts them under wizard/data), else beside it in a source checkout."""
    package = Path(__file__).resolve().parent
    installed = package / "data" / name
    return installed if installed.is_dir() else package.parent / name
