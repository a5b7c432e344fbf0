"""Many hosts as one: host lists and hostfiles, and `wizard doctor --hosts` against real sshd
servers in network namespaces (tests/netns.py)."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from checks.base import Status
from tests import netns
from tests.cli import run_wizard
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.hosts.across import Cluster, ClusterError, RunHost
from wizard.engine.hosts.doctor_all import doctor_hosts
from wizard.engine.hosts.hostlist import (
    HostListError,
    HostSpec,
    parse_host,
    parse_hosts,
    read_hostfile,
)
from wizard.engine.recipes.run import build_jobs, nproc
from wizard.host.ssh import SshHost

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"

# -- host lists ------------------------------------------------------------------------------


def test_hosts_on_the_command_line() -> None:
    assert parse_hosts("a, bob@b:8010 ,c") == [
        HostSpec("a"),
        HostSpec("b", "bob", 8010),
        HostSpec("c"),
    ]
    assert parse_hosts("a,,b") == [HostSpec("a"), HostSpec("b")]  # empty entries are skipped
    for bad in ("", " , ", "a:99999", "a b", "a,a", "a;b"):
        with pytest.raises(HostListError):
            parse_hosts(bad)


def test_hostfiles_of_every_launcher(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text(
        "# Open MPI\nnode1 slots=4\nnode2 slots=4 max_slots=8  # a comment\n\n"
        "# MPICH\nnode3:2\n# a name alone\nroot@node4\n"
    )
    assert read_hostfile(path) == [
        HostSpec("node1", slots=4),
        HostSpec("node2", slots=4),
        HostSpec("node3", slots=2),
        HostSpec("node4", "root"),
    ]


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("node1 slots=4\nnode2 slots=four\n", ":2: 'node2 slots=four'"),
        ("node1:0\n", ":1: 'node1:0': a host needs at least one slot"),
        ("# nothing\n\n", "names no host"),
        ("node1\nnode1 slots=2\n", "node1 is named twice"),
    ],
)
def test_a_bad_hostfile_line_names_file_and_line(tmp_path: Path, text: str, where: str) -> None:
    path = tmp_path / "hosts"
    path.write_text(text)
    with pytest.raises(HostListError) as caught:
        read_hostfile(path)
    assert where in str(caught.value) and (str(path) in str(caught.value))


def test_host_options_that_do_not_fit_are_usage_errors(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("node1 slots=2\n")
    env = dict(os.environ)
    both = run_wizard(env, "doctor", "--hosts", "node1", "--hostfile", str(path))
    assert both.returncode == 2 and "named in both --hosts and --hostfile: node1" in both.stderr
    alone = run_wizard(env, "doctor", "--ssh-mesh")
    assert alone.returncode == 2 and "go with --hosts or --hostfile" in alone.stderr
    fixing = run_wizard(env, "doctor", "--hosts", "node1", "--fix", "--dry-run")
    assert fixing.returncode == 2 and "neither --fix nor --snapshot" in fixing.stderr


def test_a_bad_hostfile_is_a_usage_error_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "hosts"
    path.write_text("node1 slots=x\n")
    done = run_wizard(dict(os.environ), "doctor", "--hostfile", str(path))
    assert done.returncode == 2 and f"{path}:1:" in done.stderr
    assert "Traceback" not in done.stderr


# -- real hosts ------------------------------------------------------------------------------

needs_lab = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))


@pytest.fixture
def lab_folder(tmp_path: Path) -> Path:
    folder = tmp_path / "lab"
    folder.mkdir()
    return folder


def doctor_json(lab: netns.Lab, *hosts: str, mesh: bool = False) -> tuple[int, dict]:
    done = run_wizard(
        dict(os.environ),
        "doctor",
        "--json",
        "--hosts",
        ",".join(hosts),
        "--ssh-config",
        str(lab.config),
        *(["--ssh-mesh"] if mesh else []),
        timeout=180,
    )
    assert done.stdout, done.stderr
    return done.returncode, json.loads(done.stdout)


@needs_lab
def test_doctor_across_three_hosts_one_on_port_8010(lab_folder: Path) -> None:
    with netns.Lab(lab_folder, 3, ports={2: 8010}) as lab:
        code, data = doctor_json(lab, "node0", "node1", "node2")
    assert [h["host"] for h in data["hosts"]] == ["node0", "node1", "node2"]
    assert all(h["reachable"] for h in data["hosts"])
    ids = {f["id"] for f in data["hosts"][2]["findings"]}
    assert {"os", "mpi", "gpu.nvidia", "python.env"} <= ids
    # The namespaces share one filesystem: the same software everywhere, nothing differs
    # (their interfaces, wzb…p0, p1, p2, share a start: one FLAGCX_SOCKET_IFNAME fits).
    assert data["differences"] == []
    for i, host in enumerate(data["hosts"]):
        via = host["interface"]
        assert via["name"] == f"{lab.bridge}p{i}" and via["network"] == f"{lab.prefix}.0/24"
        assert via["address"] == lab.hosts[i].address
    assert data["hosts"][0]["ssh_to"] == {} and data["ssh_failures"] == []  # no --ssh-mesh
    # This machine has no GPU, so every host blocks FlagCX on NVIDIA.
    assert data["ok"] is False and code == 1


@needs_lab
def test_a_host_whose_sshd_is_down_is_a_finding_and_the_others_report(lab_folder: Path) -> None:
    with netns.Lab(lab_folder, 2) as lab:
        lab.stop(lab.hosts[1])
        code, data = doctor_json(lab, "node0", "node1")
    down = data["hosts"][1]
    assert down["reachable"] is False and "Connection refused" in down["error"]
    assert down["fixes"] == ["ssh -v node1 true   # is sshd running there, and on this port?"]
    assert data["hosts"][0]["reachable"] and data["hosts"][0]["findings"]
    assert code == 1


def test_a_bug_in_connecting_is_raised_not_called_unreachable() -> None:
    def buggy(spec: HostSpec) -> SshHost:
        raise TypeError("a bug in the wizard, not a host that cannot be reached")

    with pytest.raises(TypeError, match="a bug in the wizard"):
        doctor_hosts([parse_host("node0")], buggy)


@needs_lab
def test_a_bug_behind_an_ssh_probe_is_a_crash_and_a_dropped_connection_is_not(
    lab_folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with netns.Lab(lab_folder, 1) as lab:
        host = SshHost("node0", ssh_config=str(lab.config))
        try:
            with monkeypatch.context() as patched:
                working = type(host.session).run

                def buggy(session: object, script: str, **kwargs: object) -> object:
                    if "os-release" in script:  # the os check's first probe
                        raise TypeError("a bug behind a probe")
                    return working(session, script, **kwargs)

                patched.setattr(type(host.session), "run", buggy)
                report = run_doctor(host, "flagcx-nvidia")
            host.session.proc.kill()  # the connection drops: an answer, not a bug
            host.session.proc.wait()
            dropped = host.run(["true"])
        finally:
            host.close()
    system = next(f for f in report.findings if f.id == "os")
    assert system.status is Status.CRASH and "TypeError: a bug behind a probe" in system.summary
    assert dropped.returncode is None and "ssh to node0 failed" in (dropped.error or "")


@needs_lab
def test_wrong_permissions_on_authorized_keys_say_what_to_do(lab_folder: Path) -> None:
    with netns.Lab(lab_folder, 2) as lab:
        loose = lab_folder / "loose_keys"
        shutil.copy(lab.authorized, loose)
        loose.chmod(0o666)  # sshd's StrictModes refuses a key file others can write
        lab.hosts[1].authorized = loose
        lab.start(lab.hosts[1])
        _, data = doctor_json(lab, "node0", "node1")
    refused = data["hosts"][1]
    assert refused["reachable"] is False and "Permission denied" in refused["error"]
    assert refused["fixes"][0].startswith("ssh-copy-id node1")


@needs_lab
def test_a_host_whose_mpi_differs_blocks_the_run(lab_folder: Path) -> None:
    """sshd's SetEnv puts MPICH's mpirun first on PATH for one host's sessions."""
    mpich = lab_folder / "mpich-bin"
    mpich.mkdir()
    for tool, output in (
        ("mpirun", "mpich-debian12-mpirun-version.txt"),
        ("mpicc", "mpich-debian12-mpicc-show.txt"),
    ):
        script = mpich / tool
        script.write_text(f"#!/bin/sh\ncat {DATA / output}\n")
        script.chmod(0o755)
    with netns.Lab(lab_folder, 2) as lab:
        lab.hosts[1].env = {"PATH": f"{mpich}:/usr/local/bin:/usr/bin:/bin"}
        lab.start(lab.hosts[1])
        code, data = doctor_json(lab, "node0", "node1")
    flavor = next(d for d in data["differences"] if d["fact"] == "mpi.flavor")
    assert flavor["values"] == {"node0": "Open MPI", "node1": "MPICH"}
    assert flavor["blocking"] is True and "one MPI implementation" in flavor["why"]
    assert data["ok"] is False and code == 1


