"""Checks: every check appears at once, grouped, and resolves live; select one for details."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.console import Group
from rich.table import Table
from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Footer, Header, Static, Tree
from textual.widgets.tree import TreeNode

from checks.base import Finding, Status
from wizard.app.messages import DoctorDone, FindingResolved
from wizard.app.screens.base import WizardScreen
from wizard.app.widgets.commands import command_block
from wizard.engine.doctor.diagnosis import checks_by_group, run_doctor
from wizard.engine.marks import FINDING
from wizard.engine.recipes import recipe as recipes
from wizard.host import Host

MARKS = {status: (mark.sign, mark.colour) for status, mark in FINDING.items()}
SPINNER = "⠋⠙⠹⠸⠼⠴⠦⠧⠇⠏"


def check_groups() -> dict[str, list[tuple[str, str]]]:
    """The checks as the tree shows them: each group's (id, title), in the engine's order
    (every check declares its group, so none is left out)."""
    return {
        group.value: [(c.id, c.title) for c in entries]
        for group, entries in checks_by_group().items()
        if entries
    }


def label(title: str, finding: Finding | None, frame: int = 0, blocking: bool = False) -> Text:
    if finding is None:
        return Text.assemble(
            (SPINNER[frame % len(SPINNER)], "cyan"), f" {title}", ("  checking…", "dim")
        )
    mark, style = MARKS[finding.status]
    return Text.assemble((mark, style), " ", (title, "bold" if blocking else ""))


def details(finding: Finding, blocking: bool) -> Group:
    mark, style = MARKS[finding.status]
    parts: list[Text] = [
        Text.assemble((f"{mark} {finding.title}", f"bold {style}"), f"  ({finding.id})"),
        Text(finding.summary),
    ]
    if blocking:
        parts.append(Text("This blocks the target.", style="bold red"))
    more = [d for d in finding.details if d not in finding.summary]  # not said twice
    if more:
        parts.append(Text("\n".join(more), style="dim"))
    if finding.facts:
        parts.append(Text("\n".join(f"{k} = {v}" for k, v in finding.facts.items()), style="cyan"))
    if finding.traceback:
        parts.append(Text(finding.traceback.rstrip(), style="magenta"))
    return Group(*[p for part in parts for p in (part, Text(""))][:-1])


def fix_commands(finding: Finding) -> Group:
    """The fixes, every command whole (wrapped under its `$`, never cut off)."""
    parts: list[Text | Table] = []
    for fix in finding.fixes:
        parts += [Text(f"Fix: {fix.label}", style="bold"), command_block(fix.commands), Text("")]
    return Group(*parts[:-1])


class ChecksScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("f", "fixes", "Fixes"),
        Binding("n", "steps", "Build & test"),
        Binding("r", "recheck", "Check again"),
        Binding("escape", "app.pop_screen", "Back"),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.nodes: dict[str, TreeNode[str]] = {}
        self.found: dict[str, Finding] = {}
        self.frame = 0
        self.titles: dict[str, str] = {}

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(classes="panes"):
            tree: Tree[str] = Tree("Checks", id="checks")
            tree.show_root = False
            yield tree
            with VerticalScroll(id="details"):
                yield Static(
                    Text("Select a check to see its details, facts and fixes."), id="detail-text"
                )
                yield Static(id="detail-fixes")
        yield Static(Text("Checking this machine…"), id="summary")
        yield Footer()

    def on_mount(self) -> None:
        tree = self.query_one("#checks", Tree)
        for group, entries in check_groups().items():
            branch = tree.root.add(group, expand=True)
            for check_id, title in entries:
                self.titles[check_id] = title
                self.nodes[check_id] = branch.add_leaf(label(title, None), data=check_id)
        self.set_interval(0.1, self.spin)
        tree.focus()
        self.start()

    def start(self) -> None:
        """Run the doctor (again): the diagnosis it replaces no longer stands meanwhile."""
        self.found.clear()
        self.wizard.session.report = None
        for check_id, node in self.nodes.items():
            node.set_label(label(self.titles[check_id], None))
        self.query_one("#summary", Static).update(Text("Checking this machine…"))
        session = self.wizard.session
        self.check(session.host_factory, session.target, session.recipe_name)

    @work(thread=True, exclusive=True, group="doctor")
    def check(self, host_factory: Callable[[], Host], target: str | None, recipe: str) -> None:
        """Each finding posted as it comes (from the doctor's own threads), then the whole
        diagnosis, judged by the recipe's own requirements."""
        report = run_doctor(
            host_factory(), target, on_finding=lambda f: self.post_message(FindingResolved(f))
        )
        try:
            loaded = recipes.load(recipe)
        except recipes.RecipeError:
            pass  # the steps screen says why; the target's checks judge meanwhile
        else:
            report.aim_at(f"the {loaded.id} recipe", loaded.requires)
        self.post_message(DoctorDone(report))

    def spin(self) -> None:
        self.frame += 1
        for check_id, node in self.nodes.items():
            if check_id not in self.found:
                node.set_label(label(self.titles[check_id], None, self.frame))

    @property
    def torn_down(self) -> bool:
        """The doctor's threads may still report while the app is closing this screen."""
        return not self.query("#checks")

    def on_finding_resolved(self, message: FindingResolved) -> None:
        if self.torn_down:
            return
        finding = message.finding
        self.found[finding.id] = finding
        node = self.nodes.get(finding.id)
        if node is not None:
            node.set_label(label(finding.title, finding))
        self._show_selected()

    def on_doctor_done(self, message: DoctorDone) -> None:
        report = message.report
        self.wizard.session.report = report
        if self.torn_down:
            return
        for finding in report.findings:
            node = self.nodes.get(finding.id)
            if node is not None:
                node.set_label(label(finding.title, finding, blocking=report.is_blocking(finding)))
        first = report.blocking[0] if report.blocking else report.findings[0]
        tree = self.query_one("#checks", Tree)
        if first.id in self.nodes and (tree.cursor_node is None or tree.cursor_node.data is None):
            tree.move_cursor(self.nodes[first.id])
        self._show_selected()
        blocking = report.blocking
        counts = ", ".join(
            f"{sum(f.status is s for f in report.findings)} {s.value}"
            for s in Status
            if any(f.status is s for f in report.findings)
        )
        if blocking:
            text = Text.assemble(
                (f"{len(blocking)} problem(s) block {report.goal_name}: ", "bold red"),
                ", ".join(f.id for f in blocking),
                f".  ({counts})  Press f for fixes, or n to build anyway.",
            )
        else:
            text = Text.assemble(
                (f"Nothing blocks {report.goal_name}. ", "bold green"),
                f"({counts})  Press n to build and test.",
            )
        if crashed := report.crashed:
            text.append(
                f"\n{len(crashed)} check(s) crashed ({', '.join(f.id for f in crashed)}): a bug "
                "in the wizard; select it for the traceback to report.",
                style="bold magenta",
            )
        self.query_one("#summary", Static).update(text)

    def on_tree_node_highlighted(self, event: Tree.NodeHighlighted[str]) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        node = self.query_one("#checks", Tree).cursor_node
        check_id = node.data if node is not None else None
        finding = self.found.get(check_id) if check_id else None
        if finding is None:
            return
        report = self.wizard.session.report
        blocking = bool(report and report.is_blocking(finding))
        self.query_one("#detail-text", Static).update(details(finding, blocking))
        self.query_one("#detail-fixes", Static).update(fix_commands(finding))

    def action_recheck(self) -> None:
        self.start()

    def action_fixes(self) -> None:
        if self.wizard.session.report is None:
            self.notify("The checks are still running.")
            return
        self.wizard.open("fixes", done=self._fixes_closed)

    def _fixes_closed(self, applied: bool | None) -> None:
        """The fixes screen is dismissed with whether a fix ran: then the checks run again."""
        if applied:
            self.start()

    def action_steps(self) -> None:
        if self.wizard.session.report is None:
            self.notify("The checks are still running.")
            return
        self.wizard.open("steps")
