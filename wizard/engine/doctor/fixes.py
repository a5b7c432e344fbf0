"""Apply a finding's fix with consent, stream its output, keep its log, and verify it by
running the finding's check again."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from checks.base import Finding, Fix, Status
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.recipes.run import step_environment
from wizard.engine.recipes.runner import Outcome, StepRunner
from wizard.host import Host, LocalHost
from wizard.paths import private_folder, writable_state_dir

FIX_TIMEOUT_S = 3600.0

Recheck = Callable[[], list[Finding]]  # looks again: the findings as they are now


def fixes_dir() -> Path:
    """Where fix logs go: made (and proved writable) on first use."""
    return private_folder(writable_state_dir() / "fixes")


def doctor_again(host: Callable[[], Host] = LocalHost, target: str | None = None) -> Recheck:
    """The doctor run again on a fresh host (the old one remembers what it saw before)."""
    return lambda: run_doctor(host(), target).findings


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
    rechecked: list[Finding] = field(default_factory=list)  # every finding, looked at again

    @property
    def after(self) -> Finding | None:
        """The finding's check, run again; None when it was not (cancelled, no re-check)."""
        return next((f for f in self.rechecked if f.id == self.finding.id), None)

    @property
    def fixed(self) -> bool:
        after = self.after
        return self.outcome.ok and after is not None and after.status in (Status.OK, Status.SKIP)


class Runs(Protocol):
    """What runs a fix's script: StepRunner, or a front end's own (one that hands the
    terminal to a fix that asks the user something)."""

    def run(
        self,
        script: str,
        *,
        cwd: str | None,
        env: dict[str, str],
        timeout: float | None,
        log_path: Path,
        on_lines: Callable[[list[str]], None],
        own_session: bool = True,
    ) -> Outcome: ...


def apply(
    finding: Finding,
    fix: Fix,
    *,
    on_lines: Callable[[list[str]], None],
    recheck: Recheck | None,
    runner: Runs | None = None,
    timeout: float | None = FIX_TIMEOUT_S,
) -> Applied:
    """Run the fix's commands as one `bash -e` script, logged, then look again with
    `recheck` (None: the caller looks again itself, after several fixes)."""
    stamp = dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    log = fixes_dir() / f"{stamp}-{finding.id}.log"
    runner = runner or StepRunner(LocalHost())
    home = os.path.expanduser("~")
    uses_sudo = any(c.startswith("sudo ") for c in fix.commands)
    outcome = runner.run(
        "\n".join(fix.commands),
        cwd=home if os.path.isdir(home) else None,
        env=step_environment(),
        timeout=timeout,
        log_path=log,
        on_lines=on_lines,
        own_session=not uses_sudo,
    )
    rechecked = recheck() if recheck is not None and not outcome.cancelled else []
    return Applied(finding, fix, outcome, log, rechecked)


def sudo_path() -> str | None:
    return shutil.which("sudo")
