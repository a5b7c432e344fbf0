"""Results: the perf tables and a chart of bandwidth against message size, the torch
example's outcome, where the logs and state are, and what to run next."""

from __future__ import annotations

from typing import Any, ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Sparkline, Static

from wizard.app.screens.base import WizardScreen
from wizard.app.widgets.bandwidth_chart import BandwidthChart
from wizard.console import size_text
from wizard.engine import compare
from wizard.engine import state as st
from wizard.engine.parsers import gtest_summary, megatron_summary, training_summary


class ResultsScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "app.pop_screen", "Back")]

    def compose(self) -> ComposeResult:
        run = self.wizard.session.run
        yield Header()
        with VerticalScroll(id="results"):
            if run is None:
                yield Static(Text("No run yet."))
            else:
                yield from self.sections(run)
        yield Footer()

    def sections(self, run: st.RunState) -> ComposeResult:
        done = sum(s.status == st.DONE for s in run.steps.values())
        failed = [sid for sid, s in run.steps.items() if s.status in (st.FAILED, st.CANCELLED)]
        summary = f"Run {run.run_id}: {done} of {len(run.steps)} steps done"
        summary += f"; not finished: {', '.join(failed)}" if failed else "."
        yield Static(Text(summary, style="bold"))
        peak = compare.link_peak(run)
        for step_id, saved in run.steps.items():
            table = saved.results.get("table")
            if table:
                yield Static(Text(f"{step_id}: bandwidth by message size"), classes="section")
                yield self.perf_table(step_id, table, peak)
                yield BandwidthChart(table, id=f"chart-{step_id}")
            elif "passed" in saved.results:
                yield Static(Text(f"{step_id}: {gtest_summary(saved.results)}"), classes="section")
            elif losses := _losses(saved.results):
                yield from self.training(step_id, saved.results, losses)
        yield from self.against_nccl()
        torch = run.steps.get("torch-example")
        if torch is not None:
            yield Static(Text(f"PyTorch plugin example: {_outcome(torch)}"), classes="section")
        yield Static(Text("Logs and state"), classes="section")
        yield Static(Text(f"{run.folder}"))
        yield Static(Text("Next"), classes="section")
        yield Static(Text("\n".join(self.next_commands(run))))

    def training(self, step_id: str, results: dict[str, Any], losses: list[float]) -> ComposeResult:
        """A training run (DeepSpeed's, FlagScale's): its summary and the loss over steps."""
        if "iterations" in results:
            summary = megatron_summary(results)
        elif "training" in results:
            summary = training_summary(results)
        else:
            summary = f"{len(losses)} logged steps"
        yield Static(Text(f"{step_id}: {summary}"), classes="section")
        yield Static(Text(f"loss, from {losses[0]:.4g} to {losses[-1]:.4g}:", style="dim"))
        yield Sparkline(losses, id=f"loss-{step_id}", summary_function=max)

    def perf_table(
        self, step_id: str, rows: list[dict[str, Any]], peak: float | None
    ) -> DataTable[Any]:
        table: DataTable[Any] = DataTable(id=f"table-{step_id}", cursor_type="none")
        table.add_columns("size", "time (us)", "algbw (GB/s)", "busbw (GB/s)")
        if peak:
            table.add_column(f"of {peak:g} GB/s")
        for row in rows:
            cells = [
                size_text(int(row["size_bytes"])),
                f"{row['time_us']:.2f}",
                f"{row['algbw_gbs']:.2f}",
                f"{row['busbw_gbs']:.2f}",
            ]
            if peak:
                cells.append(f"{row['busbw_gbs'] / peak:.0%}" if row["busbw_gbs"] else "-")
            table.add_row(*cells)
        return table

    def against_nccl(self) -> ComposeResult:
        """The latest FlagCX and nccl-tests runs, collective by collective (`wizard report`)."""
        try:
            report = compare.gather()
        except (compare.NoResults, st.StateError) as exc:
            yield Static(Text("FlagCX against NCCL"), classes="section")
            yield Static(Text(f"Not yet: {exc}"))
            return
        link = f"; links {report.link}, peak {report.peak_gbs:g} GB/s" if report.peak_gbs else ""
        for c in report.comparisons:
            yield Static(
                Text(f"{c.collective}: FlagCX against NCCL, {c.metric}{link}"), classes="section"
            )
            table: DataTable[Any] = DataTable(id=f"nccl-{c.collective}", cursor_type="none")
            table.add_columns("size", "FlagCX", "NCCL", "ratio", "FlagCX/peak", "NCCL/peak")
            if report.torch_run:
                table.add_column("torch")
            for row in c.rows:
                figures = c.figures(row, torch=bool(report.torch_run))
                table.add_row(size_text(row.size_bytes), *figures)
            yield table
        if not report.comparisons:
            yield Static(Text("FlagCX against NCCL"), classes="section")
        for note in report.missing:
            yield Static(Text(f"Not compared: {note}."))

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


def _losses(results: dict[str, Any]) -> list[float]:
    """The loss at each logged step of a training run's results, or []."""
    rows = results.get("iterations") or results.get("progress") or []
    return [float(row["loss"]) for row in rows if "loss" in row]


def _outcome(step: st.StepState) -> str:
    """ "ran", "not run yet", or the status with its reason when there is one."""
    word = {st.DONE: "ran", st.PENDING: "not run yet"}.get(step.status, step.status)
    return f"{word} ({step.reason})" if step.reason and step.status != st.DONE else word
