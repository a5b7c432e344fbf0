"""Apply a finding's fix with consent, stream its output, keep its log, and verify it by
running the finding's check again."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from checks.base import Finding, Fix, Status
from wizard.engine.doctor.diagnosis import Diagnosis, run_doctor
from wizard.engine.recipes.run import step_environment
from wizard.engine.recipes.runner import Outcome, StepRunner
from wizard.host import Host, LocalHost
from wizard.paths import private_folder, writable_state_dir

FIX_TIMEOUT_S = 3600.0


def fixes_dir() -> Path:
    """Where fix logs go: made (and proved writable) on first use."""
    return private_folder(writable_state_dir() / "fixes")


def to_fix(report: Diagnosis, only: list[str] | None = None) -> list[Finding]:
    """The findings to walk: the blocking ones, or those named with --only that have fixes."""
    if only:
        known = {f.id for f in report.findings}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise KeyError(f"no finding {', '.join(unknown)}; ids: {', '.join(sorted(known))}")
        return [
            f
            for f in report.findings
            if f.id in only and f.status in (Status.FAIL, Status.WARN) and f.fixes
        ]
    return report.blocking


@dataclass
class Choice:
    fix: Fix
    usable: bool
    why: str = ""  # why not usable, or why it was preferred


def choices(finding: Finding, *, root: bool, sudo: str | None) -> list[Choice]:
    """The finding's fixes in order of least change, each marked usable or not here."""
    result = []
    for fix in finding.fixes:
        if fix.manual:
            result.append(Choice(fix, False, "cannot be applied from here"))
        elif fix.needs_root and not root and not sudo:
            result.append(Choice(fix, False, "needs root, and sudo is not installed"))
        elif fix.home and not (os.path.isdir(fix.home) and os.access(fix.home, os.W_OK)):
            why = f"installs under HOME={fix.home}, which is not a folder you can write"
            result.append(Choice(fix, False, why))
        else:
            result.append(Choice(fix, True))
    return result


def preferred(options: list[Choice], *, root: bool) -> Choice | None:
    """Without root, a fix that needs none beats one that would ask for sudo."""
    usable = [c for c in options if c.usable]
    if not usable:
        return None
    if not root:
        rootless = [c for c in usable if not c.fix.needs_root]
        if rootless and rootless[0] is not usable[0]:
            rootless[0].why = "needs no root"
            return rootless[0]
    return usable[0]


@dataclass
class Applied:
    finding: Finding
    fix: Fix
    outcome: Outcome
    log: Path
    after: Finding | None  # the finding's check, run again

    @property
    def fixed(self) -> bool:
        return (
            self.outcome.ok
            and self.after is not None
            and self.after.status in (Status.OK, Status.SKIP)
        )


def apply(
    finding: Finding,
    fix: Fix,
    *,
    on_lines: Callable[[list[str]], None],
    runner: StepRunner | None = None,
    verify_host: Callable[[], Host] = LocalHost,
    target: str | None = None,
) -> Applied:
    """Run the fix's commands as one `bash -e` script, then run the check again on a fresh
    host (the old one remembers what it saw before the fix)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log = fixes_dir() / f"{stamp}-{finding.id}.log"
    runner = runner or StepRunner(LocalHost())
    script = "\n".join(fix.commands)
    home = os.path.expanduser("~")
    uses_sudo = any(c.startswith("sudo ") for c in fix.commands)
    outcome = runner.run(
        script,
        cwd=home if os.path.isdir(home) else None,
        env=step_environment(),
        timeout=FIX_TIMEOUT_S,
        log_path=log,
        on_lines=on_lines,
        own_session=not uses_sudo,
    )
    after = None
    if not outcome.cancelled:
        report = run_doctor(verify_host(), target)
        after = next((f for f in report.findings if f.id == finding.id), None)
    return Applied(finding, fix, outcome, log, after)


def sudo_path() -> str | None:
    return shutil.which("sudo")
