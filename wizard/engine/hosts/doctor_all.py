"""The doctor on many hosts at once, over SSH, and what differs between them.

Each host gets its own SSH connection and its own doctor run, in parallel (up to
`PARALLEL` at a time, so a thousand hosts do not open a thousand connections at once). A host
that cannot be reached is a result with ssh's words, not a crash: the others still report.
The comparison lists only the facts whose values differ, and says which differences block a
run across the hosts.
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from typing import Any

from wizard.engine.doctor.diagnosis import Diagnosis, run_doctor
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.network import common_prefix, route_probe
from wizard.engine.hosts.ssh import check_config, connect, on_host_with_config, ssh_to
from wizard.host import Host
from wizard.host.ssh import CONNECT_TIMEOUT_S, Unreachable

PARALLEL = 32


MESH_LIMIT = 64  # past this many hosts, only the head's directions are tried (N² otherwise)


@dataclass
class HostResult:
    spec: HostSpec
    report: Diagnosis | None
    error: str | None = None  # why it could not be reached
    wall_s: float = 0.0
    ssh_to: dict[str, str | None] | None = None  # other host -> None (works) or ssh's words
    probed: Any = None  # what the caller's `probe` learned there

    @property
    def reachable(self) -> bool:
        return self.report is not None


@dataclass(frozen=True)
class Compared:
    fact: str
    blocking: bool
    why: str


# What must match across hosts, and what only informs. A difference in the first group makes
# a run across the hosts fail or hang; the second is worth knowing (and often normal).
COMPARED = (
    Compared(
        "mpi.flavor", True, "mpirun starts every host's ranks: one MPI implementation everywhere"
    ),
    Compared("mpi.version", True, "MPI's wire protocol differs between versions"),
    Compared("nccl.version", True, "NCCL ranks across hosts must run one NCCL version"),
    Compared("target", False, "hosts of several vendors: each builds FlagCX with its own flag"),
    Compared("gpu.count", False, "ranks per host (slots) follow each host's GPU count"),
    Compared("gpu.model", False, "the slowest GPU sets the pace of a collective"),
    Compared("driver.version", False, "drivers may differ; each must support its CUDA"),
    Compared("accel.model", False, "another vendor's accelerators: the slowest sets the pace"),
    Compared("accel.driver", False, "each vendor host's driver must suit its own SDK"),
    Compared("cuda.version", False, "each host's toolkit must suit its own driver"),
    Compared("python.version", False, "torchrun across hosts wants the same Python"),
    Compared("torch.version", False, "torch.distributed across hosts wants one PyTorch"),
    Compared("rdma.devices", False, "FLAGCX_IB_HCA names devices every host has"),
    Compared("rdma.link_layers", False, "InfiniBand and RoCE ports do not talk to each other"),
    Compared("rdma.mtu", False, "RoCE peers with different MTUs fall back to the smaller"),
    Compared("rdma.gid_index", False, "one FLAGCX_IB_GID_INDEX for all hosts must fit each"),
    Compared("rdma.nccl_net", False, "hosts whose NCCL picks different networks share no ring"),
    Compared(
        "flagcx.path",
        False,
        "mpirun starts one path on every host: link each host's checkout to one path",
    ),
    Compared("flagcx.commit", False, "ranks of one run should run one FlagCX commit"),
)


@dataclass(frozen=True)
class Difference:
    fact: str
    values: dict[str, Any]
    blocking: bool
    why: str
    fixes: tuple[str, ...] = ()  # commands that would make the hosts agree

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def doctor_hosts(
    specs: list[HostSpec],
    connect: Callable[[HostSpec], Host],
    *,
    target: str | None = None,
    parallel: int = PARALLEL,
    on_result: Callable[[HostResult], None] | None = None,
    ssh_mesh: bool = False,
    ssh_config: str | None = None,
    probe: Callable[[Host, HostSpec], Any] | None = None,
) -> list[HostResult]:
    """Every host's doctor, in the order given. `connect` makes a host (an SshHost) or raises
    Unreachable (or OSError) with the reason it cannot; any other exception is a bug and
    is raised, not reported as an unreachable host. `on_result` hears each result as it
    comes. With `ssh_mesh`, each host also tries passwordless SSH to the others, as
    mpirun's launcher will (with `ssh_config` where that host has the file): every direction
    up to MESH_LIMIT hosts, else the first host to all and all to the first. `probe` asks
    each host something more over the same connection."""

    def one(spec: HostSpec) -> HostResult:
        started = time.perf_counter()
        try:
            host = connect(spec)
        except (Unreachable, OSError) as exc:  # ssh's words; the others carry on
            result = HostResult(spec, None, str(exc), time.perf_counter() - started)
        else:
            try:
                report = run_doctor(host, target)
                targets = _mesh_targets(spec, specs)
                tried = try_ssh(host, targets, ssh_config) if ssh_mesh else None
                probed = probe(host, spec) if probe else None
            finally:
                host.close()
            took = time.perf_counter() - started
            result = HostResult(spec, report, None, took, tried, probed)
        if on_result:
            on_result(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(specs)))) as pool:
        return list(pool.map(one, specs))


def doctor_over_ssh(
    specs: list[HostSpec],
    *,
    ssh_config: str | None = None,
    target: str | None = None,
    ssh_mesh: bool = False,
    on_result: Callable[[HostResult], None] | None = None,
) -> list[HostResult]:
    """`doctor --hosts`: every host's doctor over the user's ssh, each with the interface it
    reaches the next host through (interface_of) and, with `ssh_mesh`, ssh to the others.
    Raises SshConfigMissing before any host is tried."""
    check_config(ssh_config)
    _, toward = route_probe(specs, ssh_config)
    return doctor_hosts(
        specs,
        lambda spec: connect(spec, ssh_config),
        target=target,
        on_result=on_result,
        ssh_mesh=ssh_mesh,
        ssh_config=ssh_config,
        probe=toward,
    )


def _mesh_targets(spec: HostSpec, specs: list[HostSpec]) -> list[HostSpec]:
    """The hosts this one tries, starting after itself: as every host goes round in its own
    order, each is dialled by about one other at a time (sshd's MaxStartups drops logins
    past 10 at once, which a burst from every host would hit)."""
    if len(specs) > MESH_LIMIT:
        return [s for s in specs[1:] if s != spec] if spec == specs[0] else [specs[0]]
    me = specs.index(spec)
    return specs[me + 1 :] + specs[:me]


def try_ssh(
    host: Host, targets: list[HostSpec], ssh_config: str | None = None
) -> dict[str, str | None]:
    """From `host`, `ssh target true` to each target in turn, in one remote command: None
    where it works, else the last line ssh printed."""
    if not targets:
        return {}
    result = host.run(
        ["sh", "-c", ssh_round(targets, ssh_config)],
        timeout=ssh_round_timeout(targets),
        key="ssh to the other hosts",
    )
    return read_ssh_round(result.stdout, targets)


def ssh_round(targets: list[HostSpec], ssh_config: str | None = None) -> str:
    """A POSIX script for a host that tries `ssh TARGET true` to each target in turn and
    prints, a line each, its index and `ok` or the last line ssh said. `ssh_config` is this
    machine's file: taken there only where the host has it too."""

    def tries(config: str | None) -> str:
        return " ".join(
            f"if out=$({shlex.join(ssh_to(t, config=config))} true 2>&1 </dev/null); then "
            f'echo {i} ok; else echo {i} "$(printf %s "$out" | tail -n 1)"; fi;'
            for i, t in enumerate(targets)
        )

    return on_host_with_config(ssh_config, tries)