@needs_lab
def test_a_gpu_host_over_ssh_reads_gpus_and_topology_through_nvidia_smi(
    lab_folder: Path,
) -> None:
    """A 4x H100 host behind SSH: its nvidia-smi prints what the real one printed."""
    tools = lab_folder / "gpu-bin"
    tools.mkdir()
    script = tools / "nvidia-smi"
    script.write_text(
        "#!/bin/sh\n"
        f'case "$*" in *query-gpu*) cat {DATA / "nvidia-smi-query-4xh100.csv"};;\n'
        f'  "topo -m") cat {DATA / "nvidia-smi-topo-4xh100.txt"};;\n'
        f"  *) cat {DATA / 'nvidia-smi-4xh100.txt'};; esac\n"
    )
    script.chmod(0o755)
    with netns.Lab(lab_folder, 1) as lab:
        lab.hosts[0].env = {"PATH": f"{tools}:/usr/local/bin:/usr/bin:/bin"}
        lab.start(lab.hosts[0])
        _, data = doctor_json(lab, "node0")
    gpu = next(f for f in data["hosts"][0]["findings"] if f["id"] == "gpu.nvidia")
    assert gpu["status"] == "ok", gpu["summary"]
    assert gpu["facts"]["gpu.count"] == 4 and gpu["facts"]["driver.cuda"] == "13.0"
    assert gpu["facts"]["gpu.model"] == "NVIDIA H100 80GB HBM3"
    assert gpu["facts"]["gpu.nvlink.pairs"] == 6  # from `nvidia-smi topo -m`: NV18 everywhere
    assert "paths NVML did not give were read from `nvidia-smi topo -m`" in gpu["details"]


@needs_lab
def test_ssh_between_hosts_is_tried_in_every_direction(lab_folder: Path) -> None:
    """node2's sshd lets root in from this machine only (AllowUsers root@HERE), as a host
    whose authorized_keys lacks the other hosts' keys would: the doctor reaches it, but
    node0 and node1 cannot, and mpirun started on them would stop there."""
    with netns.Lab(lab_folder, 3) as lab:
        lab.hosts[2].only_from = lab.here
        lab.start(lab.hosts[2])
        code, data = doctor_json(lab, "node0", "node1", "node2", mesh=True)
    assert all(h["reachable"] for h in data["hosts"])
    to = data["hosts"][0]["ssh_to"]
    assert to["node1"] is None and to["node2"].endswith("Permission denied (publickey).")
    failures = {(f["from"], f["to"]) for f in data["ssh_failures"]}
    assert failures == {("node0", "node2"), ("node1", "node2")}
    assert data["hosts"][2]["ssh_to"] == {"node0": None, "node1": None}
    assert data["ok"] is False and code == 1


# -- runs across hosts -------------------------------------------------------------------------

FIXTURE = ROOT / "tests" / "fixtures" / "flagcx-like"
SMALL = "perf_args=-b 128K -e 1M -f 2 -p 1"


def run_across(lab: netns.Lab, env: dict[str, str], *args: str) -> tuple[int, str, dict]:
    """`wizard run flagcx --hosts node0,node1` (or resume), and the saved run."""
    done = run_wizard(env, *args, timeout=300)
    status = run_wizard(env, "status", "--json")
    return done.returncode, done.stdout + done.stderr, json.loads(status.stdout)


