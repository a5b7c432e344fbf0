"""The app driven with Textual's Pilot: the whole flow against a recorded machine and a
recipe that really runs here; a fix applied through the Fixes screen."""

from __future__ import annotations

import dataclasses
import io
import os
from pathlib import Path

import psutil
import pytest
from rich.console import Console
from textual.widgets import DataTable, SelectionList, Static, Tree

import checks
from checks.base import Fix, Status
from tests.perf_runs import record_four_gpu_runs
from tests.treehost import SYSTEM_GTEST, HidingHost
from wizard.app.app import Session, WizardApp
from wizard.app.screens.checks import ChecksScreen
from wizard.app.screens.confirm import ConfirmScreen
from wizard.app.screens.fixes import FixesScreen
from wizard.app.screens.results import ResultsScreen
from wizard.app.screens.start import StartScreen
from wizard.app.screens.steps import StepsScreen
from wizard.app.widgets.bandwidth_chart import BandwidthChart
from wizard.app.widgets.log_pane import LogPane
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.engine.recipes.run import not_wanted
from wizard.host import load_snapshot

ROOT = Path(__file__).resolve().parent
H100 = ROOT.parent / "snapshots" / "h100-ubuntu2404.yaml"
DEMO = ROOT / "fixtures" / "recipes" / "demo.yaml"
PERF_LOG = ROOT / "data" / "flagcx-h100-allreduce.log"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    return tmp_path / "state"


def session(work: Path) -> Session:
    """The H100's recorded checks, and a recipe that runs here (not a replay: a replay would
    rightly refuse to run it)."""
    return Session(
        lambda: load_snapshot(H100),
        recipe_name=str(DEMO),
        answers={"work": str(work), "log": str(PERF_LOG)},
    )


async def until(pilot, condition, seconds: float = 30.0) -> None:  # type: ignore[no-untyped-def]
    for _ in range(int(seconds / 0.05)):
        if condition():
            return
        await pilot.pause(0.05)
    screen = pilot.app.screen
    shown = [str(s.render()) for s in screen.query(Static) if s.id]
    raise AssertionError(f"the app never got there; {type(screen).__name__} shows {shown}")


async def check_machine(pilot, app: WizardApp) -> None:  # type: ignore[no-untyped-def]
    """From the start screen, run the checks and wait for their report."""
    await pilot.press("ctrl+n")
    await until(pilot, lambda: app.session.report is not None)


def text(app: WizardApp, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())


async def failure_of(pilot, app: WizardApp, step_id: str) -> str:  # type: ignore[no-untyped-def]
    """Check the machine, start the steps, wait for `step_id` to fail: the failure panel."""
    await check_machine(pilot, app)
    await pilot.press("n")
    steps = app.screen
    await until(
        pilot,
        lambda: (
            not steps.running
            and app.session.run is not None
            and app.session.run.steps[step_id].status == st.FAILED
        ),
    )
    await pilot.pause(0.2)
    return text(app, "#failure")


async def test_whole_flow_cancel_quit_and_resume(tmp_path: Path) -> None:
    work = tmp_path / "work"
    app = WizardApp(session(work))
    async with app.run_test(size=(120, 40)) as pilot:
        assert isinstance(app.screen, StartScreen)
        await pilot.press("ctrl+n")
        assert isinstance(app.screen, ChecksScreen)
        await until(pilot, lambda: app.session.report is not None)
        await pilot.pause(0.1)
        tree = app.screen.query_one("#checks", Tree)
        leaves = [leaf for group in tree.root.children for leaf in group.children]
        assert len(leaves) == len(checks.REGISTRY)  # every check shows, each under its group
        assert all("checking" not in str(leaf.label) for leaf in leaves)
        assert "Nothing blocks the demo recipe" in text(app, "#summary")  # it requires none
        assert app.session.report.target.id == "flagcx-nvidia"  # the H100 was detected

        await pilot.press("f")
        assert isinstance(app.screen, FixesScreen)
        assert "Nothing to fix." in text(app, "#fixstatus")
        await pilot.press("escape")

        await pilot.press("n")
        assert isinstance(app.screen, StepsScreen)
        steps = app.screen
        await until(pilot, lambda: steps.current == "wait")
        await pilot.press("c")
        await until(pilot, lambda: not steps.running)
        run = app.session.run
        assert run is not None and run.steps["wait"].status == st.CANCELLED
        assert "Cancelled during wait" in text(app, "#stepstatus")
        await pilot.press("q")
    assert app.return_value == 0

    # A new app offers to resume where it stopped; finished work is not redone.
    (work / "go").touch()
    again = WizardApp(session(work))
    async with again.run_test(size=(120, 40)) as pilot:
        assert again.screen.query("#resume-note")
        await pilot.press("ctrl+r")
        await until(pilot, lambda: again.session.report is not None)
        await pilot.press("n")
        steps = again.screen
        assert isinstance(steps, StepsScreen)
        await until(
            pilot, lambda: not steps.running and "All steps done" in text(again, "#stepstatus")
        )
        run = again.session.run
        assert run is not None and run.run_id == app.session.run.run_id  # type: ignore[union-attr]
        assert [s.status for s in run.steps.values()] == [st.DONE, st.DONE, st.DONE]
        log = steps.query_one("#log", LogPane)
        assert "skipped" not in " ".join(log.lines)  # prepare was not run again: no header
        assert not any("prepared" in line for line in log.lines)

        await pilot.press("n")
        assert isinstance(again.screen, ResultsScreen)
        table = again.screen.query_one("#table-perf", DataTable)
        assert table.row_count == 16
        assert again.screen.query_one(BandwidthChart).results.metric == "algbw"  # one rank


