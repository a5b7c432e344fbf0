"""Command line: the guided app, `wizard doctor`, `snapshot`, `run`, `resume`, `status`,
`steps` and `report`.

Kept light at import time so `wizard --help` answers at once: the engine and checks are
imported by the command that needs them.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

from wizard import __version__
from wizard.errors import (
    EXIT_FAILED,
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)

if TYPE_CHECKING:
    from checks.base import Finding
    from wizard.host.base import Host


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
    from wizard.cli.slurm_doctor import launch_option, slurm_options
    from wizard.paths import recipe_ids

    parser = WizardParser(
        prog="wizard",
        description="Take a GPU machine to a built and tested FlagCX stack: detect, explain, "
        "propose fixes, build, test.",
        epilog="Exit codes: 0 nothing blocks (or done), 1 a finding blocks the target (or a "
        "step failed), 2 usage error, 70 internal error (a bug; the message names its log), "
        "130 interrupted.",
    )
    parser.add_argument("--version", action="version", version=f"wizard {__version__}")
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
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")

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
    slurm_options(doctor.add_argument_group("the nodes of a Slurm allocation, through srun"))
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
    slurm_options(
        run.add_argument_group("across the nodes of a Slurm allocation, through srun"), batch=True
    )

    resume = commands.add_parser(
        "resume",
        help="continue the last run where it stopped",
        description="Continue a saved run: finished steps are not redone; the step that "
        "failed or was interrupted runs again, then the rest.",
    )
    resume.add_argument("--run", metavar="RUN_ID", help="which run (default: the latest)")
    _run_options(resume)
    launch_option(resume)

    status = commands.add_parser(
        "status",
        help="show the steps and results of a saved run",
        description="Show a saved run's steps (done, failed, skipped, not run yet) with their "
        "times and logs; --json prints its saved state.",
    )
    status.add_argument("--run", metavar="RUN_ID", help="which run (default: the latest)")
    status.add_argument("--json", action="store_true", help="print the saved state as JSON")

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
    return parser


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


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        request = GuidedRequest.from_args(parser, args)
        if args.command is None:
            return guided(request)
    except UsageError as exc:
        print(f"wizard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if args.command in ("doctor", "snapshot"):
        handler = doctor if args.command == "doctor" else snapshot
    elif args.command == "hosts":
        if args.hosts_command is None:
            parser.parse_args(["hosts", "--help"])  # prints the subcommands, exits 0
        from wizard.cli.hosts_setup import setup as handler
    else:  # the recipe commands, imported only when used
        from wizard.cli import run as commands

        handler = getattr(commands, args.command)
        if args.command == "run":
            args = commands.RunRequest.from_args(args)
    try:
        return handler(args)
    except UsageError as exc:
        print(f"wizard: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\nwizard: interrupted; nothing was changed.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as exc:  # a bug: keep the traceback, show one line
        return _crash(exc)


def _crash(exc: Exception) -> int:
    import os
    import tempfile
    import traceback

    from wizard.paths import writable_state_dir

    text = "".join(traceback.format_exception(exc))
    if os.environ.get("WIZARD_DEBUG"):
        print(text, file=sys.stderr)
    try:
        crash = writable_state_dir() / "crash.log"
        crash.write_text(text)
    except (OSError, UsageError):  # no usable state folder: the temporary one, then none
        try:
            fd, name = tempfile.mkstemp(prefix="wizard-crash-", suffix=".log")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            crash = Path(name)
        except OSError:
            crash = None
    where = f"; the traceback is in {crash}" if crash else ""
    print(
        f"wizard: internal error: {type(exc).__name__}: {exc}{where}. This is a bug; please "
        + ("report it with that file." if crash else "report it (set WIZARD_DEBUG=1 to see it)."),
        file=sys.stderr,
    )
    return EXIT_INTERNAL


@dataclass
class GuidedRequest:
    """The guided app's options (`wizard` with no command), for the app or the plain prompts."""

    plain: bool = False
    snapshot: str | None = None
    recipe: str = "flagcx"
    target: str | None = None
    sets: list[str] = field(default_factory=list)
    hosts: str | None = None
    hostfile: str | None = None
    ssh_config: str | None = None

    @classmethod
    def from_args(cls, parser: argparse.ArgumentParser, args: argparse.Namespace) -> GuidedRequest:
        """UsageError when one is given before a command, where it would be ignored."""
        given = {
            f.name: getattr(args, f"app_{f.name}")
            for f in fields(cls)
            if getattr(args, f"app_{f.name}") not in (None, False, [])
        }
        if args.command is not None and given:
            words = [args.command, *filter(None, [getattr(args, "hosts_command", None)])]
            raise UsageError(_misplaced(parser, words, next(iter(given))))
        return cls(**given)


