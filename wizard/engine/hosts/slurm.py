"""Hosts from Slurm: the nodes of an allocation, and commands on them through srun.

Inside an allocation (`SLURM_JOB_ID` set: an salloc shell, an sbatch script) the nodes are
the job's own: `scontrol show hostnames $SLURM_JOB_NODELIST`, with the GPUs and tasks per
node the allocation gives. Outside one, the wizard asks for one with `salloc --no-shell`
and Slurm's own options (-N, -p, --gpus-per-node, --time, -A), waits for it a bounded time
(salloc's `--immediate`), and gives it back (`scancel`) when done, also on Ctrl-C. Every
command on the nodes is a job step of that allocation (`srun --jobid=J --overlap`), so no
SSH between nodes is needed; the wizard never schedules anything itself.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from checks.slurm import NO_CLUSTER
from wizard.engine.hosts.across import Cluster, RunHost
from wizard.engine.hosts.hostlist import HostSpec
from wizard.host.local import capture

if TYPE_CHECKING:
    from wizard.engine.hosts.doctor_all import HostResult

CLIENTS = ("srun", "salloc", "sbatch", "scontrol", "squeue", "scancel", "sinfo")
DEFAULT_WAIT_S = 300  # how long an salloc may pend before the wizard gives up
_JOB = re.compile(r"job allocation (\d+)")
_TASKS = re.compile(r"(\d+)(?:\(x(\d+)\))?")
_GPUS = re.compile(r"gres[:/]gpu(?::[^:,=\s]+)?[:=](\d+)")


class SlurmError(Exception):
    """Slurm could not give what was asked; the message says why and what to type next."""


class SlurmStopped(SlurmError):
    """What waited on Slurm was stopped by the wizard itself (Stop: the app quitting)."""


class Stop:
    """Ends, from another thread, what waits on Slurm: an salloc pending (it takes its
    request back) and a job step running (srun passes SIGTERM on to its tasks and ends).
    Once called, what would start next is refused (SlurmStopped)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._waiting: dict[subprocess.Popen[str], signal.Signals] = {}
        self.called = False

    def __call__(self) -> None:
        with self._lock:
            self.called = True
            for proc, signum in self._waiting.items():
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(signum)

    def check(self, what: str) -> None:
        if self.called:
            raise SlurmStopped(f"stopped {what}")

    @contextlib.contextmanager
    def watching(self, proc: subprocess.Popen[str], signum: signal.Signals) -> Iterator[None]:
        """While the block runs, a call ends `proc` with `signum`."""
        with self._lock:
            self._waiting[proc] = signum
            if self.called:
                proc.send_signal(signum)
        try:
            yield
        finally:
            with self._lock:
                self._waiting.pop(proc, None)


def _watching(
    stop: Stop | None, proc: subprocess.Popen[str], signum: signal.Signals
) -> contextlib.AbstractContextManager[None]:
    return stop.watching(proc, signum) if stop is not None else contextlib.nullcontext()


def missing_tools() -> list[str]:
    """The Slurm client commands not on PATH."""
    return [tool for tool in CLIENTS if shutil.which(tool) is None]


def require_tools() -> None:
    if missing := missing_tools():
        raise SlurmError(
            f"--slurm needs Slurm's client commands, and {', '.join(missing)} "
            "is not on PATH: run the wizard on a login node of the cluster (or load its "
            "module, e.g. `module load slurm`), or use --hosts"
        )


@dataclass(frozen=True)
class Request:
    """What to ask salloc for, in its own words."""

    nodes: int | None = None
    partition: str | None = None
    gpus_per_node: int | None = None
    time: str | None = None
    account: str | None = None

    def salloc_args(self) -> list[str]:
        args = [f"--nodes={self.nodes}"] if self.nodes else []
        args += [f"--partition={self.partition}"] if self.partition else []
        if self.gpus_per_node:  # and a task (a CPU) a GPU: a launch starts a rank a GPU
            args += [f"--gpus-per-node={self.gpus_per_node}"]
            args += [f"--ntasks-per-node={self.gpus_per_node}"]
        args += [f"--time={self.time}"] if self.time else []
        args += [f"--account={self.account}"] if self.account else []
        return args

    @property
    def given(self) -> bool:
        return any(asdict(self).values())


