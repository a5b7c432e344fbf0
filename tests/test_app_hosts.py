"""The app's host sources, driven with Pilot against real engines: hosts over SSH
(tests/netns.py's sshd hosts: the interface each reaches the next through, a run across
them), a Slurm allocation's nodes (tests/slurmlab.py's cluster: the one the app asks salloc
for, the one it runs inside, one Slurm refuses; a run on them, quitting during it and while
salloc waits), and where Slurm is not offered."""

from __future__ import annotations

import re
import shutil
import time
from pathlib import Path

import pytest
from textual.widgets import Checkbox, DataTable, Input, Static

from tests import netns
from tests.slurmlab import SlurmLab, slurm_fixture  # noqa: F401 (the `slurm` fixture)
from tests.test_app import footer_keys, text, until
from tests.test_slurm import sleepers
from wizard.app.app import Session, WizardApp
from wizard.app.screens.confirm import ConfirmScreen
from wizard.app.screens.hosts import HostsScreen
from wizard.app.screens.start import StartScreen
from wizard.app.screens.steps import StepsScreen
from wizard.app.widgets.log_pane import LogPane
from wizard.engine.hosts.hostlist import parse_hosts
from wizard.engine.recipes import state as st
from wizard.host import LocalHost, load_snapshot

ROOT = Path(__file__).resolve().parent
H100 = ROOT.parent / "snapshots" / "h100-ubuntu2404.yaml"
RENDEZVOUS = ROOT / "fixtures" / "recipes" / "rendezvous.yaml"
FLAGCX_LIKE = ROOT / "fixtures" / "flagcx-like"
needs_lab = pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


@pytest.fixture
def in_the_lab(slurm: SlurmLab, monkeypatch: pytest.MonkeyPatch) -> SlurmLab:
    """This process's Slurm clients talk to the lab, from outside any allocation."""
    for name in ("SLURM_CONF", "OMPI_MCA_btl"):
        monkeypatch.setenv(name, slurm.env[name])
    for name in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_JOB_NODELIST", "SLURM_NODELIST"):
        monkeypatch.delenv(name, raising=False)
    return slurm


def status(app: WizardApp) -> str:
    return str(app.screen.query_one("#hosts-status", Static).render())


async def slurm_offered(pilot, app: WizardApp) -> None:  # type: ignore[no-untyped-def]
    await until(pilot, lambda: app.screen.query_one("#slurm-actions").display)
    await until(pilot, lambda: "Check the Slurm nodes" in footer_keys(app))


async def checked_hosts(pilot, app: WizardApp) -> list[list[str]]:  # type: ignore[no-untyped-def]
    """ctrl+s, then each node's row once every node has answered."""
    await pilot.press("ctrl+s")
    assert isinstance(app.screen, HostsScreen)
    await until(pilot, lambda: "hosts reached" in status(app), seconds=240)
    table = app.screen.query_one("#hosts", DataTable)
    return [[str(cell) for cell in table.get_row_at(i)] for i in range(table.row_count)]


async def test_the_app_asks_slurm_for_nodes_checks_them_and_gives_them_back(
    in_the_lab: SlurmLab,
) -> None:
    app = WizardApp(Session(LocalHost, recipe_name="flagcx"))
    async with app.run_test(size=(120, 40)) as pilot:
        await slurm_offered(pilot, app)
        nodes = app.screen.query_one("#slurm-nodes", Input)
        assert nodes.display
        nodes.value = "2"
        rows = await checked_hosts(pilot, app)
        said = status(app)
    assert re.fullmatch(
        r"Slurm job \d+ \(asked for by the wizard\): 2 node\(s\) n1, n2\. "
        r"2 of 2 hosts reached; not ready\.",
        said,
    ), said
    # No GPU driver on the lab's nodes: each is reached, and blocked by it.
    assert [row[:3] for row in rows] == [
        ["n1", "blocked", "flagcx-nvidia"],
        ["n2", "blocked", "flagcx-nvidia"],
    ]
    assert all("gpu.nvidia" in row[3] for row in rows)
    assert in_the_lab.idle(), in_the_lab.jobs()  # the allocation was given back


