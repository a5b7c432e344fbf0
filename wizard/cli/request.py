"""What `wizard` with no command was asked: the guided app's options, for the app or the
plain prompts."""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field, fields

from wizard.errors import UsageError


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
