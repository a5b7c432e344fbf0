"""Which hosts: `--hosts a,b,c` and `--hostfile FILE`.

A host on the command line is `[user@]name[:port]`; names go through ssh, so aliases from
~/.ssh/config work. A hostfile has one host a line, in any of the forms launchers use:
Open MPI's `name slots=N`, MPICH's `name:N`, or the name alone; `#` starts a comment. A bad
line is an error that names the file and the line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

_HOST = re.compile(r"(?:(?P<user>[A-Za-z0-9._-]+)@)?(?P<name>[A-Za-z0-9._-]+)(?::(?P<port>\d+))?")
_OPENMPI = re.compile(r"(?P<host>\S+)(?:\s+slots\s*=\s*(?P<slots>\d+))?(?:\s+max_slots\s*=\s*\d+)?")
_MPICH = re.compile(r"(?P<host>[^\s:]+):(?P<slots>\d+)")


class HostListError(ValueError):
    """A host or hostfile line that cannot be read; the message says where and why."""


@dataclass(frozen=True)
class HostSpec:
    name: str
    user: str | None = None
    port: int | None = None
    slots: int | None = None  # from a hostfile: how many ranks it takes

    @property
    def label(self) -> str:
        """How the host is named in reports: as the user wrote it, less the slots."""
        text = f"{self.user}@{self.name}" if self.user else self.name
        return f"{text}:{self.port}" if self.port else text


def parse_host(text: str) -> HostSpec:
    match = _HOST.fullmatch(text.strip())
    if not match:
        raise HostListError(f"{text!r} is not a host: write [user@]name[:port]")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise HostListError(f"{text!r}: port {port} is out of range")
    return HostSpec(match["name"], match["user"], port)


def parse_hosts(text: str) -> list[HostSpec]:
    """`--hosts a,b,user@c:8010`."""
    names = [part for part in (p.strip() for p in text.split(",")) if part]
    if not names:
        raise HostListError("--hosts names no host")
    return _unique([parse_host(name) for name in names])


def read_hostfile(path: Path) -> list[HostSpec]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HostListError(f"cannot read the hostfile {path}: {exc}") from None
    hosts = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        try:
            hosts.append(_hostfile_line(line))
        except HostListError as exc:
            raise HostListError(f"{path}:{number}: {exc}") from None
    if not hosts:
        raise HostListError(f"{path} names no host")
    try:
        return _unique(hosts)
    except HostListError as exc:
        raise HostListError(f"{path}: {exc}") from None


def _hostfile_line(line: str) -> HostSpec:
    if match := _MPICH.fullmatch(line):
        spec, slots = parse_host(match["host"]), int(match["slots"])
    elif match := _OPENMPI.fullmatch(line):
        spec = parse_host(match["host"])
        slots = int(match["slots"]) if match["slots"] else None
    else:
        raise HostListError(f"{line!r}: write `name slots=N`, `name:N` or the name alone")
    if slots == 0:
        raise HostListError(f"{line!r}: a host needs at least one slot")
    return HostSpec(spec.name, spec.user, spec.port, slots)


def _unique(hosts: list[HostSpec]) -> list[HostSpec]:
    seen: set[str] = set()
    for host in hosts:
        if host.label in seen:
            raise HostListError(f"{host.label} is named twice")
        seen.add(host.label)
    return hosts
