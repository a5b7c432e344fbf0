"""How hosts are reached: the user's own ssh, its config file, the wizard's one ssh command.

Every ssh command line the many-hosts engine runs or shows comes from `ssh_to` (built by
wizard.host.ssh.ssh_argv, which SshHost uses too), and every SshHost from `connect`. An ssh
config file (`--ssh-config`) is this machine's: an ssh that runs on another host takes it
only where that host has the same file (`on_host_with_config`).
"""

from __future__ import annotations

import shlex
from collections.abc import Callable, Sequence
from pathlib import Path

from wizard.engine.hosts.hostlist import HostSpec
from wizard.host.ssh import SshHost, ssh_argv


class SshConfigMissing(ValueError):
    """The ssh config file named is not a file here."""


def check_config(path: str | None) -> None:
    """An ssh config file that is given must be a file here: said before any host is tried."""
    if path and not Path(path).is_file():
        raise SshConfigMissing(f"--ssh-config {path}: no such file")


def ssh_to(
    spec: HostSpec,
    *,
    config: str | None = None,
    tty: bool = False,
    options: Sequence[str] = (),
) -> list[str]:
    """The ssh command that reaches `spec`, less the remote command; `config` only where
    the file is on the machine this ssh runs on."""
    return ssh_argv(spec.destination, port=spec.port, config=config, tty=tty, options=options)


def connect(spec: HostSpec, config: str | None = None) -> SshHost:
    """The host, logged in to over ssh (raises Unreachable with ssh's words)."""
    return SshHost(spec.name, user=spec.user, port=spec.port, ssh_config=config, label=spec.label)


def on_host_with_config(config: str | None, script: Callable[[str | None], str]) -> str:
    """A POSIX script for another host that runs `script(config)` where that host has the
    config file at the same path (a shared folder), else `script(None)`: the path is this
    machine's, and ssh refuses a -F file that is not there."""
    without = script(None)
    if not config or not without:
        return without
    return f"if [ -f {shlex.quote(config)} ]; then {script(config)} else {without} fi"