def _misplaced(parser: argparse.ArgumentParser, words: list[str], name: str) -> str:
    """Where an option of the guided app given before the command `words` belongs."""
    option = "--set" if name == "sets" else f"--{name.replace('_', '-')}"
    (app_action,) = (a for a in parser._actions if option in a.option_strings)
    usage = f"{option} {app_action.metavar}" if app_action.metavar else option
    command = " ".join(words)
    if any(option in a.option_strings for a in _subparser(parser, words)._actions):
        return f"{option} goes after the command: wizard {command} {usage}"
    return f"{option} is for the guided app (wizard {usage}); `wizard {command}` has no {option}"


def _subparser(parser: argparse.ArgumentParser, words: list[str]) -> argparse.ArgumentParser:
    """The command's own parser (argparse keeps its actions in _actions, with no public view)."""
    for word in words:
        (commands,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
        parser = commands.choices[word]
    return parser


def guided(args: GuidedRequest) -> int:
    """The app on a terminal; plain prompts with --plain or without one."""
    from wizard.host import LocalHost, SnapshotError, load_snapshot
    from wizard.paths import writable_state_dir

    _check_target(args.target)
    answers = _check_recipe(args.recipe, args.sets)
    if args.snapshot:
        try:
            load_snapshot(args.snapshot)  # fail now, with a clear message
        except SnapshotError as exc:
            raise UsageError(str(exc)) from None
        path = args.snapshot

        def host_factory() -> Host:
            return load_snapshot(path)
    else:
        host_factory = LocalHost
        writable_state_dir()  # before any screen: runs and fix logs are kept there
    if args.plain or not (sys.stdin.isatty() and sys.stdout.isatty()):
        from wizard.cli.plain import plain

        return plain(host_factory(), args, replay=bool(args.snapshot))
    from wizard.app.app import Session, WizardApp
    from wizard.cli.hosts_doctor import hosts_of

    session = Session(
        host_factory,
        replay=args.snapshot,
        recipe_name=args.recipe,
        answers=answers,
        target=args.target,
        hosts=hosts_of(args),
        ssh_config=args.ssh_config,
    )
    return WizardApp(session).run() or EXIT_OK


def _check_recipe(name: str, sets: list[str]) -> dict[str, str]:
    """The recipe exists and takes every --set key: said before any screen or prompt, as
    `wizard run` says it. Returns the answers."""
    from wizard.engine.recipes import recipe as recipes
    from wizard.engine.recipes.run import ParamError, check_answers, parse_sets

    try:
        answers = parse_sets(sets)
        check_answers(recipes.load(name), answers)
    except (recipes.RecipeError, ParamError) as exc:
        raise UsageError(str(exc)) from None
    return answers


def _check_target(target: str | None) -> None:
    from wizard.engine.doctor.targets import TARGETS

    if target is not None and target not in TARGETS:
        raise UsageError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")


def doctor(args: argparse.Namespace) -> int:
    from wizard.host import LocalHost, SnapshotError, load_snapshot
    from wizard.paths import writable_state_dir

    _check_target(args.target)
    if (args.yes or args.dry_run or args.only) and not args.fix:
        raise UsageError("--yes, --dry-run and --only go with --fix")
    if args.fix and not (args.yes or args.dry_run) and not sys.stdin.isatty():
        raise UsageError(
            "--fix asks before changing anything: run it in a terminal, or pass "
            "--yes to apply the preferred fixes, or --dry-run to only show them"
        )
    from wizard.cli.slurm_doctor import doctor_slurm, wants_slurm

    if wants_slurm(args):
        return doctor_slurm(args)
    many = args.hosts is not None or args.hostfile is not None
    if (args.ssh_config or args.ssh_mesh) and not many:
        raise UsageError("--ssh-config and --ssh-mesh go with --hosts or --hostfile")
    if many:
        if args.fix or args.snapshot:
            raise UsageError("--hosts and --hostfile go with neither --fix nor --snapshot")
        from wizard.cli.hosts_doctor import doctor_many

        return doctor_many(args)
    if args.fix and args.json:
        raise UsageError("--fix walks the findings as text: it cannot be combined with --json")
    if args.fix and args.snapshot and not args.dry_run:
        raise UsageError(
            "--fix changes this machine, not the recorded one: add --dry-run to see the "
            "fixes for the snapshot's machine"
        )
    if args.snapshot:
        try:
            host = load_snapshot(args.snapshot)
        except SnapshotError as exc:
            raise UsageError(str(exc)) from None
    else:
        host = LocalHost(start_nvml=True)  # before the checks' imports, which take ~0.1 s
    from wizard.cli.doctor_table import TextRenderer, to_json
    from wizard.engine.doctor.diagnosis import run_doctor

    report = run_doctor(host, args.target, deep=args.deep)
    misses = getattr(host, "misses", [])
    if misses:
        print(
            f"wizard: warning: {len(misses)} observations are not in {args.snapshot} "
            "(recorded by another wizard version?); they count as absent",
            file=sys.stderr,
        )
    if args.fix:
        from wizard.cli.fixing import fix_findings

        if not args.dry_run:
            writable_state_dir()  # where each fix's log goes: say so before asking anything
        TextRenderer(sys.stdout, verbose=args.verbose, fixing=True).render(report)
        return fix_findings(report, only=args.only, yes=args.yes, dry_run=args.dry_run)
    if args.json:
        slowest = host.slowest()
        timing = (
            {
                "slowest_probe": {
                    "probe": f"{slowest.kind}: {slowest.key}",
                    "seconds": round(slowest.seconds, 4),
                }
            }
            if slowest
            else {}
        )
        print(to_json(report, timing))
    else:
        TextRenderer(sys.stdout, verbose=args.verbose).render(report)
    return report.exit_code


def snapshot(args: argparse.Namespace) -> int:
    from wizard.engine.doctor.diagnosis import run_doctor
    from wizard.host import LocalHost, load_snapshot, write_snapshot

    _check_target(args.target)
    host = LocalHost()
    report = run_doctor(host, args.target, deep=args.deep)
    try:
        crashes = {f.id: f.traceback or "" for f in report.crashed}
        path = write_snapshot(host, args.output, note=args.note, crashes=crashes)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    counts = ", ".join(f"{len(v)} {k}" for k, v in host.observations.items() if v)
    if not path.is_file():  # streamed to a pipe or device: nothing to read back
        print(f"Recorded {counts} from {host.name} to {path}.", file=sys.stderr)
        return EXIT_OK
    replay = run_doctor(load_snapshot(path), args.target, deep=args.deep)

    def compared(findings: list[Finding]) -> list[dict[str, object]]:
        return [{**f.to_dict(), "traceback": None} for f in findings]  # tracebacks name hosts

    same = compared(replay.findings) == compared(report.findings)
    counts = ", ".join(f"{len(v)} {k}" for k, v in host.observations.items() if v)
    print(f"Recorded {counts} from {host.name} to {path}.")
    for finding in report.crashed:
        print(f"{finding.id} crashed; its traceback is in the snapshot: {finding.summary}")
    print(
        f"Replay gives {'the same' if same else 'DIFFERENT'} findings: "
        f"wizard doctor --snapshot {path}"
    )
    return EXIT_OK if same else EXIT_FAILED