@dataclass
class Allocation:
    job_id: str
    nodes: list[str]
    gpus_per_node: int = 0
    tasks_per_node: list[int] = field(default_factory=list)
    owned: bool = False  # asked for by the wizard, so given back by it

    def srun(self, *args: str) -> list[str]:
        """srun as a step of this job, beside any step already running in it."""
        return ["srun", f"--jobid={self.job_id}", "--overlap", *args]

    def on_every_node(self, *args: str) -> list[str]:
        """srun with one task on each node (and all the node's GPUs for it)."""
        gpus = [f"--gpus-per-node={self.gpus_per_node}"] if self.gpus_per_node else []
        return self.srun(f"--nodes={len(self.nodes)}", "--ntasks-per-node=1", *gpus, *args)

    def specs(self) -> list[HostSpec]:
        """The nodes as hosts; slots: their GPUs, else the tasks Slurm gives them."""
        return [HostSpec(node, slots=self.slots(i) or None) for i, node in enumerate(self.nodes)]

    def slots(self, index: int) -> int:
        if self.gpus_per_node:
            return self.gpus_per_node
        return self.tasks_per_node[index] if index < len(self.tasks_per_node) else 0

    def describe(self) -> str:
        gpus = f", {self.gpus_per_node} GPU(s) each" if self.gpus_per_node else ""
        whose = "asked for by the wizard" if self.owned else "yours"
        return f"Slurm job {self.job_id} ({whose}): {len(self.nodes)} node(s) {_nodes(self)}{gpus}"

    def release(self) -> None:
        """Give the allocation back, when the wizard asked for it (never the user's own)."""
        if self.owned:
            capture(["scancel", self.job_id], 30)
            self.owned = False

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _nodes(allocation: Allocation) -> str:
    shown = ", ".join(allocation.nodes[:6])
    more = len(allocation.nodes) - 6
    return shown + (f" and {more} more" if more > 0 else "")


def expand(nodelist: str) -> list[str]:
    """`n[1-3],gpu07` as node names, by Slurm itself."""
    done = capture(["scontrol", "show", "hostnames", nodelist], 30)
    names = done.stdout.split()
    if done.returncode or not names:
        raise SlurmError(f"scontrol cannot read the node list {nodelist!r}: {_said(done)}")
    return names


def tasks_per_node(text: str) -> list[int]:
    """SLURM_TASKS_PER_NODE (`2(x3),1`) as one count a node."""
    counts: list[int] = []
    for part in filter(None, text.split(",")):
        if match := _TASKS.fullmatch(part.strip()):
            counts += [int(match[1])] * int(match[2] or 1)
    return counts


def job_fields(job_id: str) -> dict[str, str]:
    """`scontrol show job -o J` as its Key=Value fields."""
    done = capture(["scontrol", "show", "job", "-o", job_id], 30)
    if done.returncode:
        raise SlurmError(f"scontrol cannot show job {job_id}: {_said(done)}")
    return dict(item.partition("=")[::2] for item in done.stdout.split() if "=" in item)


def gpus_of(job: Mapping[str, str]) -> int:
    """GPUs per node from a job's TresPerNode (`gres:gpu:2`, `gres/gpu:a100:2`)."""
    match = _GPUS.search(job.get("TresPerNode", ""))
    return int(match[1]) if match else 0


def from_environment(env: Mapping[str, str]) -> Allocation | None:
    """The allocation the wizard runs inside, or None outside one."""
    job_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not job_id:
        return None
    nodelist = env.get("SLURM_JOB_NODELIST") or env.get("SLURM_NODELIST")
    job = {} if nodelist else job_fields(job_id)
    nodes = expand(nodelist or job.get("NodeList", ""))
    gpus = env.get("SLURM_GPUS_ON_NODE") or env.get("SLURM_GPUS_PER_NODE", "").rpartition(":")[2]
    if not (gpus or "").isdigit():
        gpus = str(gpus_of(job or job_fields(job_id)))
    tasks = tasks_per_node(env.get("SLURM_TASKS_PER_NODE", ""))
    return Allocation(job_id, nodes, int(gpus), tasks, owned=False)


def request(
    wanted: Request, wait_s: float = DEFAULT_WAIT_S, stop: Stop | None = None
) -> Allocation:
    """salloc --no-shell: an allocation of the wizard's own, granted within `wait_s`;
    SlurmStopped when `stop` ends the wait (the request taken back)."""
    argv = ["salloc", "--no-shell", f"--immediate={max(1, int(wait_s))}", *wanted.salloc_args()]
    if stop is not None:
        stop.check("before salloc asked for the nodes")
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with _watching(stop, proc, signal.SIGINT):
            _, err = proc.communicate()
    except BaseException:  # Ctrl-C while pending: salloc takes the request back itself
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGINT)
        _, err = proc.communicate()
        _take_back(err)
        raise
    job = _JOB.search(err)
    if stop is not None and stop.called:
        _take_back(err)  # granted as it was stopped: given back at once
        raise SlurmStopped(f"stopped while salloc waited for {' '.join(argv[3:]) or 'one node'}")
    if proc.returncode or not job or "Granted" not in err:
        raise SlurmError(_refused(argv, err, wait_s))
    fields = job_fields(job[1])
    return Allocation(job[1], expand(fields.get("NodeList", "")), gpus_of(fields), owned=True)


def _take_back(said: str) -> None:
    """scancel the job salloc's words name, if any: a request withdrawn or just granted."""
    if match := _JOB.search(said or ""):
        capture(["scancel", match[1]], 30)


def _refused(argv: list[str], said: str, wait_s: float) -> str:
    lines = [line.removeprefix("salloc: ") for line in said.splitlines() if line.strip()]
    asked = " ".join(argv[3:]) or "one node"
    if any("queued and waiting" in line for line in lines):
        reason = next((line for line in lines if "not available" in line), "")
        why = f" ({reason})" if reason else ""
        return (
            f"salloc {asked}: still pending after {wait_s:g} s{why}, so the request was "
            "withdrawn. Ask for less (-N, --gpus-per-node, a shorter --time) or another "
            "partition (-p; `sinfo` shows them), or wait longer with --slurm-wait SECONDS"
        )
    if any(NO_CLUSTER in line for line in lines):
        return (
            f"salloc {asked}: no Slurm cluster is configured here (no slurm.conf, and no "
            "configless controller found through DNS). Run the wizard on a login node of the "
            "cluster (or set SLURM_CONF to its slurm.conf), or use --hosts"
        )
    error = next((line for line in reversed(lines) if line.startswith("error:")), "")
    words = error.removeprefix("error: ") or (lines[-1] if lines else "no answer")
    return f"salloc {asked} was refused: {words}. `sinfo` shows the partitions and their nodes"


@contextlib.contextmanager
def allocation(
    wanted: Request, wait_s: float = DEFAULT_WAIT_S, stop: Stop | None = None
) -> Iterator[Allocation]:
    """The allocation to work in: the one the wizard runs inside, else one asked for now
    and given back on the way out (an exception, Ctrl-C or `stop` included)."""
    require_tools()
    inside = from_environment(os.environ)
    if inside is not None:
        if wanted.given:
            raise SlurmError(
                f"already inside Slurm job {inside.job_id}: the wizard uses its nodes; "
                "-N, -p, --gpus-per-node, --time and -A are for asking for a new one "
                "(outside an allocation)"
            )
        yield inside
        return
    granted = request(wanted, wait_s, stop)
    try:
        yield granted
    finally:
        granted.release()


def _said(done: subprocess.CompletedProcess[str]) -> str:
    lines = [line.strip() for line in (done.stderr or done.stdout).splitlines() if line.strip()]
    return lines[-1] if lines else f"exit code {done.returncode}"


NODE_DOCTOR_TIMEOUT_S = 180


def doctor_nodes(
    allocation: Allocation,
    *,
    target: str | None = None,
    deep: bool = False,
    timeout: float = NODE_DOCTOR_TIMEOUT_S,
    stop: Stop | None = None,
) -> list[HostResult]:
    """The doctor on every node at once, as one job step (one task a node); each node's
    observations are replayed here into the same results `doctor --hosts` gives. A node
    whose task gave none is a result with srun's words for it. SlurmStopped when `stop`
    ends the step."""
    from wizard.engine.hosts.doctor_all import doctor_hosts
    from wizard.engine.hosts.slurm_node import decode
    from wizard.host.snapshot import SnapshotHost
    from wizard.host.ssh import Unreachable

    flags = [f"--target={target}"] if target else []
    flags += ["--deep"] if deep else []
    toward = peers(allocation.nodes, node_addresses(allocation.nodes))
    flags += ["--toward=" + ",".join(f"{n}={a}" for n, a in toward.items() if a)]
    argv = allocation.on_every_node(
        "--label", "--kill-on-bad-exit=0", sys.executable, "-m", "wizard.engine.hosts.slurm_node",
        *flags,
    )  # fmt: skip
    out, err = _step(argv, timeout, stop)
    if stop is not None:
        stop.check("while the nodes' doctor ran")
    seen = decode(out.splitlines())
    printed: dict[str, list[str]] = {node: [] for node in allocation.nodes}  # the task's own
    srun_said: dict[str, list[str]] = {}  # srun's: `srun: error: n2: task 1: Exited ...`
    for line in err.splitlines():
        task, _, text = line.partition(": ")
        if match := _SRUN_NODE.match(line):
            srun_said.setdefault(match[1], []).append(match[2])
        elif task.strip().isdigit() and int(task) < len(allocation.nodes) and text.strip():
            printed[allocation.nodes[int(task)]].append(text.strip())

    def connect(spec: HostSpec) -> SnapshotHost:
        data = seen.get(spec.name)
        if data is None:
            own = printed.get(spec.name, [])
            srun = srun_said.get(spec.name, [])
            # a traceback's last line, or a fatal error's first: the last that says error
            errors = [line for line in own if "rror" in line] or own
            why = errors[-1] if errors else "its task printed nothing"
            raise Unreachable(  # as ssh's words are for a host: that node's result
                f"the doctor gave no result on {spec.name}: {why}"
                + (f" ({srun[-1]})" if srun else "")
            )
        return SnapshotHost(data, source=f"node {spec.name}")

    def toward_first(host: SnapshotHost, spec: HostSpec) -> tuple[str, str, str]:
        """The node's route toward the first other node, as its task read it."""
        from wizard.engine.hosts.network import route

        return route(lambda argv: host.run(argv).stdout, toward[spec.name])

    results = doctor_hosts(allocation.specs(), connect, target=target, probe=toward_first)
    for result in results:  # the node's own time (its task's), not the replay's
        data = seen.get(result.spec.name)
        if data is not None:
            result.wall_s = float(data.get("task_s") or data.get("wall_s") or result.wall_s)
    return results


_SRUN_NODE = re.compile(r"srun: error: ([^:\s]+): (.*)")


def node_addresses(nodes: list[str]) -> dict[str, str]:
    """Each node's address, as Slurm reaches it (its NodeAddr, resolved here); "" where
    unknown."""
    done = capture(["scontrol", "show", "node", "-o", ",".join(nodes)], 30)
    found = {}
    for line in done.stdout.splitlines():
        fields = dict(item.partition("=")[::2] for item in line.split() if "=" in item)
        if fields.get("NodeName") in nodes:
            found[fields["NodeName"]] = fields.get("NodeAddr") or fields["NodeName"]
    addresses = {}
    for node in nodes:
        try:
            addresses[node] = socket.gethostbyname(found.get(node, node))
        except OSError:
            addresses[node] = ""
    return addresses


def peers(nodes: list[str], addresses: dict[str, str]) -> dict[str, str]:
    """Whom each node's route is read toward: the first node, and for the first node the
    second (FlagCX's and NCCL's bootstrap meet at rank 0's node); "" alone."""
    return {
        node: addresses.get(nodes[1] if node == nodes[0] else nodes[0], "")
        if len(nodes) > 1
        else ""
        for node in nodes
    }


def _step(argv: list[str], timeout: float, stop: Stop | None = None) -> tuple[str, str]:
    """A job step's stdout and stderr; past `timeout` it is ended as Ctrl-C would (srun
    passes the signal on to every task and ends the step), its output so far kept."""
    if stop is not None:
        stop.check("before the job step started")
    proc = subprocess.Popen(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        with _watching(stop, proc, signal.SIGTERM):
            return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        try:
            return proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            return proc.communicate()
    except BaseException:
        proc.send_signal(signal.SIGINT)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.communicate(timeout=15)
        raise


# -- a run across the nodes -----------------------------------------------------------------


@dataclass
class SlurmCluster(Cluster):
    """A run's hosts as the nodes of an allocation: commands on a node are job steps
    (srun), and mpirun starts its daemons through Slurm too, so no SSH is needed."""

    allocation: Allocation | None = None
    request: Request = field(default_factory=Request)

    @property
    def job(self) -> Allocation:
        assert self.allocation is not None
        return self.allocation

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "slurm": {"request": asdict(self.request)}}

    def ssh_argv(self, host: RunHost, *, tty: bool = False) -> list[str]:
        """The command that runs a shell script on a node (the script comes after it, as
        for ssh): a one-task job step there, its output unbuffered so lines stream, and
        ended with its processes when srun is stopped (tty or not)."""
        step = [f"--nodelist={host.spec.name}", "--nodes=1", "--ntasks=1", "--unbuffered"]
        return [*self.job.srun(*step, "--job-name=wizard"), "sh", "-c"]

    def launcher_flags(self, flavor: str) -> list[str]:
        """mpirun inside the allocation: its daemons start through srun (Open MPI's plm
        slurm, MPICH's hydra bootstrap), the ranks placed on the nodes, a slot per GPU."""
        placed = ",".join(f"{h.spec.name}:{h.slots}" for h in self.hosts)
        if flavor in ("MPICH", "Intel MPI"):
            return ["-hosts", placed]
        # Slurm's own slot count is the tasks asked for (often one a node); the hosts and
        # slots come from --host instead, the launch still goes through Slurm.
        return ["--mca", "ras", "^slurm", "--host", placed]

    def launcher_env(self, flavor: str) -> dict[str, str]:
        """What salloc gives its shell, so mpirun (and any srun in a step) runs as part of
        the job; steps share the nodes with each other (SLURM_OVERLAP)."""
        job = self.job
        env = {
            "SLURM_JOB_ID": job.job_id,
            "SLURM_JOBID": job.job_id,
            "SLURM_JOB_NODELIST": ",".join(job.nodes),
            "SLURM_NODELIST": ",".join(job.nodes),
            "SLURM_JOB_NUM_NODES": str(len(job.nodes)),
            "SLURM_NNODES": str(len(job.nodes)),
            "SLURM_OVERLAP": "1",
        }
        if job.gpus_per_node:
            env["SLURM_GPUS_PER_NODE"] = str(job.gpus_per_node)
        return env

    def srun_launch(self, values: dict[str, Any], plugin: str) -> bool:
        """Launch lines written for mpirun, started by `srun --mpi=PLUGIN` instead (one
        task a GPU, the tasks Slurm's own); False, values unchanged, where the nodes take
        different numbers of ranks (srun places the same number on each)."""
        slots = {h.slots for h in self.hosts}
        if len(slots) != 1:
            return False
        from wizard.paths import data_dir

        tool = data_dir("steps") / "tools" / "srun_as_mpirun.py"
        values["mpirun"] = sys.executable
        values["mpi_flags"] = [str(tool)]
        # srun passes the whole environment on: no -x/-genvlist for it (its -x is --exclude)
        values["mpi_env"], values["mpi_flavor"] = [], "srun"
        values["mpi_hosts"] = [
            f"--mpi={plugin}",
            f"--nodes={len(self.hosts)}",
            f"--ntasks-per-node={slots.pop()}",
            "--kill-on-bad-exit=1",
            "--job-name=wizard",
        ]
        return True

    def cancel_steps(self) -> list[str]:
        """scancel the job steps the wizard started that are still running (a stopped
        srun's step may outlive it for a moment); their ids."""
        done = capture(["squeue", "-h", "-s", f"--jobs={self.job.job_id}", "-o", "%i %j"], 30)
        mine = [
            words[0]
            for words in (line.split() for line in done.stdout.splitlines())
            if len(words) == 2 and words[1] in ("wizard", "orted", "hydra_bstrap_proxy")
        ]
        if mine:
            capture(["scancel", *mine], 30)
        return mine


def discover(
    allocation: Allocation,
    request: Request,
    *,
    target: str | None = None,
    ranks_per_host: int | None = None,
    stop: Stop | None = None,
) -> tuple[list[HostResult], SlurmCluster]:
    """Every node's doctor (one step), and the cluster of the nodes. Slots: `ranks_per_host`,
    else the allocation's GPUs a node, else the node's GPU count, else its tasks, else 1."""
    from wizard.engine.recipes.run import recipe_facts

    results = doctor_nodes(allocation, target=target, stop=stop)
    hosts = []
    for index, result in enumerate(results):
        facts = recipe_facts(result.report) if result.report else {}
        slots = (
            ranks_per_host
            or allocation.gpus_per_node
            or int(facts.get("gpu.count") or 0)
            or allocation.slots(index)
            or 1
        )
        # its route toward the first other node: the interface FLAGCX_SOCKET_IFNAME names,
        # and its own address there, where torchrun's nodes meet when it is the first
        interface, subnet, source = result.probed or ("", "", "")
        hosts.append(RunHost(result.spec, slots, facts, "", interface, subnet, source))
    return results, SlurmCluster(hosts, allocation=allocation, request=request)
