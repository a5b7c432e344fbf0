"""`wizard`, the entry point of both front ends: with no command the guided app (or the
plain prompts), else the command line's commands (doctor, snapshot, hosts, run, resume,
status, steps, report). The one module that imports both wizard.app and wizard.cli.

Kept light at import time so `wizard --help` answers at once: the engine and checks are
imported by the command that needs them.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.cli.request import GuidedRequest
from wizard.errors import (
    EXIT_INTERNAL,
    EXIT_INTERRUPTED,
    EXIT_OK,
    EXIT_USAGE,
    UsageError,
)

if TYPE_CHECKING:
    from wizard.host.base import Host


def main(argv: Sequence[str] | None = None) -> int:
    from wizard.cli.parser import build_parser

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
        from wizard.cli import doctor

        handler = getattr(doctor, args.command)
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


def guided(args: GuidedRequest) -> int:
    """The app on a terminal; plain prompts with --plain or without one."""
    from wizard.cli.doctor import check_target
    from wizard.host import LocalHost, SnapshotError, load_snapshot
    from wizard.paths import writable_state_dir

    check_target(args.target)
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
