"""Run every check concurrently on a host and decide what blocks the target.

Each check runs in its own thread as soon as the checks it reads have finished, so a doctor
run costs about its slowest chain of probes. A check that raises becomes a finding of its
own status, "crash" (as flutter doctor's), with its traceback, and the others still run.
"""

from __future__ import annotations

import os
import threading
import time
import traceback
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from dataclasses import dataclass, field

import checks
from checks.base import Check, Context, Finding, Group, Status
from checks.vendors import default_vendor
from wizard.engine.doctor.targets import TARGETS, Target, for_vendor
from wizard.host import Host

# Set (the tests set it): a check that reads a fact another check learned, without running
# after that check, is an error; it would read None whenever it won the race.
STRICT_FACTS = "WIZARD_STRICT_FACTS"


class UndeclaredFact(Exception):
    """A check read a fact from a check it does not declare in `after`: a bug in the check."""


@dataclass
class Diagnosis:
    host: str
    target: Target
    findings: list[Finding]
    durations: dict[str, float] = field(default_factory=dict)
    wall_s: float = 0.0
    # What is being aimed at, when it is a recipe that requires other checks than the
    # target's (the deepspeed recipe needs no NCCL header): its name and its checks.
    goal: str | None = None
    goal_requires: tuple[str, ...] | None = None

    def aim_at(self, name: str, requires: tuple[str, ...]) -> None:
        """Judge what blocks by a recipe's requirements; `target` among them stands for
        the target's own."""
        if "target" in requires:
            return
        self.goal, self.goal_requires = name, requires

    @property
    def goal_name(self) -> str:
        return self.goal or self.target.id

    def is_blocking(self, finding: Finding) -> bool:
        requires = self.goal_requires if self.goal_requires is not None else self.target.requires
        return finding.status in (Status.FAIL, Status.CRASH) and finding.id in requires

    @property
    def blocking(self) -> list[Finding]:
        return [f for f in self.findings if self.is_blocking(f)]

    @property
    def crashed(self) -> list[Finding]:
        return [f for f in self.findings if f.status is Status.CRASH]

    @property
    def exit_code(self) -> int:
        return 1 if self.blocking else 0

    def facts(self) -> dict[str, object]:
        return {k: v for f in self.findings for k, v in f.facts.items()}


def ordered_checks(only: Iterable[str] | None = None) -> list[Check]:
    """The checks in the order both front ends show them: by group, then by their module's
    place in checks.MODULES, then by their line there."""
    groups = {group: i for i, group in enumerate(Group)}
    modules = {m.__name__: i for i, m in enumerate(checks.MODULES)}

    def place(entry: Check) -> tuple[int, int, int]:
        module = modules.get(entry.func.__module__, len(modules))
        return groups[entry.group], module, entry.func.__code__.co_firstlineno

    wanted = set(only) if only is not None else None
    every = sorted(checks.REGISTRY.values(), key=place)
    return [c for c in every if wanted is None or c.id in wanted]


def group_of(check_id: str) -> Group | None:
    """Where a finding is shown; None for an id no check of this wizard has."""
    entry = checks.REGISTRY.get(check_id)
    return entry.group if entry else None


def checks_by_group() -> dict[Group, list[Check]]:
    """The checks under their groups, for a front end that shows the groups."""
    grouped: dict[Group, list[Check]] = {g: [] for g in Group}
    for entry in ordered_checks():
        grouped[entry.group].append(entry)
    return grouped


def run_doctor(
    host: Host,
    target_id: str | None = None,
    *,
    deep: bool = False,
    on_finding: Callable[[Finding], None] | None = None,
) -> Diagnosis:
    """Run all checks. `target_id` None means: the target of the vendor found on the host."""
    started = time.perf_counter()
    resolved: list[Target] = []
    lock = threading.Lock()

    def target() -> Target:
        with lock:
            if not resolved:
                resolved.append(
                    TARGETS[target_id] if target_id else for_vendor(default_vendor(host))
                )
            return resolved[0]

    all_checks = ordered_checks()
    futures: dict[str, Future[Finding]] = {c.id: Future() for c in all_checks}
    durations: dict[str, float] = {}
    contexts: dict[str, Context] = {}

    def run_one(entry: Check) -> None:
        deps = {d: futures[d] for d in entry.after if d in futures}
        ctx = Context(host, entry.id, entry.title, lambda: target().vendor.key, deep, deps)
        contexts[entry.id] = ctx
        begun = time.perf_counter()
        recorded = host.recorded_checks
        try:
            if recorded is not None and entry.id not in recorded:
                finding = ctx.skip(
                    "not in this snapshot: it was recorded before this check existed "
                    "(record the machine again with `wizard snapshot`)"
                )
            else:
                finding = entry.func(ctx)
        except Exception as exc:  # a bug in one check must not take the doctor down
            finding = ctx.finding(
                Status.CRASH,
                f"the check crashed: {type(exc).__name__}: {exc}",
                details=["this is a bug in the wizard; please report it with `wizard snapshot`"],
                traceback=traceback.format_exc(),
            )
        durations[entry.id] = time.perf_counter() - begun
        futures[entry.id].set_result(finding)
        if on_finding:
            on_finding(finding)

    threads = [threading.Thread(target=run_one, args=(c,), daemon=True) for c in all_checks]
    for thread in threads:
        thread.start()
    findings = [futures[c.id].result() for c in all_checks]
    if os.environ.get(STRICT_FACTS):
        _check_declared(findings, contexts)
    return Diagnosis(host.name, target(), findings, durations, time.perf_counter() - started)


def _check_declared(findings: list[Finding], contexts: dict[str, Context]) -> None:
    """Raise UndeclaredFact for a fact a check asked for and missed, that another check
    learned: the dependency it forgot."""
    learned_by = {name: f.id for f in findings for name in f.facts}
    undeclared = sorted(
        f"{check_id} reads {name} (learned by {learned_by[name]}, not in its `after`)"
        for check_id, ctx in contexts.items()
        for name in ctx.missed
        if name in learned_by and learned_by[name] != check_id
    )
    if undeclared:
        raise UndeclaredFact("; ".join(undeclared))