def ssh_round_timeout(targets: list[HostSpec]) -> float:
    return 10 + (CONNECT_TIMEOUT_S + 1) * len(targets)  # ssh's connect timeout each, and slack


def read_ssh_round(stdout: str, targets: list[HostSpec]) -> dict[str, str | None]:
    """ssh_round's lines as target label -> None (works) or ssh's words."""
    said = dict(line.partition(" ")[::2] for line in stdout.splitlines() if line)
    return {
        t.label: None if said.get(str(i)) == "ok" else (said.get(str(i)) or "no answer")
        for i, t in enumerate(targets)
    }


def mesh_failures(results: list[HostResult]) -> list[tuple[str, str, str]]:
    """(from, to, why) for every direction that did not work."""
    return [
        (r.spec.label, other, why)
        for r in results
        for other, why in (r.ssh_to or {}).items()
        if why is not None
    ]


def differences(results: list[HostResult]) -> list[Difference]:
    """The compared facts whose values differ between the reachable hosts."""
    reached = [r for r in results if r.report is not None]
    found = []
    for compared in COMPARED:
        values = {r.spec.label: _value(r.report, compared.fact) for r in reached}  # type: ignore[arg-type]
        present = {repr(v) for v in values.values() if v not in (None, "")}
        if len(present) > 1:
            specs = {r.spec.label: r.spec for r in reached}
            fixes = _link_one_path(values, specs) if compared.fact == "flagcx.path" else ()
            found.append(Difference(compared.fact, values, compared.blocking, compared.why, fixes))
    return found