async def test_inside_an_allocation_the_app_checks_its_nodes_and_leaves_it_running(
    in_the_lab: SlurmLab, monkeypatch: pytest.MonkeyPatch
) -> None:
    held = in_the_lab.run("salloc", "--no-shell", "-N3", "--gpus-per-node=2")
    job = re.search(r"Granted job allocation (\d+)", held.stderr)
    assert job, held.stderr
    try:
        monkeypatch.setenv("SLURM_JOB_ID", job[1])
        app = WizardApp(Session(LocalHost, recipe_name="flagcx"))
        async with app.run_test(size=(120, 40)) as pilot:
            await slurm_offered(pilot, app)
            assert not app.screen.query_one("#slurm-nodes", Input).display  # the job's own
            rows = await checked_hosts(pilot, app)
            said = status(app)
        assert said == (
            f"Slurm job {job[1]} (yours): 3 node(s) n1, n2, n3, 2 GPU(s) each. "
            "3 of 3 hosts reached; not ready."
        )
        assert [row[0] for row in rows] == ["n1", "n2", "n3"]
        assert in_the_lab.jobs() == [f"{job[1]} RUNNING"]  # the user's: not given back
    finally:
        in_the_lab.run("scancel", job[1])
    assert in_the_lab.idle(), in_the_lab.jobs()


async def test_an_allocation_slurm_refuses_is_said_in_its_words(in_the_lab: SlurmLab) -> None:
    app = WizardApp(Session(LocalHost, recipe_name="flagcx", slurm_wait=1))
    async with app.run_test(size=(120, 40)) as pilot:
        await slurm_offered(pilot, app)
        app.screen.query_one("#slurm-nodes", Input).value = "5"  # the lab has 3
        await pilot.press("ctrl+s")
        await until(pilot, lambda: "No host was checked." in status(app), seconds=60)
        advice = str(app.screen.query_one("#hosts-advice", Static).render())
    assert "salloc --nodes=5 was refused: " in advice, advice
    assert "Requested partition configuration not available now" in advice
    assert in_the_lab.jobs() == []


async def run_on_slurm(pilot, app: WizardApp, nodes: str) -> StepsScreen:  # type: ignore[no-untyped-def]
    """On the start screen, the Slurm run ticked with `nodes` to ask for; this machine's
    checks; then the steps screen, which holds the nodes and checks them."""
    await slurm_offered(pilot, app)
    app.screen.query_one("#slurm-nodes", Input).value = nodes
    app.screen.query_one("#slurm-run", Checkbox).value = True
    await pilot.press("ctrl+n")
    await until(pilot, lambda: app.session.report is not None, seconds=120)
    await pilot.press("n")
    assert isinstance(app.screen, StepsScreen)
    return app.screen


async def test_the_app_runs_the_perf_test_on_slurm_nodes_and_gives_them_back(
    in_the_lab: SlurmLab, tmp_path: Path
) -> None:
    """As `wizard run flagcx --slurm -N2` does: the FlagCX-like fixture built once (the
    nodes share its folder), its perf test's ranks on n1 and n2; the nodes' failings (no
    GPU driver in the lab) asked about first, as this machine's are; the allocation given
    back when the run ends."""
    src = tmp_path / "FlagCX"
    shutil.copytree(FLAGCX_LIKE, src)
    answers = {"src": str(src), "perf_args": "-b 128K -e 1M -f 2 -p 1"}
    app = WizardApp(Session(LocalHost, recipe_name="flagcx", answers=answers))
    with in_the_lab.node_env("n1", LAB_HOST="n1"), in_the_lab.node_env("n2", LAB_HOST="n2"):
        async with app.run_test(size=(120, 40)) as pilot:
            steps = await run_on_slurm(pilot, app, "2")
            await until(pilot, lambda: isinstance(app.screen, ConfirmScreen), seconds=240)
            asked = str(app.screen.body)  # type: ignore[attr-defined]
            assert "n1: gpu.nvidia: " in asked and "n2: gpu.nvidia: " in asked, asked
            await pilot.press("y")
            await until(pilot, lambda: "All steps done" in text(app, "#stepstatus"), 300)
            held_while_done = in_the_lab.jobs()
            pane = steps.query_one("#log", LogPane)
            await until(pilot, lambda: any(line.startswith("Gave back") for line in pane.lines))
            log = "\n".join(pane.lines)
    job = re.search(r"Slurm job (\d+) \(asked for by the wizard\): 2 node\(s\) n1, n2", log)
    assert job, log
    assert "Launch: srun --mpi=pmix starts the ranks (the slurm finding)." in log
    assert "n1: 1 rank(s), flagcx-nvidia" in log and "n2: 1 rank(s), flagcx-nvidia" in log
    assert f"Gave back Slurm job {job[1]}." in log
    assert held_while_done == []  # given back as the run ended, not when the app quit
    assert app.session.run is not None
    run = st.load(app.session.run.run_id)
    allreduce = run.steps["allreduce"]
    perf = Path(allreduce.log).read_text()
    assert "rank 0 runs on n1" in perf and "rank 1 runs on n2" in perf, perf
    assert len(allreduce.results["table"]) == 4
    assert run.cluster["slurm"]["request"]["nodes"] == 2  # a resume asks for a like one
    assert in_the_lab.idle(), in_the_lab.jobs()


