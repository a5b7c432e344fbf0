"""A run across hosts: where each step runs, and how the launcher reaches the hosts.

`wizard run RECIPE --hosts a,b` runs the doctor on every host (over SSH, in parallel), then
runs each step where the recipe says: `where: every-host` steps (builds) on every host that
needs its own build, over the user's ssh; the others once, here, with `mpi_hosts` placing
the launcher's ranks on the hosts. Hosts that see the recipe's `shared` folder as this machine
(or another host) sees it build once: a shared folder is how FlagCX's guide runs it.
"""

from __future__ import annotations

import re
import secrets
import shlex
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from wizard.engine.hosts.doctor_all import HostResult, doctor_hosts
from wizard.engine.hosts.hostlist import HostSpec, parse_host
from wizard.engine.hosts.network import Route, common_prefix, local_route, route_probe
from wizard.engine.hosts.ssh import ssh_to
from wizard.engine.recipes.run import (
    HOST_MEM_AVAILABLE,
    HOST_NPROC,
    SAFE_ENV,
    mem_available_kib,
    recipe_facts,
)
from wizard.host import Host
from wizard.host.local import capture

HERE = "here"  # the label of this machine as a builder


class ClusterError(Exception):
    """Hosts that cannot run together as given; the message says why and what to change."""


@dataclass
class RunHost:
    spec: HostSpec
    slots: int
    facts: dict[str, Any] = field(default_factory=dict)  # its doctor's, for its own builds
    address: str = ""  # as this machine resolves it
    interface: str = ""  # its network interface toward the next host
    subnet: str = ""  # that interface's network, as CIDR
    source: str = ""  # its own address on that interface: where the others reach it

    @property
    def label(self) -> str:
        return self.spec.label


@dataclass
class Builder:
    """Who runs an every-host step for a group of hosts that share its folder."""

    label: str  # HERE or a host's label
    host: RunHost | None  # None: this machine
    members: list[str]  # the hosts it builds for


