"""The argument tree of `wizard`: the guided app's options, then one builder per command.

Kept light at import time so `wizard --help` answers at once.
"""

from __future__ import annotations

import argparse
import re
from typing import NoReturn

from wizard import __version__
from wizard.cli import slurm_doctor
from wizard.paths import recipe_ids


class WizardParser(argparse.ArgumentParser):
    """argparse's parser, offering the closest command when one is mistyped (as a mistyped
    recipe gets)."""

    def error(self, message: str) -> NoReturn:
        wrong = re.match(r"argument (?:COMMAND|SUBCOMMAND): invalid choice: '([^']*)'", message)
        if wrong:
            from wizard.engine.recipes.recipe import did_you_mean

            (commands,) = (a for a in self._actions if isinstance(a, argparse._SubParsersAction))
            names = list(commands.choices)
            message = f"no command {wrong.group(1)!r}{did_you_mean(wrong.group(1), names)}; "
            message += f"the commands: {', '.join(names)}"
        super().error(message)


def build_parser() -> argparse.ArgumentParser:
    parser = WizardParser(
        prog="wizard",
        description="Take a GPU machine to a built and tested FlagCX stack: detect, explain, "
        "propose fixes, build, test.",
        epilog="Exit codes: 0 nothing blocks (or done), 1 a finding blocks the target (or a "
        "step failed), 2 usage error, 70 internal error (a bug; the message names its log), "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"wizard {__version__}")
    _app_options(parser)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add in (_doctor, _hosts, _snapshot, _run, _resume, _status, _steps, _report):
        add(commands)
    return parser


def _app_options(parser: argparse.ArgumentParser) -> None:
    """The guided app's: `wizard` with no command."""
    # The guided app's options keep to their own names (app_*): a command's options of the
    # same name would overwrite them, so one given before a command would be lost unseen.
    app = parser.add_argument_group("the guided app (wizard with no command)")
    app.add_argument(
        "--plain",
        dest="app_plain",
        action="store_true",
        help="prompts and streamed text instead of the full-screen app "
        "(the default when there is no terminal)",
    )
    app.add_argument(
        "--snapshot",
        dest="app_snapshot",
        metavar="FILE",
        help="run against a machine recorded with `wizard snapshot` (demo, tests)",
    )
    app.add_argument(
        "--recipe",
        dest="app_recipe",
        metavar="RECIPE",
        help="what to build and test (default flagcx)",
    )
    app.add_argument(
        "--target",
        dest="app_target",
        metavar="TARGET",
        help="the target (default: the vendor found)",
    )
    _set_option(app, dest="app_sets")
    _host_options(app, prefix="app_")


def _doctor(commands: argparse._SubParsersAction) -> None:
    """`wizard doctor`: this machine, a snapshot, other hosts or Slurm nodes; --fix."""
    doctor = commands.add_parser(
        "doctor",
        help="check this machine and show what blocks the target, with fixes",
        description="Check this machine (or a recorded snapshot) and show every finding, "
        "what blocks the target, and the exact commands that would fix it. Nothing is changed "
        "unless --fix is given, and then only what you accept.",
    )
    _target_options(doctor)
    doctor.add_argument("--json", action="store_true", help="print one JSON object (see README)")
    doctor.add_argument(
        "-v", "--verbose", action="store_true", help="show details and the facts learned"
    )
    doctor.add_argument(
        "--snapshot",
        metavar="FILE",
        help="replay a snapshot recorded by `wizard snapshot` instead of this host",
    )
    many = doctor.add_argument_group("other hosts, over SSH (your ssh and its config)")
    _host_options(many)
    many.add_argument(
        "--ssh-mesh",
        action="store_true",
        help="also try passwordless SSH from every host to every other, as mpirun will "
        "(N×(N-1) logins; past 64 hosts, the first host to all and back)",
    )
    slurm_doctor.slurm_options(
        doctor.add_argument_group("the nodes of a Slurm allocation, through srun")
    )
    fixing = doctor.add_argument_group("fixing (asks before changing anything)")
    fixing.add_argument(
        "--fix",
        action="store_true",
        help="walk the findings that fail or warn and have a fix, blocking ones first, "
        "and apply fixes with consent",
    )
    fixing.add_argument(
        "--yes",
        action="store_true",
        help="with --fix: apply the preferred fix of each blocking one (or each named with "
        "--only) without asking",
    )
    fixing.add_argument(
        "--dry-run", action="store_true", help="with --fix: show what would run, change nothing"
    )
    fixing.add_argument(
        "--only",
        metavar="ID",
        action="append",
        help="with --fix: only these findings (repeatable), warnings included",
    )