def flagcx_on(lab: netns.Lab, src: Path) -> list[str]:
    return [
        "run", "flagcx", "--force", "--yes",
        "--hosts", ",".join(h.name for h in lab.hosts), "--ssh-config", str(lab.config),
        "--set", f"src={src}", "--set", SMALL,
    ]  # fmt: skip


@pytest.fixture
def state_env(tmp_path: Path) -> dict[str, str]:
    return {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}


@needs_lab
@pytest.mark.integration
def test_flagcx_across_two_hosts_sharing_its_folder(
    lab_folder: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """The namespaces share this machine's disk, as a shared folder: one build, here, then
    a real mpirun that starts one rank on each host over the lab's ssh."""
    src = tmp_path / "FlagCX"
    shutil.copytree(FIXTURE, src)
    with netns.Lab(lab_folder, 2) as lab:
        for host in lab.hosts:
            host.env = {"LAB_HOST": host.name}
            lab.start(host)
        code, out, run = run_across(lab, state_env, *flagcx_on(lab, src))
    assert code == 0, out
    steps = run["steps"]
    assert steps["build"]["hosts"]["here"]["status"] == "done"
    assert set(steps["build"]["hosts"]) == {"here"}  # the hosts share src with this machine
    assert f"# here, for node0, node1 (they share {src})" in out
    allreduce = steps["allreduce"]
    assert f"--host node0:1,node1:1 --mca plm_rsh_args '-F {lab.config}'" in allreduce["command"]
    assert "-np 2 ${SPLIT:+" in allreduce["command"]  # split_hosts (unset) goes before the test
    assert "} ./test_allreduce -b" in allreduce["command"]
    log = Path(allreduce["log"]).read_text()
    assert "rank 0 runs on node0" in log and "rank 1 runs on node1" in log
    assert [r["size_bytes"] for r in allreduce["results"]["table"]] == [
        131072,
        262144,
        524288,
        1048576,
    ]
    assert steps["torch-example"]["status"] == "skipped"
    assert run["cluster"]["hosts"] == [{"host": "node0", "slots": 1}, {"host": "node1", "slots": 1}]


@needs_lab
@pytest.mark.integration
@pytest.mark.skipif(not Path("/usr/bin/mpirun.mpich").exists(), reason=".ci/run installs mpich")
def test_flagcx_across_two_hosts_with_mpich(
    lab_folder: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """Debian's MPICH beside Open MPI, first on PATH here and on both hosts: the doctor
    finds it, the perf test links -lmpich, and MPICH's mpirun places a rank on each host."""
    first = tmp_path / "mpich-first"
    first.mkdir()
    for tool in ("mpicc", "mpicxx", "mpirun", "mpiexec"):
        (first / tool).symlink_to(f"/usr/bin/{tool}.mpich")
    # Hydra starts the proxy on each host from its own folder, as an MPICH install has it.
    (first / "hydra_pmi_proxy").symlink_to("/usr/bin/hydra_pmi_proxy")
    path = f"{first}:{os.environ['PATH']}"
    src = tmp_path / "FlagCX"
    shutil.copytree(FIXTURE, src)
    with netns.Lab(lab_folder, 2) as lab:
        for host in lab.hosts:
            host.env = {"LAB_HOST": host.name, "PATH": path}
            lab.start(host)
        code, out, run = run_across(lab, {**state_env, "PATH": path}, *flagcx_on(lab, src))
    assert code == 0, out
    allreduce = run["steps"]["allreduce"]
    assert "mpirun -hosts node0:1,node1:1 -iface " in allreduce["command"]
    assert "-genvlist " in allreduce["command"] and "-np 2 ${SPLIT:+" in allreduce["command"]
    log = Path(allreduce["log"]).read_text()
    assert "rank 0 runs on node0" in log and "rank 1 runs on node1" in log
    assert len(allreduce["results"]["table"]) == 4
    # FlagCX's unit-test Makefile links -lmpi: it gets a libmpi.so that is MPICH's.
    assert run["steps"]["unittest"]["results"] == {"passed": 2, "failed": 0, "ranks": 2}


@needs_lab
@pytest.mark.integration
def test_hosts_with_their_own_disks_build_each_and_resume_per_host(
    lab_folder: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """Each host has its own copy at the same path (a bind mount in its own mount namespace):
    both build over SSH at once, with their lines prefixed. node1's copy is broken first;
    after it is fixed, `wizard resume` builds node1 again and leaves node0's build alone."""
    src = tmp_path / "FlagCX"
    shutil.copytree(FIXTURE, src)  # this machine's copy: mpirun's working folder
    disks = {}
    for name in ("node0", "node1"):
        disks[name] = tmp_path / f"disk-{name}"
        shutil.copytree(FIXTURE, disks[name])
        git = ["git", "-C", str(disks[name]), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"as on {name}"], check=True)
    makefile = disks["node1"] / "Makefile"
    good = makefile.read_text()
    makefile.write_text(good.replace("all:", "all: missing-on-purpose\nnot-all:", 1))
    with netns.Lab(lab_folder, 2) as lab:
        for host in lab.hosts:
            host.env = {"LAB_HOST": host.name}
            host.private = {src: disks[host.name]}
            lab.start(host)
        code, out, run = run_across(lab, state_env, *flagcx_on(lab, src))
        assert code == 1, out
        assert f"warning: {src} differs across the hosts: node0 " in out
        build = run["steps"]["build"]
        assert build["status"] == "failed" and build["reason"].startswith("node1: exit code")
        assert build["hosts"]["node0"]["status"] == "done"
        assert "[node0] Linking" in out and "[node1] make: *** No rule" in out
        assert "$ [node1] make -j" in out  # the command as it runs there, not its ssh wrapping
        assert "[node0] already done: " in out and "/Makefile exists there" in out
        assert (disks["node0"] / "build" / "lib" / "libflagcx.so").exists()
        assert not (src / "build").exists()  # nothing was built in this machine's copy
        built_at = (disks["node0"] / "build" / "lib" / "libflagcx.so").stat().st_mtime

        makefile.write_text(good)
        code, out, run = run_across(lab, state_env, "resume", "--force")
    assert code == 0, out
    assert "[node0] done earlier in this run" in out
    assert "     ✓ node0: done" in out and "     ✓ node1: done" in out  # the summary, per host
    assert (disks["node0"] / "build" / "lib" / "libflagcx.so").stat().st_mtime == built_at
    assert run["steps"]["build"]["hosts"]["node1"]["status"] == "done"
    assert run["steps"]["perf-build"]["hosts"].keys() == {"node0", "node1"}
    log = Path(run["steps"]["allreduce"]["log"]).read_text()
    assert "rank 0 runs on node0" in log and "rank 1 runs on node1" in log


SIZED = """\
id: sized
title: Builds sized by each host
steps:
  - id: build
    where: every-host
    run: echo jobs={{ nproc }},{{ build_jobs }} on $LAB_HOST
"""


@needs_lab
def test_each_host_builds_with_its_own_cpu_count(
    lab_folder: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """node1's sshd may use one CPU of this machine's two: its builds get make -j1 there,
    node0's this machine's count."""
    assert nproc() >= 2, "the test needs a machine of two CPUs or more"
    recipe = tmp_path / "sized.yaml"
    recipe.write_text(SIZED)
    with netns.Lab(lab_folder, 2) as lab:
        for host in lab.hosts:
            host.env = {"LAB_HOST": host.name}
        lab.hosts[1].cpus = "0"
        for host in lab.hosts:
            lab.start(host)
        hosts = ["--hosts", "node0,node1", "--ssh-config", str(lab.config)]
        code, out, run = run_across(lab, state_env, "run", str(recipe), "--force", *hosts)
    assert code == 0, out
    build = run["steps"]["build"]["command"]
    assert f"[node0] echo jobs={nproc()},{build_jobs()} on $LAB_HOST" in build
    assert "[node1] echo jobs=1,1 on $LAB_HOST" in build
    assert "[node1] jobs=1,1 on node1" in out


def cluster_of(*labels: str, **facts: dict) -> Cluster:
    hosts = []
    for i, label in enumerate(labels):
        spec = parse_host(label)
        hosts.append(
            RunHost(spec, 2, facts.get(spec.name, {}), interface=f"eth{i}", subnet="10.0.0.0/24")
        )
    return Cluster(hosts, ssh_config="/cfg", here_subnet="10.0.0.0/24")


def test_launcher_options_for_each_mpi() -> None:
    cluster = cluster_of("a:8010", "b:8010")
    assert cluster.launcher_flags("Open MPI") == [
        "--host", "a:2,b:2", "--mca", "plm_rsh_args", "-F /cfg -p 8010",
        "--mca", "oob_tcp_if_include", "10.0.0.0/24", "--mca", "btl_tcp_if_include", "10.0.0.0/24",
    ]  # fmt: skip
    assert cluster.launcher_flags("MPICH") == ["-hosts", "a:2,b:2"]
    cluster.here_interface = "eth1"
    assert cluster.launcher_flags("MPICH") == ["-hosts", "a:2,b:2", "-iface", "eth1"]
    assert cluster.launcher_env("MPICH") == {"HYDRA_LAUNCHER_EXTRA_ARGS": "-F /cfg -p 8010"}
    assert cluster.launcher_env("Open MPI") == {}
    assert cluster.ranks == 4
    with pytest.raises(ClusterError, match="different SSH ports"):
        cluster_of("a:8010", "b").launcher_flags("Open MPI")
    with pytest.raises(ClusterError, match="different users"):
        cluster_of("u@a", "v@b").launcher_flags("MPICH")


def test_rank_variables_name_the_shared_interface_and_common_hcas() -> None:
    cluster = cluster_of("a", "b", a={"rdma.hca": "mlx5_0,mlx5_1"}, b={"rdma.hca": "mlx5_1,mlx5_0"})
    assert cluster.rank_env() == {
        "FLAGCX_SOCKET_IFNAME": "eth",
        "NCCL_SOCKET_IFNAME": "eth",
        "FLAGCX_IB_HCA": "mlx5_0,mlx5_1",
        "NCCL_IB_HCA": "mlx5_0,mlx5_1",
    }
    cluster.hosts[1].interface = "ib0"  # nothing in common: leave the choice to the library
    cluster.hosts[1].facts = {}
    assert cluster.rank_env() == {}


def test_a_remote_variable_expands_there_and_runs_nothing() -> None:
    cluster = cluster_of("a")
    command = cluster.remote_command(
        cluster.hosts[0],
        'echo "$LD_LIBRARY_PATH"; echo $WEIRD',
        cwd="/tmp",
        env={"LD_LIBRARY_PATH": "/x:$LD_LIBRARY_PATH", "WEIRD": "$(touch /tmp/owned) `id` $ ${"},
        run_id="r1",
    )
    argv = shlex.split(command)
    assert argv[:2] == ["ssh", "-F"] and "-tt" in argv and argv[-2] == "a"
    remote = subprocess.run(
        ["sh", "-c", argv[-1]],
        env={"PATH": os.environ["PATH"], "LD_LIBRARY_PATH": "/old"},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert remote.stdout.splitlines() == ["/x:/old", "$(touch /tmp/owned) `id` $ ${"]


# -- wizard hosts setup ------------------------------------------------------------------------


def setup_here(lab: netns.Lab, here_ssh: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`wizard hosts setup` with `here_ssh` as this machine's ~/.ssh, on the lab's hosts
    named by address (as FlagCX's guide names them), each with a ~/.ssh of its own."""
    addresses = ",".join(h.address for h in lab.hosts)
    argv = [sys.executable, "-m", "wizard", "hosts", "setup", "--hosts", addresses, *args]
    env = {**os.environ, "NO_COLOR": "1", "XDG_STATE_HOME": str(here_ssh.parent / "state")}
    return subprocess.run(
        netns.with_own_ssh(here_ssh, argv),
        env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=300,
        check=False, cwd=ROOT,
    )  # fmt: skip


def own_ssh_lab(lab: netns.Lab) -> dict[str, Path]:
    dirs = {}
    for host in lab.hosts:
        dirs[host.name] = lab.give_own_ssh(host)
        lab.start(host)
    return dirs


def here_with(folder: Path, lab: netns.Lab, *, key: bool = True, known: bool = True) -> Path:
    """This machine's ~/.ssh: the lab's key (which every host lets in) and its host keys."""
    folder.mkdir(mode=0o700)
    if key:
        shutil.copy(lab.key, folder / "id_ed25519")
        shutil.copy(lab.key.with_suffix(".pub"), folder / "id_ed25519.pub")
    if known:
        (folder / "known_hosts").write_text(lab.known.read_text())
    return folder


@needs_lab
def test_hosts_setup_makes_the_mesh_from_no_keys(lab_folder: Path, tmp_path: Path) -> None:
    """Three hosts with empty ~/.ssh (one with an authorized_keys others may write): setup
    makes a key on each, hands the keys round, fixes the modes, fills known_hosts with the
    keys this machine trusts, and then every direction works."""
    with netns.Lab(lab_folder, 3) as lab:
        dirs = own_ssh_lab(lab)
        loose = dirs["node2"] / "authorized_keys"
        loose.write_text("")
        loose.chmod(0o666)
        here = here_with(tmp_path / "here-ssh", lab)
        done = setup_here(lab, here, "--yes")
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Between the hosts: 6 of 6 directions work." in done.stdout
        assert "✗ ssh.perms:" in done.stdout and "authorized_keys is mode 666" in done.stdout
        for host in lab.hosts:
            own = dirs[host.name]
            assert (own / "id_ed25519").exists()
            assert oct((own / "authorized_keys").stat().st_mode & 0o777) == "0o600"
            others = [h for h in lab.hosts if h is not host]
            known = (own / "known_hosts").read_text()
            assert all(lab.known_line(h).split()[2] in known for h in others)
        # A second run finds nothing to do, and the doctor agrees, direction by direction.
        again = setup_here(lab, here, "--yes")
        assert again.returncode == 0 and "✗" not in again.stdout, again.stdout
        doctor = subprocess.run(
            netns.with_own_ssh(here, [
                sys.executable, "-m", "wizard", "doctor", "--json", "--ssh-mesh",
                "--hosts", ",".join(h.address for h in lab.hosts),
            ]),
            capture_output=True, text=True, timeout=300, check=False, cwd=ROOT,
        )  # fmt: skip
    assert json.loads(doctor.stdout)["ssh_failures"] == []


@needs_lab
def test_hosts_setup_never_trusts_a_host_key_or_types_a_password_by_itself(
    lab_folder: Path, tmp_path: Path
) -> None:
    """No key here and no known host keys: --yes makes the key, then stops at what needs the
    user: the host keys (shown with their real fingerprints) and the password for
    ssh-copy-id, printed as commands to run."""
    with netns.Lab(lab_folder, 2) as lab:
        own_ssh_lab(lab)
        here = here_with(tmp_path / "here-ssh", lab, key=False, known=False)
        done = setup_here(lab, here, "--yes")
        node1 = lab.hosts[1]
        fingerprint = subprocess.run(
            ["ssh-keygen", "-lf", str(node1.hostkey.with_suffix(".pub"))],
            capture_output=True, text=True, check=True,
        ).stdout.split()[1]  # fmt: skip
    out = done.stdout
    assert done.returncode == 1, out
    assert (here / "id_ed25519").exists() and "✗ ssh.key:" in out
    assert f"{node1.address}'s host key is not known here" in out
    assert f"{node1.address} offers 256 {fingerprint} (ED25519)" in out
    assert "left to you (compare the fingerprints with the host's own)" in out
    assert not (here / "known_hosts").exists()  # nothing was trusted unseen
    assert "This machine reaches 0 of 2 hosts without a password." in out


@needs_lab
def test_hosts_setup_names_ssh_copy_id_where_only_a_password_works(
    lab_folder: Path, tmp_path: Path
) -> None:
    with netns.Lab(lab_folder, 1) as lab:
        own_ssh_lab(lab)
        here = here_with(tmp_path / "here-ssh", lab, key=False)
        subprocess.run(
            ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(here / "id_ed25519")],
            check=True,
        )  # a key of its own, which the host does not know
        done = setup_here(lab, here, "--yes")
        dry = setup_here(lab, here, "--dry-run")
    address = lab.hosts[0].address
    assert done.returncode == 1
    assert f"{address} does not take this machine's key" in done.stdout
    assert f"$ ssh-copy-id -i /root/.ssh/id_ed25519.pub -- {address}" in done.stdout
    assert "left to you (type" in done.stdout
    assert dry.returncode == 1 and "Dry run: nothing was changed." in dry.stdout


@needs_lab
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by .ci/run")
def test_hosts_setup_in_a_terminal_asks_before_trusting_a_host_key(
    lab_folder: Path, tmp_path: Path
) -> None:
    """In a real terminal (tmux), setup shows the host's fingerprint and asks; the key is
    trusted only after the user says yes, then the host's own key is made (asked too)."""
    with netns.Lab(lab_folder, 1) as lab:
        own_ssh_lab(lab)
        here = here_with(tmp_path / "here-ssh", lab, known=False)
        node = lab.hosts[0]
        session = setup_in_tmux(here, node.address, tmp_path)
        try:
            asked, _ = answer_every_question(session)
            shown = scrollback(session)
        finally:
            subprocess.run(["tmux", "kill-session", "-t", session], check=False)
    assert asked[0] == "Do the fingerprints match the host's own?"
    assert "WIZARD-EXIT=0" in shown, shown
    assert (here / "known_hosts").read_text().split()[1:] == lab.known_line(node).split()[1:]
    assert (lab_folder / "dot-ssh-node0" / "id_ed25519").exists()


def setup_in_tmux(here_ssh: Path, hosts: str, state: Path) -> str:
    """`wizard hosts setup --hosts HOSTS` in a new tmux session (a real terminal), with
    `here_ssh` as this machine's ~/.ssh; its exit code is printed at the end."""
    argv = [sys.executable, "-m", "wizard", "hosts", "setup", "--hosts", hosts]
    session = f"wizard-setup-{os.getpid()}"
    shell = (
        f"cd {shlex.quote(str(ROOT))} && XDG_STATE_HOME={shlex.quote(str(state))} "
        f"{shlex.join(netns.with_own_ssh(here_ssh, argv))}; echo WIZARD-EXIT=$?; sleep 60"
    )
    subprocess.run(
        ["tmux", "new-session", "-d", "-s", session, "-x", "150", "-y", "50", shell], check=True
    )
    return session


def scrollback(session: str) -> str:
    return subprocess.run(
        ["tmux", "capture-pane", "-p", "-S", "-300", "-t", session],
        capture_output=True,
        text=True,
        check=False,
    ).stdout


def answer_every_question(
    session: str, password: str | None = None, seconds: float = 120
) -> tuple[list[str], int]:
    """Press y at each yes/no question (and type `password` at each password prompt) until
    the command ends; the questions asked, and how many times the password was asked."""
    import time

    asked: list[str] = []
    typed = 0
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        screen = subprocess.run(
            ["tmux", "capture-pane", "-p", "-t", session],
            capture_output=True,
            text=True,
            check=False,
        ).stdout
        if "WIZARD-EXIT=" in screen:
            return asked, typed
        last = ([line for line in screen.splitlines() if line.strip()] or [""])[-1].rstrip()
        if last.endswith("(y/N)"):
            asked.append(last.strip().removeprefix("? ").removesuffix(" (y/N)").strip())
            subprocess.run(["tmux", "send-keys", "-t", session, "y"], check=True)
            time.sleep(0.5)
        elif password is not None and last.endswith("password:"):
            typed += 1
            subprocess.run(["tmux", "send-keys", "-t", session, password, "Enter"], check=True)
            time.sleep(1)
        time.sleep(0.1)
    raise AssertionError(f"the command never ended; it asked {asked}\n{scrollback(session)}")


@needs_lab
async def test_the_app_hosts_screen_checks_real_hosts(lab_folder: Path) -> None:
    """The app's hosts screen over real SSH: a reached host, a host whose sshd is down."""
    from textual.widgets import DataTable

    from wizard.app.app import Session, WizardApp
    from wizard.host import LocalHost

    with netns.Lab(lab_folder, 2) as lab:
        lab.stop(lab.hosts[1])
        app = WizardApp(
            Session(LocalHost, hosts=parse_hosts("node0,node1"), ssh_config=str(lab.config))
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)
            await pilot.press("ctrl+o")
            for _ in range(600):
                status = str(app.screen.query_one("#hosts-status").render())
                if "hosts reached" in status:
                    break
                await pilot.pause(0.1)
            table = app.screen.query_one("#hosts", DataTable)
            rows = [[str(c) for c in table.get_row(key)] for key in ("node0", "node1")]
    assert "1 of 2 hosts reached; not ready." in status
    assert rows[0][2] == "flagcx-nvidia" and rows[0][1] in ("ready", "blocked")
    assert rows[1][1] == "unreachable" and "Connection refused" in rows[1][3]


@needs_lab
def test_torchrun_like_nodes_start_together_on_every_host(
    lab_folder: Path, state_env: dict[str, str]
) -> None:
    """An all-hosts step (the torch example's kind) on three hosts at once: each gets its
    node_rank, and node 0's address and a port free there, and they meet."""
    recipe = ROOT / "tests" / "fixtures" / "recipes" / "rendezvous.yaml"
    with netns.Lab(lab_folder, 3) as lab:
        for host in lab.hosts:
            host.env = {"LAB_HOST": host.name}
            lab.start(host)
        done = run_wizard(
            state_env, "run", str(recipe), "--yes",
            "--hosts", "node0,node1,node2", "--ssh-config", str(lab.config),
            "--set", f"script={recipe.with_suffix('.py')}", timeout=300,
        )  # fmt: skip
        first = lab.hosts[0].address
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[node0] node 0 on node0 heard nodes [1, 2] at {first}:" in done.stdout
    assert f"[node2] node 2 on node2 joined {first}:" in done.stdout
    assert "[node1] python3 " in done.stdout and " 1 3 " + first in done.stdout


@needs_lab
def test_a_node_that_fails_stops_the_others(lab_folder: Path, state_env: dict[str, str]) -> None:
    recipe = ROOT / "tests" / "fixtures" / "recipes" / "rendezvous.yaml"
    with netns.Lab(lab_folder, 2) as lab:
        lab.hosts[1].env = {"LAB_HOST": "node1", "LAB_FAIL": "1"}
        lab.start(lab.hosts[1])
        done = run_wizard(
            state_env, "run", str(recipe), "--yes",
            "--hosts", "node0,node1", "--ssh-config", str(lab.config),
            "--set", f"script={recipe.with_suffix('.py')}", timeout=300,
        )  # fmt: skip
    status = json.loads(run_wizard(state_env, "status", "--json").stdout)
    meet = status["steps"]["meet"]
    assert done.returncode == 1
    assert meet["status"] == "failed" and meet["reason"] == "node1: exit code 1"
    assert meet["hosts"]["node0"]["status"] == "cancelled"  # stopped, not left waiting
    assert "[node1] node 1 on node1 fails on purpose" in done.stdout


def test_many_hosts_that_say_the_same_are_one_line() -> None:
    """Twelve recorded 4x H100 hosts, one fresh H100 and two that refuse: three lines, and
    each difference as values with the hosts that have them."""
    import io

    from wizard.cli.hosts_doctor import render
    from wizard.engine.doctor.diagnosis import run_doctor
    from wizard.engine.hosts.doctor_all import HostResult, differences
    from wizard.host import load_snapshot

    quad = run_doctor(load_snapshot(ROOT / "snapshots" / "4xh100-nvlink.yaml"))
    fresh = run_doctor(load_snapshot(ROOT / "snapshots" / "h100-fresh.yaml"))
    results = [HostResult(HostSpec(f"gpu{i}"), quad, wall_s=1.0) for i in range(12)]
    results.append(HostResult(HostSpec("new"), fresh, wall_s=1.0))
    refused = "ssh: connect to host {} port 22: Connection refused"
    results += [HostResult(HostSpec(n), None, refused.format(n)) for n in ("down1", "down2")]
    out = io.StringIO()
    render(results, differences(results), out)
    text = out.getvalue()
    assert " 12 host(s): gpu0, gpu1, gpu2, gpu3, gpu4, gpu5 and 6 more" in text
    assert "nothing blocks flagcx-nvidia" in text and " 1 host(s): new" in text
    assert " 2 host(s): down1, down2" in text  # the same words, less the host's name
    assert "unreachable: ssh: connect to host <host> port 22: Connection refused" in text
    assert "      4: 12 host(s): gpu0" in text and "      1: 1 host(s): new" in text
    assert len(text.splitlines()) < 30


@needs_lab
def test_hosts_setup_names_the_sshd_setting_that_refuses_the_other_hosts(
    lab_folder: Path, tmp_path: Path
) -> None:
    """node2's sshd_config lets root in from this machine only (AllowUsers): setup reads it
    with `sshd -T` there and prints the sed that adds the others. Run as printed (on that
    file, sshd restarted), every direction works."""
    with netns.Lab(lab_folder, 3) as lab:
        node2 = lab.hosts[2]
        node2.only_from = lab.here
        own_ssh_lab(lab)
        here = here_with(tmp_path / "here-ssh", lab)
        done = setup_here(lab, here, "--yes")
        assert done.returncode == 1, done.stdout
        others = f"root@{lab.hosts[0].address} root@{lab.hosts[1].address}"
        assert f"AllowUsers (root@{lab.here}) refuses logins from" in done.stdout
        command = f"$ sed -i 's/^AllowUsers .*/& {others}/' /etc/ssh/sshd_config"
        assert command in done.stdout
        assert "Between the hosts: 4 of 6 directions work." in done.stdout
        config = lab.sshd_config(node2)
        subprocess.run(
            ["sed", "-i", f"s/^AllowUsers .*/& {others}/", str(config)], check=True
        )  # the printed command, on the file that is /etc/ssh/sshd_config there
        lab.start(node2, rewrite=False)
        again = setup_here(lab, here, "--yes")
    assert again.returncode == 0, again.stdout
    assert "Between the hosts: 6 of 6 directions work." in again.stdout


@needs_lab
def test_flagcx_at_different_paths_gets_the_link_that_makes_one_path(
    lab_folder: Path, tmp_path: Path
) -> None:
    """FlagCX's guide: each host's (vendor's) checkout, one path everywhere. node0 has it at
    ~/FlagCX; node1 keeps its own under a workspace folder (FLAGCX_HOME). The doctor shows
    both paths and commits and prints the `ln -s` for node1; once run, the paths agree."""
    home, workspace = tmp_path / "home", tmp_path / "workspace"
    home.mkdir()
    workspace.mkdir()
    disks = {}
    for name in ("node0", "node1"):
        disks[name] = {home: tmp_path / f"{name}-home", workspace: tmp_path / f"{name}-ws"}
        for disk in disks[name].values():
            disk.mkdir()
    checkouts = {
        "node0": disks["node0"][home] / "FlagCX",
        "node1": disks["node1"][workspace] / "flagcx_test_nvidia" / "FlagCX",
    }
    for name, checkout in checkouts.items():
        shutil.copytree(ROOT / "tests" / "fixtures" / "flagcx-like", checkout)
        git = ["git", "-C", str(checkout), "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.run([*git, "init", "-q"], check=True)
        subprocess.run([*git, "add", "-A"], check=True)
        subprocess.run([*git, "commit", "-q", "-m", f"{name}'s vendor"], check=True)
    theirs = workspace / "flagcx_test_nvidia" / "FlagCX"  # the path as node1 sees it
    with netns.Lab(lab_folder, 2) as lab:
        for host in lab.hosts:
            host.private = dict(disks[host.name])
            host.env = {"HOME": str(home)}
        lab.hosts[1].env["FLAGCX_HOME"] = str(theirs)
        for host in lab.hosts:
            lab.start(host)
        _, data = doctor_json(lab, "node0", "node1")
        path = next(d for d in data["differences"] if d["fact"] == "flagcx.path")
        assert path["values"] == {"node0": f"{home}/FlagCX", "node1": str(theirs)}
        assert path["fixes"] == [f"ssh node1 'ln -s {theirs} {home}/FlagCX'"]
        assert any(d["fact"] == "flagcx.commit" for d in data["differences"])
        link = lab.ssh(lab.hosts[1], f"ln -s {theirs} {home}/FlagCX")  # as printed
        assert link.returncode == 0, link.stderr
        _, again = doctor_json(lab, "node0", "node1")
    assert not any(d["fact"] == "flagcx.path" for d in again["differences"])
    node1 = next(f for f in again["hosts"][1]["findings"] if f["id"] == "flagcx")
    assert node1["facts"]["flagcx.real_path"] == str(theirs)


@needs_lab
def test_stopping_a_run_across_hosts_stops_the_remote_work(
    lab_folder: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """SIGTERM (as Ctrl-C) while both hosts build: the ssh -tt sessions are hung up, so
    nothing keeps running there, and the step is saved as cancelled with each host's part."""
    import signal
    import time

    import psutil

    recipe = tmp_path / "slow.yaml"
    recipe.write_text(
        "id: slow\ntitle: Slow builds\nsteps:\n  - id: build\n    where: every-host\n"
        "    run: echo started; exec sleep 4242\n"
    )

    def sleepers() -> list[psutil.Process]:
        found = []
        for proc in psutil.process_iter(["cmdline"]):
            if (proc.info["cmdline"] or [])[:2] == ["sleep", "4242"]:
                found.append(proc)
        return found

    with netns.Lab(lab_folder, 2) as lab:
        wizard = subprocess.Popen(
            [sys.executable, "-m", "wizard", "run", str(recipe), "--yes",
             "--hosts", "node0,node1", "--ssh-config", str(lab.config)],
            env=state_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while len(sleepers()) < 2:
            assert time.monotonic() < deadline and wizard.poll() is None, "builds never started"
            time.sleep(0.1)
        wizard.send_signal(signal.SIGTERM)
        out, _ = wizard.communicate(timeout=60)
        deadline = time.monotonic() + 15
        while sleepers() and time.monotonic() < deadline:
            time.sleep(0.1)
        left = sleepers()
    assert wizard.returncode == 130, out
    assert left == []
    state = json.loads(run_wizard(state_env, "status", "--json").stdout)
    build = state["steps"]["build"]
    assert build["status"] == "cancelled"
    assert {h["status"] for h in build["hosts"].values()} == {"cancelled"}


@needs_lab
@pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is installed by .ci/run")
@pytest.mark.skipif(shutil.which("useradd") is None, reason="needs useradd (passwd)")
def test_where_only_a_password_works_setup_asks_it_once(lab_folder: Path, tmp_path: Path) -> None:
    """A user (made for the test, with a password) on a host that takes passwords: in a real
    terminal, setup offers ssh-copy-id, ssh itself asks the password once, and from then on
    keys work."""

    user, password = f"wzlab{os.getpid() % 100000}", "lab-pass-Secret1"
    # Its home in /home, as a user's is: the test's own folders are root's alone.
    subprocess.run(["useradd", "-m", "-s", "/bin/sh", user], check=True)
    try:
        subprocess.run(["chpasswd"], input=f"{user}:{password}\n", text=True, check=True)
        with netns.Lab(lab_folder, 1) as lab:
            node = lab.hosts[0]
            node.passwords = True
            own_ssh_lab(lab)  # also: sshd reads ~/.ssh/authorized_keys, with StrictModes
            here = here_with(tmp_path / "here-ssh", lab, key=False)
            subprocess.run(
                ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(here / "id_ed25519")],
                check=True,
            )
            session = setup_in_tmux(here, f"{user}@{node.address}", tmp_path)
            try:
                _, typed = answer_every_question(session, password)
                shown = scrollback(session)
            finally:
                subprocess.run(["tmux", "kill-session", "-t", session], check=False)
            login = subprocess.run(
                netns.with_own_ssh(
                    here, ["ssh", "-o", "BatchMode=yes", f"{user}@{node.address}", "id -un"]
                ),
                capture_output=True, text=True, check=False, timeout=30,
            )  # fmt: skip
    finally:
        subprocess.run(["userdel", "-r", user], capture_output=True, check=False)
    assert typed == 1, shown
    assert "WIZARD-EXIT=0" in shown, shown
    assert login.stdout.strip() == user  # keys work now, no password


def test_hosts_sharing_a_folder_build_once_unless_their_vendors_differ(tmp_path: Path) -> None:
    """Who builds: hosts that see this machine's marker file share its folder (here, hosts
    whose "ssh" runs the command on this machine); two vendors in one folder are refused."""

    class Local(Cluster):
        def run_on(self, host: RunHost, script: str, timeout: float = 30) -> tuple:
            done = subprocess.run(["sh", "-c", script], capture_output=True, text=True)
            return done.returncode, done.stdout + done.stderr

    folder = tmp_path / "FlagCX"
    cluster = Local([RunHost(parse_host("a"), 1), RunHost(parse_host("b"), 1)])
    builders = cluster.builders(str(folder), lambda host: "USE_NVIDIA")
    assert [(b.label, b.members) for b in builders] == [("here", ["a", "b"])]
    assert not list(tmp_path.glob(".wizard-shared-*"))  # the markers are gone
    mixed = Local([RunHost(parse_host("a"), 1), RunHost(parse_host("b"), 1)])
    with pytest.raises(ClusterError, match="build for different targets"):
        mixed.builders(str(folder), lambda host: {"a": "USE_NVIDIA", "b": "USE_METAX"}[host.label])


@needs_lab
def test_deepspeed_across_hosts_starts_one_launcher_a_host_from_one_hostfile(
    lab_folder: Path, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """CI cannot install DeepSpeed (it needs torch): a stand-in `deepspeed` whose launcher
    prints what it was given shows what each host ran: its own --node_rank, --no_ssh, the
    first host as master, and the same hostfile written on every host."""
    site = tmp_path / "site"
    (site / "deepspeed" / "launcher").mkdir(parents=True)
    (site / "deepspeed" / "__init__.py").write_text("")
    (site / "deepspeed" / "launcher" / "__init__.py").write_text("")
    (site / "deepspeed" / "env_report.py").write_text(
        f"print(open({str(DATA / 'ds_report-2xh200.txt')!r}).read())\n"
    )
    (site / "deepspeed" / "launcher" / "runner.py").write_text(
        "import os, sys\n"
        "args = sys.argv[1:]\n"
        "hostfile = args[args.index('--hostfile') + 1]\n"
        "print(os.environ['LAB_HOST'], 'runner', ' '.join(args[:-3]))\n"
        "print(os.environ['LAB_HOST'], 'hostfile', open(hostfile).read().split())\n"
    )
    env = {**state_env, "PYTHONPATH": str(site)}
    with netns.Lab(lab_folder, 2) as lab:
        for host in lab.hosts:
            host.env = {"LAB_HOST": host.name, "PYTHONPATH": str(site)}
            lab.start(host)
        done = run_wizard(
            env, "run", "deepspeed", "--force", "--yes", "--set", "gpus=2",
            "--hosts", "node0,node1", "--ssh-config", str(lab.config), timeout=300,
        )  # fmt: skip
        first = lab.hosts[0].address
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    for rank, name in enumerate(("node0", "node1")):
        assert (
            f"[{name}] {name} runner --hostfile /tmp/wizard-deepspeed-hostfile."  # mktemp's
        ) in out
        assert f"--no_ssh --node_rank {rank} --master_addr {first} --master_port " in out
        assert f"[{name}] {name} hostfile ['node0', 'slots=2', 'node1', 'slots=2']" in out


def test_the_link_to_one_flagcx_path_is_a_command_to_type_for_any_host() -> None:
    """A host given as name:port is reached with -p, and paths with spaces stay one word
    each, on this machine's shell and on the host's."""
    from wizard.engine.hosts.doctor_all import _link_one_path

    specs = {s.label: s for s in map(parse_host, ("a", "b:2222", "c"))}
    paths = {"a": "/opt/FlagCX", "b:2222": "/home/me/Flag CX", "c": "/opt/FlagCX"}
    (command,) = _link_one_path(paths, specs)
    assert shlex.split(command) == [
        "ssh",
        "-p",
        "2222",
        "b",
        "ln -s '/home/me/Flag CX' /opt/FlagCX",
    ]
    assert shlex.split(shlex.split(command)[-1]) == ["ln", "-s", "/home/me/Flag CX", "/opt/FlagCX"]