async def test_failed_step_shows_tail_and_likely_cause(tmp_path: Path) -> None:
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(
        "id: broken\ntitle: Broken\nsteps:\n  - id: compile\n    run: >-\n"
        "      echo 'tools.h:1:10: fatal error: mpi.h: No such file or directory' && exit 2\n"
    )
    app = WizardApp(Session(lambda: load_snapshot(H100), recipe_name=str(recipe)))
    async with app.run_test(size=(120, 40)) as pilot:
        failure = await failure_of(pilot, app, "compile")
        steps = app.screen
        assert "compile failed: exit code 2" in failure
        assert "likely cause: mpi.h is not in MPI_HOME/include" in failure
        await pilot.press("e")  # jump to the first error
        assert steps.query_one("#log", LogPane).auto_scroll is False


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_the_failure_panel_always_shows_the_logs_path(
    tmp_path: Path, size: tuple[int, int]
) -> None:
    """A failure with a long tail and a likely cause: the panel's visible lines still hold
    the whole path of the step's log."""
    recipe = tmp_path / "broken.yaml"
    recipe.write_text(
        "id: broken\ntitle: Broken\nsteps:\n  - id: compile\n    run: >-\n"
        "      seq 40 && echo 'tools.h:1:10: fatal error: mpi.h: No such file or directory'"
        " && exit 2\n"
    )
    app = WizardApp(Session(lambda: load_snapshot(H100), recipe_name=str(recipe)))
    async with app.run_test(size=size) as pilot:
        await failure_of(pilot, app, "compile")
        run = app.session.run
        assert run is not None
        log = run.steps["compile"].log
        assert log
        shown = shown_lines(app.screen.query_one("#failure", Static))
        assert shows_whole(shown, f"full log: {log}"), "\n".join(shown)


@pytest.mark.integration
async def test_apply_a_fix_from_the_fixes_screen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    app = WizardApp(Session(lambda: HidingHost(SYSTEM_GTEST), recipe_name=str(DEMO)))
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        await pilot.press("f")
        fixes = app.screen
        assert isinstance(fixes, FixesScreen)
        fixlist = fixes.query_one("#fixlist", SelectionList)
        rootless = next(
            k
            for k, (f, fix) in fixes.entries.items()
            if f.id == "gtest" and "(no root)" in fix.title
        )
        fixlist.deselect_all()  # only this one (the NCCL wheel is ticked as preferred)
        fixlist.select(rootless)
        await pilot.press("a")
        await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
        await pilot.press("y")
        await until(pilot, lambda: "gtest is ok now" in text(app, "#fixstatus"), seconds=180)
        await pilot.press("escape")
        assert isinstance(app.screen, ChecksScreen)
        await until(
            pilot,
            lambda: any(
                f.id == "gtest" and f.status.value == "ok" for f in app.screen.found.values()
            ),
        )


def offer_fix(app: WizardApp, fix: Fix) -> None:
    """The recorded machine's googletest (found) as if it warned, with `fix` as its one fix:
    a fix that really runs here, whose check the doctor then runs again."""
    report = app.session.report
    assert report is not None
    report.findings = [
        dataclasses.replace(f, status=Status.WARN, fixes=[fix]) if f.id == "gtest" else f
        for f in report.findings
    ]


async def apply_ticked(pilot, app: WizardApp, key: str) -> None:  # type: ignore[no-untyped-def]
    """On the Fixes screen, tick only `key`, press a, and say yes."""
    fixlist = app.screen.query_one("#fixlist", SelectionList)
    fixlist.deselect_all()
    fixlist.select(key)
    await pilot.press("a")
    await until(pilot, lambda: isinstance(app.screen, ConfirmScreen))
    await pilot.press("y")


async def test_the_checks_look_again_only_after_a_fix_ran(tmp_path: Path) -> None:
    """Back from the Fixes screen without running one, the checks stand; after a fix ran
    (its outcome said as the worker posted it), the doctor runs again."""
    marker = tmp_path / "fixed"
    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        offer_fix(app, Fix("Mark it fixed", [f"touch {marker}"]))
        before = app.session.report
        await pilot.press("f")
        assert isinstance(app.screen, FixesScreen)
        await pilot.press("escape")
        await pilot.pause(0.3)
        assert isinstance(app.screen, ChecksScreen) and app.session.report is before

        await pilot.press("f")
        await apply_ticked(pilot, app, "gtest:0")
        await until(pilot, lambda: "Press escape" in text(app, "#fixstatus"))
        assert marker.exists() and app.work is None
        assert "gtest is ok now" in text(app, "#fixstatus")  # the recorded check, run again
        await pilot.press("escape")
        assert isinstance(app.screen, ChecksScreen)
        await until(pilot, lambda: app.session.report not in (None, before))


