"""Fixes: tick the fixes to apply, see their exact commands, confirm, watch them run, and see
their checks run again."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Header, SelectionList, Static
from textual.widgets.selection_list import Selection

from checks.base import Finding, Fix, Status
from wizard.app.messages import FixesEnded, FixWalked, WorkDone, Working
from wizard.app.screens.base import WizardScreen
from wizard.app.widgets.commands import command_block
from wizard.app.widgets.log_pane import LogPane
from wizard.app.widgets.tick_list import TickList
from wizard.engine import marks
from wizard.engine.doctor import walk
from wizard.engine.doctor.fixes import Applied, Recheck, apply, doctor_again, sudo_path
from wizard.engine.recipes.runner import StepRunner


def to_do(fixes: int, by_hand: int) -> str:
    """What the user can do with these fixes: tick some, or run them by hand."""
    if not fixes:
        return "Nothing to fix."
    if by_hand == fixes:
        return (
            f"{'This fix is' if fixes == 1 else f'All {fixes} fixes are'} to be done by hand "
            "(none can run from here): do each where it says; c copies its commands."
        )
    hand = (
        f" {by_hand} of them are to be done by hand (c copies their commands)." if by_hand else ""
    )
    return "Tick the fixes to apply (space), then press a. Nothing runs without asking." + hand


def said(walked: walk.Walked) -> Text:
    """One line on what became of a fix: fixed, stopped, or still failing, with its log."""
    finding, applied = walked.offer.finding, walked.applied
    ok, failed = marks.FINDING[Status.OK], marks.FINDING[Status.FAIL]
    if walked.fixed_before is not None:
        now = walked.fixed_before
        return Text.assemble(
            (ok.sign, ok.colour),
            f" {finding.id} is {now.status.value} now, by an earlier fix: {now.summary}",
        )
    assert applied is not None  # the screen decides only to apply
    after = applied.after
    if applied.outcome.cancelled:
        why = f"stopped; the system is as the commands left it. Log: {applied.log}"
    elif applied.fixed and after:
        return Text.assemble(
            (ok.sign, ok.colour), f" {finding.id} is {after.status.value} now: {after.summary}"
        )
    elif applied.outcome.ok and after:
        why = f"still {after.status.value}: {after.summary}. Log: {applied.log}"
    else:
        why = f"failed: exit code {applied.outcome.exit_code}. Log: {applied.log}"
    return Text.assemble((failed.sign, failed.colour), f" {finding.id}: {why}")


class FixesScreen(WizardScreen[bool]):
    """Dismissed with whether a fix ran (the checks screen then runs the doctor again)."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "apply", "Apply ticked"),
        Binding("c", "copy", "Copy commands"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.offers: dict[str, walk.Offer] = {}  # by finding id
        self.entries: dict[str, tuple[Finding, Fix]] = {}
        self.why_not: dict[str, str] = {}  # why a fix cannot run here, by entry
        self.runner: StepRunner | None = None  # while fixes run
        self.ran = False  # a fix ran: the checks must look again
        self.said: list[Text] = []  # what became of each fix, as the worker posted it
        self.fixed: set[str] = set()  # the findings said to be fixed
        self.shown: Fix | None = None  # the fix whose commands are on the right

    def compose(self) -> ComposeResult:
        yield Header()
        with Vertical(classes="panes"):  # stacked: the fixes' names stay whole
            yield TickList(id="fixlist")
            with VerticalScroll(id="commands"):
                yield Static(id="command-text")
                yield Static(id="command-lines")
                yield Static(id="command-notes")
        yield LogPane(id="fixlog", classes="hidden")
        yield Static(id="fixstatus")
        yield Footer()

    def on_mount(self) -> None:
        report = self.wizard.session.report
        assert report is not None
        selections = []
        for offer in walk.offers(report, sudo=sudo_path()):
            self.offers[offer.finding.id] = offer
            for index, choice in enumerate(offer.options):
                key = f"{offer.finding.id}:{index}"
                self.entries[key] = (offer.finding, choice.fix)
                if not choice.usable:
                    self.why_not[key] = choice.why
                # Short, so that names stay whole: the pane below says why one cannot run.
                name = choice.fix.label
                if not (choice.usable or choice.fix.manual):
                    name = f"{choice.fix.title} (not here)"
                # Not disabled: the cursor must reach it, to show its commands.
                ticked = choice is offer.default
                selections.append(Selection(f"{offer.finding.id}: {name}", key, ticked))
        fixlist = self.query_one("#fixlist", SelectionList)
        fixlist.add_options(selections)
        status = to_do(len(selections), len(self.why_not))
        if self.wizard.session.replay:
            status = "Replaying a snapshot: fixes are shown, but cannot run on this machine."
        self.query_one("#fixstatus", Static).update(Text(status))
        fixlist.focus()
        if selections:
            self._show(str(selections[0].value))

    def on_selection_list_selection_highlighted(
        self, event: SelectionList.SelectionHighlighted[str]
    ) -> None:
        self._show(event.selection.value)

    def on_selection_list_selection_toggled(
        self, event: SelectionList.SelectionToggled[str]
    ) -> None:
        key = event.selection.value
        if key in self.why_not and key in event.selection_list.selected:
            event.selection_list.deselect(key)
            self.notify(f"This fix {self.why_not[key]}: do it by hand (c copies it).")

    def _show(self, key: str) -> None:
        finding, fix = self.entries[key]
        text = Text.assemble((f"{finding.id}: ", "bold"), finding.summary)
        if self.offers[finding.id].blocking:
            text.append("\nThis blocks the target.", style="bold red")
        text.append("\n\n")
        text.append(fix.title, style="bold")
        self.shown = fix
        notes = Text()
        if key in self.why_not:
            notes.append(f"Do it by hand (c copies it): it {self.why_not[key]}.\n", style="yellow")
        if fix.changes:
            notes.append(f"changes: {fix.changes}", style="dim")
        if fix.needs_root:
            notes.append(
                "\nneeds root" + ("" if self._root() else ": runs with sudo"), style="yellow"
            )
        self.query_one("#command-text", Static).update(text)
        self.query_one("#command-lines", Static).update(command_block(fix.commands))
        self.query_one("#command-notes", Static).update(notes)

    def action_copy(self) -> None:
        """To the terminal's clipboard (OSC 52, as Textual copies; tmux needs set-clipboard)."""
        if self.shown is None:
            self.notify("Nothing to copy: there is no fix.")
            return
        self.app.copy_to_clipboard("".join(f"{c}\n" for c in self.shown.commands))
        self.notify(f"Copied the {len(self.shown.commands)} command(s) of {self.shown.title!r}.")

    def _root(self) -> bool:
        report = self.wizard.session.report
        return bool(report and report.facts().get("os.root"))

    def action_apply(self) -> None:
        if self.runner is not None:
            self.notify("Fixes are running.")
            return
        if self.wizard.session.replay:
            self.notify("Replaying a snapshot: nothing can be changed here.", severity="warning")
            return
        keys = list(self.query_one("#fixlist", SelectionList).selected)
        if not keys:
            self.notify(to_do(len(self.entries), len(self.why_not)))
            return
        chosen = [self.entries[k] for k in keys]
        body = Text()
        for finding, fix in chosen:
            body.append(f"{finding.id}: {fix.title}\n", style="bold")
            for command in fix.commands:
                body.append(f"  $ {command}\n")
        question = f"Run the commands of {len(chosen)} fix(es) on this machine?"

        def answered(yes: bool | None) -> None:
            if yes:
                self.run_fixes(chosen)

        self.wizard.confirm(question, body, answered)

    def run_fixes(self, chosen: list[tuple[Finding, Fix]]) -> None:
        self.ran = True
        self.said, self.fixed = [], set()  # this run's
        self.runner = StepRunner(self.wizard.local)
        # Said before the worker starts: a q pressed at once stops the fixes, too.
        self.app.post_message(Working(self.runner.cancel, time.monotonic(), what="fix"))
        log = self.query_one("#fixlog", LogPane)
        log.remove_class("hidden")
        self.query_one("#fixstatus", Static).update(Text("Running… (q stops and quits)"))
        session = self.wizard.session
        recheck = doctor_again(session.host_factory, session.target)
        self.apply_in_thread(chosen, self.runner, recheck, log.feed)

    @work(thread=True, exclusive=True, group="fixes")
    def apply_in_thread(
        self,
        chosen: list[tuple[Finding, Fix]],
        runner: StepRunner,
        recheck: Recheck,
        feed: Callable[[list[str]], None],
    ) -> None:
        """The ticked fixes through the engine's walker, each one's outcome posted; the app
        hears when they have ended (WorkDone), however they end. `feed` is the log pane's
        buffer, which any thread may fill."""
        # A finding with several fixes ticked: each is tried in turn until one fixes it.
        picks: dict[str, list[Fix]] = {}
        for finding, fix in chosen:
            picks.setdefault(finding.id, []).append(fix)
        queue = [self.offers[f.id] for f, _ in chosen]

        def decide(offer: walk.Offer) -> walk.Decision:
            fix = picks[offer.finding.id].pop(0)
            feed([f"── {offer.finding.id}: {fix.title}", *(f"$ {c}" for c in fix.commands)])
            return fix

        def apply_fix(finding: Finding, fix: Fix) -> Applied:
            return apply(finding, fix, on_lines=feed, runner=runner, recheck=recheck)

        try:
            for walked in walk.walk(lambda: queue, decide, apply_fix):
                self.post_message(FixWalked(walked))
        finally:
            self.post_message(FixesEnded())
            self.app.post_message(WorkDone())

    def on_fix_walked(self, message: FixWalked) -> None:
        walked = message.walked
        finding_id = walked.offer.finding.id
        if finding_id not in self.fixed:  # told so already
            self.said.append(said(walked))
        if walked.fixed:
            self.fixed.add(finding_id)

    def on_fixes_ended(self, message: FixesEnded) -> None:
        self.runner = None
        text = Text("\n").join([*self.said, Text("Press escape: the checks run again.")])
        self.query_one("#fixstatus", Static).update(text)

    def on_unmount(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def action_back(self) -> None:
        """Back to the checks, which run again when a fix ran."""
        if self.runner is not None:
            self.notify("A fix is running: wait for it, or press q to stop it and quit.")
            return
        self.dismiss(self.ran)