@dataclass
class Cluster:
    hosts: list[RunHost]
    ssh_config: str | None = None
    here_subnet: str = ""
    here_interface: str = ""  # this machine's interface toward the hosts
    builders_by_folder: dict[str, list[Builder]] = field(default_factory=dict)
    _rendezvous: tuple[str, int] | None = None

    # -- saved with the run -----------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "hosts": [{"host": h.label, "slots": h.slots} for h in self.hosts],
            "ssh_config": self.ssh_config,
        }

    @staticmethod
    def specs_from(saved: dict[str, Any]) -> list[HostSpec]:
        """The hosts a saved run was started with, slots included."""
        specs = []
        for entry in saved.get("hosts", []):
            spec = parse_host(entry["host"])
            specs.append(HostSpec(spec.name, spec.user, spec.port, entry.get("slots")))
        return specs

    # -- the launcher -----------------------------------------------------------------------

    @property
    def ranks(self) -> int:
        return sum(h.slots for h in self.hosts)

    def launcher_flags(self, flavor: str) -> list[str]:
        """mpirun's options that place the ranks on the hosts, for the MPI found here."""
        placed = ",".join(f"{h.spec.name}:{h.slots}" for h in self.hosts)
        rsh = " ".join(shlex.quote(a) for a in self._rsh_args())
        if flavor in ("MPICH", "Intel MPI"):
            # ssh's options go through launcher_env; -iface tells the proxies on the hosts
            # which of this machine's addresses to call back (else its hostname's, which
            # may be an interface they cannot reach)
            iface = ["-iface", self.here_interface] if self.here_interface else []
            return ["-hosts", placed, *iface]
        flags = ["--host", placed]
        if rsh:
            flags += ["--mca", "plm_rsh_args", rsh]
        if subnets := self.subnets():
            flags += ["--mca", "oob_tcp_if_include", subnets]
            flags += ["--mca", "btl_tcp_if_include", subnets]
        return flags

    def launcher_env(self, flavor: str) -> dict[str, str]:
        """Variables for mpirun itself: MPICH's launcher takes ssh's options from one."""
        rsh = " ".join(shlex.quote(a) for a in self._rsh_args())
        if flavor in ("MPICH", "Intel MPI") and rsh:
            return {"HYDRA_LAUNCHER_EXTRA_ARGS": rsh}
        return {}

    def _rsh_args(self) -> list[str]:
        """ssh options every launch needs: the config file, the one port, the one user. A
        launcher passes one set of options to every host, so ports and users that differ
        must come from ~/.ssh/config instead."""
        args = ["-F", self.ssh_config] if self.ssh_config else []
        ports = {h.spec.port for h in self.hosts}
        users = {h.spec.user for h in self.hosts}
        if len(ports) > 1:
            raise ClusterError(
                "the hosts listen on different SSH ports, and mpirun passes one set of ssh "
                "options to all: give each host a `Port` in ~/.ssh/config (or --ssh-config) "
                "and name them without :PORT"
            )
        if len(users) > 1:
            raise ClusterError(
                "the hosts log in as different users, and mpirun passes one set of ssh options "
                "to all: give each host a `User` in ~/.ssh/config and name them without user@"
            )
        port, user = ports.pop(), users.pop()
        return args + (["-p", str(port)] if port else []) + (["-l", user] if user else [])

    def subnets(self) -> str:
        """The networks the hosts reach each other (and this machine) on, for Open MPI's
        if_include: without it, ranks try every interface (docker0 and the like) and hang."""
        found = [self.here_subnet, *(h.subnet for h in self.hosts)]
        return ",".join(sorted({s for s in found if s}))

    def rank_env(self) -> dict[str, str]:
        """Variables every rank needs across hosts, from what the hosts told: the interface
        FlagCX's and NCCL's bootstrap use, and the RDMA devices every host has."""
        env: dict[str, str] = {}
        names = [h.interface for h in self.hosts if h.interface]
        if len(names) == len(self.hosts) and len(self.hosts) > 1:
            prefix = common_prefix(names)
            if prefix:
                env["FLAGCX_SOCKET_IFNAME"] = env["NCCL_SOCKET_IFNAME"] = prefix
        devices = [set(str(h.facts.get("rdma.hca") or "").split(",")) - {""} for h in self.hosts]
        common = set.intersection(*devices) if devices else set()
        if common:
            env["FLAGCX_IB_HCA"] = env["NCCL_IB_HCA"] = ",".join(sorted(common))
        return env

    def rendezvous(self) -> tuple[str, int]:
        """Where torchrun's nodes meet: the first host, at the address the others reach it
        on, and a port free there now (asked once a run)."""
        if self._rendezvous is None:
            first = self.hosts[0]
            probe = "import socket; s = socket.socket(); s.bind(('', 0)); print(s.getsockname()[1])"
            code, out = self.run_on(first, f"python3 -c {shlex.quote(probe)}")
            words = out.split()
            port = int(words[-1]) if code == 0 and words and words[-1].isdigit() else 29500
            self._rendezvous = (first.source or first.address or first.spec.name, port)
        return self._rendezvous

    def hostfile_lines(self) -> list[str]:
        """The hosts as a DeepSpeed (and Open MPI) hostfile says them: `name slots=N`."""
        return [f"{h.spec.name} slots={h.slots}" for h in self.hosts]

    def one_gpu_hosts(self) -> list[str]:
        return [h.label for h in self.hosts if h.slots == 1 and h.facts.get("gpu.count")]

    # -- running on a host ------------------------------------------------------------------

    def ssh_argv(self, host: RunHost, *, tty: bool = False) -> list[str]:
        """ssh to one host as the doctor reached it. With `tty`, the remote command gets a
        terminal, so it is hung up (and stops) when this ssh is stopped."""
        return ssh_to(host.spec, config=self.ssh_config, tty=tty)

    def remote_command(
        self, host: RunHost, script: str, *, cwd: str | None, env: dict[str, str], run_id: str
    ) -> str:
        """A step's script as the local command that runs it on a host, as steps run here
        (bash -e -o pipefail): its variables are exported there, where a `$NAME` in them
        expands in the host's own environment."""
        lines = [f"export {k}={_remote_value(v)}" for k, v in env.items()]
        lines += [f"export {k}=${{{k}:-{v}}}" for k, v in SAFE_ENV.items()]
        lines.append(f"export WIZARD_RUN_ID={shlex.quote(run_id)}")
        if cwd:
            lines.append(f"cd {shlex.quote(cwd)}")
        lines.append(script)
        remote = "bash -e -o pipefail -c " + shlex.quote("\n".join(lines))
        return shlex.join([*self.ssh_argv(host, tty=True), remote])

    def run_on(self, host: RunHost, script: str, timeout: float = 30) -> tuple[int | None, str]:
        """A short command on a host; its exit code (None: no answer) and output."""
        done = capture([*self.ssh_argv(host), script], timeout)
        if done.returncode == 124 and not done.stdout:
            return None, f"no answer from {host.label} within {timeout:g} s"
        return done.returncode, done.stdout + done.stderr

    def commits(self, folder: str) -> dict[str, str]:
        """Each host's commit of the git checkout at `folder` ("" where there is none)."""
        script = f"git -C {shlex.quote(folder)} rev-parse --short=12 HEAD 2>/dev/null || true"
        with ThreadPoolExecutor(max_workers=max(1, min(32, len(self.hosts)))) as pool:
            answers = list(pool.map(lambda h: self.run_on(h, script), self.hosts))
        return {
            h.label: out.strip().splitlines()[-1] if code == 0 and out.strip() else ""
            for h, (code, out) in zip(self.hosts, answers, strict=True)
        }

    # -- who builds -------------------------------------------------------------------------

    def every_host(self) -> list[Builder]:
        return [Builder(h.label, h, [h.label]) for h in self.hosts]

    def builders(self, folder: str | None, target_of: Callable[[RunHost], str]) -> list[Builder]:
        """One builder per copy of `folder`: this machine for the hosts that see its copy,
        then each host whose copy nobody else sees. Without a shared folder, every host
        builds. Hosts sharing a copy must build the same target."""
        if not folder:
            return self.every_host()
        if folder in self.builders_by_folder:
            return self.builders_by_folder[folder]
        groups: list[Builder] = []
        left = list(self.hosts)
        here = _Marker.here(folder)
        if here is not None:
            with here:
                sharing = [h for h in left if here.seen_by(self, h)]
            if sharing:
                groups.append(Builder(HERE, None, [h.label for h in sharing]))
                left = [h for h in left if h not in sharing]
        while left:
            leader, left = left[0], left[1:]
            group = Builder(leader.label, leader, [leader.label])
            if left:
                marker = _Marker.on(self, leader, folder)
                if marker is not None:
                    with marker:
                        sharing = [h for h in left if marker.seen_by(self, h)]
                    group.members += [h.label for h in sharing]
                    left = [h for h in left if h not in sharing]
            groups.append(group)
        by_label = {h.label: h for h in self.hosts}
        for group in groups:
            targets = {target_of(by_label[m]) for m in group.members}
            if len(targets) > 1:
                raise ClusterError(
                    f"{', '.join(group.members)} share {folder} but build for different "
                    f"targets ({', '.join(sorted(targets))}): give each vendor its own checkout "
                    "and link it to one path on each host (ln -s /shared/FlagCX-<vendor> PATH)"
                )
        self.builders_by_folder[folder] = groups
        return groups


