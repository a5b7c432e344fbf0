"""Results: a chart per collective of bandwidth against message size (FlagCX, nccl-tests and
torch as lines, the link's peak as a line) and of training runs' loss and throughput, the
perf tables, FlagCX against NCCL, suspect figures, where the logs are, what to run next, and
`s` to write the report as markdown and html for sharing."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static, TabbedContent, TabPane

from wizard.app.screens.base import WizardScreen
from wizard.app.widgets.bandwidth_chart import BandwidthChart, TrainingChart
from wizard.engine.recipes import compare, parsers, perf_report
from wizard.engine.recipes import state as st
from wizard.engine.recipes.parsers import BANDWIDTH_COLUMNS, bandwidth_cells, size_text


class ResultsScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("s", "share", "Share"),
    ]
    DEFAULT_CSS = """
    #charts { height: auto; }
    #charts BandwidthChart, #charts TrainingChart { height: 50vh; min-height: 10; }
    """

    def __init__(self) -> None:
        super().__init__()
        self.report: compare.PerfReport | None = None

    def compose(self) -> ComposeResult:
        run = self.wizard.session.run
        yield Header()
        with VerticalScroll(id="results"):
            if run is None:
                yield Static(Text("No run yet."))
            else:
                self.report = _report_for(run)
                yield from self.sections(run)
        yield Footer()

    def sections(self, run: st.RunState) -> ComposeResult:
        done = sum(s.status == st.DONE for s in run.steps.values())
        failed = [sid for sid, s in run.steps.items() if s.status in (st.FAILED, st.CANCELLED)]
        summary = f"Run {run.run_id}: {done} of {len(run.steps)} steps done"
        summary += f"; not finished: {', '.join(failed)}" if failed else "."
        yield Static(Text(summary, style="bold"))
        report = self.report
        if report is not None:
            yield from self.charts(report)
            yield Static(Text(f"Machine: {perf_report.machine_line(report)}"), id="machine")
        peak = compare.link_peak(run)
        charted = {t.step for t in report.training if t.run_id == run.run_id} if report else set()
        for step_id, saved in run.steps.items():
            table = saved.results.get("table")
            if table:
                yield Static(Text(f"{step_id}: bandwidth by message size"), classes="section")
                yield self.perf_table(step_id, table, peak)
            elif step_id not in charted and (said := parsers.summary(saved.results)):
                yield Static(Text(f"{step_id}: {said.line}"), classes="section")
                if said.details:
                    yield Static(Text("\n".join(said.details)), id=f"details-{step_id}")
        if report is not None:
            yield from self.against_nccl(report)
        else:
            yield Static(Text("FlagCX against NCCL"), classes="section")
            yield Static(
                Text("Not yet: `wizard run flagcx` and `wizard run nccl-tests` measure both.")
            )
        torch = run.steps.get("torch-example")
        if torch is not None:
            yield Static(Text(f"PyTorch plugin example: {_outcome(torch)}"), classes="section")
        yield Static(Text("Logs and state"), classes="section")
        yield Static(Text(f"{run.folder}"))
        yield Static(Text("Next"), classes="section")
        yield Static(Text("\n".join(self.next_commands(run))))
        yield Static(Text("s writes this report as markdown and html, to share."), id="shared")

    def charts(self, report: compare.PerfReport) -> ComposeResult:
        """A tab per collective and per training curve; the first is shown."""
        if not report.collectives and not report.training:
            return
        with TabbedContent(id="charts"):
            for c in report.collectives:
                with TabPane(c.name, id=f"tab-{c.name}"):
                    yield BandwidthChart(c, report.peak_gbs, id=f"chart-{c.name}")
            for t in report.training:
                with TabPane(f"{t.step} loss", id=f"tab-loss-{t.step}"):
                    yield TrainingChart(t, "loss", id=f"loss-{t.step}")
                with TabPane(f"{t.step} {t.unit}", id=f"tab-rate-{t.step}"):
                    yield TrainingChart(t, "throughput", id=f"rate-{t.step}")
        for t in report.training:
            yield Static(Text(f"{t.step}: {t.summary or perf_report.training_text(t)}"))

    def perf_table(
        self, step_id: str, rows: list[dict[str, Any]], peak: float | None
    ) -> DataTable[Any]:
        table: DataTable[Any] = DataTable(id=f"table-{step_id}", cursor_type="none")
        table.add_columns(*BANDWIDTH_COLUMNS)
        if peak:
            table.add_column(f"of {peak:g} GB/s")
        for row in rows:
            cells = bandwidth_cells(row)
            if peak:
                cells.append(f"{row['busbw_gbs'] / peak:.0%}" if row["busbw_gbs"] else "-")
            table.add_row(*cells)
        return table

    def against_nccl(self, report: compare.PerfReport) -> ComposeResult:
        """FlagCX and NCCL, collective by collective (`wizard report`), suspect figures and
        what a comparison still needs."""
        link = f"; links {report.link}, peak {report.peak_gbs:g} GB/s" if report.peak_gbs else ""
        torch = bool(report.torch_run)
        for c in report.comparisons:
            yield Static(
                Text(f"{c.collective}: FlagCX against NCCL, {c.metric}{link}"), classes="section"
            )
            table: DataTable[Any] = DataTable(id=f"nccl-{c.collective}", cursor_type="none")
            table.add_columns("size", "FlagCX", "NCCL", "ratio", "FlagCX/peak", "NCCL/peak")
            if torch:
                table.add_column("torch")
            for row in c.rows:
                table.add_row(size_text(row.size_bytes), *c.figures(row, torch=torch))
            yield table
        if not report.comparisons:
            yield Static(Text("FlagCX against NCCL"), classes="section")
        for line in perf_report.suspect_lines(report):
            yield Static(Text(f"Suspect: {line}.", style="yellow"))
        yield Static(Text(perf_report.verdict(report)), id="verdict")

    def next_commands(self, run: st.RunState) -> list[str]:
        commands = [f"wizard status --run {run.run_id}"]
        if run.first_unfinished():
            commands.append(f"wizard resume --run {run.run_id}")
        perf = run.steps.get("allreduce")
        if perf and perf.command:
            cwd = run.params.get("src", "")
            commands.append(f"cd {cwd}/test/perf && {perf.command}")
        commands += ["wizard run nccl-tests && wizard report   # NCCL's numbers beside FlagCX's"]
        return [f"$ {c}" for c in commands]

    def action_share(self) -> None:
        """Write the report as markdown and html beside the run's state, and say where."""
        run = self.wizard.session.run
        if run is None or self.report is None:
            self.notify("Nothing to share yet: no run with results.", severity="warning")
            return
        written = []
        try:
            for form, name in (("markdown", "report.md"), ("html", "report.html")):
                path = run.folder / name
                path.write_text(perf_report.render(self.report, form), encoding="utf-8")
                written.append(path)
        except OSError as exc:
            self.notify(f"Cannot write {exc.filename}: {exc.strerror}", severity="error")
            return
        where = _shared_text(written)
        self.query_one("#shared", Static).update(Text(where))
        self.notify(where, title="Share")


def _report_for(run: st.RunState) -> compare.PerfReport | None:
    """This run's results beside the latest runs of the other kinds."""
    runs = [run]
    for run_id in compare.latest_ids():
        if not st.is_run_of(run_id, run.recipe):
            try:
                runs.append(st.load(run_id, set_aside=False))
            except st.StateError:
                continue  # `wizard status` reports an unreadable run
    try:
        return compare.report_on(runs)
    except compare.NoResults:
        return None


def _shared_text(paths: list[Path]) -> str:
    return "Wrote " + " and ".join(str(p) for p in paths) + " (paste the .md into an issue)."


def _outcome(step: st.StepState) -> str:
    """ "ran", "not run yet", or the status with its reason when there is one."""
    word = {st.DONE: "ran", st.PENDING: "not run yet"}.get(step.status, step.status)
    return f"{word} ({step.reason})" if step.reason and step.status != st.DONE else word
