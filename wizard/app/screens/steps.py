"""Steps: the recipe's steps with status, elapsed time and progress, and a live log that
follows the output; cancel, retry, skip and run from here. The run is on this machine,
across the session's hosts over SSH, or on a Slurm allocation: held for each run (asked for
again by a retry), its nodes checked first, given back when the run ends or the app quits."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any, ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import DataTable, Footer, Header, Input, ProgressBar, Static

from wizard.app.app import describe
from wizard.app.messages import (
    HostsFound,
    HostsJudged,
    RunEnded,
    StepFinished,
    StepSkipped,
    StepStarted,
    WorkDone,
    Working,
)
from wizard.app.screens.base import WizardScreen
from wizard.app.widgets.commands import command_block
from wizard.app.widgets.log_pane import LogPane
from wizard.engine.doctor.diagnosis import Diagnosis
from wizard.engine.hosts.across import ClusterError
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.run_across import Across, Verdict, over_ssh
from wizard.engine.hosts.slurm import SlurmError
from wizard.engine.hosts.slurm_run import Hold, Released, launch_on, over_slurm, why_it_failed
from wizard.engine.hosts.ssh import SshConfigMissing
from wizard.engine.marks import STEP
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.engine.recipes.hints import likely_cause
from wizard.engine.recipes.recipe import Step
from wizard.engine.recipes.run import (
    UNSAVED_RUN,
    Cancelled,
    ParamError,
    execute,
    failing_requirements,
    not_wanted,
    recipe_facts,
    resolve,
    start_run,
)
from wizard.engine.recipes.runner import Outcome, StepRunner
from wizard.paths import UnusableFolder

MARKS = {status: (mark.sign, mark.colour) for status, mark in STEP.items()}


RUN_KEYS = {"cancel", "retry", "skip", "from_here"}
LOG_KEYS = {"follow", "search", "first_error", "log_end"}
SKIPPABLE = {st.FAILED, st.CANCELLED}


def clock(seconds: float | None) -> str:
    if seconds is None:
        return ""
    return f"{int(seconds) // 60}:{int(seconds) % 60:02d}"


def verdict_lines(verdict: Verdict) -> list[str]:
    """What stops a run across the hosts, or would without force (as `wizard run --hosts`
    says it)."""
    lines = []
    for host in verdict.hosts:
        if host.error is not None:
            lines.append(f"{host.label} is unreachable: {host.error}")
        lines += [f"{host.label}: {f.id}: {f.summary}" for f in host.failing]
    for diff in verdict.blocking:
        shown = ", ".join(f"{k}={v}" for k, v in diff.values.items())
        lines.append(f"{diff.fact} differs: {shown} ({diff.why})")
    return lines


def released_lines(released: Released) -> list[str]:
    """What giving back a Slurm allocation did (as `wizard run --slurm` says it)."""
    lines = []
    if released.steps:
        lines.append(f"Cancelled the job steps left running: {', '.join(released.steps)}")
    if released.job_id:
        lines.append(f"Gave back Slurm job {released.job_id}.")
    return lines


def ranks_lines(verdict: Verdict) -> list[str]:
    """The ranks each host takes, and what a host with one GPU means for the run."""
    lines = [f"{h.label}: {h.slots} rank(s), {h.target}" for h in verdict.hosts]
    return lines + [
        f"note: {label} has one GPU: FlagCX falls back to host-based communication between "
        "hosts (correct, much slower; GPU utilisation stays near 0%)."
        for label in verdict.one_gpu
    ]


class Posting:
    """The run's listener, called from the worker thread: each event a message to the
    screen; the log's lines straight into the log pane's buffer (`feed`, which any thread
    may call), a message a line being too slow for a build's flood."""

    def __init__(self, screen: StepsScreen, feed: Callable[[list[str]], None]) -> None:
        self.screen, self.lines = screen, feed

    def step_started(self, index: int, total: int, step: Step, command: str) -> None:
        # Into the log here, before the step's first line (a message would come after it).
        self.lines([f"── {step.title} ({step.id})", *(f"$ {c}" for c in command.splitlines())])
        self.screen.post_message(StepStarted(step))

    def step_skipped(self, index: int, total: int, step: Step, reason: str) -> None:
        self.screen.post_message(StepSkipped(step))

    def step_finished(self, step: Step, result: st.StepState, outcome: Outcome) -> None:
        self.screen.post_message(StepFinished(step, result, outcome))


class StepsScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("c", "cancel", "Cancel"),
        Binding("r", "retry", "Retry"),
        Binding("s", "skip", "Skip"),
        # Listed under ? and in the palette; the footer keeps the keys that move you on.
        Binding("h", "from_here", "Run from here", show=False),
        Binding("f", "follow", "Follow the log", show=False),
        # Before the table's own End (its last row): the log's end is what End is for here.
        Binding("end", "log_end", "End of the log", show=False, priority=True),
        Binding("slash", "search", "Search the log", show=False),
        Binding("e", "first_error", "First error", show=False),
        Binding("n", "results", "Results"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.recipe: recipes.Recipe | None = None
        self.values: dict[str, Any] = {}
        self.runner: StepRunner | None = None
        self.across: Across | None = None  # a run across the session's hosts
        self.hold: Hold | None = None  # the Slurm allocation, while asked for or held
        self.judging = False  # the hosts' doctor runs, for a run across them
        self.pending: str | None = None  # where a run waiting for its nodes starts
        self.unforced: list[str] = []  # what the hosts fail that the recipe requires
        self.prepared = False  # the run is saved and its table shown
        self.running = False
        self.current: str | None = None
        self.started_at = 0.0

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="panes"):
            table: DataTable[Any] = DataTable(id="steps-table", cursor_type="row")
            yield table
            with VerticalScroll(id="plan", classes="hidden"):  # a replay's plan, wrapped
                yield Static(id="plan-text")
            with Vertical(id="steps-side"):
                yield LogPane(id="log")
                yield Static(id="failure", classes="hidden")
                yield Input(
                    placeholder="search the log, enter for the next match",
                    id="search",
                    classes="hidden",
                )
        yield ProgressBar(id="progress", show_eta=False)
        yield Static(id="stepstatus")
        yield Footer()

    def on_resize(self) -> None:
        # Below 100 columns the step titles would be cut beside the log: stack them.
        self.query_one(".panes").set_class(self.size.width < 100, "narrow")

    def on_mount(self) -> None:
        self.set_interval(0.5, self.tick)
        session = self.wizard.session
        if not self.load():
            self._no_bar()
        elif session.slurm is not None:  # on its nodes: each node's doctor first
            self.hold_nodes(None)
        elif session.hosts:  # across them: every host's doctor first, as `run --hosts`
            assert self.recipe is not None
            self.status(f"Checking {len(session.hosts)} hosts over SSH for a run across them…")
            answers = dict(session.answers)
            self.judging = True
            self.judge_hosts(self.recipe, session.hosts, session.ssh_config, answers)
        else:
            self.begin(None)

    def begin(self, across: Across | None) -> None:
        """Show the run's steps and start it, on this machine or across the hosts."""
        self.across = across
        if self.prepare():
            self.query_one("#steps-table", DataTable).focus()
            self.maybe_run(None)
            return
        if self.wizard.session.run is None:
            self._no_bar()
        self.give_back()

    def _no_bar(self) -> None:
        """Nothing will run: no busy-looking bar."""
        self.query_one("#progress", ProgressBar).display = False

    @work(thread=True, exclusive=True, group="hosts")
    def judge_hosts(
        self,
        recipe: recipes.Recipe,
        specs: list[HostSpec],
        ssh_config: str | None,
        answers: dict[str, str],
    ) -> None:
        try:
            verdict, across = over_ssh(
                recipe, specs, ssh_config=ssh_config, answers=answers, run_dir=UNSAVED_RUN,
                force=True,
            )  # fmt: skip
        except SshConfigMissing as exc:
            self.post_message(HostsJudged(None, None, str(exc)))
            return
        self.post_message(HostsJudged(verdict, across))

    def hold_nodes(self, start: str | None) -> None:
        """A run on Slurm: the allocation asked for (or the one the app runs inside), its
        nodes checked; the run then starts from `start`."""
        session = self.wizard.session
        assert self.recipe is not None and session.slurm is not None
        self.hold, self.judging, self.pending = Hold(session.slurm, session.slurm_wait), True, start
        asked = session.slurm.nodes
        self.status(
            f"Asking salloc for {asked} node(s) (it may wait {session.slurm_wait:g} s; c stops)…"
            if asked
            else "Reading the allocation's nodes from Slurm…"
        )
        self.refresh_bindings()
        self.judge_slurm(self.recipe, self.hold, dict(session.answers))

    @work(thread=True, exclusive=True, group="hosts")
    def judge_slurm(self, recipe: recipes.Recipe, hold: Hold, answers: dict[str, str]) -> None:
        """The allocation and its nodes' doctor; given back at once unless a run can start."""
        verdict, across, why = None, None, ""
        try:
            job = hold.open()
            self.post_message(HostsFound(job.nodes, job.describe()))
            verdict, across = over_slurm(
                recipe, hold, answers=answers, run_dir=UNSAVED_RUN, force=True
            )
        except SlurmError as exc:  # refused, pending too long, or stopped by quitting
            why = str(exc)
        finally:
            if across is None:
                hold.close()
        self.post_message(HostsJudged(verdict, across, why))

    def on_hosts_found(self, message: HostsFound) -> None:
        self.query_one("#log", LogPane).feed([message.note])
        self.status(f"{message.note}: the doctor on every node through srun…")

    def on_hosts_judged(self, message: HostsJudged) -> None:
        self.judging = False
        self.refresh_bindings()
        verdict, across = message.verdict, message.across
        if across is None or verdict is None:  # unreachable, or no host was tried
            self.hold = None
            if not self.prepared:
                self._no_bar()
            said = [message.why]
            if verdict is not None:
                key = "ctrl+s" if self.wizard.session.slurm else "ctrl+o"
                hint = f"The start screen's {key} shows every host's checks."
                said = [*verdict_lines(verdict), hint]
            self.status(Text("\n".join(["Not started:", *said]), style="red"))
            return
        self.query_one("#log", LogPane).feed(ranks_lines(verdict))
        if not self.prepared:  # the first run: asked first what the hosts fail
            stops = replace(verdict, force=False).stops
            self.unforced = verdict_lines(verdict) if stops else []
            self.begin(across)
            return
        run = self.wizard.session.run  # a run again, on a new allocation's nodes
        assert run is not None
        self.across = across
        if self.resolve_values(run.folder):
            across.run_dir = run.folder
            self.go(self.pending)
        else:
            self.give_back()

    def give_back(self) -> None:
        """The allocation held for a run that does not start now; a run asks again."""
        if self.hold is not None:
            self.release(self.hold, self.query_one("#log", LogPane).feed)
            self.hold = None

    @work(thread=True, group="slurm")
    def release(self, hold: Hold, feed: Callable[[list[str]], None]) -> None:
        feed(released_lines(hold.close()))

    def on_unmount(self) -> None:
        # Leaving the app by any way (ctrl+q, a closed terminal) stops the running step; its
        # state is saved as cancelled, and its processes end with it. A Slurm allocation
        # being asked for or checked is stopped (its worker gives it back); one held
        # between runs is given back here.
        if self.running and self.runner is not None:
            self.runner.cancel()
        elif self.hold is not None:
            self.hold.stop()
            if not self.judging:
                self.hold.close()

    # -- preparation ------------------------------------------------------------------------

    def status(self, text: str | Text) -> None:
        self.query_one("#stepstatus", Static).update(text if isinstance(text, Text) else Text(text))

    def load(self) -> bool:
        """The recipe, when it loads and is to run here (a replay shows its plan)."""
        session = self.wizard.session
        try:
            self.recipe = recipes.load(session.recipe_name)
        except recipes.RecipeError as exc:
            self.status(f"Cannot load the recipe: {exc}")
            return False
        assert session.report is not None
        if session.replay:
            self.show_plan(session.report)
            return False
        return True

    def resolve_values(self, folder: Path) -> bool:
        """The run's values, every host's too; on Slurm, with the launch chosen (and said
        in the log). False, said, when one is missing."""
        session, across = self.wizard.session, self.across
        report = session.report
        assert self.recipe is not None and report is not None
        facts = recipe_facts(report)
        try:
            self.values = resolve(
                self.recipe, facts, session.answers, folder,
                cluster=across.cluster if across else None,
            )  # fmt: skip
            if across:  # every host's values, now: not halfway through a build
                across.local = self.values
                across.check_values(session.answers)
        except (ParamError, ClusterError) as exc:
            self.status(f"{exc}. Go back (escape twice) and add it under More parameters.")
            return False
        if across and self.hold is not None:
            launch = launch_on(self.recipe, across, self.values, session.answers, facts)
            self.query_one("#log", LogPane).feed([launch.describe()])
        return True

    def prepare(self) -> bool:
        session, across = self.wizard.session, self.across
        assert self.recipe is not None
        new = session.run is None or session.run.recipe != self.recipe.id
        folder = UNSAVED_RUN if new or session.run is None else session.run.folder
        if not self.resolve_values(folder):
            return False
        if new:  # saved only now that it starts: a parameter error above saves nothing
            try:
                session.run = start_run(self.recipe, session.answers, self.values)
            except UnusableFolder as exc:
                self.status(f"Nothing was run: {exc}")
                return False
        run = session.run
        assert run is not None
        run.answers = dict(session.answers)
        if across:
            across.run_dir = run.folder
        table = self.steps_table()
        for step in self.recipe.steps:
            table.add_row(*self._cells(step), key=step.id)
        self.query_one("#progress", ProgressBar).update(total=len(self.recipe.steps))
        self._progress()
        shown = " ".join(
            f"{k}={describe(v)}" for k, v in self.values.items() if k in self.recipe.params
        )
        where = f" across {', '.join(h.label for h in across.cluster.hosts)}" if across else ""
        self.status(f"Run {run.run_id}{where}: {shown}")
        self.prepared = True
        return True

    def steps_table(self) -> DataTable[Any]:
        table = self.query_one("#steps-table", DataTable)
        table.add_column("", key="mark", width=1)
        table.add_column("time", key="time", width=5)
        table.add_column("step", key="step")
        return table

    def show_plan(self, report: Diagnosis) -> None:
        """A replay: the recorded machine is elsewhere, so its plan is shown and nothing runs
        (not even a step's done_if probe, which would look at this machine). In place of the
        table and the log: each step, why it would be skipped, and its commands, wrapped."""
        session = self.wizard.session
        assert self.recipe is not None
        missing: list[str] = []
        try:
            values = resolve(
                self.recipe, recipe_facts(report), session.answers, Path("<run>"), missing=missing
            )
        except ParamError as exc:
            self.status(str(exc))
            return
        self.values = values
        parts: list[Text | Table] = []
        for number, step in enumerate(self.recipe.steps, 1):
            if skipped := not_wanted(step, values):
                parts.append(Text(f"- {number}. {step.title}  (skipped: {skipped})"))
                continue
            parts.append(Text(f"· {number}. {step.title}", style="bold"))
            try:
                script = recipes.render(step.script(values), values, quote=True)
            except recipes.NoCommand as exc:
                parts.append(Text(f"  ({exc})", style="yellow"))
                continue
            parts.append(command_block(script.splitlines()))
        self.query_one("#plan-text", Static).update(Group(*parts))
        for hidden in ("#steps-table", "#steps-side"):
            self.query_one(hidden).display = False
        plan = self.query_one("#plan")
        plan.remove_class("hidden")
        plan.focus()
        note = f" Missing: {', '.join(missing)}." if missing else ""
        self.status(
            f"Replaying {session.replay}: the plan for the machine it recorded. Nothing is "
            f"built or run here; run `wizard` on that machine to do it.{note}"
        )

    def _cells(self, step: Step) -> tuple[Text, str, Text]:
        run = self.wizard.session.run
        saved = run.steps.get(step.id, st.StepState()) if run else st.StepState()
        mark, style = MARKS[saved.status]
        return Text(mark, style=style), clock(saved.duration_s), Text(step.title)

    def _row(self, step: Step) -> None:
        mark, elapsed, _ = self._cells(step)
        table = self.query_one("#steps-table", DataTable)
        table.update_cell(step.id, "mark", mark)
        table.update_cell(step.id, "time", elapsed)
        self._progress()

    def _progress(self) -> None:
        run = self.wizard.session.run
        if run is None:
            return
        finished = sum(s.status in st.FINISHED for s in run.steps.values())
        self.query_one("#progress", ProgressBar).update(progress=finished)

    # -- running ----------------------------------------------------------------------------

    def maybe_run(self, start: str | None) -> None:
        report = self.wizard.session.report
        assert self.recipe is not None and report is not None
        failing = [f"{f.id}: {f.summary}" for f in failing_requirements(self.recipe, report)]
        failing += self.unforced  # the hosts', for a run across them
        if not failing:
            self.go(start)
            return
        body = Text("\n".join(failing))

        def answered(yes: bool | None) -> None:
            if yes:
                self.go(start)
            else:
                self.status("Not started. Press r to start anyway, or escape for the checks.")
                self.give_back()

        self.wizard.confirm("These checks fail; run the steps anyway?", body, answered)

    def go(self, start: str | None) -> None:
        if self.running or self.judging or self.recipe is None or self.wizard.session.replay:
            return
        if self.wizard.session.slurm is not None and self.hold is None:
            self.hold_nodes(start)  # each run on an allocation of its own, as `resume` does
            return
        run = self.wizard.session.run
        assert run is not None
        self.runner = StepRunner(self.wizard.local)
        self.running = True
        self.app.post_message(Working(self.runner.cancel, time.monotonic()))
        self.query_one("#failure", Static).add_class("hidden")
        where = f" from {start}" if start else ""
        self.status(f"Run {run.run_id}: running{where}… (c cancels)")
        self.refresh_bindings()
        listener = Posting(self, self.query_one("#log", LogPane).feed)
        self.execute_steps(
            self.recipe, run, dict(self.values), listener, self.runner, start, self.across,
            self.hold,
        )  # fmt: skip

    @work(thread=True, exclusive=True, group="steps")
    def execute_steps(
        self,
        recipe: recipes.Recipe,
        run: st.RunState,
        values: dict[str, Any],
        listener: Posting,
        runner: StepRunner,
        start: str | None,
        across: Across | None,
        hold: Hold | None,
    ) -> None:
        """The steps; on Slurm, then the job steps left cancelled and the allocation given
        back, however the run ended."""
        ok = False
        try:
            if across:  # the hosts kept with the run, so that a resume continues on them
                run.cluster = across.cluster.to_dict()
                run.save()
                listener.lines(across.source_notes())
            ok = execute(recipe, run, values, listener, start=start, runner=runner, across=across)
            said = (
                "All steps done. Press n for the results."
                if ok
                else "A step failed: r runs it again, s skips it, h runs from the highlighted step."
            )
        except Cancelled as stopped:
            said = f"Cancelled during {stopped}; its processes were ended. r resumes."
        except st.RunBusy as exc:
            said = str(exc)
        finally:
            if hold is not None and hold.job is not None:
                note = None if ok else why_it_failed(hold.job.job_id, run)
                listener.lines([*([note] if note else []), *released_lines(hold.close())])
        self.post_message(RunEnded(said))

    def on_run_ended(self, message: RunEnded) -> None:
        self.running = False
        self.hold = None  # given back by the run's worker
        self.app.post_message(WorkDone())
        self.status(message.said)
        self.refresh_bindings()  # c goes, r and s come as they apply

    def on_step_skipped(self, message: StepSkipped) -> None:
        self._row(message.step)

    def on_step_started(self, message: StepStarted) -> None:
        step = message.step
        self.current, self.started_at = step.id, time.monotonic()
        if self.runner is not None:  # q asks first once this step has run a while
            self.app.post_message(Working(self.runner.cancel, self.started_at))
        self._row(step)
        self.query_one("#steps-table", DataTable).move_cursor(
            row=self.query_one("#steps-table", DataTable).get_row_index(step.id)
        )

    def on_step_finished(self, message: StepFinished) -> None:
        step, result, outcome = message.step, message.result, message.outcome
        self.current = None
        self._row(step)
        if result.status in (st.DONE, st.SKIPPED):
            return
        cause = likely_cause(outcome.tail)
        # What to do first, the tail last: the panel's height cuts its end, never the path.
        text = Text.assemble((f"{step.id} {result.status}: {result.reason}\n", "bold red"))
        text.append(f"full log: {result.log}\n")
        if cause:
            text.append(f"likely cause: {cause}\n", style="yellow")
        text.append("\n".join(outcome.tail[-8:]), style="dim")
        failure = self.query_one("#failure", Static)
        failure.update(text)
        failure.remove_class("hidden")

    def tick(self) -> None:
        if self.current is None:
            return
        elapsed = clock(time.monotonic() - self.started_at)
        self.query_one("#steps-table", DataTable).update_cell(self.current, "time", elapsed)

    # -- actions ----------------------------------------------------------------------------

    def action_cancel(self) -> None:
        if self.running and self.runner is not None:
            self.runner.cancel()
            self.status("Cancelling…")
        elif self.judging and self.hold is not None:  # salloc waiting, the nodes' doctor
            self.hold.stop()
            self.status("Stopping the wait for the Slurm nodes…")

    def action_retry(self) -> None:
        if not self.running and self.recipe is not None:
            self.go(None)

    def action_skip(self) -> None:
        run = self.wizard.session.run
        if self.running or run is None or self.recipe is None:
            return
        step_id = run.first_unfinished()
        if step_id is None:
            return
        saved = run.step(step_id)
        saved.status, saved.reason = st.SKIPPED, "skipped by you"
        run.save()
        self._row(self.recipe.steps[self.recipe.index(step_id)])
        self.go(None)

    def action_from_here(self) -> None:
        if self.running or self.recipe is None:
            return
        table = self.query_one("#steps-table", DataTable)
        step = self.recipe.steps[table.cursor_row]
        self.go(step.id)

    def action_follow(self) -> None:
        following = self.query_one("#log", LogPane).toggle_follow()
        self.notify("Following the log." if following else "Log paused; f follows again.")

    def action_log_end(self) -> None:
        self.query_one("#log", LogPane).action_scroll_end()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """Only the keys that do something now are shown (and run)."""
        if self.wizard.session.replay:  # nothing runs, and there is no log
            return action not in RUN_KEYS | LOG_KEYS
        if action == "log_end":  # in the search field, End moves its cursor
            return not isinstance(self.focused, Input)
        run = self.wizard.session.run
        left = run.first_unfinished() if run is not None else None
        if action == "cancel":
            return self.running or (self.judging and self.hold is not None)
        if action in RUN_KEYS and self.judging:  # the run waits for its hosts' doctor
            return False
        if action == "retry":  # also starts a run that was not started
            return not self.running and self.recipe is not None and left is not None
        if action == "skip":
            stopped = run is not None and left is not None
            return not self.running and stopped and run.step(left).status in SKIPPABLE
        if action == "from_here":
            return not self.running and self.recipe is not None and run is not None
        return True

    def action_search(self) -> None:
        search = self.query_one("#search", Input)
        search.remove_class("hidden")
        search.focus()

    def on_input_submitted(self, event: Input.Submitted) -> None:
        found = event.input.id == "search" and event.value
        if found and self.query_one("#log", LogPane).find(event.value) is None:
            self.notify(f"{event.value!r} is not in the log shown.")

    def action_first_error(self) -> None:
        if self.query_one("#log", LogPane).first_error() is None:
            self.notify("No error in the log shown.")

    def action_results(self) -> None:

        self.wizard.open("results")

    def action_back(self) -> None:
        search = self.query_one("#search", Input)
        if not search.has_class("hidden"):
            search.add_class("hidden")
            self.query_one("#steps-table", DataTable).focus()
            return
        if self.running:
            self.notify("A step is running: c cancels it first.")
            return
        self.app.pop_screen()
