"""The messages the app's screens and workers exchange.

A worker (a thread running the doctor, a step, ssh) never touches a widget: it posts one of
these to its screen, whose handler updates the screen on the app's own thread. A screen that
starts something quitting must stop first says so to the app with `Working`, and `WorkDone` when
it has ended; nothing else assigns the app's state from outside it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from textual.message import Message

from checks.base import Finding
from wizard.engine.doctor.diagnosis import Diagnosis
from wizard.engine.doctor.walk import Walked
from wizard.engine.hosts.doctor_all import Difference, HostResult
from wizard.engine.hosts.run_across import Across, Verdict
from wizard.engine.recipes import state as st
from wizard.engine.recipes.recipe import Step
from wizard.engine.recipes.runner import Outcome

# -- to the app -----------------------------------------------------------------------------


@dataclass
class Working(Message):
    """Something runs that quitting must stop first (`cancel` ends it, its state saved);
    `since` (time.monotonic) is when what runs now began: q asks first past a few seconds.
    `what` names it in that question: a step (which `wizard resume` runs again) or a fix."""

    cancel: Callable[[], None]
    since: float
    what: str = "step"


@dataclass
class WorkDone(Message):
    """What a `Working` announced has ended."""


# -- the start screen's detection -----------------------------------------------------------


@dataclass
class Detected(Message):
    """This machine's target, and whether Slurm is there: its client tools, or the
    allocation the wizard runs inside (`job`, its SLURM_JOB_ID)."""

    target: str
    slurm: bool
    job: str | None


# -- the doctor -----------------------------------------------------------------------------


@dataclass
class FindingResolved(Message):
    finding: Finding


@dataclass
class DoctorDone(Message):
    report: Diagnosis


# -- fixes ----------------------------------------------------------------------------------


@dataclass
class FixWalked(Message):
    """What became of one offered fix: applied (and its check run again), or found fixed
    already by an earlier one."""

    walked: Walked


@dataclass
class FixesEnded(Message):
    """The fixes' worker has stopped: every ticked fix tried, or one cancelled."""


# -- the doctor on many hosts ---------------------------------------------------------------


@dataclass
class HostsFound(Message):
    """The hosts to check, once known (a Slurm allocation's nodes come from Slurm), with
    what to say about where they came from."""

    labels: list[str]
    note: str


@dataclass
class HostChecked(Message):
    result: HostResult


@dataclass
class HostsChecked(Message):
    results: list[HostResult]
    differences: list[Difference]


@dataclass
class HostsFailed(Message):
    """No host could be checked (Slurm refused an allocation): why, and what to type."""

    why: str


# -- a recipe's run -------------------------------------------------------------------------


@dataclass
class HostsJudged(Message):
    """The run's hosts, each one's doctor judged for the recipe: the run across them, or
    None with the verdict (or `why`, when no host was tried) saying what stops it."""

    verdict: Verdict | None
    across: Across | None
    why: str = ""


@dataclass
class StepStarted(Message):
    step: Step


@dataclass
class StepSkipped(Message):
    step: Step


@dataclass
class StepFinished(Message):
    step: Step
    result: st.StepState
    outcome: Outcome


@dataclass
class RunEnded(Message):
    """The worker has stopped: every step done, one failed, cancelled or refused."""

    said: str
