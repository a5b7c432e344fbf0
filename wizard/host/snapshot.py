"""Snapshots: a machine's observations saved as YAML, and a Host that replays them."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from wizard.host.base import KINDS, Host

FORMAT = 1
MAX_BYTES = 32 * 2**20  # the largest recorded machine is 55 kB
MAX_NAME = 255  # a host name, as DNS bounds it


class SnapshotError(Exception):
    """A snapshot file that cannot be used; the message says why, for the user."""


class SnapshotHost(Host):
    """Answers every question from a recorded snapshot.

    A question the snapshot does not hold gets the answer "nothing there" (no file, no
    program, a command that could not run) and is listed in `misses`, so a replay of an
    outdated snapshot is visible rather than silently wrong.
    """

    def __init__(self, data: dict[str, Any], source: str = "snapshot") -> None:
        super().__init__(str(data.get("host") or source))
        self.source = source
        self.recorded: dict[str, dict[str, Any]] = data["observations"]
        self.misses: list[tuple[str, str]] = []
        checks = data.get("checks")
        if isinstance(checks, list):
            self.recorded_checks = frozenset(map(str, checks))

    def _recorded(self, kind: str, key: str, default: Any) -> Any:
        table = self.recorded.get(kind) or {}
        if key in table:
            return table[key]
        self.misses.append((kind, key))
        return default

    def _command(self, argv: list[str], timeout: float, name: str) -> dict[str, Any]:
        missing = {"rc": None, "error": f"{argv[0]}: not recorded in {self.source}"}
        return self._recorded("commands", name, missing)

    def _read_text(self, path: str, max_bytes: int) -> str | None:
        return self._recorded("files", path, None)

    def _path_kind(self, path: str) -> str | None:
        return self._recorded("paths", path, None)

    def _glob(self, pattern: str) -> list[str]:
        return self._recorded("globs", pattern, [])

    def _realpath(self, path: str) -> str:
        return self._recorded("realpaths", path, path)

    def _getenv(self, name: str) -> str | None:
        return self._recorded("env", name, None)

    def _env_names(self, prefix: str) -> list[str]:
        return self._recorded("env", f"{prefix}*", [])

    def _which(self, program: str) -> str | None:
        return self._recorded("which", program, None)

    def _statvfs(self, path: str) -> dict[str, int] | None:
        return self._recorded("statvfs", path, None)

    def _nvml(self) -> dict[str, Any]:
        return self._recorded("nvml", "query", {"error": f"no NVML answer in {self.source}"})


def load_snapshot(path: str | os.PathLike[str]) -> SnapshotHost:
    """Read a snapshot file; SnapshotError with a plain reason when it is not usable."""
    import yaml

    file = Path(path)
    try:
        with open(file, "rb") as f:
            raw = _read_bounded(f)
        text = raw.decode("utf-8") if raw is not None else ""
    except FileNotFoundError:
        raise SnapshotError(f"no snapshot at {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"cannot read {file}: {exc}") from None
    if raw is None:
        raise SnapshotError(f"{file} is over {MAX_BYTES // 2**20} MiB: not a snapshot")
    try:
        # Snapshots hold no aliases (write_snapshot writes none); one alias can stand for
        # a billion copies (a "billion laughs"), so a file with any is refused before it
        # is built. The event scan costs what the parse costs, and expands nothing.
        if any(isinstance(event, yaml.AliasEvent) for event in yaml.parse(text, Loader=_loader())):
            raise SnapshotError(f"{file} uses YAML aliases (*name), which snapshots never hold")
        data = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        raise SnapshotError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "wizard_snapshot" not in data:
        raise SnapshotError(f"{file} is not a wizard snapshot (no 'wizard_snapshot' key)")
    if data["wizard_snapshot"] != FORMAT:
        raise SnapshotError(
            f"{file} is snapshot format {_shown(data['wizard_snapshot'])}; "
            f"this wizard reads {FORMAT}"
        )
    if why := _wrong_field(data):
        raise SnapshotError(f"{file} is not a usable snapshot: {why}")
    return SnapshotHost(data, source=file.name)


def _read_bounded(f: Any) -> bytes | None:
    """The file's bytes, or None past MAX_BYTES (a file's size is read before its bytes;
    a pipe is read a chunk at a time)."""
    size = os.fstat(f.fileno()).st_size
    if size > MAX_BYTES:
        return None
    chunks, total = [], 0
    while chunk := f.read(max(size, 1 << 16)):
        chunks.append(chunk)
        total += len(chunk)
        if total > MAX_BYTES:
            return None
    return b"".join(chunks)


def _shown(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _text(value: Any) -> bool:
    return isinstance(value, str)


def _text_or_none(value: Any) -> bool:
    return value is None or isinstance(value, str)


def _texts(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _command(value: Any) -> bool:
    return (
        isinstance(value, dict)
        and (value.get("rc") is None or type(value.get("rc")) is int)
        and all(_text_or_none(value.get(k)) for k in ("stdout", "stderr", "error"))
    )


def _statvfs(value: Any) -> bool:
    return value is None or (
        isinstance(value, dict) and all(type(value.get(k)) is int for k in ("total", "free"))
    )


# What each kind of observation holds, as the Host's questions answer it.
_SHAPES = {
    "commands": (_command, "a command's record (rc, stdout, stderr, error)"),
    "files": (_text_or_none, "a file's text or null"),
    "paths": (_text_or_none, "dir, file, other or null"),
    "globs": (_texts, "a list of paths"),
    "realpaths": (_text, "a path"),
    # A variable's value, or (under PREFIX*) the names of the variables with that prefix.
    "env": (lambda v: _text_or_none(v) or _texts(v), "a value, null, or a list of names"),
    "which": (_text_or_none, "a path or null"),
    "statvfs": (_statvfs, "total and free as whole numbers, or null"),
    "nvml": (lambda v: isinstance(v, dict), "NVML's answer, a mapping"),
}


def _wrong_field(data: dict[str, Any]) -> str | None:
    """The first field whose type is not what a snapshot holds, said for the user."""
    host = data.get("host")
    if not (host is None or isinstance(host, str)) or len(str(host)) > MAX_NAME:
        return f"'host' must be a name of at most {MAX_NAME} characters, not {_shown(host)}"
    for key in ("note", "recorded_by", "recorded_at"):
        if not _text_or_none(data.get(key)):
            return f"{key!r} must be text, not {_shown(data[key])}"
    if "checks" in data and not _texts(data["checks"]):
        return "'checks' must be a list of check ids"
    crashes = data.get("crashes")
    if crashes is not None and not (
        isinstance(crashes, dict) and all(_text(k) and _text(v) for k, v in crashes.items())
    ):
        return "'crashes' must be a table of check ids and their tracebacks"
    observations = data.get("observations")
    if not isinstance(observations, dict) or not set(observations) <= set(KINDS):
        return f"'observations' must be a table of {', '.join(KINDS)}"
    for kind, table in observations.items():
        if table is None:
            continue
        if not isinstance(table, dict) or not all(isinstance(k, str) for k in table):
            return f"observations.{kind} must be a table keyed by text"
        fits, what = _SHAPES[kind]
        for key, value in table.items():
            if not fits(value):
                return f"observations.{kind}[{_shown(key)}] must be {what}, not {_shown(value)}"
    return None


def snapshot_data(
    host: Host,
    *,
    note: str = "",
    checks: Iterable[str] | None = None,
    crashes: dict[str, str] | None = None,
) -> dict[str, Any]:
    """What `host` observed, as a snapshot file holds it. `checks` are the ids of the checks
    that ran: a check added later is then reported as not recorded, not replayed against
    observations it never made (None leaves the list out: a replay runs every check).
    `crashes` (check id -> traceback) goes along, for the bug report a crash asks for."""
    from wizard import __version__

    data: dict[str, Any] = {
        "wizard_snapshot": FORMAT,
        "recorded_by": f"wizard {__version__}",
        "recorded_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "host": host.name,
        "note": note,
    }
    if checks is not None:
        data["checks"] = sorted(checks)
    data["observations"] = {k: dict(sorted(host.observations[k].items())) for k in KINDS}
    if crashes:
        data["crashes"] = dict(sorted(crashes.items()))
    return data


def write_snapshot(
    host: Host,
    path: str | os.PathLike[str],
    *,
    note: str = "",
    checks: Iterable[str] | None = None,
    crashes: dict[str, str] | None = None,
) -> Path:
    """Write what `host` observed: to a file atomically (a partial file never replaces a
    good one); to anything else that is there already (a pipe, a terminal, a device such
    as /dev/stdout), as a stream, so it is written to, never replaced by a file."""
    import yaml

    data = snapshot_data(host, note=note, checks=checks, crashes=crashes)
    target = Path(path)

    def dump(f: Any) -> None:
        yaml.dump(data, f, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=100)

    if target.exists() and not target.is_file():
        with open(target, "w", encoding="utf-8") as f:
            dump(f)
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            dump(f)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a snapshot holds no secrets
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise
    return target


def _loader() -> Any:
    import yaml

    return getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _dumper() -> Any:
    import yaml

    base = getattr(yaml, "CSafeDumper", yaml.SafeDumper)

    class Dumper(base):  # type: ignore[misc, valid-type]
        def ignore_aliases(self, data: Any) -> bool:
            return True  # a value seen twice is written twice: the loader refuses aliases

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper
