"""`wizard doctor --fix`: walk the blocking findings, show each fix, ask, apply, verify."""

from __future__ import annotations

import subprocess
import sys
from typing import TextIO

from checks.base import Finding, Fix
from wizard.cli.console import Console
from wizard.engine.doctor.diagnosis import Diagnosis
from wizard.engine.doctor.fixes import Applied, Choice, apply, choices, preferred, sudo_path, to_fix
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, UsageError

SKIP = "Skip this one"


def show_fix(out: Console, number: int, choice: Choice) -> None:
    fix = choice.fix
    tags = fix.tags
    if not choice.usable:
        tags.append(f"not here: {choice.why}")
    out.write(f"  {number}. {fix.title}" + (f" ({', '.join(tags)})" if tags else ""))
    for command in fix.commands:
        out.write(f"       $ {command}")
    if fix.changes:
        out.write(out.paint(f"       changes: {fix.changes}", "2"))


def ask(finding: Finding, options: list[Choice], default: Choice | None) -> Fix | None:
    import questionary

    usable = [c for c in options if c.usable]
    if not usable:
        return None
    titles = [c.fix.title for c in usable]
    picked = questionary.select(
        f"Fix {finding.id}?",
        choices=[*titles, SKIP],
        default=default.fix.title if default else titles[0],
    ).unsafe_ask()
    if picked == SKIP:
        return None
    fix = usable[titles.index(picked)].fix
    if not questionary.confirm(
        f"Run these {len(fix.commands)} commands now?", default=True
    ).unsafe_ask():
        return None
    return fix


def fix_findings(
    report: Diagnosis,
    *,
    only: list[str] | None,
    yes: bool,
    dry_run: bool,
    stream: TextIO = sys.stdout,
) -> int:
    out = Console(stream)
    try:
        findings = to_fix(report, only)
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    if not findings:
        out.write(
            "Nothing to fix: no finding blocks "
            + report.target.id
            + (" among those named with --only." if only else ".")
        )
        return EXIT_OK
    root = bool(report.facts().get("os.root"))
    sudo = sudo_path()
    status = EXIT_OK
    for finding in findings:
        out.write()
        out.write(out.paint(f"{finding.id}: {finding.summary}", "1"))
        options = choices(finding, root=root, sudo=sudo)
        best = preferred(options, root=root)
        for number, choice in enumerate(options, 1):
            show_fix(out, number, choice)
        if dry_run:
            out.write("  dry run: nothing was run")
            if report.is_blocking(finding):
                status = EXIT_FAILED  # it still blocks: a dry run changes nothing
            continue
        if best is None:
            out.write("  no fix can be applied from here; see the manual steps above")
            status = EXIT_FAILED
            continue
        if yes:
            fix = best.fix
            reason = f" ({best.why})" if best.why else ""
            out.write(f"  applying: {fix.title}{reason}")
        else:
            fix = ask(finding, options, best)
            if fix is None:
                out.write("  skipped")
                if report.is_blocking(finding):
                    status = EXIT_FAILED
                continue
        if fix.needs_root and not root:
            out.write("  this fix runs sudo, which may ask for your password")
            if not yes:
                subprocess.run(["sudo", "-v"], check=False)
        result = apply(finding, fix, on_lines=out.lines, target=report.target.id)
        if result.outcome.cancelled:
            out.write(f"  interrupted: the system is as the commands left it. Log: {result.log}")
            return EXIT_INTERRUPTED
        if not report_result(out, result):
            status = EXIT_FAILED
    out.write()
    out.write(
        "Run `wizard doctor` to see where things stand."
        if not dry_run
        else "Dry run: nothing was changed. Drop --dry-run to apply."
    )
    return status


def report_result(out: Console, result: Applied) -> bool:
    outcome, after = result.outcome, result.after
    if result.fixed and after:
        out.write(out.paint(f"  ✓ {after.id} is {after.status.value} now: {after.summary}", "32"))
        return True
    if not outcome.ok:
        why = outcome.error or (
            "timed out" if outcome.timed_out else f"exit code {outcome.exit_code}"
        )
        out.write(out.paint(f"  ✗ the fix failed ({why}); its last lines:", "31"))
        for line in outcome.tail[-10:]:
            out.write(f"    {line}")
    elif after:
        out.write(
            out.paint(
                f"  ✗ the fix ran, but {after.id} is still {after.status.value}: {after.summary}",
                "31",
            )
        )
    out.write(f"  full log: {result.log}")
    return False