async def test_quitting_during_a_run_on_slurm_leaves_nothing_running_on_the_nodes(
    in_the_lab: SlurmLab, tmp_path: Path
) -> None:
    """A build on each of two nodes (a job step each); the app quits: the steps are
    cancelled, their processes gone, the allocation given back, the build saved as
    cancelled on each node."""
    recipe = tmp_path / "slow.yaml"
    recipe.write_text(
        "id: slow\ntitle: Slow builds\nsteps:\n  - id: build\n    where: every-host\n"
        "    run: exec sleep 4242\n"
    )
    app = WizardApp(Session(LocalHost, recipe_name=str(recipe)))
    async with app.run_test(size=(120, 40)) as pilot:
        await run_on_slurm(pilot, app, "2")
        await until(pilot, lambda: len(sleepers()) == 2, seconds=240)
        assert len(in_the_lab.steps()) == 2, in_the_lab.steps()
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
        if isinstance(app.screen, ConfirmScreen):  # the builds have run a while
            await pilot.press("y")
        await until(pilot, lambda: app.return_code is not None, seconds=60)
    assert in_the_lab.idle(), in_the_lab.jobs()
    assert in_the_lab.steps() == [] and sleepers() == []
    assert app.session.run is not None
    build = st.load(app.session.run.run_id).steps["build"]
    assert {h["status"] for h in build.hosts.values()} == {st.CANCELLED}


@pytest.mark.parametrize("where", ["hosts", "steps"])
async def test_quitting_while_salloc_waits_takes_the_request_back_at_once(
    in_the_lab: SlurmLab, where: str
) -> None:
    """Every node is taken by another job: the app's request pends (it may wait 300 s),
    for the hosts screen's check or for a run; quitting withdraws it then, within seconds."""
    held = in_the_lab.run("salloc", "--no-shell", "-N3", "--exclusive")
    holder = re.search(r"Granted job allocation (\d+)", held.stderr)
    assert holder, held.stderr
    try:
        app = WizardApp(Session(LocalHost, recipe_name="flagcx"))
        async with app.run_test(size=(120, 40)) as pilot:
            if where == "hosts":
                await slurm_offered(pilot, app)
                app.screen.query_one("#slurm-nodes", Input).value = "1"
                await pilot.press("ctrl+s")
            else:
                await run_on_slurm(pilot, app, "1")
            await until(pilot, lambda: any("PENDING" in j for j in in_the_lab.jobs()), 30)
            await pilot.press("ctrl+q")
            quit_at = time.monotonic()
            await until(pilot, lambda: app.return_code is not None, seconds=10)
        while len(in_the_lab.jobs()) > 1 and time.monotonic() - quit_at < 15:
            time.sleep(0.2)
        assert in_the_lab.jobs() == [f"{holder[1]} RUNNING"]  # withdrawn, not left pending
    finally:
        in_the_lab.run("scancel", holder[1])
    assert in_the_lab.idle(), in_the_lab.jobs()


async def test_slurm_is_offered_only_where_it_is() -> None:
    """A replay shows the recorded machine's world, and the H100 had no Slurm: neither
    offers it, and ctrl+s stays on the start screen."""
    for session in (
        Session(lambda: load_snapshot(H100), replay=H100.name, recipe_name="flagcx"),
        Session(lambda: load_snapshot(H100), recipe_name="flagcx"),
    ):
        app = WizardApp(session)
        async with app.run_test(size=(80, 24)) as pilot:
            await app.workers.wait_for_complete()
            await pilot.pause(0.2)
            assert not app.screen.query_one("#slurm-actions").display
            assert "Check the Slurm nodes" not in footer_keys(app)
            await pilot.press("ctrl+s")
            await pilot.pause(0.1)
            assert isinstance(app.screen, StartScreen)