def sleeping(seconds: str) -> list[psutil.Process]:
    """The live `sleep SECONDS` processes of this machine (a zombie has ended)."""
    return [
        p
        for p in psutil.process_iter(["cmdline", "status"])
        if p.info["cmdline"] == ["sleep", seconds] and p.info["status"] != psutil.STATUS_ZOMBIE
    ]


async def test_quitting_while_a_fix_runs_stops_it_first(tmp_path: Path) -> None:
    """A fix that has run a while: q asks, q again stops it and quits; by the time the app
    has gone, so has the fix's process."""
    from wizard.app.app import ASK_AFTER_S

    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        offer_fix(app, Fix("Wait a while", ["sleep 47.375"]))
        await pilot.press("f")
        await apply_ticked(pilot, app, "gtest:0")
        await until(pilot, lambda: bool(sleeping("47.375")))
        await pilot.press("escape")  # refused while it runs
        assert isinstance(app.screen, FixesScreen)
        await pilot.pause(ASK_AFTER_S + 0.2)
        await pilot.press("q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen) and app.work is not None
        assert text(app, "#question") == "A fix is running. Stop it and quit?"
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None)
    assert app.return_code == 0
    assert not sleeping("47.375")


async def test_the_command_palette_offers_the_screens_actions(tmp_path: Path) -> None:
    app = WizardApp(session(tmp_path / "work"))
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert titles[:3] == ["Fixes", "Build & test", "Check again"]
        assert "Screenshot" not in titles  # it leaves no file a user could find over SSH
        await pilot.press("ctrl+p")
        await pilot.press(*"build")
        await pilot.press("enter")
        await until(pilot, lambda: isinstance(app.screen, StepsScreen))


async def test_results_put_flagcx_beside_nccl_per_collective(
    tmp_path: Path, state_home: Path
) -> None:
    record_four_gpu_runs(tmp_path, {**os.environ, "NO_COLOR": "1"})
    run = st.load(st.latest_for("flagcx") or "")
    app = WizardApp(Session(lambda: load_snapshot(H100), run=run))
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(ResultsScreen())
        await pilot.pause(0.2)
        screen = app.screen
        for collective in ("allreduce", "allgather", "reducescatter"):
            assert screen.query_one(f"#table-{collective}", DataTable).row_count == 16
            table = screen.query_one(f"#nccl-{collective}", DataTable)
            assert table.row_count == 16
        last = screen.query_one("#nccl-allreduce", DataTable).get_row_at(15)
        assert last == ["4G", "362.57", "362.49", "1.000", "81%", "81%"]
        assert screen.query_one("#table-allreduce", DataTable).get_row_at(15)[-1] == "81%"
        assert len(screen.query(BandwidthChart)) == 3


async def test_results_chart_each_collective_with_a_line_per_source_and_share_the_report(
    tmp_path: Path, state_home: Path
) -> None:
    """The real 4x H100 runs and the 4x H200 torch sweep: a tab per collective, whose chart
    has a line per source and the link's peak; `s` writes report.md and report.html beside
    the run and says where."""
    from textual.widgets import TabbedContent

    record_four_gpu_runs(tmp_path, {**os.environ, "NO_COLOR": "1"}, torch=True)
    run = st.load(st.latest_for("flagcx") or "")
    app = WizardApp(Session(lambda: load_snapshot(H100), run=run))
    async with app.run_test(size=(120, 40)) as pilot:
        app.push_screen(ResultsScreen())
        await pilot.pause(0.3)
        screen = app.screen
        tabs = screen.query_one("#charts", TabbedContent)
        assert tabs.active == "tab-allreduce"
        chart = screen.query_one("#chart-allreduce", BandwidthChart)
        lines = chart.lines()
        assert list(lines) == ["FlagCX", "nccl-tests", "torch"]
        assert lines["torch"][-1] == (32.0, 362.66)  # log2(4G), torch's busbw there
        drawn = str(chart.render())
        assert "allreduce: bus bandwidth, GB/s (red: the link's peak, 450)" in drawn
        assert all(label in drawn for label in ("128K", "1M", "8M", "64M", "512M", "4G"))
        tabs.active = "tab-reducescatter"
        await pilot.pause(0.2)
        assert screen.query_one("#chart-reducescatter", BandwidthChart).display
        await pilot.press("s")
        await pilot.pause(0.2)
        shared = str(screen.query_one("#shared", Static).render())
        notes = [n.message for n in app._notifications]
    markdown, page = run.folder / "report.md", run.folder / "report.html"
    assert shared == f"Wrote {markdown} and {page} (paste the .md into an issue)."
    assert shared in notes
    assert "| 4G | 362.57 | 362.49 | 362.66 | 1.000 |" in markdown.read_text()
    assert page.read_text().count("<svg") == 3


