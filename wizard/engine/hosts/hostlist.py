"""Which hosts: `--hosts a,b,c` and `--hostfile FILE`.

A host on the command line is `[user@]name[:port]`, an IPv6 address in brackets
(`[fe80::1%eth0]:22`); names go through ssh, so aliases from ~/.ssh/config work. A hostfile
has one host a line, in any of the forms launchers use: Open MPI's `name slots=N`, MPICH's
`name:N`, or the name alone; `#` starts a comment. A line with a user (`bob@name:2222`) or
brackets is the wizard's own form: its `:N` is a port, never MPICH's slots. A bad line is an
error that names the file and the line.

A name or user never starts with `-`: ssh would read it as an option (`-oProxyCommand=...`
runs a command). HostSpec refuses one wherever it is made, and every ssh command the wizard
builds ends its options with `--` before the destination as well (wizard.host.ssh.ssh_argv).
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass
from pathlib import Path

_WORD = r"[A-Za-z0-9_][A-Za-z0-9._-]*"  # a name or user: never a leading `-`
_NAME = re.compile(_WORD)
_HOST = re.compile(
    rf"(?:(?P<user>{_WORD})@)?(?:\[(?P<ipv6>[0-9A-Fa-f:.]+(?:%[A-Za-z0-9_.-]+)?)\]|(?P<name>{_WORD}))"
    r"(?::(?P<port>\d+))?"
)
_OPENMPI = re.compile(r"(?P<host>\S+)(?:\s+slots\s*=\s*(?P<slots>\d+))?(?:\s+max_slots\s*=\s*\d+)?")
_MPICH = re.compile(r"(?P<host>[^\s:@\[\]]+):(?P<slots>\d+)")


class HostListError(ValueError):
    """A host or hostfile line that cannot be read; the message says where and why."""


@dataclass(frozen=True)
class HostSpec:
    name: str
    user: str | None = None
    port: int | None = None
    slots: int | None = None  # from a hostfile: how many ranks it takes

    def __post_init__(self) -> None:
        if not (_NAME.fullmatch(self.name) or _is_ipv6(self.name)):
            raise HostListError(f"{self.name!r} is not a host name{_dash_note(self.name)}")
        if self.user is not None and not _NAME.fullmatch(self.user):
            raise HostListError(f"{self.user!r} is not a user name{_dash_note(self.user)}")

    @property
    def destination(self) -> str:
        """`[user@]name`, as ssh takes it."""
        return f"{self.user}@{self.name}" if self.user else self.name

    @property
    def label(self) -> str:
        """How the host is named in reports: as the user wrote it, less the slots."""
        name = f"[{self.name}]" if _is_ipv6(self.name) else self.name
        text = f"{self.user}@{name}" if self.user else name
        return f"{text}:{self.port}" if self.port else text


def _is_ipv6(name: str) -> bool:
    try:
        ipaddress.IPv6Address(name)
    except ValueError:
        return False
    return True


def _dash_note(text: str) -> str:
    return ": it starts with `-`, which ssh would read as an option" if text.startswith("-") else ""


def parse_host(text: str) -> HostSpec:
    text = text.strip()
    match = _HOST.fullmatch(text)
    if not match or (match["ipv6"] and not _is_ipv6(match["ipv6"])):
        why = _dash_note(text.split("@")[-1]) or _dash_note(text)
        raise HostListError(f"{text!r} is not a host{why}: write [user@]name[:port]")
    port = int(match["port"]) if match["port"] else None
    if port is not None and not 0 < port < 65536:
        raise HostListError(f"{text!r}: port {port} is out of range")
    return HostSpec(match["ipv6"] or match["name"], match["user"], port)


def parse_hosts(text: str) -> list[HostSpec]:
    """`--hosts a,b,user@c:8010`."""
    names = [part for part in (p.strip() for p in text.split(",")) if part]
    if not names:
        raise HostListError("--hosts names no host: give one or more, `--hosts a,b`")
    return _unique([parse_host(name) for name in names])


def given_hosts(hosts: str | None, hostfile: str | None) -> list[HostSpec]:
    """The hosts of `--hosts` and `--hostfile` together (none: neither given); a host named
    in both is an error."""
    specs = parse_hosts(hosts) if hosts is not None else []
    if hostfile:
        specs += read_hostfile(Path(hostfile))
    labels = [s.label for s in specs]
    if twice := sorted({label for label in labels if labels.count(label) > 1}):
        raise HostListError(f"named in both --hosts and --hostfile: {', '.join(twice)}")
    return specs


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