def interface_of(result: HostResult) -> dict[str, str] | None:
    """The interface a host reaches the next host through (doctor_over_ssh's probe):
    FLAGCX_SOCKET_IFNAME's value."""
    if not result.probed or not result.probed[0]:
        return None
    name, network, address = result.probed
    return {"name": name, "network": network, "address": address}


def interface_difference(results: list[HostResult]) -> list[Difference]:
    """doctor_over_ssh's interfaces toward the other hosts, when their names share no
    start: one FLAGCX_SOCKET_IFNAME (matched as a prefix) then fits no host set."""
    names = {r.spec.label: (interface_of(r) or {}).get("name", "") for r in results if r.reachable}
    known = [n for n in names.values() if n]
    if len(set(known)) < 2 or common_prefix(known):
        return []
    return [
        Difference(
            "net.interface",
            names,
            False,
            "FLAGCX_SOCKET_IFNAME / NCCL_SOCKET_IFNAME match names by prefix: these share none, "
            "so set them per host",
        )
    ]


def unreachable_advice(result: HostResult) -> list[str]:
    """What to type next for a host ssh could not log in to, from ssh's words."""
    spec, why = result.spec, result.error or ""
    port = ["-p", str(spec.port)] if spec.port else []
    if "Permission denied" in why:
        copy = shlex.join(["ssh-copy-id", *port, spec.destination])
        return [f"{copy}   # once, with your password: then keys work"]
    if "Host key verification failed" in why or "host key" in why.lower():
        scan = shlex.join(["ssh-keyscan", *port, spec.name])
        return [f"{scan}   # compare the fingerprint, then add it to known_hosts"]
    ssh = shlex.join(["ssh", "-v", *port, spec.destination, "true"])
    if "refused" in why:
        return [f"{ssh}   # is sshd running there, and on this port?"]
    return [f"{ssh}   # see where the connection stops"]


def _link_one_path(paths: dict[str, Any], specs: dict[str, HostSpec]) -> tuple[str, ...]:
    """FlagCX's guide: one path on every host, each linked to its own (vendor's) checkout.
    The path most hosts use is kept; each other host gets a link there to its own, as a
    command to type (its port as -p: a label's name:port is no ssh destination)."""
    used = [p for p in paths.values() if p]
    if not used:
        return ()
    keep = max(used, key=lambda p: (used.count(p), -used.index(p)))  # ties: the first host's
    commands = []
    for label, path in paths.items():
        if path and path != keep:
            spec = specs[label]
            port = ["-p", str(spec.port)] if spec.port else []
            link = shlex.join(["ln", "-s", str(path), str(keep)])
            commands.append(shlex.join(["ssh", *port, spec.destination, link]))
    return tuple(commands)


def _value(report: Diagnosis, fact: str) -> Any:
    if fact == "target":
        return report.target.id
    return report.facts().get(fact)


def ok(results: list[HostResult], diffs: list[Difference]) -> bool:
    """Every host reached, none blocked by its own findings, no blocking difference, and
    SSH works in every direction tried."""
    return (
        all(r.report is not None and not r.report.blocking for r in results)
        and not any(d.blocking for d in diffs)
        and not mesh_failures(results)
    )
