"""WizardApp: the screens share one session (host, target, doctor report, recipe, run) and
open each other by name; what runs tells the app through messages (wizard.app.messages)."""

from __future__ import annotations

import importlib
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, ClassVar

from rich.text import Text
from textual.app import App, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen

from wizard.app.messages import WorkDone, Working
from wizard.engine.doctor.diagnosis import Diagnosis
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.slurm import DEFAULT_WAIT_S, Request
from wizard.engine.recipes import state as st
from wizard.engine.recipes.recipe import Recipe
from wizard.engine.recipes.saved import Unfinished, unfinished_runs
from wizard.host import Host, LocalHost

# The screens by name. A screen opens the next one through the app, by name, and never
# imports another screen; each is imported when first opened, which keeps start-up fast.
SCREENS_BY_NAME = {
    "start": "wizard.app.screens.start:StartScreen",
    "checks": "wizard.app.screens.checks:ChecksScreen",
    "fixes": "wizard.app.screens.fixes:FixesScreen",
    "steps": "wizard.app.screens.steps:StepsScreen",
    "results": "wizard.app.screens.results:ResultsScreen",
    "hosts": "wizard.app.screens.hosts:HostsScreen",
    "help": "wizard.app.screens.help:HelpScreen",
    "confirm": "wizard.app.screens.confirm:ConfirmScreen",
}


def screen_class(name: str) -> type[Screen[Any]]:
    module, _, cls = SCREENS_BY_NAME[name].partition(":")
    return getattr(importlib.import_module(module), cls)


@dataclass
class Session:
    """What the screens share."""

    host_factory: Callable[[], Host]  # a fresh host for every doctor run
    replay: str | None = None  # the snapshot file when replaying one
    recipe_name: str = "flagcx"
    answers: dict[str, str] = field(default_factory=dict)
    target: str | None = None
    report: Diagnosis | None = None
    recipe: Recipe | None = None
    run: st.RunState | None = None
    hosts: list[HostSpec] = field(default_factory=list)  # the host list the start offers
    ssh_config: str | None = None
    slurm_wait: float = DEFAULT_WAIT_S  # how long salloc may pend for the app's request
    slurm: Request | None = None  # the steps run on a Slurm allocation: what to ask for
    connect: Callable[[HostSpec], Host] | None = None  # how to reach a host (default: ssh)

    def connect_host(self, spec: HostSpec) -> Host:
        if self.connect is not None:
            return self.connect(spec)
        from wizard.engine.hosts.ssh import connect

        return connect(spec, self.ssh_config)


ASK_AFTER_S = 3.0  # q stops a step at once before this; after it, q asks first
STOP_WAIT_S = 10.0  # how long quitting waits for what it stopped to save its state


class WizardApp(App[int]):
    TITLE = "wizard"
    CSS_PATH = "wizard.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("question_mark", "help", "Help"),
        Binding("q", "quit", "Quit"),
        # In a text field ? and q are typed: these keys are not, so they are shown there.
        Binding("f1", "help", "Help"),
        Binding("ctrl+q", "quit", "Quit"),
    ]

    def __init__(self, session: Session) -> None:
        super().__init__()
        self.session = session
        self.show_recipe()
        self.local = LocalHost()
        self.work: Working | None = None  # what runs now, as its screen said (Working)

    def on_working(self, message: Working) -> None:
        self.work = message

    def on_work_done(self, message: WorkDone) -> None:
        self.work = None

    def show_recipe(self) -> None:
        """The header names the recipe, and the snapshot when replaying one."""
        name = self.session.recipe_name
        recipe = Path(name).stem if name.endswith((".yaml", ".yml")) else name
        replay = self.session.replay
        self.sub_title = (
            f"{recipe}, replaying {Path(replay).name}" if replay else f"{recipe} on this machine"
        )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        """The palette (ctrl+p) offers what this screen's keys do, then Textual's own."""
        for binding in screen.BINDINGS:
            if isinstance(binding, Binding) and binding.description:
                key = binding.key.split(",")[0]
                yield SystemCommand(
                    binding.description, f"key: {key}", partial(screen.run_action, binding.action)
                )
        # Textual's own, less its screenshot: it delivers the file through the terminal,
        # which over SSH or in tmux leaves no file the user can find.
        yield from (c for c in super().get_system_commands(screen) if c.title != "Screenshot")

    def open(self, name: str, *args: Any, done: Callable[[Any], None] | None = None) -> None:
        """Show a new screen of the named kind on top of this one, made with `args`; `done`
        hears what it is dismissed with."""
        self.push_screen(screen_class(name)(*args), done)

    def confirm(
        self, question: str, body: Any, answered: Callable[[bool | None], None], **yes: str
    ) -> None:
        """Ask yes or no over the current screen; `answered` gets the reply. `yes=` names
        the yes button (default: "Yes, run them (y)"), `yes_key=` one more key for yes."""
        self.push_screen(screen_class("confirm")(question, body, **yes), answered)

    def on_mount(self) -> None:
        self.open("start")

    def action_help(self) -> None:
        if not isinstance(self.screen, screen_class("help")):
            self.open("help")

    def action_quit(self) -> None:
        """Leave; what runs is stopped first, after asking when it has run a while (y, or q
        again, confirms)."""
        running = self.work
        if running is not None and time.monotonic() - running.since > ASK_AFTER_S:

            def answered(yes: bool | None) -> None:
                if yes:
                    self.call_later(self._stop_and_exit)

            body = Text(
                "Its state is saved as cancelled; `wizard resume` runs it again."
                if running.what == "step"
                else "Its log is kept; `wizard doctor` shows what it changed."
            )
            question = f"A {running.what} is running. Stop it and quit?"
            self.confirm(question, body, answered, yes="Stop and quit (y, q)", yes_key="q")
            return
        self._stop_and_exit()

    def _stop_and_exit(self) -> None:
        """Stop what runs (its state is saved as cancelled), then leave once it has ended."""
        running = self.work
        if running is None:
            self._leave()
            return
        running.cancel()
        self.notify(f"Stopping the running {running.what}…")
        deadline = time.monotonic() + STOP_WAIT_S

        def leave_once_stopped() -> None:
            if self.work is None or time.monotonic() > deadline:
                timer.stop()
                self._leave()

        timer = self.set_interval(0.1, leave_once_stopped)

    def _leave(self) -> None:
        self.exit(0, message=_resume_hint(self.session.run))


def _resume_hint(run: st.RunState | None) -> str | None:
    if run is None or run.first_unfinished() is None:
        return None
    return f"Run {run.run_id} is not finished; continue it with: wizard resume --run {run.run_id}"


def latest_unfinished() -> tuple[st.RunState | None, list[Unfinished]]:
    """The newest saved run that stopped before its end and can continue (offered at
    start), and the newer ones that cannot (their answers no longer fit their recipe)."""
    stuck = []
    for found in unfinished_runs():
        if found.problem is None:
            return found.run, stuck
        stuck.append(found)
    return None, stuck


def describe(value: Any) -> str:
    return " ".join(map(str, value)) if isinstance(value, list) else str(value)
