"""Fixes: tick the fixes to apply, see their exact commands, confirm, watch them run, and see
their checks run again."""

from __future__ import annotations

import time
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.widgets import Footer, Header, SelectionList, Static
from textual.widgets.selection_list import Selection

from checks.base import Finding, Fix, Status
from wizard.app.screens.base import WizardScreen
from wizard.app.widgets.commands import command_block
from wizard.app.widgets.log_pane import LogPane
from wizard.app.widgets.tick_list import TickList
from wizard.engine.doctor.fixes import apply, choices, preferred, sudo_path
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


class FixesScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("a", "apply", "Apply ticked"),
        Binding("c", "copy", "Copy commands"),
        Binding("escape", "back", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[str, tuple[Finding, Fix]] = {}
        self.why_not: dict[str, str] = {}  # why a fix cannot run here, by entry
        self.runner: StepRunner | None = None
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
        facts = report.facts()
        root = bool(facts.get("os.root"))
        sudo = sudo_path()
        found = [
            f
            for f in report.findings
            if f.fixes and (report.is_blocking(f) or f.status in (Status.FAIL, Status.WARN))
        ]
        selections = []
        for finding in found:
            options = choices(finding, root=root, sudo=sudo)
            best = preferred(options, root=root) if report.is_blocking(finding) else None
            for index, choice in enumerate(options):
                key = f"{finding.id}:{index}"
                self.entries[key] = (finding, choice.fix)
                if not choice.usable:
                    self.why_not[key] = choice.why
                # Short, so that names stay whole: the pane below says why one cannot run.
                name = choice.fix.label
                if not (choice.usable or choice.fix.manual):
                    name = f"{choice.fix.title} (not here)"
                # Not disabled: the cursor must reach it, to show its commands.
                selections.append(Selection(f"{finding.id}: {name}", key, choice is best))
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
        text = Text.assemble(
            (f"{finding.id}: ", "bold"), finding.summary, "\n\n", (fix.title, "bold")
        )
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
        self.query_one("#fixlog", LogPane).remove_class("hidden")
        self.query_one("#fixstatus", Static).update(Text("Running… (q stops and quits)"))
        self.apply_in_thread(chosen)

    @work(thread=True, exclusive=True, group="fixes")
    def apply_in_thread(self, chosen: list[tuple[Finding, Fix]]) -> None:
        log = self.query_one("#fixlog", LogPane)
        self.runner = StepRunner(self.wizard.local)
        self.wizard.busy = lambda: self.runner is not None
        self.wizard.busy_since = time.monotonic()
        self.wizard.stop = self.runner.cancel
        done: set[str] = set()
        lines = []
        session = self.wizard.session
        try:
            for finding, fix in chosen:
                if finding.id in done:
                    continue
                log.feed([f"── {finding.id}: {fix.title}", *(f"$ {c}" for c in fix.commands)])
                result = apply(
                    finding,
                    fix,
                    on_lines=log.feed,
                    runner=self.runner,
                    verify_host=session.host_factory,
                    target=session.target,
                )
                if result.outcome.cancelled:
                    lines.append(
                        f"✗ {finding.id}: stopped; the system is as the commands "
                        f"left it. Log: {result.log}"
                    )
                    break
                if result.fixed and result.after:
                    done.add(finding.id)
                    lines.append(
                        f"✓ {finding.id} is {result.after.status.value} now: {result.after.summary}"
                    )
                else:
                    after = result.after
                    why = (
                        f"still {after.status.value}: {after.summary}"
                        if result.outcome.ok and after
                        else f"failed: exit code {result.outcome.exit_code}"
                    )
                    lines.append(f"✗ {finding.id}: {why}. Log: {result.log}")
        finally:
            self.runner = None
            session.stale = True
            self.wizard.from_thread(self._finished, lines)

    def _finished(self, lines: list[str]) -> None:
        text = Text("\n".join(lines) + "\nPress escape: the checks run again.")
        self.query_one("#fixstatus", Static).update(text)

    def on_unmount(self) -> None:
        if self.runner is not None:
            self.runner.cancel()

    def action_back(self) -> None:
        if self.runner is not None:
            self.notify("A fix is running: wait for it, or press q to stop it and quit.")
            return
        self.app.pop_screen()