def _remote_value(value: str) -> str:
    """Double-quoted for the remote shell: `$NAME` and `${NAME}` expand there, nothing else
    does (no command substitution, no backquotes)."""
    escaped = re.sub(r'(["\\`])', r"\\\1", value)
    escaped = re.sub(r"\$(?![A-Za-z_{])", r"\\$", escaped)
    escaped = re.sub(r"\$\{(?![A-Za-z_]\w*\})", r"\\${", escaped)
    return f'"{escaped}"'


class _Marker:
    """A file with a random token, written into the nearest existing folder above a path:
    a host that reads the same token there sees the same filesystem."""

    def __init__(self, path: str, token: str, remove: Callable[[], None]) -> None:
        self.path, self.token, self._remove = path, token, remove

    def __enter__(self) -> _Marker:
        return self

    def __exit__(self, *exc: object) -> None:
        self._remove()

    @classmethod
    def here(cls, folder: str) -> _Marker | None:
        anchor = Path(folder)
        while not anchor.is_dir() and anchor != anchor.parent:
            anchor = anchor.parent
        token = secrets.token_hex(8)
        path = anchor / f".wizard-shared-{token}"
        try:
            path.write_text(token)
        except OSError:
            return None
        return cls(str(path), token, lambda: path.unlink(missing_ok=True))

    @classmethod
    def on(cls, cluster: Cluster, host: RunHost, folder: str) -> _Marker | None:
        token = secrets.token_hex(8)
        script = (
            f'd={shlex.quote(folder)}; while [ ! -d "$d" ]; do d=$(dirname "$d"); done; '
            f'f="$d/.wizard-shared-{token}"; echo {token} > "$f" && echo "$f"'
        )
        code, out = cluster.run_on(host, script)
        path = out.strip().splitlines()[-1] if code == 0 and out.strip() else ""
        if not path:
            return None
        return cls(path, token, lambda: cluster.run_on(host, f"rm -f {shlex.quote(path)}"))

    def seen_by(self, cluster: Cluster, host: RunHost) -> bool:
        code, out = cluster.run_on(host, f"cat {shlex.quote(self.path)} 2>/dev/null")
        return code == 0 and out.strip() == self.token


