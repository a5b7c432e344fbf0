"""`wizard doctor --fix`: the walk (wizard.engine.doctor.walk) on the terminal: each
finding's fixes with their exact commands, a question, the fix applied, its check again."""

from __future__ import annotations

import subprocess
import sys
from typing import TextIO

from checks.base import Finding, Fix, Status
from wizard.cli.console import Console
from wizard.engine import marks
from wizard.engine.doctor import walk
from wizard.engine.doctor.diagnosis import Diagnosis
from wizard.engine.doctor.fixes import Applied, Choice, apply, doctor_again, sudo_path
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


def show_offer(out: Console, offer: walk.Offer, target: str) -> None:
    finding = offer.finding
    out.write()
    heading = f"{finding.id}: {finding.summary}"
    out.write(out.paint(heading + (f"  [blocks {target}]" if offer.blocking else ""), "1"))
    for number, choice in enumerate(offer.options, 1):
        show_fix(out, number, choice)
    if not offer.options:
        out.write("  no fix is known")


def ask(offer: walk.Offer) -> Fix | None:
    import questionary

    usable = [c for c in offer.options if c.usable]
    titles = [c.fix.title for c in usable]
    default = offer.default
    picked = questionary.select(
        f"Fix {offer.finding.id}?",
        choices=[*titles, SKIP],
        default=default.fix.title if default else SKIP,
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
        offers = walk.offers(report, only, sudo=sudo_path())
    except KeyError as exc:
        raise UsageError(exc.args[0]) from None
    target = report.target.id
    if not offers:
        out.write(
            f"Nothing to fix: no finding blocks {target}"
            + (" among those named with --only." if only else ", and none warns with a fix.")
        )
        return EXIT_OK
    root = bool(report.facts().get("os.root"))

    def decide(offer: walk.Offer) -> walk.Decision:
        show_offer(out, offer, target)
        if dry_run:
            out.write("  dry run: nothing was run")
            return walk.DRY_RUN
        if offer.best is None:
            out.write("  no fix can be applied from here; see the manual steps above")
            return walk.SKIP
        if yes and offer.default is None:
            out.write(f"  not applied: it does not block {target} (name it with --only)")
            return walk.SKIP
        if yes:
            best = offer.best
            out.write(f"  applying: {best.fix.title}" + (f" ({best.why})" if best.why else ""))
            fix = best.fix
        else:
            picked = ask(offer)
            if picked is None:
                out.write("  skipped")
                return walk.SKIP
            fix = picked
        if fix.needs_root and not root:
            out.write("  this fix runs sudo, which may ask for your password")
            if not yes:
                subprocess.run(["sudo", "-v"], check=False)
        return fix

    def apply_fix(finding: Finding, fix: Fix) -> Applied:
        return apply(finding, fix, on_lines=out.lines, recheck=doctor_again(target=target))

    status = EXIT_OK
    for walked in walk.walk(lambda: offers, decide, apply_fix):
        if walked.cancelled:
            log = walked.applied.log if walked.applied else ""
            out.write(f"  interrupted: the system is as the commands left it. Log: {log}")
            return EXIT_INTERRUPTED
        if walked.fixed_before is not None:
            now = walked.fixed_before
            out.write()
            said = f"{now.id} is {now.status.value} now, by an earlier fix: {now.summary}"
            out.write("  " + out.marked(marks.FINDING[Status.OK], said))
        elif walked.applied is not None:
            if not report_result(out, walked.applied):
                status = EXIT_FAILED
        elif walked.offer.blocking:
            status = EXIT_FAILED  # it still blocks: skipped, or a dry run, changes nothing
    out.write()
    out.write(
        "Run `wizard doctor` to see where things stand."
        if not dry_run
        else "Dry run: nothing was changed. Drop --dry-run to apply."
    )
    return status


def report_result(out: Console, result: Applied) -> bool:
    outcome, after = result.outcome, result.after
    ok, failed = marks.FINDING[Status.OK], marks.FINDING[Status.FAIL]
    if result.fixed and after:
        out.write("  " + out.marked(ok, f"{after.id} is {after.status.value} now: {after.summary}"))
        return True
    if not outcome.ok:
        why = outcome.error or (
            "timed out" if outcome.timed_out else f"exit code {outcome.exit_code}"
        )
        out.write("  " + out.marked(failed, f"the fix failed ({why}); its last lines:"))
        for line in outcome.tail[-10:]:
            out.write(f"    {line}")
    elif after:
        still = f"the fix ran, but {after.id} is still {after.status.value}: {after.summary}"
        out.write("  " + out.marked(failed, still))
    out.write(f"  full log: {result.log}")
    return False