def _hosts(commands: argparse._SubParsersAction) -> None:
    """`wizard hosts setup`: the SSH mesh."""
    hosts = commands.add_parser(
        "hosts",
        help="make the hosts of a run reach each other over SSH without a password",
        description="Hosts of a run across machines: `wizard hosts setup` checks and fixes "
        "the SSH mesh mpirun needs.",
    )
    hosts_commands = hosts.add_subparsers(dest="hosts_command", metavar="SUBCOMMAND")
    setup = hosts_commands.add_parser(
        "setup",
        help="check and fix passwordless SSH from here to every host and between them",
        description="Check the SSH mesh a launcher needs: a key here, a login to each host "
        "(unknown host keys shown with fingerprints; a password asked once by ssh-copy-id), "
        "~/.ssh modes and a key on each host, every host's key in every other's "
        "authorized_keys and the host keys this machine trusts in their known_hosts. Shows "
        "each problem with its exact commands and runs the ones you accept; then tries every "
        "direction. Between the hosts, each uses its own ~/.ssh and the names given here.",
    )
    _host_options(setup.add_argument_group("the hosts"))
    setup.add_argument(
        "--yes",
        action="store_true",
        help="apply the fixes without asking, except those that need you (a password, "
        "comparing fingerprints): those are printed",
    )
    setup.add_argument("--dry-run", action="store_true", help="show the fixes, change nothing")


def _snapshot(commands: argparse._SubParsersAction) -> None:
    """`wizard snapshot`."""
    snapshot = commands.add_parser(
        "snapshot",
        help="record what the checks observe on this host, for replay or a bug report",
        description="Run the checks on this host and record every observation (commands and "
        "their output, files read, paths, environment variables, NVML answers) into a YAML "
        "file. Variables whose names suggest a secret are never recorded.",
    )
    snapshot.add_argument(
        "-o", "--output", metavar="FILE", required=True, help="where to write the snapshot"
    )
    snapshot.add_argument("--note", default="", help="a line describing the machine")
    _target_options(snapshot)


def _run(commands: argparse._SubParsersAction) -> None:
    """`wizard run RECIPE`, here, across hosts or on Slurm nodes."""
    run = commands.add_parser(
        "run",
        help="build and test: run a recipe's steps with live output",
        description=f"Run a recipe ({', '.join(recipe_ids())}, or a path to a recipe file). "
        "Parameters come from --set, then what `wizard doctor` found, then defaults. Steps "
        "whose work is already done are skipped; every step's state is saved, so a failed or "
        "interrupted run continues with `wizard resume`.",
    )
    run.add_argument("recipe", help="recipe id or path to a recipe YAML file")
    run.add_argument(
        "--from",
        dest="start",
        metavar="STEP",
        help="re-run from this step on, continuing the recipe's latest run",
    )
    _run_options(run)
    across = run.add_argument_group(
        "across hosts, over SSH (builds on every host, then one launch over all)"
    )
    _host_options(across)
    slurm_doctor.slurm_options(
        run.add_argument_group("across the nodes of a Slurm allocation, through srun"), batch=True
    )


