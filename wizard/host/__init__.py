"""Hosts: everything a check may observe on one machine, live or replayed from a snapshot."""

from wizard.host.base import CommandResult, Host
from wizard.host.local import LocalHost
from wizard.host.snapshot import SnapshotError, SnapshotHost, load_snapshot, write_snapshot

__all__ = [
    "CommandResult",
    "Host",
    "LocalHost",
    "SnapshotError",
    "SnapshotHost",
    "load_snapshot",
    "write_snapshot",
]
