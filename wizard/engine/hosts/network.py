"""The network between the hosts: each host's address, and the interface it reaches the
next host through (what FLAGCX_SOCKET_IFNAME and Open MPI's if_include name)."""

from __future__ import annotations

import ipaddress
import re
import socket
from collections.abc import Callable

from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.ssh import ssh_to
from wizard.host import Host
from wizard.host.local import capture

_ROUTE = re.compile(r"\bdev (\S+)")
_SRC = re.compile(r"\bsrc (\S+)")
_CIDR = re.compile(r"\binet (\d+\.\d+\.\d+\.\d+/\d+)")

Route = tuple[str, str, str]  # (interface, its network as CIDR, the source address)


def resolve_address(spec: HostSpec, ssh_config: str | None) -> str:
    """The address ssh connects to for a host name (aliases and HostName from the config)."""
    done = capture(ssh_to(spec, config=ssh_config, options=["-G"]), 10)
    name = next(
        (line.split()[1] for line in done.stdout.splitlines() if line.startswith("hostname ")),
        spec.name,
    )
    try:
        return socket.gethostbyname(name)
    except OSError:
        return ""


def route(run: Callable[[list[str]], str], address: str) -> Route:
    """(interface, its network as CIDR, the source address) that `address` is reached
    through, from `ip`'s answers; `run` runs a command where the route is wanted. Empty
    where unknown."""
    if not address:
        return "", "", ""
    answer = run(["ip", "-o", "route", "get", address])
    dev, src = _ROUTE.search(answer), _SRC.search(answer)
    if not dev:
        return "", "", ""
    source = src.group(1) if src else ""
    cidr = _CIDR.search(run(["ip", "-o", "-4", "addr", "show", "dev", dev.group(1)]))
    if not cidr:
        return dev.group(1), "", source
    return dev.group(1), str(ipaddress.ip_interface(cidr.group(1)).network), source


def route_probe(
    specs: list[HostSpec], ssh_config: str | None
) -> tuple[dict[str, str], Callable[[Host, HostSpec], Route]]:
    """Each host's address as this machine resolves it, and a probe that asks a host for
    its route toward the next host: (interface, network, its own address there)."""
    addresses = {s.label: resolve_address(s, ssh_config) for s in specs}
    toward = {
        s.label: addresses[specs[(i + 1) % len(specs)].label] if len(specs) > 1 else ""
        for i, s in enumerate(specs)
    }

    def probe(host: Host, spec: HostSpec) -> Route:
        return route(lambda argv: host.run(argv).stdout, toward[spec.label])

    return addresses, probe


def local_route(address: str) -> Route:
    """This machine's route toward `address`."""
    return route(lambda argv: capture(argv, 10).stdout, address)


def common_prefix(names: list[str]) -> str:
    """The longest start all interface names share (eth0, eth1 -> eth): NCCL and FlagCX
    match FLAGCX_SOCKET_IFNAME / NCCL_SOCKET_IFNAME as a prefix of the name."""
    prefix = ""
    for chars in zip(*names, strict=False):
        if len(set(chars)) > 1:
            break
        prefix += chars[0]
    return prefix
