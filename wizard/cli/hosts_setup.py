"""`wizard hosts setup`: check the SSH mesh a launcher needs and fix it with consent.

It looks (wizard.engine.hosts.mesh), shows every problem with its exact commands, applies the
fixes the user accepts (each logged), then looks again, since one fix reveals the next
(a host reached for the first time shows its ~/.ssh), up to a few rounds. It ends with
every direction tried for real: `ssh -o BatchMode=yes OTHER true` from each host.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

from checks.base import Finding, Fix, Status
from wizard.cli.console import Console
from wizard.cli.hosts_doctor import check_ssh_config, hosts_of
from wizard.engine.hosts.mesh import Mesh, Survey, YourFix
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError

ROUNDS = 4  # a key made here, then hosts reached, then their keys, then the mesh


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
    settled: set[tuple[str, str]] = set()  # (finding, fix) applied, refused or left to you
    survey = mesh.survey()
    for _ in range(ROUNDS):
        pending = [f for f in _failing(survey) if (f.id, _first(f).title) not in settled]
        if not pending:
            break
        for finding in pending:
            fix = _first(finding)
            settled.add((finding.id, fix.title))
            _show(out, finding)
            if args.dry_run or fix.manual or not fix.commands:
                continue
            if isinstance(fix, YourFix) and not interactive:
                out.write(f"  left to you ({fix.needs_you}): run the command above yourself")
                continue
            if interactive and not _confirm(finding, fix):
                out.write("  skipped")
                continue
            code = _apply(fix, out, terminal=isinstance(fix, YourFix))
            if code == EXIT_INTERRUPTED:
                return code
        if args.dry_run:
            break
        survey = mesh.survey()
    return _conclude(out, mesh, survey, dry_run=args.dry_run)


def _failing(survey: Survey) -> list[Finding]:
    return [f for f in survey.findings if f.status is Status.FAIL]


def _first(finding: Finding) -> Fix:
    return finding.fixes[0] if finding.fixes else Fix("no fix known", [], manual=True)


def _show(out: Console, finding: Finding) -> None:
    out.write()
    out.write(out.paint(f"✗ {finding.id}: {finding.summary}", "1"))
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


def _apply(fix: Fix, out: Console, *, terminal: bool) -> int:
    """Run a fix's commands. One that asks a password runs on the terminal itself; the
    others stream into a log under the state folder."""
    from wizard.engine.doctor.fixes import fixes_dir
    from wizard.engine.recipes.run import step_environment
    from wizard.engine.recipes.runner import StepRunner
    from wizard.host import LocalHost

    script = "\n".join(fix.commands)
    if terminal:
        try:
            done = subprocess.run(["bash", "-e", "-c", script], check=False)
        except KeyboardInterrupt:
            return EXIT_INTERRUPTED
        ok = done.returncode == 0
        out.write("  done" if ok else f"  failed (exit code {done.returncode})")
        return EXIT_OK if ok else EXIT_FAILED
    import datetime as dt

    log = fixes_dir() / f"{dt.datetime.now():%Y%m%d-%H%M%S}-ssh.log"
    outcome = StepRunner(LocalHost()).run(
        script,
        cwd=None,
        env=step_environment(),
        timeout=120,
        log_path=log,
        on_lines=lambda lines: out.lines([f"    {line}" for line in lines]),
    )
    if outcome.cancelled:
        return EXIT_INTERRUPTED
    out.write("  done" if outcome.ok else f"  failed (exit code {outcome.exit_code}); log: {log}")
    return EXIT_OK if outcome.ok else EXIT_FAILED


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