@needs_lab
async def test_the_hosts_screen_names_the_interface_each_host_reaches_the_next_through(
    tmp_path: Path,
) -> None:
    """As `doctor --hosts` reads it: each host's route toward the next, over real SSH."""
    (tmp_path / "lab").mkdir()
    with netns.Lab(tmp_path / "lab", 2) as lab:
        app = WizardApp(
            Session(LocalHost, hosts=parse_hosts("node0,node1"), ssh_config=str(lab.config))
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause(0.3)
            await pilot.press("ctrl+o")
            await until(pilot, lambda: "hosts reached" in status(app), seconds=180)
            table = app.screen.query_one("#hosts", DataTable)
            rows = [[str(c) for c in table.get_row_at(i)] for i in range(table.row_count)]
            said = status(app)
        bridge = lab.bridge
    assert said == "2 of 2 hosts reached; not ready."  # no GPU here: each blocks FlagCX
    assert [(row[0], row[4]) for row in rows] == [
        ("node0", f"{bridge}p0"),
        ("node1", f"{bridge}p1"),
    ]


def _rendezvous_on(lab: netns.Lab) -> WizardApp:
    """The app with the rendezvous recipe and the lab's two hosts named."""
    return WizardApp(
        Session(
            LocalHost,
            recipe_name=str(RENDEZVOUS),
            answers={"script": str(RENDEZVOUS.with_suffix(".py"))},
            hosts=parse_hosts("node0,node1"),
            ssh_config=str(lab.config),
        )
    )


async def _run_across(pilot, app: WizardApp) -> None:  # type: ignore[no-untyped-def]
    """Check this machine (ctrl+n), then n: the steps across the named hosts."""
    await pilot.pause(0.3)
    await pilot.press("ctrl+n")
    await until(pilot, lambda: app.session.report is not None, seconds=120)
    await pilot.press("n")


@needs_lab
async def test_a_run_across_hosts_from_the_app_meets_on_every_host(tmp_path: Path) -> None:
    """The hosts named on the start screen: this machine's checks, then n runs the recipe
    across them (an all-hosts step, a node a host, as torchrun's nodes meet); the run keeps
    its hosts, for a resume."""
    (tmp_path / "lab").mkdir()
    with netns.Lab(tmp_path / "lab", 2) as lab:
        for host in lab.hosts:
            host.env = {"LAB_HOST": host.name}
            lab.start(host)
        first = lab.hosts[0].address
        app = _rendezvous_on(lab)
        async with app.run_test(size=(120, 40)) as pilot:
            await _run_across(pilot, app)
            assert isinstance(app.screen, StepsScreen)
            await until(pilot, lambda: "All steps done" in text(app, "#stepstatus"), 180)
            await pilot.pause(0.2)
            log = " ".join(app.screen.query_one("#log", LogPane).lines)
        run = app.session.run
    assert run is not None and [h["host"] for h in run.cluster["hosts"]] == ["node0", "node1"]
    assert "node0: 1 rank(s), flagcx-nvidia node1: 1 rank(s), flagcx-nvidia" in log, log
    assert f"[node0] node 0 on node0 heard nodes [1] at {first}:" in log, log
    assert f"[node1] node 1 on node1 joined {first}:" in log, log


@needs_lab
async def test_a_run_across_an_unreachable_host_is_not_started(tmp_path: Path) -> None:
    (tmp_path / "lab").mkdir()
    with netns.Lab(tmp_path / "lab", 2) as lab:
        lab.stop(lab.hosts[1])
        app = _rendezvous_on(lab)
        async with app.run_test(size=(120, 40)) as pilot:
            await _run_across(pilot, app)
            await until(pilot, lambda: "Not started" in text(app, "#stepstatus"), 180)
            said = " ".join(text(app, "#stepstatus").split())
    assert "node1 is unreachable: " in said and "Connection refused" in said, said
    assert app.session.run is None  # nothing was saved: nothing ran