async def test_an_offline_clone_says_what_to_do_instead(tmp_path: Path) -> None:
    recipe = tmp_path / "clone.yaml"
    recipe.write_text(
        "id: clone\ntitle: Clone\nsteps:\n  - id: source\n"
        f"    run: git clone --depth 1 https://offline.invalid/FlagCX.git {tmp_path / 'FlagCX'}\n"
    )
    app = WizardApp(Session(lambda: load_snapshot(H100), recipe_name=str(recipe)))
    async with app.run_test(size=(120, 40)) as pilot:
        failure = " ".join((await failure_of(pilot, app, "source")).split())
        assert "cannot reach https://offline.invalid/FlagCX.git (offline?)" in failure
        assert "--set src=PATH of that checkout" in failure


async def test_a_replay_shows_the_plan_and_runs_nothing(tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    app = WizardApp(
        Session(
            lambda: load_snapshot(H100),
            replay=H100.name,
            recipe_name=str(DEMO),
            answers={"work": str(work), "log": str(PERF_LOG)},
        )
    )
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        await pilot.press("f")
        assert "Replaying a snapshot" in text(app, "#fixstatus")
        await pilot.press("escape")
        await pilot.press("n")
        await pilot.pause(0.3)
        assert isinstance(app.screen, StepsScreen)
        shown = " ".join(text(app, "#stepstatus").split())
        assert f"Replaying {H100.name}: the plan for the machine it recorded." in shown
        assert "Nothing is built or run here" in shown
        plan = shown_lines(app.screen.query_one("#plan-text", Static))
        assert sum(line.lstrip().startswith(("·", "-")) for line in plan) == 3
        for key in ("r", "h", "s"):  # retry, from here, skip: still nothing
            await pilot.press(key)
        await pilot.pause(0.3)
        assert app.session.run is None and list(work.iterdir()) == []


@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 40)])
async def test_a_replays_plan_shows_every_step_whole(size: tuple[int, int]) -> None:
    """The flagcx recipe replayed on the H100: every step, why one is skipped and each
    command, wrapped to the pane (as `wizard steps` prints them); no busy-looking bar."""
    app = WizardApp(Session(lambda: load_snapshot(H100), replay=H100.name, recipe_name="flagcx"))
    async with app.run_test(size=size) as pilot:
        await check_machine(pilot, app)
        await pilot.press("n")
        await pilot.pause(0.3)
        pane = app.screen.query_one("#plan-text", Static)
        lines = shown_lines(pane)
        assert pane.virtual_size.width <= pane.size.width
        recipe = recipes.load("flagcx")
        values = app.screen.values  # type: ignore[attr-defined]
        for step in recipe.steps:
            assert shows_whole(lines, step.title), step.title
            if skipped := not_wanted(step, values):
                assert shows_whole(lines, f"{step.title} (skipped: {skipped})")
                continue
            try:
                script = recipes.render(step.script(values), values, quote=True)
            except recipes.NoCommand as exc:  # no checkout in a replay: no layout yet
                assert shows_whole(lines, f"({exc})"), str(exc)
                continue
            for command in script.splitlines():
                assert shows_whole(lines, command), command
        assert app.screen.query_one("#progress").display is False
        assert app.focused is app.screen.query_one("#plan")  # arrows and pages scroll it


def test_screens_depend_on_the_app_never_on_each_other() -> None:
    """Each screen opens the next by name through the app (WizardApp.open)."""
    import ast

    from wizard.app.app import SCREENS_BY_NAME, screen_class

    folder = ROOT.parent / "wizard" / "app" / "screens"
    for path in folder.glob("*.py"):
        tree = ast.parse(path.read_text())
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module
        }
        others = {m for m in imported if m.startswith("wizard.app.screens.")}
        assert others <= {"wizard.app.screens.base"}, f"{path.name} imports {others}"
    assert all(screen_class(name).__name__ for name in SCREENS_BY_NAME)


def saved_run(work: Path) -> st.RunState:
    """An unfinished run of the demo recipe, as a failed build leaves one."""
    run = st.new_run("demo", str(DEMO), ["prepare", "wait", "perf"], {"work": str(work)})
    run.step("prepare").status = st.DONE
    run.step("wait").status, run.step("wait").exit_code = st.FAILED, 2
    run.save()
    return run


def footer_keys(app: WizardApp) -> list[str]:
    from textual.widgets._footer import FooterKey

    return [key.description for key in app.screen.query(FooterKey)]


async def test_80x24_start_shows_its_actions_and_the_resume_key(tmp_path: Path) -> None:
    saved_run(tmp_path)
    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        screen = app.screen
        for button in ("#go", "#resume"):  # on screen without scrolling
            assert screen.region.contains_region(screen.query_one(button).region), button
        assert "Resume the saved run" in footer_keys(app)


