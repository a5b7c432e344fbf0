"""Start: choose the target, the source folder and options, and where to check: this
machine, a host list or, where Slurm is, a Slurm allocation's nodes; where the steps run:
here, across the host list, or on a Slurm allocation; offer to resume a saved run."""

from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.validation import ValidationResult, Validator
from textual.widgets import Button, Checkbox, Footer, Header, Input, Label, Select, Static

from checks.vendors import default_vendor
from wizard.app.app import latest_unfinished
from wizard.app.messages import Detected
from wizard.app.screens.base import WizardScreen
from wizard.engine.doctor.targets import TARGETS
from wizard.engine.hosts.across import Cluster
from wizard.engine.hosts.hostlist import HostListError, parse_hosts
from wizard.engine.hosts.slurm import Request
from wizard.engine.hosts.slurm_run import resume_request
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes.run import ParamError, check_answers, parse_sets
from wizard.host import Host
from wizard.paths import recipe_ids

INTRO = (
    "This wizard checks this machine for what FlagCX needs, proposes fixes and asks before "
    "changing anything, then builds FlagCX and runs its perf tests, unit tests and torch "
    "plugin with live logs. Every step is saved: you can stop and resume at any time."
)


class RecipeParameters(Validator):
    """key=value pairs, each key a parameter of the chosen recipe: said as they are typed."""

    def __init__(self, recipe_name: Callable[[], str]) -> None:
        super().__init__()
        self.recipe_name = recipe_name

    def validate(self, value: str) -> ValidationResult:
        try:
            answers = parse_sets(shlex.split(value))
            check_answers(recipes.load(self.recipe_name()), answers)
        except (ParamError, ValueError) as exc:
            return self.failure(str(exc))
        except recipes.RecipeError:
            pass  # the recipe's own error is shown where it is chosen
        return self.success()


class StartScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("ctrl+n", "go", "Check this machine", priority=True),
        Binding("ctrl+o", "hosts", "Check the hosts", priority=True),
        # In the footer only where Slurm is (its tools, or the allocation this runs in).
        Binding("ctrl+s", "slurm", "Check the Slurm nodes", priority=True),
        # In the footer only when there is a saved run; without one, the key says so.
        Binding("ctrl+r", "resume", "Resume the saved run", priority=True),
        Binding("ctrl+r", "no_saved_run", show=False, priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        # A replay shows the snapshot's world only: no run made on this machine.
        self.replay = bool(self.wizard.session.replay)
        self.saved, self.stuck = (None, []) if self.replay else latest_unfinished()
        self.picked = False
        self.takes_src = True
        self.slurm = False  # Slurm is here: offered once the detection says so
        self.job: str | None = None  # the Slurm job the wizard runs inside

    def compose(self) -> ComposeResult:
        session = self.wizard.session
        try:
            self.takes_src = "src" in recipes.load(session.recipe_name).params
        except recipes.RecipeError as exc:
            self.notify(str(exc), severity="error", title="Recipe")
        yield Header()
        with VerticalScroll(id="start"):
            yield Static(Text(INTRO), id="intro")
            if session.replay:
                yield Static(
                    Text(f"Replaying the machine recorded in {session.replay}.", style="italic")
                )
            # The actions first, so they are on screen at 80x24; the settings below them.
            for stuck in self.stuck:
                yield Static(Text(f"Run {stuck.line()}", style="yellow"), classes="stuck-run")
            if self.saved:
                step = self.saved.first_unfinished()
                status = self.saved.steps[step].status if step else ""
                yield Static(
                    Text(
                        f"A saved run, {self.saved.run_id}, stopped at step {step} "
                        f"({status}). Resume it, or start a new run."
                    ),
                    id="resume-note",
                )
            with Horizontal(id="actions"):
                yield Button("Check this machine", variant="primary", id="go")
                if self.saved:
                    yield Button("Resume the saved run", id="resume")
                yield Button("Check the hosts", id="check-hosts")
            # A row of its own, shown where Slurm is: the first row fills 80 columns.
            with Horizontal(id="slurm-actions", classes="hidden"):
                yield Button("Check the Slurm nodes", id="check-slurm")
                yield Label("nodes to ask salloc for (-N)", id="slurm-label")
                yield Input(value="2", id="slurm-nodes", type="integer")
            run_there = Checkbox(
                "Run the steps on the Slurm nodes", session.slurm is not None, id="slurm-run"
            )
            run_there.display = False  # shown with the row above
            yield run_there
            yield Label("What to build and test")
            yield Select(
                self.recipe_choices(), value=session.recipe_name, allow_blank=False, id="recipe"
            )
            yield Label("Target")
            yield Select(
                [(t.title, t.id) for t in TARGETS.values()],
                value=session.target or "flagcx-nvidia",
                allow_blank=False,
                id="target",
            )
            yield Label("Source folder (cloned there when missing)", id="src-label")
            yield Input(value=session.answers.get("src", "~/FlagCX"), id="src")
            yield Label("Other hosts, for a run across machines (a,b,user@c:8010)")
            yield Input(
                value=",".join(h.label for h in session.hosts),
                placeholder="none: this machine only",
                id="hosts-input",
            )
            yield Label("More parameters, as key=value (e.g. gpus=8 perf_args='-b 1M -e 1G')")
            yield Input(
                value=" ".join(
                    f"{k}={shlex.quote(v)}" for k, v in session.answers.items() if k != "src"
                ),
                id="sets",
                validators=[RecipeParameters(lambda: self.wizard.session.recipe_name)],
            )
            yield Static(id="sets-error")
        yield Footer()

    def recipe_choices(self) -> list[tuple[str, str]]:
        """The shipped recipes, and the one asked for on the command line if it is a file."""
        names = recipe_ids()
        current = self.wizard.session.recipe_name
        choices = []
        for name in [*names, *([] if current in names else [current])]:
            try:
                recipe = recipes.load(name)
            except recipes.RecipeError:
                continue
            choices.append((f"{recipe.id}: {recipe.title}", name))
        return choices

    def on_mount(self) -> None:
        self.detect()
        self._show_src()
        self.query_one("#go", Button).focus()

    def _show_src(self) -> None:
        for widget in (self.query_one("#src-label"), self.query_one("#src")):
            widget.display = self.takes_src

    def detect(self) -> None:
        session = self.wizard.session
        self._detect(session.host_factory, bool(session.replay))

    @work(thread=True, exclusive=True)
    def _detect(self, host_factory: Callable[[], Host], replay: bool) -> None:
        """The vendor, and Slurm as checks/slurm.py finds it first (srun on PATH), or the
        allocation the wizard runs in; a replay shows the snapshot's world: no Slurm here."""
        host = host_factory()
        vendor = default_vendor(host)
        job = None if replay else host.getenv("SLURM_JOB_ID") or host.getenv("SLURM_JOBID")
        slurm = not replay and bool(job or host.which("srun"))
        self.post_message(Detected(f"flagcx-{vendor}", slurm, job))

    def _target(self) -> str | None:
        """The target the user picked, or the one given on the command line; None leaves it
        to the doctor, which finds the same vendor as the pre-selection (which may not have
        come yet when Go is pressed at once)."""
        if self.picked:
            return str(self.query_one("#target", Select).value)
        return self.wizard.session.target  # `wizard --target T`, else None

    def on_detected(self, message: Detected) -> None:
        if not self.picked and self.wizard.session.target is None:
            self.query_one("#target", Select).value = message.target
        self.slurm, self.job = message.slurm, message.job
        self.query_one("#slurm-actions").set_class(not self.slurm, "hidden")
        self.query_one("#slurm-run").display = self.slurm
        for widget in (self.query_one("#slurm-label"), self.query_one("#slurm-nodes")):
            widget.display = self.job is None  # outside an allocation salloc asks for one
        self.refresh_bindings()

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "recipe":
            self.wizard.session.recipe_name = str(event.value)
            self.wizard.show_recipe()
            try:
                self.takes_src = "src" in recipes.load(str(event.value)).params
            except recipes.RecipeError as exc:
                self.notify(str(exc), severity="error", title="Recipe")
            self._show_src()
            sets = self.query_one("#sets", Input)
            self._show_sets_error(sets.validate(sets.value))  # the keys of the new recipe
            return
        self.picked = self.picked or event.select.has_focus

    def on_button_pressed(self, event: Button.Pressed) -> None:
        if event.button.id == "go":
            self.action_go()
        elif event.button.id == "resume":
            self.action_resume()
        elif event.button.id == "check-hosts":
            self.action_hosts()
        elif event.button.id == "check-slurm":
            self.action_slurm()

    def action_hosts(self) -> None:
        text = self.query_one("#hosts-input", Input).value
        if not text.strip():
            self.notify("Name the hosts first (a,b,user@c:8010).", title="Hosts")
            self.query_one("#hosts-input", Input).focus()
            return
        try:
            specs = parse_hosts(text)
        except HostListError as exc:
            self.notify(str(exc), severity="error", title="Hosts")
            return
        self.wizard.session.target = self._target()
        self.wizard.open("hosts", specs)

    def action_slurm(self) -> None:
        """The nodes of the allocation the wizard runs in, else of one salloc asks for."""
        request = self._slurm_request()
        if request is not None:
            self.wizard.session.target = self._target()
            self.wizard.open("hosts", request)

    def _slurm_request(self) -> Request | None:
        """What to ask Slurm for: nothing inside an allocation (its nodes), else the nodes
        typed; None, said, when they are not a count."""
        if self.job is not None:
            return Request()
        text = self.query_one("#slurm-nodes", Input).value.strip()
        if not text.isdigit() or int(text) < 1:
            self.notify("Name how many nodes to ask for (1 or more).", title="Slurm")
            self.query_one("#slurm-nodes", Input).focus()
            return None
        return Request(nodes=int(text))

    def on_input_changed(self, event: Input.Changed) -> None:
        if event.input.id == "sets":
            self._show_sets_error(event.validation_result)

    def _show_sets_error(self, result: ValidationResult | None) -> None:
        why = "" if result is None or result.is_valid else result.failure_descriptions[0]
        self.query_one("#sets-error", Static).update(Text(why, style="red"))

    def _answers(self) -> dict[str, str] | None:
        src = self.query_one("#src", Input).value.strip() if self.takes_src else ""
        sets = self.query_one("#sets", Input)
        result = sets.validate(sets.value)
        self._show_sets_error(result)
        if result is not None and not result.is_valid:
            self.notify(result.failure_descriptions[0], severity="error", title="Parameters")
            sets.focus()
            return None
        answers = parse_sets(shlex.split(sets.value))
        if src:
            answers["src"] = src
        return answers

    def action_go(self) -> None:
        """This machine's checks; the steps then run here, across the other hosts named, or
        on the Slurm nodes."""
        answers = self._answers()
        if answers is None:
            return
        text = self.query_one("#hosts-input", Input).value
        try:
            hosts = parse_hosts(text) if text.strip() else []
        except HostListError as exc:
            self.notify(str(exc), severity="error", title="Hosts")
            return
        slurm = None
        if self.slurm and self.query_one("#slurm-run", Checkbox).value:
            if hosts:
                self.notify(
                    "Slurm gives the hosts: empty the host list, or untick the Slurm run.",
                    severity="error",
                    title="Slurm",
                )
                return
            slurm = self._slurm_request()
            if slurm is None:
                return
        session = self.wizard.session
        session.answers = answers
        session.target = self._target()
        session.hosts = hosts
        session.slurm = slurm
        session.run = None
        self.wizard.open("checks")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "slurm":
            return self.slurm
        if action == "resume":
            return self.saved is not None
        if action == "no_saved_run":
            return self.saved is None
        return True

    def action_no_saved_run(self) -> None:
        if self.replay:
            self.notify("Replaying a snapshot: this machine's runs are not resumed here.")
            return
        self.notify("There is no unfinished run to resume. Press ctrl+n to start one.")

    def action_resume(self) -> None:
        if not self.saved:
            return
        session = self.wizard.session
        session.run = self.saved
        session.answers = dict(self.saved.answers)
        cluster = self.saved.cluster  # a run across hosts continues on its hosts
        slurm = cluster.get("slurm") if cluster else None  # a Slurm run on a new allocation
        session.slurm = resume_request(slurm["request"]) if slurm else None
        session.hosts = Cluster.specs_from(cluster) if cluster and not slurm else []
        if cluster:
            session.ssh_config = cluster.get("ssh_config")
        session.recipe_name = self.saved.recipe_path
        self.wizard.show_recipe()
        session.target = self._target()

        self.wizard.open("checks")
