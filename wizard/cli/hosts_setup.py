"""`wizard hosts setup`: check the SSH mesh a launcher needs and fix it with consent.

It looks (wizard.engine.hosts.mesh), shows every problem with its exact commands, applies the
fixes the user accepts (each logged), then looks again, since one fix reveals the next
(a host reached for the first time shows its ~/.ssh), up to a few rounds. It ends with
every direction tried for real: `ssh -o BatchMode=yes OTHER true` from each host.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from checks.base import Finding, Fix, Status
from wizard.cli.console import Console
from wizard.cli.hosts_doctor import check_ssh_config, hosts_of
from wizard.engine.doctor import walk
from wizard.engine.doctor.fixes import Applied, apply, sudo_path
from wizard.engine.hosts.mesh import Mesh, Survey, YourFix
from wizard.engine.marks import FINDING
from wizard.engine.recipes.runner import Outcome
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError

ROUNDS = 4  # a key made here, then hosts reached, then their keys, then the mesh
FIX_TIMEOUT_S = 120.0  # ssh, ssh-keygen and ssh-keyscan: a fix that takes longer hangs


def setup(args: argparse.Namespace) -> int:
    specs = hosts_of(args)
    if not specs:
        raise UsageError("name the hosts with --hosts or --hostfile")
    check_ssh_config(args.ssh_config)
    interactive = sys.stdin.isatty() and not (args.yes or args.dry_run)
    if not (interactive or args.yes or args.dry_run):
        raise UsageError(
            "hosts setup asks before changing anything: run it in a terminal, or pass --yes "
            "to apply the fixes that need no password or fingerprint check, or --dry-run"
        )
    out = Console()
    mesh = Mesh(specs, args.ssh_config)
    root, sudo = os.geteuid() == 0, sudo_path()
    survey: Survey | None = None
    stale = False  # a fix ran since the last survey

    def look() -> list[walk.Offer]:
        nonlocal survey, stale
        survey, stale = mesh.survey(), False
        return [
            walk.offer_for(f, blocking=True, wanted=True, root=root, sudo=sudo)
            for f in _failing(survey)
        ]

    def decide(offer: walk.Offer) -> walk.Decision:
        _show(out, offer.finding)
        if args.dry_run:
            return walk.DRY_RUN
        fix = offer.best.fix if offer.best and offer.best.fix.commands else None
        if fix is None:
            return walk.SKIP
        if isinstance(fix, YourFix) and not interactive:
            out.write(f"  left to you ({fix.needs_you}): run the command above yourself")
            return walk.SKIP
        if interactive and not _confirm(offer.finding, fix):
            out.write("  skipped")
            return walk.SKIP
        return fix

    def apply_fix(finding: Finding, fix: Fix) -> Applied:
        nonlocal stale
        stale = True
        yours = isinstance(fix, YourFix)  # it asks the user: on the terminal, unhurried
        return apply(
            finding,
            fix,
            on_lines=lambda lines: out.lines([f"    {line}" for line in lines]),
            recheck=None,  # the next round's survey looks again, at every host at once
            runner=OnTheTerminal() if yours else None,
            timeout=None if yours else FIX_TIMEOUT_S,
        )

    for walked in walk.walk(look, decide, apply_fix, rounds=ROUNDS):
        if walked.cancelled:
            return EXIT_INTERRUPTED
        if walked.applied:
            outcome = walked.applied.outcome
            failed = f"failed (exit code {outcome.exit_code}); log: {walked.applied.log}"
            out.write("  done" if outcome.ok else f"  {failed}")
    if survey is None or stale:
        survey = mesh.survey()
    return _conclude(out, mesh, survey, dry_run=args.dry_run)


class OnTheTerminal:
    """Runs a fix that asks the user (a password, a fingerprint) on the terminal itself:
    its output goes there, not into the log, which says so."""

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
    ) -> Outcome:
        log_path.write_text(f"{script}\n(run on the terminal: its output is not kept)\n")
        started = time.monotonic()
        try:
            done = subprocess.run(
                ["bash", "-e", "-c", script], cwd=cwd, env=env, timeout=timeout, check=False
            )
        except KeyboardInterrupt:
            return Outcome(None, time.monotonic() - started, cancelled=True)
        except subprocess.TimeoutExpired:
            return Outcome(None, time.monotonic() - started, timed_out=True)
        return Outcome(done.returncode, time.monotonic() - started)


def _failing(survey: Survey) -> list[Finding]:
    return [f for f in survey.findings if f.status is Status.FAIL]


def _show(out: Console, finding: Finding) -> None:
    out.write()
    failed = FINDING[Status.FAIL].text(ascii_only=out.ascii)
    out.write(out.paint(f"{failed} {finding.id}: {finding.summary}", "1"))
    for line in finding.details:
        out.write(f"    {line}")
    for fix in finding.fixes:
        tags = fix.tags + ([f"needs you: {fix.needs_you}"] if isinstance(fix, YourFix) else [])
        out.write(f"  fix: {fix.title}" + (f" ({', '.join(tags)})" if tags else ""))
        for command in fix.commands:
            out.write(f"    $ {command}")


def _confirm(finding: Finding, fix: Fix) -> bool:
    import questionary

    question = (
        "Do the fingerprints match the host's own?"
        if isinstance(fix, YourFix) and "fingerprint" in fix.needs_you
        else f"Run this for {finding.id}?"
    )
    return bool(questionary.confirm(question, default=False).unsafe_ask())


def _conclude(out: Console, mesh: Mesh, survey: Survey, *, dry_run: bool) -> int:
    out.write()
    reached = [p for p in survey.peers if p.login_error is None]
    out.write(
        f"This machine reaches {len(reached)} of {len(survey.peers)} hosts without a password."
    )
    directions = mesh.directions(survey.peers) if not dry_run else {}
    failing = {k: v for k, v in directions.items() if v is not None}
    if directions:
        out.write(
            f"Between the hosts: {len(directions) - len(failing)} of {len(directions)} "
            "directions work."
        )
        for (source, target), why in failing.items():
            out.write(f"  {source} -> {target}: {why}")
    left = _failing(survey)
    if left:
        out.write(out.paint(f"Still to do: {', '.join(f.id for f in left)}.", "31"))
    if dry_run:
        out.write("Dry run: nothing was changed. Drop --dry-run to apply.")
    ok = not left and not failing and len(reached) == len(survey.peers) and not dry_run
    if ok:
        out.write(out.paint("The SSH mesh is ready: mpirun can start ranks on every host.", "32"))
    return EXIT_OK if ok else EXIT_FAILED
