"""Slurm: the wizard against a real Slurm cluster (tests/slurmlab.py)."""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests import netns
from tests.cli import run_wizard
from tests.slurmlab import SlurmLab, available, slurm_fixture  # noqa: F401 (the `slurm` fixture)
from tests.treehost import TreeHost
from wizard.engine.doctor.diagnosis import run_doctor


def test_the_lab_runs_a_step_on_every_node_with_its_gpus(slurm: SlurmLab) -> None:
    done = slurm.run(
        "srun", "-N3", "--gpus-per-node=2", "sh", "-c",
        "echo $SLURMD_NODENAME $SLURM_GPUS_ON_NODE $CUDA_VISIBLE_DEVICES",
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert sorted(done.stdout.splitlines()) == ["n1 2 0,1", "n2 2 0,1", "n3 2 0,1"]
    assert slurm.idle(), slurm.jobs()


def _doctor_json(slurm: SlurmLab, *args: str) -> tuple[int, dict]:
    done = run_wizard(slurm.env, "doctor", "--json", *args)
    assert "Traceback" not in done.stderr, done.stderr
    return done.returncode, json.loads(done.stdout)


def test_doctor_inside_an_allocation_runs_on_every_node_through_srun(slurm: SlurmLab) -> None:
    """salloc runs the wizard with the job's variables: the nodes and GPUs are the job's."""
    done = slurm.run(
        "salloc", "-N3", "--gpus-per-node=2",
        sys.executable, "-m", "wizard", "doctor", "--slurm", "--json",
        timeout=120,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    data = json.loads(done.stdout)
    assert [h["host"] for h in data["hosts"]] == ["n1", "n2", "n3"]
    assert all(h["reachable"] for h in data["hosts"])
    assert data["slurm"]["owned"] is False and data["slurm"]["gpus_per_node"] == 2
    # No GPU driver on these nodes: each blocks FlagCX, so the doctor says so and exits 1.
    assert all("gpu.nvidia" in h["blocking"] for h in data["hosts"])
    assert data["ok"] is False and done.returncode == 1
    assert slurm.idle(), slurm.jobs()


def test_doctor_outside_an_allocation_asks_salloc_and_gives_it_back(slurm: SlurmLab) -> None:
    done = run_wizard(slurm.env, "doctor", "--slurm", "-N2", "--gpus-per-node=1")
    assert "Traceback" not in done.stderr, done.stderr
    assert re.search(r"Slurm job \d+ \(asked for by the wizard\): 2 node\(s\) n1, n2", done.stdout)
    assert "wizard doctor on 2 hosts" in done.stdout
    assert "Nodes n1, n2 fail gpu.nvidia, nccl.header: `wizard doctor` on a node" in done.stdout
    assert "(drain) is for the cluster's admins" in done.stdout
    assert slurm.idle(), slurm.jobs()


def test_a_node_whose_mpi_differs_blocks_the_run(slurm: SlurmLab, tmp_path: Path) -> None:
    """n2's tasks find Debian's MPICH first on PATH (its mpirun and mpicc, linked)."""
    mpich = tmp_path / "mpich-bin"
    mpich.mkdir()
    for tool in ("mpirun", "mpicc", "mpiexec"):
        (mpich / tool).symlink_to(f"/usr/bin/{tool}.mpich")
    with slurm.node_env("n2", PATH=f"{mpich}:{os.environ['PATH']}"):
        code, data = _doctor_json(slurm, "--slurm", "-N3")
    flavor = next(d for d in data["differences"] if d["fact"] == "mpi.flavor")
    assert flavor["values"] == {"n1": "Open MPI", "n2": "MPICH", "n3": "Open MPI"}
    assert flavor["blocking"] is True
    assert data["ok"] is False and code == 1
    assert slurm.idle(), slurm.jobs()


def test_no_slurm_tools_is_a_clear_error(tmp_path: Path) -> None:
    done = run_wizard({**os.environ, "PATH": str(tmp_path)}, "doctor", "--slurm")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "--slurm needs Slurm's client commands" in done.stderr
    assert "login node" in done.stderr and "--hosts" in done.stderr


def test_an_allocation_pending_past_the_wait_is_withdrawn(slurm: SlurmLab) -> None:
    """Every node is taken by another job: the wizard's request pends, then is taken back."""
    held = slurm.run("salloc", "--no-shell", "-N3", "--exclusive")
    holder = re.search(r"Granted job allocation (\d+)", held.stderr)
    assert holder, held.stderr
    try:
        done = run_wizard(slurm.env, "doctor", "--slurm", "-N1", "--slurm-wait", "2")
    finally:
        slurm.run("scancel", holder[1])
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "salloc --nodes=1: still pending after 2 s" in done.stderr
    assert "Ask for less (-N, --gpus-per-node" in done.stderr
    assert slurm.idle(), slurm.jobs()


def test_more_nodes_than_the_cluster_has_is_refused(slurm: SlurmLab) -> None:
    done = run_wizard(slurm.env, "doctor", "--slurm", "-N5", "--slurm-wait", "1")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "salloc --nodes=5 was refused: " in done.stderr
    assert "Requested partition configuration not available now" in done.stderr
    assert slurm.idle(), slurm.jobs()


def test_a_refused_allocation_says_slurms_words(slurm: SlurmLab) -> None:
    done = run_wizard(slurm.env, "doctor", "--slurm", "-p", "nosuch")
    assert done.returncode == 1 and "Traceback" not in done.stderr
    assert "salloc --partition=nosuch was refused: " in done.stderr
    assert "Invalid partition name specified" in done.stderr
    assert slurm.jobs() == []


def test_slurm_options_without_slurm_are_usage_errors() -> None:
    done = run_wizard(dict(os.environ), "doctor", "-N", "2")
    assert done.returncode == 2 and "--nodes go(es) with --slurm" in done.stderr
    done = run_wizard(dict(os.environ), "doctor", "--slurm", "--hosts", "a,b")
    assert done.returncode == 2 and "leave out --hosts" in done.stderr


def test_ctrl_c_while_salloc_pends_takes_the_request_back(slurm: SlurmLab) -> None:
    held = slurm.run("salloc", "--no-shell", "-N3", "--exclusive")
    holder = re.search(r"Granted job allocation (\d+)", held.stderr)
    assert holder, held.stderr
    try:
        wizard = subprocess.Popen(
            [sys.executable, "-m", "wizard", "doctor", "--slurm", "-N1"],
            env=slurm.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip
        deadline = time.monotonic() + 20
        while len(slurm.jobs()) < 2 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert any("PENDING" in job for job in slurm.jobs()), slurm.jobs()
        wizard.send_signal(signal.SIGINT)
        _, err = wizard.communicate(timeout=30)
        assert wizard.returncode == 130 and "Traceback" not in err, err
        assert slurm.jobs() == [f"{holder[1]} RUNNING"]
    finally:
        slurm.run("scancel", holder[1])
    assert slurm.idle(), slurm.jobs()


def _slurm_finding(env: dict[str, str]) -> dict:
    done = run_wizard(env, "doctor", "--json")
    assert "Traceback" not in done.stderr, done.stderr
    return next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "slurm")


def test_the_slurm_finding_reads_the_cluster_and_picks_pmix_for_open_mpi(
    slurm: SlurmLab,
) -> None:
    finding = _slurm_finding(slurm.env)
    facts = finding["facts"]
    assert finding["status"] == "ok", finding
    assert facts["slurm.version"] == "22.05.8"
    assert facts["slurm.partitions"] == "debug" and facts["slurm.gpu_gres"] == "debug:gpu:2"
    assert {"pmix", "pmi2"} <= set(facts["slurm.mpi_plugins"].split(","))
    assert facts["slurm.launch"] == "pmix"
    assert "srun --mpi=pmix starts Open MPI 4.1" in finding["summary"]
    assert any("ompi_info's pmix components: ext3x" in d for d in finding["details"])


def test_the_slurm_finding_starts_mpich_with_pmi2(slurm: SlurmLab, tmp_path: Path) -> None:
    mpich = tmp_path / "mpich-bin"
    mpich.mkdir()
    for tool in ("mpirun", "mpicc", "mpiexec", "mpichversion"):
        target = "/usr/bin/mpichversion" if tool == "mpichversion" else f"/usr/bin/{tool}.mpich"
        (mpich / tool).symlink_to(target)
    finding = _slurm_finding({**slurm.env, "PATH": f"{mpich}:{os.environ['PATH']}"})
    assert finding["facts"]["slurm.launch"] == "pmi2", finding
    assert "srun --mpi=pmi2 starts MPICH 4.0" in finding["summary"]


def test_a_slurm_without_pmi_plugins_falls_back_to_mpirun(tmp_path: Path) -> None:
    why = available()
    if why:
        pytest.skip(why)
    with SlurmLab(tmp_path, 1, without=("mpi_pmix", "mpi_pmi2")) as lab:
        finding = _slurm_finding(lab.env)
    assert finding["status"] == "warn", finding
    assert finding["facts"]["slurm.launch"] == "mpirun"
    assert "pmix" not in finding["facts"]["slurm.mpi_plugins"]
    assert "srun cannot start Open MPI 4.1" in finding["summary"]
    assert "mpirun inside the allocation" in finding["summary"]
    assert "pmix plugin" in " ".join(finding["fixes"][0]["commands"])


def test_no_srun_skips_the_slurm_finding(tmp_path: Path) -> None:
    finding = _slurm_finding({**os.environ, "PATH": str(tmp_path)})
    assert finding["status"] == "skip" and "no Slurm client tools" in finding["summary"]


# -- runs across the nodes ---------------------------------------------------------------------

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "flagcx-like"
DATA = Path(__file__).resolve().parent / "data"
SMALL = "perf_args=-b 128K -e 1M -f 2 -p 1"


@pytest.fixture
def state_env(slurm: SlurmLab, tmp_path: Path) -> dict[str, str]:
    return {**slurm.env, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}


def _flagcx(src: Path, *more: str) -> list[str]:
    return [
        "run", "flagcx", "--force", "--yes", "--slurm", "-N2", "--gpus-per-node=1",
        "--set", f"src={src}", "--set", SMALL, *more,
    ]  # fmt: skip


def _saved(env: dict[str, str]) -> dict:
    return json.loads(run_wizard(env, "status", "--json").stdout)


def _flagcx_on_two_nodes(lab: SlurmLab, src: Path, env: dict[str, str]) -> tuple[str, dict]:
    """The FlagCX-like fixture's run on n1 and n2, each rank saying where it ran."""
    shutil.copytree(FIXTURE, src)
    with lab.node_env("n1", LAB_HOST="n1"), lab.node_env("n2", LAB_HOST="n2"):
        done = run_wizard(env, *_flagcx(src), timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    assert re.search(r"Slurm job (\d+) \(asked for by the wizard\): 2 node\(s\) n1, n2", out)
    assert f"# here, for n1, n2 (they share {src})" in out  # one build, here
    run = _saved(env)
    allreduce = run["steps"]["allreduce"]
    log = Path(allreduce["log"]).read_text()
    assert "rank 0 runs on n1" in log and "rank 1 runs on n2" in log
    assert len(allreduce["results"]["table"]) == 4
    assert run["steps"]["unittest"]["results"] == {"passed": 2, "failed": 0, "ranks": 2}
    assert run["cluster"]["slurm"]["request"]["nodes"] == 2
    assert "Giving back Slurm job" in out
    assert lab.idle(), lab.jobs()
    return out, run


@pytest.mark.integration
def test_flagcx_across_two_nodes_started_by_srun_mpi_pmix(
    slurm: SlurmLab, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """Open MPI with PMIx and Slurm's pmix plugin: srun starts the ranks, no mpirun, no SSH."""
    out, run = _flagcx_on_two_nodes(slurm, tmp_path / "FlagCX", state_env)
    assert "Launch: srun --mpi=pmix starts the ranks" in out
    command = run["steps"]["allreduce"]["command"]
    assert "srun_as_mpirun.py --mpi=pmix --nodes=2 --ntasks-per-node=1 " in command
    assert "-np 2 ${SPLIT:+" in command and "} ./test_allreduce" in command
    assert " -x " not in command
    log = Path(run["steps"]["allreduce"]["log"]).read_text()
    assert "+ srun --mpi=pmix --nodes=2 --ntasks-per-node=1 " in log


@pytest.mark.integration
def test_without_pmi_plugins_mpirun_runs_inside_the_allocation(tmp_path: Path) -> None:
    """A Slurm built without pmix and pmi2: the launch falls back to mpirun, whose daemons
    Slurm starts on the nodes (Open MPI's plm slurm)."""
    if why := available():
        pytest.skip(why)
    (tmp_path / "lab").mkdir()
    with SlurmLab(tmp_path / "lab", 2, without=("mpi_pmix", "mpi_pmi2")) as lab:
        env = {**lab.env, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
        out, run = _flagcx_on_two_nodes(lab, tmp_path / "FlagCX", env)
    assert "Launch: mpirun inside the allocation" in out
    assert "--mca ras '^slurm' --host n1:1,n2:1" in run["steps"]["allreduce"]["command"]


def sleepers() -> list[int]:
    """The `sleep 4242` processes the slow recipes' builds run, wherever they run."""
    found = []
    for proc in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc.name.isdigit() and (proc / "cmdline").read_bytes() == b"sleep\x004242\x00":
                found.append(int(proc.name))
    return found


def test_ctrl_c_cancels_the_job_steps_and_resume_finishes_on_every_node(
    slurm: SlurmLab, tmp_path: Path, state_env: dict[str, str]
) -> None:
    """A build on each node (through srun) is stopped with Ctrl-C: nothing is left running
    (no step, no job, no process); `wizard resume` asks for nodes again and finishes."""
    go = tmp_path / "go"
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(
        "id: slow\ntitle: Slow builds\nsteps:\n  - id: build\n    where: every-host\n"
        f"    run: if [ -f {go} ]; then echo built on $SLURMD_NODENAME; "
        "else exec sleep 4242; fi\n"
    )
    wizard = subprocess.Popen(
        [sys.executable, "-m", "wizard", "run", str(recipe), "--yes", "--slurm", "-N2"],
        env=state_env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    while len(sleepers()) < 2:
        assert time.monotonic() < deadline and wizard.poll() is None, "builds never started"
        time.sleep(0.1)
    assert len(slurm.steps()) == 2, slurm.steps()
    wizard.send_signal(signal.SIGINT)
    out, _ = wizard.communicate(timeout=60)
    assert wizard.returncode == 130, out
    assert "Stopped during build" in out and "Giving back Slurm job" in out
    assert slurm.idle(), slurm.jobs()
    assert slurm.steps() == [] and sleepers() == []
    build = _saved(state_env)["steps"]["build"]
    assert {h["status"] for h in build["hosts"].values()} == {"cancelled"}

    go.touch()
    done = run_wizard(state_env, "resume", "--yes", timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert re.search(r"Slurm job \d+ \(asked for by the wizard\): 2 node\(s\) n1, n2", done.stdout)
    build = _saved(state_env)["steps"]["build"]
    logs = " ".join(Path(h["log"]).read_text() for h in build["hosts"].values())
    assert "built on n1" in logs and "built on n2" in logs
    assert slurm.idle(), slurm.jobs()


@pytest.mark.integration
def test_batch_writes_submits_and_follows_the_job_to_its_end(
    slurm: SlurmLab, tmp_path: Path, state_env: dict[str, str]
) -> None:
    src = tmp_path / "FlagCX"
    shutil.copytree(FIXTURE, src)
    done = run_wizard(state_env, *_flagcx(src, "--batch"), timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 0, out
    job = re.search(r"Submitted batch job (\d+)\.", out)
    assert job, out
    run = _saved(state_env)
    script = Path(run["path"]).parent / "job.sbatch"
    text = script.read_text()
    assert "#SBATCH --nodes=2\n#SBATCH --gpus-per-node=1\n" in text
    assert f"-m wizard resume --run {run['run_id']} --yes --force" in text
    assert f"[job {job[1]}] RUNNING" in out
    assert "Slurm job " + job[1] + " (yours): 2 node(s) n1, n2" in out  # the job's own wizard
    assert f"Job {job[1]} ended: COMPLETED, exit code 0." in out
    assert len(run["steps"]["allreduce"]["results"]["table"]) == 4
    assert (Path(run["path"]).parent / f"slurm-{job[1]}.out").is_file()
    assert slurm.idle(), slurm.jobs()


def test_batch_without_slurm_is_a_usage_error() -> None:
    done = run_wizard(dict(os.environ), "run", "flagcx", "--batch")
    assert done.returncode == 2 and "--batch go(es) with --slurm" in done.stderr


@pytest.mark.integration
def test_srun_failing_to_start_pmix_ranks_says_so_and_resume_uses_mpirun(tmp_path: Path) -> None:
    """Slurm lists pmix, but its servers of two nodes on one machine share /tmp and the
    step's launch fails: srun's words, then `resume --slurm-mpirun` finishes with mpirun."""
    if why := available():
        pytest.skip(why)
    (tmp_path / "lab").mkdir()
    src = tmp_path / "FlagCX"
    shutil.copytree(FIXTURE, src)
    with SlurmLab(tmp_path / "lab", 2, node_tmp=False) as lab:
        env = {**lab.env, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
        done = run_wizard(env, *_flagcx(src), timeout=300)
        out = done.stdout + done.stderr
        assert done.returncode == 1 and "Traceback" not in out, out
        run_id = _saved(env)["run_id"]
        assert "srun could not start allreduce's ranks (srun: error: " in out
        assert f"wizard resume --run {run_id} --slurm-mpirun" in out
        assert lab.idle(), lab.jobs()
        done = run_wizard(env, "resume", "--yes", "--force", "--slurm-mpirun", timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Launch: mpirun inside the allocation" in done.stdout
        assert len(_saved(env)["steps"]["allreduce"]["results"]["table"]) == 4
        assert lab.idle(), lab.jobs()


def test_a_node_where_the_doctor_cannot_start_is_named_with_its_words(slurm: SlurmLab) -> None:
    """n2's tasks get a PYTHONHOME with no Python in it: its doctor never starts."""
    with slurm.node_env("n2", PYTHONHOME="/nonexistent"):
        code, data = _doctor_json(slurm, "--slurm", "-N2")
    n1, n2 = data["hosts"]
    assert n1["reachable"] is True and n2["reachable"] is False
    assert n2["error"] == (
        "the doctor gave no result on n2: ModuleNotFoundError: No module named 'encodings' "
        "(task 1: Exited with exit code 1)"
    )
    assert n2["fixes"] == ["srun -N1 -w n2 python3 -m wizard doctor   # its own words"]
    assert data["ok"] is False and code == 1
    assert slurm.idle(), slurm.jobs()


def test_batch_refused_by_sbatch_says_its_words(slurm: SlurmLab, state_env: dict[str, str]) -> None:
    done = run_wizard(state_env, "run", "flagcx", "--force", "--yes", "--slurm", "--batch",
                      "-p", "nosuch")  # fmt: skip
    assert done.returncode == 1 and "Traceback" not in done.stderr + done.stdout
    assert "sbatch refused " in done.stdout and "nvalid partition" in done.stdout
    assert slurm.jobs() == []


def test_a_job_ended_by_its_time_limit_names_the_step_and_time(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """scontrol's real answer for a job past its limit (tests/data), from a stand-in that
    prints it: the message names the job, its limit, the step it stopped and --time."""
    from wizard.engine.hosts.sbatch import Ended, ended
    from wizard.engine.hosts.slurm_run import why_it_failed
    from wizard.engine.recipes import state as st

    recorded = DATA / "slurm-22.05-scontrol-show-job-timeout.txt"
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "scontrol").write_text(f"#!/bin/sh\ncat {recorded}\n")
    (tools / "scontrol").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}:{os.environ['PATH']}")
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    assert ended("1") == Ended("TIMEOUT", 0, "00:01:00")
    state = st.new_run("flagcx", "flagcx.yaml", ["build", "allreduce"], {})
    state.step("build").status, state.step("allreduce").status = st.DONE, st.FAILED
    note = why_it_failed("1", state)
    assert note == (
        "Slurm job 1 reached its time limit (00:01:00) during allreduce: ask for more with "
        "--time (e.g. --time=2:00:00), then `wizard resume --run "
        f"{state.run_id}` continues from allreduce."
    )


def test_slurm_tools_without_a_cluster_skip_the_slurm_finding() -> None:
    """Debian's client tools with no slurm.conf (this machine outside the lab)."""
    if why := available():
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    finding = _slurm_finding(env)
    assert finding["status"] == "skip", finding
    assert finding["summary"].startswith("Slurm's client tools (version unknown), but no cluster")


def test_doctor_slurm_without_a_cluster_says_so_not_sinfo() -> None:
    """Real salloc with no slurm.conf: its 'fatal: Could not establish a configuration
    source' is a missing cluster, which `sinfo` cannot show either."""
    if why := available():
        pytest.skip(why)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SLURM_")}
    done = run_wizard(env, "doctor", "--slurm", timeout=60)
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
    assert "no Slurm cluster is configured here (no slurm.conf" in done.stderr
    assert "sinfo" not in done.stderr


def test_a_controller_that_does_not_answer_is_a_warning(tmp_path: Path) -> None:
    """The lab's configuration after the lab has stopped: sinfo names what failed."""
    if why := available():
        pytest.skip(why)
    with SlurmLab(tmp_path, 1) as lab:
        env = dict(lab.env)
    finding = _slurm_finding(env)
    assert finding["status"] == "warn", finding
    assert "sinfo cannot reach the controller" in finding["summary"]


NO_CONFIG = """\
srun: error: resolve_ctls_from_dns_srv: res_nsearch error: Unknown host
srun: error: fetch_config: DNS SRV lookup failed
srun: error: _establish_config_source: failed to fetch config
srun: fatal: Could not establish a configuration source"""  # 22.05's words, even for --version


@pytest.mark.parametrize(
    ("sinfo_says", "version", "summary"),
    [
        (None, "", "Slurm's client tools (version unknown), but no cluster: no slurm.conf"),
        ("slurm 22.05.8", "22.05.8", "Slurm 22.05.8's client tools, but no cluster: no slurm.conf"),
    ],
)
def test_slurm_client_tools_without_a_cluster_name_their_version_or_say_it_is_unknown(
    tree: TreeHost, sinfo_says: str | None, version: str, summary: str
) -> None:
    """srun and sinfo as Debian's 22.05 answer with no slurm.conf (even to --version), and
    a sinfo whose --version does answer."""
    for tool in ("srun", "sinfo"):
        tree.program(f"/usr/bin/{tool}", NO_CONFIG.replace("srun:", f"{tool}:"), rc=1)
    if sinfo_says:  # to --version only
        sinfo = tree.root / "usr/bin/sinfo"
        sinfo.write_text(f'#!/bin/sh\n[ "$1" = --version ] && echo "{sinfo_says}" && exit 0\n'
                         + sinfo.read_text().removeprefix("#!/bin/sh\n"))  # fmt: skip
    finding = next(f for f in run_doctor(tree).findings if f.id == "slurm")
    assert finding.status.value == "skip" and finding.facts["slurm.version"] == version
    assert finding.summary == f"{summary} (nor a configless controller) names one"


# -- nodes with networks of their own (each slurmd in a network namespace) --------------------


def _netns_lab(tmp_path: Path, count: int, **options: object) -> SlurmLab:
    if why := available() or netns.available():
        pytest.skip(why)
    (tmp_path / "lab").mkdir(parents=True)
    return SlurmLab(tmp_path / "lab", count, netns=True, **options)  # type: ignore[arg-type]


def test_each_nodes_interface_toward_the_first_is_read_and_a_mismatch_shown(
    tmp_path: Path,
) -> None:
    """n1..n3 each behind their own veth: n1's route toward n2, the others' toward n1."""
    with _netns_lab(tmp_path, 3) as lab:
        _, data = _doctor_json(lab, "--slurm", "-N3")
        network = lab.here.rpartition(".")[0] + ".0/24"
        interfaces = {h["host"]: h["interface"] for h in data["hosts"]}
        assert interfaces == {
            node: {"name": f"eth{i}", "network": network, "address": lab.addresses[node]}
            for i, node in enumerate(lab.nodes)
        }
        assert not any(d["fact"] == "net.interface" for d in data["differences"])
        done = run_wizard(lab.env, "doctor", "--slurm", "-N3")
        assert "via eth0)" in done.stdout and "via eth2)" in done.stdout
    with _netns_lab(tmp_path / "2", 2, interfaces=("eth0", "ib0")) as lab:
        _, data = _doctor_json(lab, "--slurm", "-N2")
    (differs,) = [d for d in data["differences"] if d["fact"] == "net.interface"]
    assert differs["values"] == {"n1": "eth0", "n2": "ib0"} and differs["blocking"] is False
    assert "set them per host" in differs["why"]


def _stand_in_torch(site: Path) -> None:
    """torchrun (`python -m torch.distributed.run`) that says what it was given and where,
    then meets the other nodes as torchrun's rendezvous does (rendezvous.py: sockets)."""
    meet = ROOT / "tests" / "fixtures" / "recipes" / "rendezvous.py"
    (site / "torch" / "distributed").mkdir(parents=True)
    (site / "torch" / "__init__.py").write_text("")
    (site / "torch" / "distributed" / "__init__.py").write_text("")
    (site / "torch" / "distributed" / "run.py").write_text(
        "import argparse, os, subprocess, sys\n"
        "p = argparse.ArgumentParser()\n"
        "for o in ('--nnodes', '--node_rank', '--master_addr', '--master_port',"
        " '--nproc_per_node'):\n"
        "    p.add_argument(o)\n"
        "a, rest = p.parse_known_args()\n"
        "e = os.environ\n"
        "print(f\"torchrun on {e['SLURMD_NODENAME']} (job {e['SLURM_JOB_ID']}):"
        " --nnodes {a.nnodes} --node_rank {a.node_rank} --master_addr {a.master_addr}"
        " FLAGCX_SOCKET_IFNAME={e.get('FLAGCX_SOCKET_IFNAME')}\", flush=True)\n"
        "e['LAB_HOST'] = e['SLURMD_NODENAME']\n"
        f"sys.exit(subprocess.call([sys.executable, {str(meet)!r},"
        " a.node_rank, a.nnodes, a.master_addr, a.master_port]))\n"
    )


@pytest.mark.integration
def test_torchruns_nodes_start_one_a_node_through_srun_and_meet_at_the_first(
    tmp_path: Path,
) -> None:
    """The flagcx recipe's torchrun line as an all-hosts step on three nodes: each node's
    own srun step, its node_rank, the first node's address on its interface toward the
    others (and a port free there), and FLAGCX_SOCKET_IFNAME from the nodes' interfaces."""
    flagcx = yaml.safe_load((ROOT / "steps" / "flagcx.yaml").read_text())
    line = next(s["run"] for s in flagcx["steps"] if s["id"] == "torch-example")
    recipe = tmp_path / "torchrun.yaml"
    recipe.write_text(
        yaml.safe_dump(
            {
                "id": "torchrun",
                "title": "torchrun's nodes",
                "params": {"python": {"default": sys.executable}, "gpus": {"default": 1},
                           "torch_op": {"default": "allreduce"}},
                "steps": [{"id": "meet", "where": "all-hosts", "run": line, "timeout": 120}],
            }
        )
    )  # fmt: skip
    site = tmp_path / "site"
    _stand_in_torch(site)
    with _netns_lab(tmp_path, 3) as lab:
        env = {**lab.env, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        done = run_wizard(env, "run", str(recipe), "--yes", "--slurm", "-N3", timeout=300)
        first = lab.addresses["n1"]
        assert lab.idle(), lab.jobs()
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    job = re.search(r"Slurm job (\d+) \(asked for by the wizard\): 3 node\(s\)", out)
    assert job, out
    for rank, node in enumerate(("n1", "n2", "n3")):
        assert (
            f"[{node}] torchrun on {node} (job {job[1]}): --nnodes 3 --node_rank {rank} "
            f"--master_addr {first} FLAGCX_SOCKET_IFNAME=eth\n"
        ) in out
    assert f"[n1] node 0 on n1 heard nodes [1, 2] at {first}:" in out
    assert f"[n3] node 2 on n3 joined {first}:" in out


DS_RUNNER = """\
# DeepSpeed's runner, cut to its slurm path (deepspeed/launcher/runner.py main() and
# multinode_runner.py SlurmRunner.get_cmd): the hostfile's slots are the ranks, and srun
# -n RANKS LAUNCHER_ARGS --export=ALL python -u SCRIPT ARGS starts them, with the current
# folder put first on PYTHONPATH.
import argparse, os, shlex, subprocess, sys
p = argparse.ArgumentParser()
p.add_argument("--hostfile")
p.add_argument("--launcher")
p.add_argument("--no_ssh_check", action="store_true")
p.add_argument("--master_addr")
p.add_argument("--master_port")
p.add_argument("--launcher_args", default="")
p.add_argument("user_script")
p.add_argument("user_args", nargs=argparse.REMAINDER)
a = p.parse_args()
assert a.launcher == "slurm" and a.no_ssh_check, a
slots = [int(w.split("=")[1]) for w in open(a.hostfile).read().split() if w.startswith("slots=")]
cmd = ["srun", "-n", str(sum(slots)), *shlex.split(a.launcher_args), "--export=ALL",
       sys.executable, "-u", a.user_script, *a.user_args]
print("cmd =", " ".join(cmd), flush=True)
env = dict(os.environ, PYTHONPATH=os.path.abspath(".") + ":" + os.environ.get("PYTHONPATH", ""))
sys.exit(subprocess.call(cmd, env=env))
"""

# ds_train.py runs for real up to deepspeed.init_distributed, which says what torch's env://
# would be given on that rank, and ends it (CI has no torch to train with).
DS_INIT = """\
import os
def init_distributed(dist_backend=None):
    e = os.environ
    print(f"rank {e['RANK']} of {e['WORLD_SIZE']} on {e['SLURMD_NODENAME']} local {e['LOCAL_RANK']}"
          f" meets {e['MASTER_ADDR']}:{e['MASTER_PORT']} via {e.get('NCCL_SOCKET_IFNAME')}",
          flush=True)
    raise SystemExit(0)
"""


def _stand_in_deepspeed(site: Path) -> None:
    for package in ("deepspeed/launcher", "torch"):
        (site / package).mkdir(parents=True, exist_ok=True)
    (site / "deepspeed" / "__init__.py").write_text(DS_INIT)
    (site / "deepspeed" / "launcher" / "__init__.py").write_text("")
    (site / "deepspeed" / "launcher" / "runner.py").write_text(DS_RUNNER)
    (site / "deepspeed" / "env_report.py").write_text(
        f"print(open({str(DATA / 'ds_report-2xh200.txt')!r}).read())\n"
    )
    (site / "torch" / "__init__.py").write_text("from . import nn, distributed\n")
    (site / "torch" / "nn.py").write_text("class Module:\n    pass\n")
    (site / "torch" / "distributed.py").write_text("")


@pytest.mark.integration
def test_deepspeed_with_its_slurm_launcher_starts_every_rank_through_one_srun(
    tmp_path: Path,
) -> None:
    """`wizard run deepspeed --slurm`: the train step is DeepSpeed's `--launcher slurm`,
    whose srun starts a rank a GPU on the two nodes; ds_train.py takes each rank from
    Slurm's variables and all meet at the first node's address."""
    site = tmp_path / "site"
    _stand_in_deepspeed(site)
    with _netns_lab(tmp_path, 2) as lab:
        env = {**lab.env, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(site), env.get("PYTHONPATH")]))
        done = run_wizard(
            env, "run", "deepspeed", "--force", "--yes", "--slurm", "-N2",
            "--gpus-per-node=2", timeout=300,
        )  # fmt: skip
        first = lab.addresses["n1"]
        assert lab.idle(), lab.jobs()
    out = done.stdout
    assert done.returncode == 0, out + done.stderr
    assert "(train): skipped, hosts is not in launcher (slurm)" in out
    run = _saved(env)
    assert run["steps"]["train"]["status"] == "skipped"
    train = run["steps"]["train-slurm"]
    assert train["status"] == "done", train
    log = Path(train["log"]).read_text()
    script = ROOT / "steps" / "tools" / "ds_train.py"
    assert (
        "cmd = srun -n 4 --nodes=2 --ntasks-per-node=2 --kill-on-bad-exit=1 --job-name=wizard "
        f"--export=ALL {sys.executable} -u {script} --steps 300\n"
    ) in log
    port = re.search(rf"meets {re.escape(first)}:(\d+) ", log)
    assert port, log
    for rank, (node, local) in enumerate([("n1", 0), ("n1", 1), ("n2", 0), ("n2", 1)]):
        assert (
            f"rank {rank} of 4 on {node} local {local} meets {first}:{port[1]} via eth\n"
        ) in log