def _resume(commands: argparse._SubParsersAction) -> None:
    """`wizard resume`."""
    resume = commands.add_parser(
        "resume",
        help="continue the last run where it stopped",
        description="Continue a saved run: finished steps are not redone; the step that "
        "failed or was interrupted runs again, then the rest.",
    )
    resume.add_argument("--run", metavar="RUN_ID", help="which run (default: the latest)")
    _run_options(resume)
    slurm_doctor.launch_option(resume)


def _status(commands: argparse._SubParsersAction) -> None:
    """`wizard status`."""
    status = commands.add_parser(
        "status",
        help="show the steps and results of a saved run",
        description="Show a saved run's steps (done, failed, skipped, not run yet) with their "
        "times and logs; --json prints its saved state.",
    )
    status.add_argument("--run", metavar="RUN_ID", help="which run (default: the latest)")
    status.add_argument("--json", action="store_true", help="print the saved state as JSON")


def _steps(commands: argparse._SubParsersAction) -> None:
    """`wizard steps RECIPE`: the plan, nothing run."""
    steps = commands.add_parser(
        "steps",
        help="show a recipe's plan: which steps would run or be skipped, and why",
        description="Show what `wizard run RECIPE` would do here: each step run (with its "
        "commands, parameters filled in) or skipped and why, and any parameter left without "
        "a value. Nothing is run.",
    )
    steps.add_argument("recipe", help="recipe id or path to a recipe YAML file")
    _set_option(steps)
    steps.add_argument("--from", dest="start", metavar="STEP", help="plan a re-run from STEP")


def _report(commands: argparse._SubParsersAction) -> None:
    """`wizard report`."""
    report = commands.add_parser(
        "report",
        help="FlagCX's bandwidth beside NCCL's (nccl-tests), per collective and size, against "
        "the link's peak",
        description="Compare the latest finished flagcx run's perf tests with the latest "
        "nccl-tests run: bandwidth per collective and message size, their ratio and each "
        "against the link's peak. Exit code 1 when FlagCX is more than 10% below NCCL.",
    )
    report.add_argument(
        "--format",
        choices=["text", "json", "markdown", "html"],
        default="text",
        help="text (default), json (schema in README.md), markdown for a GitHub issue, or html "
        "(one self-contained file, charts as inline SVG)",
    )
    report.add_argument("--json", action="store_true", help="the same as --format json")
    report.add_argument("-o", "--output", metavar="FILE", help="write the report to FILE")
    report.add_argument(
        "--run",
        dest="runs",
        action="append",
        metavar="ID",
        help="a run to include (repeatable); the latest of each kind by default",
    )


def _set_option(
    parser: argparse.ArgumentParser | argparse._ArgumentGroup, dest: str = "sets"
) -> None:
    parser.add_argument(
        "--set",
        dest=dest,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set a recipe parameter, e.g. --set src=~/FlagCX (repeatable)",
    )


def _host_options(group: argparse._ArgumentGroup, prefix: str = "") -> None:
    group.add_argument(
        "--hosts",
        dest=f"{prefix}hosts",
        metavar="A,B,...",
        help="these hosts: [user@]name[:port], comma-separated",
    )
    group.add_argument(
        "--hostfile",
        dest=f"{prefix}hostfile",
        metavar="FILE",
        help="the hosts of an MPI hostfile (`name slots=N`, `name:N` or one name a line)",
    )
    group.add_argument(
        "--ssh-config",
        dest=f"{prefix}ssh_config",
        metavar="FILE",
        help="an ssh config file to use instead of ~/.ssh/config",
    )


def _run_options(parser: argparse.ArgumentParser) -> None:
    _set_option(parser)
    parser.add_argument(
        "--yes", action="store_true", help="never ask: parameters without a value are an error"
    )
    parser.add_argument(
        "--force",
        action="store_true",
        help="run even when the doctor finds problems that block the recipe",
    )


def _target_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--target",
        metavar="TARGET",
        help="what to check for, e.g. flagcx-nvidia (default: the vendor found)",
    )
    parser.add_argument(
        "--deep",
        action="store_true",
        help="also import PyTorch to confirm CUDA works (takes seconds)",
    )