async def test_ctrl_r_without_a_saved_run_says_so(tmp_path: Path) -> None:
    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert "Resume the saved run" not in footer_keys(app)
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        said = [n.message for n in app._notifications]
        assert "There is no unfinished run to resume. Press ctrl+n to start one." in said
        assert isinstance(app.screen, StartScreen)


async def test_a_replay_never_offers_this_machines_saved_run(tmp_path: Path) -> None:
    saved_run(tmp_path)
    app = WizardApp(Session(lambda: load_snapshot(H100), replay=H100.name, recipe_name="flagcx"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.3)
        assert "Resume the saved run" not in footer_keys(app)
        assert not app.screen.query("#resume") and not app.screen.query("#resume-note")
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        said = [n.message for n in app._notifications]
        assert "Replaying a snapshot: this machine's runs are not resumed here." in said
        assert isinstance(app.screen, StartScreen) and app.session.run is None


async def test_an_unknown_parameter_is_said_where_it_is_typed(tmp_path: Path) -> None:
    """In More parameters, as it is typed: the closest parameter named; ctrl+n then stays
    on the start screen, the field focused, and no run is made."""
    from textual.widgets import Input

    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        app.screen.query_one("#sets", Input).focus()
        await pilot.press("end", *" wrk=/tmp")
        await pilot.pause(0.2)
        said = text(app, "#sets-error")
        assert "recipe demo has no parameter wrk (did you mean 'work'?)" in said, said
        await pilot.press("ctrl+n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, StartScreen) and app.session.report is None
        assert app.focused is app.screen.query_one("#sets", Input)
        assert st.latest_for("demo") is None
        await pilot.press(*["backspace"] * len(" wrk=/tmp"))
        await pilot.pause(0.2)
        assert text(app, "#sets-error") == ""


async def test_a_text_field_still_shows_how_to_leave(tmp_path: Path) -> None:
    """In the hosts field (as after ctrl+o with none named), q is typed, so the footer
    shows keys that are not: F1 opens the help, ctrl+q quits."""
    from textual.widgets import Input

    from wizard.app.screens.help import HelpScreen

    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("ctrl+o")  # no hosts named: the field is focused
        await pilot.pause(0.1)
        field = app.screen.query_one("#hosts-input", Input)
        assert app.focused is field
        await pilot.press("q")
        assert field.value == "q"
        keys = footer_keys(app)
        assert "Help" in keys and "Quit" in keys, keys
        await pilot.press("f1")
        await pilot.pause(0.1)
        assert isinstance(app.screen, HelpScreen)
        await pilot.press("escape")
        await pilot.pause(0.1)
        await pilot.press("ctrl+q")
        await pilot.pause(0.2)
    assert app.return_code == 0


async def test_q_asks_before_stopping_a_step_that_has_run_a_while(tmp_path: Path) -> None:
    """The wait step blocks: past a few seconds, q asks; n keeps it running; q then q
    stops it (saved as cancelled) and quits."""
    from wizard.app.app import ASK_AFTER_S

    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await check_machine(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: app.screen.current == "wait")  # type: ignore[attr-defined]
        await pilot.pause(ASK_AFTER_S + 0.2)
        await pilot.press("q")
        await pilot.pause(0.2)
        assert isinstance(app.screen, ConfirmScreen) and app.work is not None
        await pilot.press("n")
        await pilot.pause(0.2)
        assert isinstance(app.screen, StepsScreen) and app.work is not None
        await pilot.press("q")
        await pilot.pause(0.2)
        await pilot.press("q")
        await until(pilot, lambda: app.return_code is not None)
    run = app.session.run
    assert run is not None and st.load(run.run_id).steps["wait"].status == st.CANCELLED


async def test_the_help_covers_the_hosts_screen_and_ctrl_o(tmp_path: Path) -> None:
    from wizard.app.screens.help import KEYS

    screens = dict(KEYS)
    assert "ctrl+o" in dict(screens["Start"])
    assert {"r", "escape"} <= set(dict(screens["Hosts"]))
    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.2)
        await pilot.press("question_mark")
        await pilot.pause(0.2)
        shown = " ".join(line for s in app.screen.query(Static) for line in shown_lines(s))
        assert "ctrl+o" in shown and "Hosts" in shown


async def test_manual_fixes_are_said_to_be_done_by_hand() -> None:
    """The CI machine (not replayed): 2 of its 4 fixes cannot run from here (a container's
    GPUs and limits); the status says so, and ticking one says to do it by hand."""
    from wizard.app.screens.fixes import to_do

    ci = ROOT.parent / "snapshots" / "ci-debian12.yaml"
    app = WizardApp(Session(lambda: load_snapshot(ci), recipe_name="flagcx"))
    async with app.run_test(size=(80, 24)) as pilot:
        await check_machine(pilot, app)
        await pilot.press("f")
        await pilot.pause(0.3)
        assert "2 of them are to be done by hand (c copies their commands)" in text(
            app, "#fixstatus"
        )
        fixlist = app.screen.query_one("#fixlist", SelectionList)
        fixlist.highlighted = 0  # gpu.nvidia: give the container the GPUs (manual)
        await pilot.press("space")
        await pilot.pause(0.1)
        assert "gpu.nvidia:0" not in fixlist.selected
        said = [n.message for n in app._notifications]
        assert any("do it by hand (c copies it)" in m for m in said), said
        # Ticked and unticked boxes differ without colour: only the nccl wheel is ticked.
        boxes = [line[2:5] for line in shown_lines(fixlist) if ": " in line]
        assert boxes == ["▐ ▌", "▐X▌", "▐ ▌", "▐ ▌"], shown_lines(fixlist)
    # Where none can run from here, `a` and the status say that, not "tick one".
    assert to_do(2, 2).startswith("All 2 fixes are to be done by hand")
    assert "Tick" not in to_do(2, 2) and "Tick" not in to_do(1, 1)


async def test_a_checks_details_never_repeat_its_summary() -> None:
    """The CI machine's NVIDIA finding: its one detail line is already in its summary."""
    ci = ROOT.parent / "snapshots" / "ci-debian12.yaml"
    app = WizardApp(Session(lambda: load_snapshot(ci), replay=ci.name))
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        app.screen.query_one("#checks", Tree).select_node(app.screen.nodes["gpu.nvidia"])
        await pilot.pause(0.2)
        drawn = " ".join(shown_lines(app.screen.query_one("#detail-text", Static)))
        said = " ".join(drawn.split())
        assert said.count("libnvidia-ml.so.1 not found") == 1, said


async def test_the_header_names_the_recipe_and_the_replay() -> None:
    from textual.widgets import Select

    app = WizardApp(Session(lambda: load_snapshot(H100), replay=str(H100), recipe_name="flagcx"))
    async with app.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        assert app.sub_title == "flagcx, replaying h100-ubuntu2404.yaml"
        app.screen.query_one("#recipe", Select).value = "deepspeed"
        await pilot.pause(0.2)
        assert app.sub_title == "deepspeed, replaying h100-ubuntu2404.yaml"
        assert "FlagCX" not in app.sub_title


async def test_80x24_hosts_show_sshs_words_whole() -> None:
    from wizard.engine.hosts.hostlist import HostSpec
    from wizard.host import Host
    from wizard.host.ssh import Unreachable

    refused = "ssh: connect to host down port 22: Connection refused"

    def connect(spec: HostSpec) -> Host:
        if spec.name == "down":
            raise Unreachable(refused)
        return load_snapshot(H100)

    wizard = WizardApp(Session(lambda: load_snapshot(H100), replay=str(H100)))
    wizard.session.connect = connect
    async with wizard.run_test(size=(80, 24)) as pilot:
        await pilot.pause(0.2)
        wizard.screen.query_one("#hosts-input").value = "h100,down"  # type: ignore[attr-defined]
        await pilot.press("ctrl+o")
        await until(pilot, lambda: "hosts reached" in text(wizard, "#hosts-status"))
        await pilot.pause(0.2)
        advice = shown_lines(wizard.screen.query_one("#hosts-advice", Static))
        assert shows_whole(advice, f"down: {refused}"), advice


async def test_80x24_steps_keep_their_essential_keys_and_whole_titles(tmp_path: Path) -> None:
    """The footer shows the keys that apply now: c while a step runs; r and s once it is
    cancelled; none of the three when every step is done (nor in a replay)."""
    app = WizardApp(session(tmp_path))
    async with app.run_test(size=(80, 24)) as pilot:
        await check_machine(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: app.screen.current == "wait")  # type: ignore[attr-defined]
        await pilot.pause(0.1)
        keys = footer_keys(app)
        for essential in ("Cancel", "Results", "Back", "Help", "Quit"):
            assert essential in keys
        assert "Retry" not in keys and "Skip" not in keys
        assert "running" in text(app, "#stepstatus")
        await pilot.press("c")
        await until(pilot, lambda: app.work is None)
        await pilot.pause(0.1)
        keys = footer_keys(app)
        assert {"Retry", "Skip", "Results", "Back", "Help", "Quit"} <= set(keys)
        assert "Cancel" not in keys
        (tmp_path / "go").touch()
        await pilot.press("r")
        await until(pilot, lambda: "All steps done" in text(app, "#stepstatus"))
        await pilot.pause(0.1)
        keys = footer_keys(app)
        assert not {"Cancel", "Retry", "Skip"} & set(keys), keys
        (tmp_path / "go").unlink()
        app.screen.query_one("#steps-table", DataTable).move_cursor(row=1)
        await pilot.press("h")  # from the wait step again: the status says so
        await until(pilot, lambda: app.screen.current == "wait")  # type: ignore[attr-defined]
        assert "running from wait" in text(app, "#stepstatus")
        (tmp_path / "go").touch()
        await until(pilot, lambda: "All steps done" in text(app, "#stepstatus"))
        # Stacked above the log, the table takes the whole width: the flagcx recipe's longest
        # title ("Run the plugin's example with torchrun") fits with its mark and time.
        table = app.screen.query_one("#steps-table", DataTable)
        assert table.region.width == app.screen.region.width
        longest = max(len(s.title) for s in recipes.load("flagcx").steps)
        assert table.region.width >= longest + 10


async def test_the_results_never_show_an_empty_reason(tmp_path: Path) -> None:
    from wizard.app.screens.results import _outcome

    assert _outcome(st.StepState()) == "not run yet"
    assert _outcome(st.StepState(status=st.SKIPPED, reason="torch is not set")) == (
        "skipped (torch is not set)"
    )
    assert _outcome(st.StepState(status=st.FAILED)) == "failed"


async def test_a_long_confirmation_opens_at_its_question(tmp_path: Path) -> None:
    from rich.text import Text

    app = WizardApp(session(tmp_path))
    body = Text("\n".join(f"$ step {n}: a long command line" for n in range(60)))
    async with app.run_test(size=(80, 24)) as pilot:
        app.confirm("Run these 60 commands?", body, lambda yes: None)
        await pilot.pause(0.2)
        screen = app.screen
        for part in ("#question", "#yes", "#no"):
            assert screen.region.contains_region(screen.query_one(part).region), part


def shown_lines(widget: Static) -> list[str]:
    """What the widget draws, border included, line by line (a Static with no maximum
    height draws all of its content)."""
    from textual.geometry import Region

    return [strip.text for strip in widget.render_lines(Region(0, 0, *widget.outer_size))]


def shows_whole(lines: list[str], command: str) -> bool:
    """Every character of the command, in order, in what is drawn (wrapped or not)."""
    drawn = "".join(line.strip().strip("│") for line in lines)  # less the border's sides
    return "".join(command.split()) in "".join(drawn.split())


@pytest.mark.parametrize("size", [(80, 24), (120, 40)])
async def test_fix_commands_are_shown_whole_and_can_be_copied(size: tuple[int, int]) -> None:
    """The CI machine's fixes, among them the cuda-keyring URL and `docker run ... # on the
    host`: each command wraps in its pane, none is cut; the fixes' names differ."""
    ci = ROOT.parent / "snapshots" / "ci-debian12.yaml"
    app = WizardApp(Session(lambda: load_snapshot(ci), replay=ci.name))
    async with app.run_test(size=size) as pilot:
        await check_machine(pilot, app)
        report = app.session.report
        assert report is not None
        for finding in (f for f in report.findings if f.fixes):
            app.screen.query_one("#checks", Tree).select_node(app.screen.nodes[finding.id])
            await pilot.pause(0.1)
            pane = app.screen.query_one("#detail-fixes", Static)
            lines = shown_lines(pane)
            assert pane.virtual_size.width <= pane.size.width  # nothing off to the right
            for command in (c for fix in finding.fixes for c in fix.commands):
                assert shows_whole(lines, command), (command, lines)

        await pilot.press("f")
        await pilot.pause(0.2)
        fixlist = app.screen.query_one("#fixlist", SelectionList)
        names = [str(fixlist.get_option_at_index(i).prompt) for i in range(fixlist.option_count)]
        room = fixlist.scrollable_content_region.width - 4  # less the tick box
        assert all(len(name) <= room for name in names), (names, room)
        for index, (_, fix) in enumerate(app.screen.entries.values()):  # type: ignore[attr-defined]
            fixlist.highlighted = index
            await pilot.pause(0.3)
            lines = shown_lines(app.screen.query_one("#command-lines", Static))
            assert all(shows_whole(lines, c) for c in fix.commands), (fix.commands, lines)
        await pilot.press("c")
        assert app.clipboard == "".join(f"{c}\n" for c in fix.commands)


async def test_the_start_screen_offers_every_recipe_and_judges_by_its_checks() -> None:
    """On the CI machine (no GPU, no nccl.h): FlagCX is blocked by its target's checks, the
    deepspeed recipe only by the GPU (it needs no NCCL header); its form has no source."""
    from textual.widgets import Input, Select

    from wizard.host import LocalHost

    app = WizardApp(Session(LocalHost))
    async with app.run_test(size=(120, 40)) as pilot:
        choices = app.screen.query_one("#recipe", Select)
        offered = [value for _, value in choices._options]
        assert {"flagcx", "nccl-tests", "torch-nccl", "deepspeed"} <= set(offered)
        choices.value = "deepspeed"
        await pilot.pause(0.2)
        assert app.screen.query_one("#src", Input).display is False
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.session.report is not None)
        await pilot.pause(0.2)
        summary = text(app, "#summary")
    assert app.session.recipe_name == "deepspeed"
    assert "block the deepspeed recipe: gpu.nvidia" in summary
    assert "nccl.header" not in summary


