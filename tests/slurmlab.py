"""A real Slurm cluster for tests: one slurmctld and several `slurmd -N nodeK` on this machine.

Debian's packages (slurmctld, slurmd, slurm-client, munge; .ci/run installs them) with a
munged of the lab's own (its own key and socket) and a slurm.conf in the lab's folder, named
to the clients by SLURM_CONF: nothing in /etc is read or changed. Every node answers on
127.0.0.1 at a port of its own (`NodeName=nK NodeAddr=127.0.0.1 Port=...`), or, with
`netns=True`, in a network namespace of its own on a bridge, at its own address (as nodes
of a real cluster are; its tasks see only that network), and declares
`gpu` gres on character devices that exist everywhere (/dev/null, /dev/zero), so
`--gpus-per-node` allocates and sets CUDA_VISIBLE_DEVICES as on a GPU cluster. Everything is
stopped when the lab closes, also when a test fails: the daemons by their own pids, then any
job step's processes by the lab's folder in their command line.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

MUNGED = "/usr/sbin/munged"
SLURMCTLD = "/usr/sbin/slurmctld"
SLURMD = "/usr/sbin/slurmd"
NSENTER = "/usr/bin/nsenter"
PLUGINS = next(Path("/usr/lib").glob("*/slurm-wlm"), Path("/usr/lib/slurm-wlm"))  # Debian's
GPU_FILES = ("/dev/null", "/dev/zero")  # two "GPUs" a node
START_TIMEOUT_S = 30
_LABS = itertools.count()


def available() -> str | None:
    """Why a lab cannot run here, or None when it can."""
    if os.geteuid() != 0:
        return "the Slurm lab runs slurmd as root (it starts job steps as their user)"
    missing = [p for p in (MUNGED, SLURMCTLD, SLURMD) if not Path(p).exists()]
    missing += [t for t in ("srun", "salloc", "sbatch", "scontrol", "sinfo") if not shutil.which(t)]
    if missing:
        return (
            f"Slurm is not installed ({', '.join(missing)} missing): "
            "apt-get install slurmctld slurmd slurm-client munge (.ci/run does)"
        )
    return None


def _free_ports(count: int) -> list[int]:
    """Ports nothing listens on now (bound then let go; the daemons take them at once)."""
    sockets = []
    for _ in range(count):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        sockets.append(s)
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


class SlurmLab:
    """`with SlurmLab(folder, 3) as lab:` a cluster of nodes n1..n3; `lab.env` for clients."""

    def __init__(
        self,
        folder: Path,
        count: int = 3,
        *,
        cpus: int = 2,
        without: tuple[str, ...] = (),
        node_tmp: bool = True,
        netns: bool = False,
        interfaces: tuple[str, ...] = (),
    ) -> None:
        """`without`: Slurm plugins (file names' starts, e.g. `mpi_pmix`) this cluster
        lacks, as a site that never built them would. `node_tmp`: each node its own TmpFS;
        without, the nodes' PMIx servers share /tmp and srun --mpi=pmix across nodes fails,
        as it does where PMIx cannot set up. `netns`: each node in a network namespace of
        its own (`addresses`), the controller on the bridge's address (`here`), each node's
        network interface named by `interfaces` (else eth0, eth1, ...)."""
        self.folder = folder
        self.without = without
        self.node_tmp = node_tmp
        self.nodes = [f"n{i}" for i in range(1, count + 1)]
        self.cpus = cpus
        self.bridge = ""
        self.namespaces: dict[str, str] = {}
        self.addresses = {node: "127.0.0.1" for node in self.nodes}
        self.here = "127.0.0.1"  # where the nodes reach the controller (and srun)
        if netns:
            tag = f"{os.getpid() % 10000}{next(_LABS) % 100:02d}"  # names of <= 15 chars
            prefix = f"10.252.{20 + os.getpid() % 200}"
            self.bridge, self.here = f"wzs{tag}", f"{prefix}.1"
            self.namespaces = {node: f"wzs{tag}{node}" for node in self.nodes}
            self.addresses = {node: f"{prefix}.{10 + i}" for i, node in enumerate(self.nodes)}
        names = interfaces or tuple(f"eth{i}" for i in range(count))
        self.interfaces = dict(zip(self.nodes, names, strict=True))
        self.conf = folder / "slurm.conf"
        self.munge_socket = folder / "munge" / "munge.socket"
        self._daemons: list[subprocess.Popen[bytes]] = []
        # Open MPI's shared-memory transport would mix up ranks of "nodes" that are one
        # machine (its segments are named by the host): TCP between all ranks.
        self.env = {**os.environ, "SLURM_CONF": str(self.conf), "OMPI_MCA_btl": "self,tcp"}
        for name in [k for k in self.env if k.startswith(("SLURM_", "SALLOC_", "SBATCH_"))]:
            if name != "SLURM_CONF":
                del self.env[name]  # a lab inside a real allocation is still the lab

    # -- building ---------------------------------------------------------------------------

    def __enter__(self) -> SlurmLab:
        try:
            self._network()
            self._munge()
            self._config()
            self._start(
                [SLURMCTLD, "-D", "-i", "-f", str(self.conf)], self.folder / "slurmctld.out"
            )
            self._wait_for_controller()
            for node in self.nodes:
                inside = (
                    [NSENTER, f"--net=/run/netns/{self.namespaces[node]}"] if self.netns else []
                )
                self._start(  # nsenter execs slurmd (its pid is the daemon's); unlike `ip netns
                    # exec`, it keeps this machine's mounts (/sys/fs/cgroup, which slurmd needs)
                    [*inside, SLURMD, "-D", "-N", node, "-f", str(self.conf)],
                    self.folder / f"slurmd-{node}.out",
                )
            self._wait_for_nodes()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def netns(self) -> bool:
        return bool(self.bridge)

    def _network(self) -> None:
        """The bridge, with this machine's address on it, and a namespace a node (a veth
        on the bridge, its address, its loopback)."""
        if not self.netns:
            return
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"{self.here}/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")
        for i, node in enumerate(self.nodes):
            namespace, outside, inside = (
                self.namespaces[node],
                f"{self.bridge}v{i}",
                self.interfaces[node],
            )
            _ip("netns", "add", namespace)
            _ip("link", "add", outside, "type", "veth", "peer", "name", inside, "netns", namespace)
            _ip("link", "set", outside, "master", self.bridge)
            _ip("link", "set", outside, "up")
            _ip("-n", namespace, "addr", "add", f"{self.addresses[node]}/24", "dev", inside)
            _ip("-n", namespace, "link", "set", inside, "up")
            _ip("-n", namespace, "link", "set", "lo", "up")

    def _munge(self) -> None:
        folder = self.folder / "munge"
        folder.mkdir(mode=0o700)
        key = folder / "munge.key"
        key.write_bytes(os.urandom(1024))
        key.chmod(0o600)
        # munged forks itself away; its pid file is how the lab stops it.
        subprocess.run(
            [
                MUNGED, "--force", f"--socket={self.munge_socket}", f"--key-file={key}",
                f"--pid-file={folder / 'munged.pid'}", f"--log-file={folder / 'munged.log'}",
                f"--seed-file={folder / 'munged.seed'}",
            ],
            check=True,
            capture_output=True,
            timeout=20,
        )  # fmt: skip

    def _config(self) -> None:
        ctld_port, *node_ports = _free_ports(1 + len(self.nodes))
        folder = self.folder
        for sub in (
            "state",
            *(f"spool/{n}" for n in self.nodes),
            *(f"tmp/{n}" for n in self.nodes),
        ):
            (folder / sub).mkdir(parents=True)
        lines = [f"PluginDir={self._plugins()}"] if self.without else []
        lines += [
            "ClusterName=wizlab",
            f"SlurmctldHost=localhost({self.here})",
            f"SlurmctldPort={ctld_port}",
            "SlurmUser=root",
            "AuthType=auth/munge",
            "CredType=cred/munge",
            f"AuthInfo=socket={self.munge_socket}",
            f"StateSaveLocation={folder / 'state'}",
            f"SlurmdSpoolDir={folder / 'spool'}/%n",
            f"SlurmctldPidFile={folder / 'slurmctld.pid'}",
            f"SlurmdPidFile={folder / 'slurmd-%n.pid'}",
            f"SlurmctldLogFile={folder / 'slurmctld.log'}",
            f"SlurmdLogFile={folder / 'slurmd-%n.log'}",
            *([f"TmpFS={folder / 'tmp'}/%n"] if self.node_tmp else []),
            "ProctrackType=proctrack/pgid",
            "TaskPlugin=task/none",
            "SelectType=select/cons_tres",
            "SelectTypeParameters=CR_Core",
            "GresTypes=gpu",
            "MpiDefault=none",
            "ReturnToService=2",
            "SchedulerType=sched/backfill",
            "JobAcctGatherType=jobacct_gather/none",
            "AccountingStorageType=accounting_storage/none",
            "JobCompType=jobcomp/none",
            f"TaskProlog={folder / 'task_prolog'}",
            "KillWait=2",
            "InactiveLimit=0",
            "MinJobAge=5",
            "SlurmdTimeout=30",
        ]
        for node, port in zip(self.nodes, node_ports, strict=True):
            lines.append(
                f"NodeName={node} NodeHostName=localhost NodeAddr={self.addresses[node]} Port={port} "
                f"CPUs={self.cpus} RealMemory=1000 Gres=gpu:{len(GPU_FILES)} State=UNKNOWN"
            )
        lines.append("PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP")
        self.conf.write_text("\n".join(lines) + "\n")
        # A node's own environment for its tasks (set with node_env): TaskProlog's
        # `export NAME=VALUE` lines, as a site's prolog or a node's modules would give.
        (folder / "node-env").mkdir()
        prolog = folder / "task_prolog"
        prolog.write_text(
            f'#!/bin/sh\nf={folder / "node-env"}/"$SLURMD_NODENAME"\n'
            '[ -f "$f" ] && cat "$f"\nexit 0\n'
        )
        prolog.chmod(0o755)
        (folder / "gres.conf").write_text(
            "".join(f"NodeName={n} Name=gpu File={','.join(GPU_FILES)}\n" for n in self.nodes)
        )

    def _plugins(self) -> Path:
        """A plugin folder of links to Debian's plugins, less those in `without`."""
        folder = self.folder / "plugins"
        folder.mkdir()
        for plugin in PLUGINS.glob("*.so"):
            if not plugin.name.startswith(self.without):
                (folder / plugin.name).symlink_to(plugin)
        return folder

    def _start(self, argv: list[str], log: Path) -> None:
        with log.open("wb") as out:
            self._daemons.append(
                subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=self.env)
            )

    def _wait_for_controller(self) -> None:
        self._until(lambda: self.run("scontrol", "ping").returncode == 0, "slurmctld to answer")

    def _wait_for_nodes(self) -> None:
        def idle() -> bool:
            done = self.run("sinfo", "-h", "-N", "-o", "%N %t")
            states = dict(line.split() for line in done.stdout.splitlines() if line.strip())
            return all(states.get(node) == "idle" for node in self.nodes)

        self._until(idle, "every slurmd to register")

    def _until(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            for daemon in self._daemons:
                if daemon.poll() is not None:
                    raise RuntimeError(
                        f"{daemon.args[0]} exited ({daemon.returncode}) waiting for {what}:\n"
                        + self.logs()
                    )
            if ready():  # type: ignore[operator]
                return
            time.sleep(0.2)
        raise RuntimeError(f"no {what} within {START_TIMEOUT_S} s:\n{self.logs()}")

    # -- using ------------------------------------------------------------------------------

    def run(self, *argv: str, timeout: float = 30) -> subprocess.CompletedProcess[str]:
        """A Slurm client command against the lab."""
        return subprocess.run(
            list(argv), capture_output=True, text=True, env=self.env, timeout=timeout, check=False
        )

    @contextlib.contextmanager
    def node_env(self, node: str, **values: str) -> Iterator[None]:
        """Tasks on `node` get these variables (on top of srun's), until the block ends."""
        file = self.folder / "node-env" / node
        file.write_text("".join(f"export {k}={v}\n" for k, v in values.items()))
        try:
            yield
        finally:
            file.unlink()

    def jobs(self) -> list[str]:
        """The jobs squeue lists (id and state), none when the lab is idle."""
        done = self.run("squeue", "-h", "-o", "%i %T")
        return [line for line in done.stdout.splitlines() if line.strip()]

    def idle(self, timeout: float = 15) -> bool:
        """Whether every job has left squeue within `timeout` (a finished one is COMPLETING
        for a moment, while its nodes clean up)."""
        deadline = time.monotonic() + timeout
        while self.jobs():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.2)
        return True

    def steps(self) -> list[str]:
        done = self.run("squeue", "-h", "-s", "-o", "%i")
        return [line for line in done.stdout.splitlines() if line.strip()]

    def logs(self) -> str:
        parts = []
        for log in sorted(self.folder.glob("*.log")) + sorted(self.folder.glob("*.out")):
            text = log.read_text(errors="replace").splitlines()[-15:]
            parts.append(f"--- {log.name}\n" + "\n".join(text))
        return "\n".join(parts)

    # -- ending -----------------------------------------------------------------------------

    def close(self) -> None:
        """Cancel every job, stop the daemons and munged, and end whatever a job left."""
        if self._daemons and self._daemons[0].poll() is None:
            with contextlib.suppress(Exception):
                self.run("scancel", "--user=root", timeout=10)
                self.idle()
        for daemon in reversed(self._daemons):  # the nodes first, the controller last
            if daemon.poll() is None:
                daemon.terminate()
            try:
                daemon.wait(timeout=10)
            except subprocess.TimeoutExpired:
                daemon.kill()
                daemon.wait()
        self._daemons.clear()
        self._stop_pidfile(self.folder / "munge" / "munged.pid")
        self._end_leftovers()
        for namespace in self.namespaces.values():  # its veth's end on the bridge goes too
            subprocess.run(["ip", "netns", "del", namespace], capture_output=True, check=False)
        if self.bridge:
            subprocess.run(["ip", "link", "del", self.bridge], capture_output=True, check=False)

    @staticmethod
    def _stop_pidfile(pidfile: Path) -> None:
        try:
            pid = int(pidfile.read_text().strip())
        except (OSError, ValueError):
            return
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
        for _ in range(50):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.1)
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)

    def _end_leftovers(self) -> None:
        for pid in self.leftovers():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)

    def leftovers(self) -> list[int]:
        """Pids of processes still running with the lab's SLURM_CONF (daemons, job steps and
        their tasks, which inherit it), less this one and its parents."""
        mine = f"SLURM_CONF={self.conf}".encode()
        ancestors, pid = set(), os.getpid()
        while pid > 1:
            ancestors.add(pid)
            pid = _parent(pid)
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit() or int(entry.name) in ancestors:
                continue
            with contextlib.suppress(OSError):
                environ = (entry / "environ").read_bytes().split(b"\0")
                if mine in environ and _state(int(entry.name)) != "Z":
                    found.append(int(entry.name))
        return found


def _ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True, timeout=20)


def _stat(pid: int) -> list[str]:
    """/proc/PID/stat's fields after the command name: state, parent, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def _parent(pid: int) -> int:
    return int(_stat(pid)[1])


def _state(pid: int) -> str:
    return _stat(pid)[0]


@pytest.fixture(scope="module", name="slurm")
def slurm_fixture(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SlurmLab]:
    """A 3-node lab for the tests of one module (it starts in about a second)."""
    why = available()
    if why:
        pytest.skip(why)
    with SlurmLab(tmp_path_factory.mktemp("slurm"), 3) as lab:
        yield lab
    if left := lab.leftovers():
        pytest.fail(f"the Slurm lab left processes running: {left}")
