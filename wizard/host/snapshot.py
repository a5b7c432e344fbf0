"""Snapshots: a machine's observations saved as YAML, and a Host that replays them."""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from pathlib import Path
from typing import Any

from wizard.host.base import KINDS, Host

FORMAT = 1


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
        text = file.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SnapshotError(f"no snapshot at {file}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"cannot read {file}: {exc}") from None
    try:
        data = yaml.load(text, Loader=_loader())
    except yaml.YAMLError as exc:
        raise SnapshotError(f"{file} is not valid YAML: {exc}") from None
    if not isinstance(data, dict) or "wizard_snapshot" not in data:
        raise SnapshotError(f"{file} is not a wizard snapshot (no 'wizard_snapshot' key)")
    if data["wizard_snapshot"] != FORMAT:
        raise SnapshotError(
            f"{file} is snapshot format {data['wizard_snapshot']!r}; this wizard reads {FORMAT}"
        )
    observations = data.get("observations")
    if not isinstance(observations, dict) or not set(observations) <= set(KINDS):
        raise SnapshotError(f"{file} has no valid 'observations' table")
    return SnapshotHost(data, source=file.name)


def snapshot_data(host: Host, *, note: str = "") -> dict[str, Any]:
    """What `host` observed, as a snapshot file holds it."""
    from checks import REGISTRY
    from wizard import __version__

    return {
        "wizard_snapshot": FORMAT,
        "recorded_by": f"wizard {__version__}",
        "recorded_at": dt.datetime.now(dt.timezone.utc).replace(microsecond=0).isoformat(),
        "host": host.name,
        "note": note,
        # The checks that ran: a check added later is reported as not recorded, not replayed
        # against observations it never made.
        "checks": sorted(REGISTRY),
        "observations": {kind: dict(sorted(host.observations[kind].items())) for kind in KINDS},
    }


def write_snapshot(host: Host, path: str | os.PathLike[str], *, note: str = "") -> Path:
    """Write what `host` observed, atomically (a partial file never replaces a good one)."""
    import yaml

    data = snapshot_data(host, note=note)
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            yaml.dump(data, f, Dumper=_dumper(), sort_keys=False, allow_unicode=True, width=100)
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
        pass

    def text(dumper: Any, value: str) -> Any:
        style = "|" if "\n" in value else None
        return dumper.represent_scalar("tag:yaml.org,2002:str", value, style=style)

    Dumper.add_representer(str, text)
    return Dumper