async def test_results_chart_a_training_runs_loss(tmp_path: Path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The DeepSpeed training step as it ran on the 2x H200 (its log, parsed): the results
    screen shows its figures and charts the loss and the throughput over the steps."""
    from wizard.app.widgets.bandwidth_chart import TrainingChart
    from wizard.engine.recipes.parsers import Training

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    parser = Training()
    parser.feed((Path(__file__).parent / "data" / "ds-train-2xh200.log").read_text().splitlines())
    run = st.new_run("deepspeed", "deepspeed", ["train"], {})
    run.step("train").status = st.DONE
    run.step("train").results = parser.results()
    run.save()
    app = WizardApp(session(tmp_path / "work"))
    async with app.run_test(size=(120, 40)) as pilot:
        app.session.run = run
        app.open("results")
        await pilot.pause(0.3)
        loss = app.screen.query_one("#loss-train", TrainingChart)
        rate = app.screen.query_one("#rate-train", TrainingChart)
        shown = " ".join(str(w.render()) for w in app.screen.query(Static))
        drawn = str(loss.render())
    assert [y for _, y in loss.points()] == [0.0335, 0.0117, 0.0076, 0.0054, 0.004, 0.0031]
    assert rate.series.unit == "samples/s" and len(rate.points()) == 6
    assert "train: loss by step" in drawn
    assert "train: 300 steps in 12.3 s: 781.5 samples/s" in shown


async def test_a_crashed_check_is_marked_and_the_summary_says_so(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import checks
    from checks.base import Check, Group

    def broken(ctx):  # type: ignore[no-untyped-def]
        raise KeyError("driver_version")

    monkeypatch.setitem(
        checks.REGISTRY, "rdma", Check("rdma", "RDMA network", Group.COMMUNICATION, broken)
    )
    app = WizardApp(session(tmp_path / "work"))
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        await pilot.pause(0.1)
        assert "1 check(s) crashed (rdma): a bug in the wizard" in text(app, "#summary")
        tree = app.screen.query_one("#checks", Tree)
        (leaf,) = [n for g in tree.root.children for n in g.children if n.data == "rdma"]
        assert str(leaf.label).startswith("☠ RDMA network")
        tree.move_cursor(leaf)
        await pilot.pause(0.1)
        shown = Console(width=200, record=True, file=io.StringIO())
        shown.print(app.screen.query_one("#detail-text", Static).content)
        assert 'raise KeyError("driver_version")' in shown.export_text()


async def test_a_saved_run_whose_answers_no_longer_fit_is_named_not_offered(
    tmp_path: Path,
) -> None:
    stuck = st.new_run("demo", str(DEMO), ["prepare", "wait", "perf"], {"nosuchkey": "1"})
    stuck.step("prepare").status = st.FAILED
    stuck.save()
    app = WizardApp(session(tmp_path / "work"))
    async with app.run_test(size=(120, 40)) as pilot:
        await pilot.pause(0.1)
        note = str(app.screen.query_one(".stuck-run", Static).render())
        assert f"Run {stuck.run_id}: cannot continue, its answers no longer fit" in note
        assert f"drop it with: rm -r {stuck.folder}" in note
        assert not app.screen.query("#resume")  # nothing to resume: it is not offered


async def test_the_log_follows_a_flood_to_its_last_line(tmp_path: Path) -> None:
    """300,000 lines, then a failure: the failure panel opens under the log, which still
    shows the last line; after the user scrolls up it stays there, and End (the steps
    table focused) takes it back to the end, following."""
    from textual import events

    from wizard.app.widgets.log_pane import LogPane

    recipe = tmp_path / "flood.yaml"
    recipe.write_text("id: flood\ntitle: Flood\nsteps:\n  - id: seq\n    run: seq 300000; exit 1\n")
    app = WizardApp(Session(lambda: load_snapshot(H100), recipe_name=str(recipe)))
    async with app.run_test(size=(120, 40)) as pilot:
        await check_machine(pilot, app)
        await pilot.press("n")
        await until(pilot, lambda: app.session.run is not None and app.work is None, 120)
        await pilot.pause(0.5)
        log = app.screen.query_one("#log", LogPane)
        assert log.lines[-1] == "300000"
        assert log.scroll_y == log.max_scroll_y > 0
        assert log.render_line(log.scrollable_content_region.height - 1).text.strip() == "300000"

        log.post_message(events.MouseScrollUp(log, 0, 0, 0, 0, 0, False, False, False))
        await pilot.pause(0.3)
        assert log.scroll_y < log.max_scroll_y and not log.auto_scroll
        log.feed(["more"])
        await pilot.pause(0.2)
        assert log.scroll_y < log.max_scroll_y  # the user's place is kept
        assert isinstance(app.focused, DataTable)
        await pilot.press("end")
        await pilot.pause(0.2)
        assert log.scroll_y == log.max_scroll_y and log.auto_scroll
