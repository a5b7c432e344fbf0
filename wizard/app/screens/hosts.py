"""Hosts: the doctor on every host at once, each host's line as it answers, then what
differs across them (the table `wizard doctor --hosts` prints)."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from wizard.app.screens.base import WizardScreen
from wizard.engine.doctor.targets import TARGETS
from wizard.engine.hosts.doctor_all import (
    HostResult,
    differences,
    doctor_hosts,
    ok,
    unreachable_advice,
)


class HostsScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "check", "Check again"),
    ]

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="hosts-screen"):
            yield Static(id="hosts-status")
            yield DataTable(id="hosts", cursor_type="row", zebra_stripes=True)
            yield Static(Text("What differs across the hosts", style="bold"), classes="section")
            yield DataTable(id="differences", cursor_type="row")
            yield Static(id="hosts-advice")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#hosts", DataTable)
        table.add_columns("host", "state")
        # As wide as the longest target from the start: a width grown by each row's update
        # came out differently from run to run.
        table.add_column("target", width=max(len(t) for t in TARGETS))
        table.add_column("what blocks")
        self.action_check()

    def action_check(self) -> None:
        specs = self.wizard.session.hosts
        table = self.query_one("#hosts", DataTable)
        table.clear()
        for spec in specs:
            table.add_row(spec.label, "checking…", "", "", key=spec.label)
        self.query_one("#differences", DataTable).clear(columns=True)
        self.query_one("#hosts-advice", Static).update("")
        self._status(f"Checking {len(specs)} hosts over SSH, all at once…")
        self.check()

    @work(thread=True, exclusive=True)
    def check(self) -> None:
        session = self.wizard.session
        results = doctor_hosts(
            session.hosts,
            session.connect_host,
            target=session.target,
            on_result=lambda r: self.wizard.from_thread(self._row, r),
        )
        self.wizard.from_thread(self._done, results)

    def _row(self, result: HostResult) -> None:
        table = self.query_one("#hosts", DataTable)
        label = result.spec.label
        if result.report is None:
            cells = (Text("unreachable", style="bold red"), "", result.error or "")
        else:
            blocking = result.report.blocking
            state = Text("blocked", style="red") if blocking else Text("ready", style="green")
            cells = (state, result.report.target.id, ", ".join(f.id for f in blocking) or "-")
        for column, value in zip(table.ordered_columns[1:], cells, strict=True):
            table.update_cell(label, column.key, value, update_width=True)

    def _done(self, results: list[HostResult]) -> None:
        diffs = differences(results)
        table = self.query_one("#differences", DataTable)
        labels = [r.spec.label for r in results if r.reachable]
        table.add_columns("fact", *labels, "blocks")
        for diff in diffs:
            values = [str(diff.values.get(label) or "-") for label in labels]
            mark = Text("yes", style="bold red") if diff.blocking else Text("no")
            table.add_row(diff.fact, *values, mark)
        if not diffs:
            table.add_row("(none)", *["" for _ in labels], "")
        # ssh's own words, whole (the table's column may cut them), then what to try.
        advice = [
            f"{r.spec.label}: {line}" for r in results if not r.reachable
            for line in [r.error or "unreachable", *unreachable_advice(r)]
        ]  # fmt: skip
        advice += [f"{d.fact}: {d.why}" for d in diffs]
        self.query_one("#hosts-advice", Static).update(Text("\n".join(advice)))
        reached = sum(r.reachable for r in results)
        verdict = "ready for a run across them" if ok(results, diffs) else "not ready"
        self._status(f"{reached} of {len(results)} hosts reached; {verdict}.")

    def _status(self, text: str) -> None:
        self.query_one("#hosts-status", Static).update(Text(text, style="bold"))