def discover(
    specs: list[HostSpec],
    connect: Callable[[HostSpec], Host],
    *,
    ssh_config: str | None,
    ranks_per_host: int | None,
    target: str | None = None,
    on_result: Callable[[HostResult], None] | None = None,
) -> tuple[list[HostResult], Cluster]:
    """Every host's doctor (in parallel, one connection each), with the interface each uses
    toward the next host; and the cluster those answers make. Slots: the hostfile's, else
    `ranks_per_host`, else the host's GPU count, else 1."""
    addresses, toward = route_probe(specs, ssh_config)

    def probe(host: Host, spec: HostSpec) -> tuple[Route, dict[str, int]]:
        return toward(host, spec), capacity(host)

    results = doctor_hosts(specs, connect, target=target, on_result=on_result, probe=probe)
    hosts = []
    for result in results:
        routed, size = result.probed or (("", "", ""), {})
        facts = {**recipe_facts(result.report), **size} if result.report else {}
        gpus = facts.get("gpu.count") or 0
        slots = result.spec.slots or ranks_per_host or int(gpus) or 1
        interface, subnet, source = routed
        address = addresses[result.spec.label]
        hosts.append(RunHost(result.spec, slots, facts, address, interface, subnet, source))
    here = local_route(next((h.address for h in hosts if h.address), ""))
    return results, Cluster(hosts, ssh_config, here_subnet=here[1], here_interface=here[0])


def capacity(host: Host) -> dict[str, int]:
    """A host's usable CPUs (`nproc` there) and MemAvailable, as facts for its own builds'
    `nproc` and `build_jobs`; what it does not answer is left out (this machine's is used)."""
    found: dict[str, int] = {}
    cpus = host.run(["nproc"], timeout=10)
    if cpus.ok and cpus.stdout.strip().isdigit():
        found[HOST_NPROC] = int(cpus.stdout.strip())
    kib = mem_available_kib(host.read_text("/proc/meminfo") or "")
    if kib:
        found[HOST_MEM_AVAILABLE] = kib
    return found
