"""Render a doctor report as text for people or JSON for programs."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, TextIO

from checks.base import Finding, Status
from wizard.engine.doctor.diagnosis import Diagnosis, group_of
from wizard.engine.marks import FINDING

SCHEMA = 1


def use_color(stream: TextIO) -> bool:
    """Colour only on a terminal, and never when NO_COLOR is set (no-color.org)."""
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    return hasattr(stream, "isatty") and stream.isatty()


def ascii_only(stream: TextIO) -> bool:
    """Whether the stream's encoding lacks the marks (✓, ✗): it gets their ASCII stand-ins."""
    encoding = (getattr(stream, "encoding", None) or "").lower().replace("-", "")
    return encoding not in ("utf8", "")


def make_vars(report: Diagnosis) -> dict[str, str]:
    """The make variables FlagCX's build needs, from what the doctor learned."""
    facts = report.facts()
    variables = {report.target.vendor.make_flag: "1"}
    for name, fact in (
        ("DEVICE_HOME", "cuda.home"),
        ("CCL_HOME", "nccl.home"),
        ("MPI_HOME", "mpi.home"),
    ):
        if facts.get(fact):
            variables[name] = str(facts[fact])
    return variables


def to_json(report: Diagnosis, host_timing: dict[str, Any] | None = None) -> str:
    return json.dumps(to_dict(report, host_timing), indent=2)


def to_dict(report: Diagnosis, host_timing: dict[str, Any] | None = None) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "host": report.host,
        "target": report.target.id,
        "ok": not report.blocking,
        "blocking": [f.id for f in report.blocking],
        "make_vars": make_vars(report),
        "findings": [
            {
                **f.to_dict(),
                "blocking": report.is_blocking(f),
                "duration_s": round(report.durations.get(f.id, 0.0), 4),
            }
            for f in report.findings
        ],
        "timing": {"wall_s": round(report.wall_s, 4), **(host_timing or {})},
    }


class TextRenderer:
    def __init__(
        self,
        stream: TextIO = sys.stdout,
        *,
        verbose: bool = False,
        color: bool | None = None,
        fixing: bool = False,
    ) -> None:
        self.stream = stream
        self.verbose = verbose
        self.fixing = fixing  # `--fix`: the fixes are offered next, not merely shown
        self.color = use_color(stream) if color is None else color
        self.ascii = ascii_only(stream)

    def paint(self, text: str, code: str) -> str:
        return f"\033[{code}m{text}\033[0m" if self.color else text

    def mark(self, status: Status) -> str:
        """The status's sign (✓, !, ✗, -), in its colour."""
        mark = FINDING[status]
        return self.paint(mark.text(ascii_only=self.ascii), mark.sgr)

    def write(self, line: str = "") -> None:
        self.stream.write(line + "\n")

    def render(self, report: Diagnosis) -> None:
        target = report.target
        self.write(f"wizard doctor on {report.host}, target {target.id} ({target.title})")
        self.write()
        width = max(len(f.title) for f in report.findings)
        heading = None
        for finding in report.findings:
            group = group_of(finding.id)
            if group is not None and group != heading:
                self.write(self.paint(group.value, "1"))
                heading = group
            self.finding(finding, width, report.is_blocking(finding))
        self.write()
        self.summary(report)

    def finding(self, finding: Finding, width: int, blocking: bool) -> None:
        mark = self.mark(finding.status)
        title = finding.title.ljust(width)
        self.write(f" {mark} {self.paint(title, '1') if blocking else title}  {finding.summary}")
        indent = " " * 5
        if self.verbose:
            for line in finding.details:
                self.write(f"{indent}{self.paint(line, '2')}")
            for key, value in finding.facts.items():
                self.write(f"{indent}{self.paint(f'{key} = {value}', '36')}")
            for line in (finding.traceback or "").splitlines():
                self.write(f"{indent}{self.paint(line, '35')}")
        if finding.status in (Status.FAIL, Status.WARN):
            for fix in finding.fixes:
                self.write(f"{indent}{self.paint('fix:', '36')} {fix.label}")
                for command in fix.commands:
                    self.write(f"{indent}    $ {command}")
                if fix.changes and self.verbose:
                    self.write(f"{indent}    {self.paint('changes: ' + fix.changes, '2')}")

    def summary(self, report: Diagnosis) -> None:
        counts = {s: sum(f.status is s for f in report.findings) for s in Status}
        tally = ", ".join(f"{n} {s.value}" for s, n in counts.items() if n)
        variables = " ".join(f"{k}={v}" for k, v in make_vars(report).items())
        if report.blocking:
            ids = ", ".join(f.id for f in report.blocking)
            noun = "problem blocks" if len(report.blocking) == 1 else "problems block"
            self.write(self.paint(f"{len(report.blocking)} {noun} {report.target.id}: {ids}", "31"))
        else:
            self.write(self.paint(f"Nothing blocks {report.target.id}.", "32"))
        if crashed := report.crashed:
            ids = ", ".join(f.id for f in crashed)
            noun = "check" if len(crashed) == 1 else "checks"
            how = "with its traceback" if self.verbose else "with `wizard doctor -v`'s traceback"
            self.write(
                self.paint(
                    f"{len(crashed)} {noun} crashed ({ids}): a bug in the wizard, not in this "
                    f"machine; please report it {how} and a `wizard snapshot`.",
                    "35",
                )
            )
        then = "The fixes follow." if self.fixing else "Fixes are shown, not run."
        self.write(f"{tally}; checked in {report.wall_s:.2f} s. {then}")
        self.write(f"FlagCX make variables: {variables}")
        if not self.verbose:
            self.write("Run `wizard doctor -v` for details and the facts learned.")
