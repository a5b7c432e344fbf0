"""Plain mode: the app's flow as prompts and streamed text, for SSH sessions and logs."""

from __future__ import annotations

import shlex
import sys
from typing import TYPE_CHECKING

from wizard.cli.doctor_table import TextRenderer
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.errors import EXIT_OK
from wizard.host import Host

if TYPE_CHECKING:
    from wizard.cli.request import GuidedRequest


def plain(host: Host, args: GuidedRequest, replay: bool) -> int:
    report = run_doctor(host, args.target)
    TextRenderer(sys.stdout).render(report)
    sets = " ".join(f"--set {shlex.quote(s)}" for s in args.sets)
    if not sys.stdin.isatty():
        print(
            "\nNo terminal to ask on, so nothing was changed. To fix and build without "
            f"questions: wizard doctor --fix --yes && wizard run {args.recipe} --yes {sets}"
        )
        return report.exit_code
    if replay:
        print("\nReplaying a snapshot: nothing can be fixed or built here.")
        return report.exit_code
    import questionary

    from wizard.cli.fixing import fix_findings
    from wizard.host import LocalHost

    if report.blocking and questionary.confirm("Look at the fixes now?", default=True).ask():
        fix_findings(report, only=None, yes=False, dry_run=False)
        report = run_doctor(LocalHost(), args.target)
    if not questionary.confirm(
        f"Run the {args.recipe} recipe now (build and test)?", default=not report.blocking
    ).ask():
        print(f"Later: wizard run {args.recipe} {sets}".rstrip())
        return EXIT_OK
    from wizard.cli.run import RunRequest, run

    return run(
        RunRequest(
            recipe=args.recipe,
            sets=args.sets,
            force=bool(report.blocking),
            hosts=args.hosts,
            hostfile=args.hostfile,
            ssh_config=args.ssh_config,
        )
    )
