"""Where the wizard keeps its files (XDG base directories), and whether it can.

What the wizard keeps is its own: folders it makes are 700 and files 600 whatever the umask,
and a folder (or any folder above it) that another user owns or could write is refused, as
ssh refuses such a ~/.ssh: whoever can write a run's state chooses what `wizard resume` runs.
"""

from __future__ import annotations

import os
import pwd
import stat
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
        private_folder(folder)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise UnusableFolder(
            f"cannot write the wizard's state and logs in {folder} ({exc.strerror or exc}). "
            f"Set XDG_STATE_HOME to a folder you can write: {_EXAMPLE}"
        ) from None
    return folder


def private_folder(folder: Path) -> Path:
    """`folder`, made 700 where missing (each missing folder above it too), and checked with
    check_private."""
    missing = [p for p in (folder, *folder.parents) if not p.exists()]
    for path in reversed(missing):
        path.mkdir(mode=0o700, exist_ok=True)
        os.chmod(path, 0o700)  # mode= is cut by the umask, never widened: this is exact
    check_private(folder)
    return folder


def check_private(path: Path) -> None:
    """Refuse a state file or folder that another user could change: owned by someone other
    than this user or root, or writable by group or others, it or any folder above it (a
    sticky folder of root's, such as /tmp, is fine above it)."""
    me = os.geteuid()
    for place in (path, *path.parents):
        try:
            info = place.stat()
        except OSError:
            continue
        if info.st_uid not in (me, 0):
            raise UnusableFolder(
                f"{place} belongs to {_user(info.st_uid)}, not to you: whoever owns it chooses "
                f"what the wizard runs from {path}. Use a folder of your own: {_EXAMPLE}"
            )
        shared = info.st_mode & (stat.S_IWGRP | stat.S_IWOTH)
        if shared and not (place != path and info.st_uid == 0 and info.st_mode & stat.S_ISVTX):
            who = (
                "group and others"
                if shared == stat.S_IWGRP | stat.S_IWOTH
                else ("its group" if shared == stat.S_IWGRP else "others")
            )
            raise UnusableFolder(
                f"{place} can be written by {who}: they could change what the wizard runs "
                f"from {path}. Make it yours alone (`chmod go-w {place}`) or use another "
                f"folder: {_EXAMPLE}"
            )


def private_file(path: str | os.PathLike[str], flags: int) -> int:
    """An `opener` for open(): a file made 600, whatever the umask."""
    return os.open(path, flags, 0o600)


def _user(uid: int) -> str:
    try:
        return f"user {pwd.getpwuid(uid).pw_name}"
    except KeyError:
        return f"uid {uid}"


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
