"""Walking fixes, the same for every front end (`doctor --fix`, the app's Fixes screen,
`hosts setup`): which findings are offered and in what order, which fix is taken without
asking, the front end's decision on each, applying it, and looking again.

The front end gives `walk` a `decide` callback: it shows the offer and returns the fix to
apply, SKIP or DRY_RUN. `walk` yields what became of each offer, for the front end to show.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal

from checks.base import Finding, Fix, Status
from wizard.engine.doctor.diagnosis import Diagnosis
from wizard.engine.doctor.fixes import Applied, Choice, choices, preferred

SKIP: Literal["skip"] = "skip"
DRY_RUN: Literal["dry-run"] = "dry-run"
Decision = Fix | Literal["skip", "dry-run"]


@dataclass
class Offer:
    finding: Finding
    blocking: bool
    options: list[Choice]  # every fix, in order of least change, usable here or not
    best: Choice | None  # the usable one to take (fixes.preferred)
    wanted: bool  # taken without asking (--yes) and ticked in the app

    @property
    def default(self) -> Choice | None:
        """The fix to take unasked: the best one of an offer that is wanted."""
        return self.best if self.wanted else None


def offer_for(
    finding: Finding, *, blocking: bool, wanted: bool, root: bool, sudo: str | None
) -> Offer:
    options = choices(finding, root=root, sudo=sudo)
    return Offer(finding, blocking, options, preferred(options, root=root), wanted)


def offers(report: Diagnosis, only: list[str] | None = None, *, sudo: str | None) -> list[Offer]:
    """What both front ends offer: every blocking finding, then every other that fails or
    warns and has a fix, since a user who asks for fixes wants each one the doctor knows,
    and what blocks the target first. The blocking ones are wanted (`--yes` applies them, the
    app ticks them); the others wait for a yes. With `only`, just the findings named there
    that fail or warn and have a fix, all wanted: naming one is asking for it. An unknown
    id in `only` raises KeyError, whose message lists the ids."""
    root = bool(report.facts().get("os.root"))
    if only:
        known = {f.id for f in report.findings}
        unknown = [i for i in only if i not in known]
        if unknown:
            raise KeyError(f"no finding {', '.join(unknown)}; ids: {', '.join(sorted(known))}")
        named = [f for f in report.findings if f.id in only and _fixable(f)]
        return [
            offer_for(f, blocking=report.is_blocking(f), wanted=True, root=root, sudo=sudo)
            for f in named
        ]
    blocking = report.blocking
    others = [f for f in report.findings if f not in blocking and _fixable(f)]
    return [
        offer_for(f, blocking=f in blocking, wanted=f in blocking, root=root, sudo=sudo)
        for f in [*blocking, *others]
    ]


def _fixable(finding: Finding) -> bool:
    return finding.status in (Status.FAIL, Status.WARN) and bool(finding.fixes)


@dataclass
class Walked:
    """What became of one offer."""

    offer: Offer
    decision: Decision
    applied: Applied | None = None
    fixed_before: Finding | None = None  # an earlier fix's re-check found it fixed already

    @property
    def fixed(self) -> bool:
        return self.fixed_before is not None or bool(self.applied and self.applied.fixed)

    @property
    def cancelled(self) -> bool:
        return bool(self.applied and self.applied.outcome.cancelled)


def walk(
    look: Callable[[], list[Offer]],
    decide: Callable[[Offer], Decision],
    apply_fix: Callable[[Finding, Fix], Applied],
    *,
    rounds: int = 1,
) -> Iterator[Walked]:
    """Offer each of `look`'s offers in turn; apply the fix `decide` returns; yield each.

    An offer whose finding an earlier fix's re-check found fixed is not offered (one fix
    often mends two findings). After a round in which something was applied, look again, up
    to `rounds` times, and offer what was not offered before: one fix can reveal the next
    problem. A cancelled fix ends the walk."""
    offered: set[tuple[str, tuple[str, ...]]] = set()  # in an earlier round
    for _ in range(rounds):
        now: dict[str, Finding] = {}
        applied_any = False
        this_round = look()
        keys = [(o.finding.id, tuple(f.title for f in o.finding.fixes)) for o in this_round]
        for offer, key in zip(this_round, keys, strict=True):
            if key in offered:
                continue
            seen = now.get(offer.finding.id)
            if seen is not None and seen.status in (Status.OK, Status.SKIP):
                yield Walked(offer, SKIP, fixed_before=seen)
                continue
            decision = decide(offer)
            if not isinstance(decision, Fix):
                yield Walked(offer, decision)
                continue
            applied = apply_fix(offer.finding, decision)
            applied_any = True
            now.update((f.id, f) for f in applied.rechecked)
            yield Walked(offer, decision, applied)
            if applied.outcome.cancelled:
                return
        if not applied_any:
            return
        offered.update(keys)
