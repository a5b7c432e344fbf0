"""Plain output for `wizard run`: each step's lines live under a header, then a summary."""

from __future__ import annotations

import sys
from typing import Any, TextIO

from wizard.cli.doctor_table import ascii_only, use_color
from wizard.engine import marks
from wizard.engine.marks import Mark
from wizard.engine.recipes import state as st
from wizard.engine.recipes.hints import likely_cause
from wizard.engine.recipes.parsers import BANDWIDTH_COLUMNS, bandwidth_cells, summary
from wizard.engine.recipes.recipe import Recipe, Step
from wizard.engine.recipes.runner import Outcome

_WIDTHS = (8, 12, 13, 13)  # BANDWIDTH_COLUMNS', each right-aligned


def table_lines(rows: list[dict[str, Any]]) -> list[str]:
    """The bandwidth table; rows of several datatypes or ops (FlagCX's `-d all`) say which."""
    sections = {(row.get("datatype"), row.get("op")) for row in rows}
    named = len(sections) > 1

    def line(cells: list[str] | tuple[str, ...]) -> str:
        return " ".join(cell.rjust(width) for cell, width in zip(cells, _WIDTHS, strict=True))

    lines = [("datatype/op  " if named else "") + line(BANDWIDTH_COLUMNS)]
    for row in rows:
        section = f"{row.get('datatype')}/{row.get('op')}"[:11].ljust(13) if named else ""
        lines.append(section + line(bandwidth_cells(row)))
    return lines


class OutputClosed(OSError):
    """The console's stream cannot be written: a closed pipe (`wizard run ... | head`), a
    terminal that went away."""


class Console:
    def __init__(self, stream: TextIO = sys.stdout) -> None:
        self.stream = stream
        self.color = use_color(stream)
        self.ascii = ascii_only(stream)

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def mark(self, mark: Mark) -> str:
        """The mark (✓, ✗, ...), or its ASCII stand-in, in its colour."""
        return self.paint(mark.text(ascii_only=self.ascii), mark.sgr)

    def marked(self, mark: Mark, text: str) -> str:
        """The mark, then the text, both in the mark's colour."""
        return self.paint(f"{mark.text(ascii_only=self.ascii)} {text}", mark.sgr)

    def _put(self, text: str) -> None:
        try:
            self.stream.write(text)
        except OSError as exc:
            raise OutputClosed(exc.errno, exc.strerror) from exc

    def flush(self) -> None:
        try:
            self.stream.flush()
        except OSError as exc:
            raise OutputClosed(exc.errno, exc.strerror) from exc

    def write(self, text: str = "") -> None:
        self._put(text + "\n")

    # -- Listener ---------------------------------------------------------------------------

    def step_started(self, index: int, total: int, step: Step, command: str) -> None:
        self.write(self.paint(f"── [{index + 1}/{total}] {step.title} ({step.id}) ", "1;36"))
        for line in command.splitlines():
            self.write(self.paint(f"$ {line}", "2"))
        self.flush()

    def lines(self, texts: list[str]) -> None:
        self._put("\n".join(texts) + "\n")

    def step_skipped(self, index: int, total: int, step: Step, reason: str) -> None:
        self.write(
            self.paint(f"── [{index + 1}/{total}] {step.title} ({step.id}): skipped, {reason}", "2")
        )

    def step_finished(self, step: Step, result: st.StepState, outcome: Outcome) -> None:
        mark = self.mark(marks.step_mark(result.status))
        took = f"{outcome.duration_s:.1f} s"
        if result.status == st.DONE:
            self.write(f"{mark} {step.id}: done in {took}")
        else:
            self.write(f"{mark} {step.id}: {result.status} ({result.reason}) after {took}")
            self.write(f"  log: {result.log}")
            cause = likely_cause(outcome.tail)
            if cause:
                self.write(self.paint(f"  likely cause: {cause}", "33"))
        self.flush()

    # -- summaries --------------------------------------------------------------------------

    def summary(self, recipe: Recipe, state: st.RunState) -> None:
        self.write()
        self.write(self.paint(f"{recipe.title}: run {state.run_id}", "1"))
        width = max(len(s.id) for s in recipe.steps)
        for step in recipe.steps:
            saved = state.steps.get(step.id, st.StepState())
            mark = self.mark(marks.step_mark(saved.status))
            what = {
                st.DONE: f"{saved.duration_s:.1f} s" if saved.duration_s is not None else "",
                st.FAILED: saved.reason,
                st.CANCELLED: saved.reason,
                st.SKIPPED: saved.reason,
                st.PENDING: saved.reason or "not run",
                st.RUNNING: "interrupted",
            }[saved.status]
            self.write(f" {mark} {step.id.ljust(width)}  {saved.status:<9} {what}")
            for label, host in saved.hosts.items():  # a step run on several hosts
                status = str(host.get("status", st.PENDING))
                sign = self.mark(marks.step_mark(status))
                why = host.get("reason") or (
                    f"{host['duration_s']:.1f} s" if host.get("duration_s") is not None else ""
                )
                self.write(f"     {sign} {label}: {status} {why}".rstrip())
        for step in recipe.steps:
            results = state.steps.get(step.id, st.StepState()).results
            if results.get("table"):
                self.write()
                self.write(self.paint(f"{step.title} ({step.id}):", "1"))
                for line in table_lines(results["table"]):
                    self.write("  " + line)
            elif said := summary(results):
                self.write(f"{step.id}: {said.line}")
                for line in said.details:
                    self.write(f"  {line}")
        self.write()
        self.write(f"State and logs: {state.folder}")
