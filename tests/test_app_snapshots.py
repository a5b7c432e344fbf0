"""How every screen looks, at 80x24 and 120x40 (SVGs under tests/__snapshots__/, reviewed by
eye). Runs, paths and times are pinned so the pictures do not change from run to run."""

from __future__ import annotations

import datetime as real_dt
import shutil
from pathlib import Path

import pytest

from wizard.app.app import Session, WizardApp
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.recipes import state as st
from wizard.host import Host, load_snapshot
from wizard.host.ssh import Unreachable

ROOT = Path(__file__).resolve().parent
SNAPSHOTS = ROOT.parent / "snapshots"
DEMO = ROOT / "fixtures" / "recipes" / "demo.yaml"
PERF_LOG = ROOT / "data" / "flagcx-h100-allreduce.log"
PLACE = Path("/tmp/wizard-app-snapshots")
SIZES = [(80, 24), (120, 40)]


class Frozen(real_dt.datetime):
    @classmethod
    def now(cls, tz=None):  # type: ignore[no-untyped-def, override]
        moment = real_dt.datetime(2026, 11, 25, 12, 0, 0)
        return moment.replace(tzinfo=tz) if tz else moment


@pytest.fixture(autouse=True)
def pinned(monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.rmtree(PLACE, ignore_errors=True)
    (PLACE / "work").mkdir(parents=True)
    (PLACE / "work" / "go").touch()
    # A path that is the same wherever the repository is cloned: the start screen shows it.
    shutil.copy(PERF_LOG, PLACE / PERF_LOG.name)
    monkeypatch.setenv("XDG_STATE_HOME", str(PLACE / "state"))
    monkeypatch.setattr(st.dt, "datetime", Frozen)


def app(machine: str, recipe: str = str(DEMO)) -> WizardApp:
    """The recorded machine's checks. With the demo recipe, which runs here, it is not a
    replay (a replay shows the plan and runs nothing)."""
    answers = (
        {"work": str(PLACE / "work"), "log": str(PLACE / PERF_LOG.name)}
        if recipe == str(DEMO)
        else {"src": str(PLACE / "FlagCX")}
    )
    return WizardApp(
        Session(
            lambda: load_snapshot(SNAPSHOTS / machine),
            replay=None if recipe == str(DEMO) else machine,
            recipe_name=recipe,
            answers=answers,
        )
    )


async def settle(pilot) -> None:  # type: ignore[no-untyped-def]
    await pilot.app.workers.wait_for_complete()
    await pilot.pause(0.3)


async def checked(pilot) -> None:  # type: ignore[no-untyped-def]
    await settle(pilot)
    await pilot.press("ctrl+n")
    for _ in range(200):
        if pilot.app.session.report is not None:
            break
        await pilot.pause(0.05)
    await settle(pilot)


async def ran(pilot) -> None:  # type: ignore[no-untyped-def]
    await checked(pilot)
    await pilot.press("n")
    for _ in range(400):
        run = pilot.app.session.run
        if run is not None and run.first_unfinished() is None and pilot.app.work is None:
            break
        await pilot.pause(0.05)
    await settle(pilot)


@pytest.mark.parametrize("size", SIZES)
def test_start(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(
        app("h100-ubuntu2404.yaml", "flagcx"), terminal_size=size, run_before=settle
    )


@pytest.mark.parametrize("size", SIZES)
def test_checks_with_problems(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app("ci-debian12.yaml", "flagcx"), terminal_size=size, run_before=checked)


@pytest.mark.parametrize("size", SIZES)
def test_fixes(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    async def fixes(pilot) -> None:  # type: ignore[no-untyped-def]
        await checked(pilot)
        await pilot.press("f")
        await settle(pilot)

    assert snap_compare(app("ci-debian12.yaml", "flagcx"), terminal_size=size, run_before=fixes)


@pytest.mark.parametrize("size", SIZES)
def test_steps(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    assert snap_compare(app("h100-ubuntu2404.yaml"), terminal_size=size, run_before=ran)


@pytest.mark.parametrize("size", SIZES)
def test_results(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    async def results(pilot) -> None:  # type: ignore[no-untyped-def]
        await ran(pilot)
        await pilot.press("n")
        await settle(pilot)

    assert snap_compare(app("h100-ubuntu2404.yaml"), terminal_size=size, run_before=results)


@pytest.mark.parametrize("size", SIZES)
def test_start_with_a_saved_run(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    run = st.new_run("demo", str(DEMO), ["prepare", "wait", "perf"], {})
    run.step("prepare").status = st.DONE
    run.step("wait").status, run.step("wait").exit_code = st.FAILED, 2
    run.save()
    assert snap_compare(app("h100-ubuntu2404.yaml"), terminal_size=size, run_before=settle)


@pytest.mark.parametrize("size", SIZES)
def test_help(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    async def help_(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        await pilot.press("question_mark")
        await settle(pilot)

    assert snap_compare(app("h100-ubuntu2404.yaml", "flagcx"), terminal_size=size, run_before=help_)


@pytest.mark.parametrize("size", SIZES)
def test_hosts(snap_compare, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """Three recorded machines as hosts (a fresh H100 host, a 4x H100 one, the GPU-less CI
    machine) and one whose sshd refuses: each host's line, then what differs."""
    machines = {
        "h100": "h100-fresh.yaml",
        "quad": "4xh100-nvlink.yaml",
        "ci": "ci-debian12.yaml",
    }

    def connect(spec: HostSpec) -> Host:
        if spec.name not in machines:
            raise Unreachable("ssh: connect to host down port 22: Connection refused")
        return load_snapshot(SNAPSHOTS / machines[spec.name])

    wizard = app("h100-ubuntu2404.yaml", "flagcx")
    wizard.session.connect = connect
    wizard.session.target = "flagcx-nvidia"

    async def hosts(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        pilot.app.screen.query_one("#hosts-input").value = "h100,quad,ci,down"
        await pilot.press("ctrl+o")
        await settle(pilot)

    assert snap_compare(wizard, terminal_size=size, run_before=hosts)


def saved_perf_run(recipe_id: str, logs: dict[str, str], **params: str) -> st.RunState:
    """A finished run of the recipe whose perf steps' results are the real logs, parsed."""
    from wizard.engine.recipes.parsers import FlagcxPerf, NcclTestsPerf

    run = st.new_run(recipe_id, recipe_id, list(logs), {})
    run.params = dict(params)
    for step_id, log in logs.items():
        parser = FlagcxPerf() if recipe_id == "flagcx" else NcclTestsPerf()
        parser.feed((ROOT / "data" / log).read_text().splitlines())
        run.step(step_id).status = st.DONE
        run.step(step_id).results = parser.results()
    run.save()
    return run


ONE_RANK = {
    "flagcx": {"allreduce": "flagcx-h100-allreduce.log"},
    "nccl-tests": {"all-reduce": "nccl-tests-h100-all-reduce.log"},
}
FOUR_RANKS = {
    "flagcx": {
        "allreduce": "flagcx-4xh100-allreduce.log",
        "allgather": "flagcx-4xh100-allgather.log",
        "reducescatter": "flagcx-4xh100-reducescatter.log",
    },
    "nccl-tests": {
        "all-reduce": "nccl-tests-4xh100-all-reduce.log",
        "all-gather": "nccl-tests-4xh100-all-gather.log",
        "reduce-scatter": "nccl-tests-4xh100-reduce-scatter.log",
    },
}
# The facts of the machines the logs were recorded on (snapshots/4xh100-nvlink.yaml).
FOUR_PARAMS = {
    "gpus": "4",
    "gpu_model": "NVIDIA H100 80GB HBM3",
    "link": "NVLink 4.0 ×18",
    "link_peak_gbs": "450.0",
    "driver": "580.159.04",
}


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("ranks", ["one-rank", "four-ranks"])
def test_results_of_recorded_perf_runs(snap_compare, ranks: str, size: tuple[int, int]) -> None:  # type: ignore[no-untyped-def]
    """The real perf logs (one H100; four H100 over NVLink): the chart of FlagCX and NCCL by
    message size above the tables."""
    logs, params = (ONE_RANK, {"gpus": "1"}) if ranks == "one-rank" else (FOUR_RANKS, FOUR_PARAMS)
    saved_perf_run("nccl-tests", logs["nccl-tests"], **params)
    run = saved_perf_run("flagcx", logs["flagcx"], **params)
    wizard = WizardApp(Session(lambda: load_snapshot(SNAPSHOTS / "h100-ubuntu2404.yaml"), run=run))

    async def results(pilot) -> None:  # type: ignore[no-untyped-def]
        await settle(pilot)
        pilot.app.open("results")
        await settle(pilot)

    assert snap_compare(wizard, terminal_size=size, run_before=results)
