"""The one fix walk every front end uses: which findings are offered, in what order, what
is taken unasked, and how applying, looking again and stopping go. Fixes run for real
(small shell commands); the re-check reads what they left on disk."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from checks.base import Finding, Fix, Status
from wizard.cli.fixing import fix_findings
from wizard.engine.doctor import fixes, walk
from wizard.engine.doctor.diagnosis import Diagnosis, run_doctor
from wizard.engine.doctor.targets import TARGETS
from wizard.engine.recipes.runner import StepRunner
from wizard.host import LocalHost, load_snapshot

ROOT = Path(__file__).resolve().parent.parent
CI = ROOT / "snapshots" / "ci-debian12.yaml"


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def test_every_failing_or_warning_finding_with_a_fix_is_offered_blocking_first() -> None:
    """The CI machine: gpu.nvidia and nccl.header block FlagCX; limits only warns, and is
    offered after them, but not taken unasked."""
    report = run_doctor(load_snapshot(CI), "flagcx-nvidia")
    offered = walk.offers(report, sudo=None)
    assert [(o.finding.id, o.blocking, o.wanted) for o in offered] == [
        ("gpu.nvidia", True, True),
        ("nccl.header", True, True),
        ("limits", False, False),
    ]
    gpu, nccl, limits = offered
    assert gpu.best is None and gpu.default is None  # its one fix is manual
    assert nccl.default is not None and "wheel" in nccl.default.fix.title  # no root needed
    assert limits.default is None
    # Every warning with a fix is in; those without one (nothing to do) are not.
    shown = {o.finding.id for o in offered}
    warned = {f.id for f in report.findings if f.status is Status.WARN}
    assert {f for f in warned if next(x for x in report.findings if x.id == f).fixes} <= shown


def test_only_offers_the_named_findings_and_wants_each() -> None:
    report = run_doctor(load_snapshot(CI), "flagcx-nvidia")
    [limits] = walk.offers(report, ["limits"], sudo=None)
    assert limits.finding.id == "limits" and limits.wanted and not limits.blocking
    with pytest.raises(KeyError, match=r"no finding nope; ids: .*limits"):
        walk.offers(report, ["nope"], sudo=None)


def marker_check(marker: Path, check_id: str) -> Finding:
    """A finding that is fixed once `marker` exists."""
    fixed = marker.exists()
    return Finding(
        check_id,
        check_id,
        Status.OK if fixed else Status.FAIL,
        "there" if fixed else "missing",
        fixes=[] if fixed else [Fix(f"make {marker.name}", [f"touch {marker}"])],
    )


def offer(finding: Finding) -> walk.Offer:
    return walk.offer_for(finding, blocking=True, wanted=True, root=True, sudo=None)


def test_a_fix_that_mends_two_findings_is_not_offered_twice(tmp_path: Path) -> None:
    """Both findings wait on one file: the first fix makes it, its re-check shows the second
    fixed too, and the second is never put to the front end."""
    marker = tmp_path / "shared"
    first, second = marker_check(marker, "one"), marker_check(marker, "two")
    asked: list[str] = []

    def decide(o: walk.Offer) -> walk.Decision:
        asked.append(o.finding.id)
        return o.finding.fixes[0]

    def apply_fix(finding: Finding, fix: Fix) -> fixes.Applied:
        recheck = lambda: [marker_check(marker, "one"), marker_check(marker, "two")]  # noqa: E731
        return fixes.apply(finding, fix, on_lines=lambda _: None, recheck=recheck)

    walked = list(walk.walk(lambda: [offer(first), offer(second)], decide, apply_fix))
    assert asked == ["one"]
    assert walked[0].applied is not None and walked[0].applied.fixed and walked[0].fixed
    assert walked[1].decision == walk.SKIP and walked[1].fixed_before is not None
    assert walked[1].fixed and walked[1].applied is None


def test_rounds_look_again_and_offer_only_what_is_new(tmp_path: Path) -> None:
    """A fix reveals the next problem (the mesh's case): the second round offers it, never
    the one skipped in the first; a round that applies nothing ends the walk."""
    first, then, refused = tmp_path / "first", tmp_path / "then", tmp_path / "refused"
    looks = 0

    def look() -> list[walk.Offer]:
        nonlocal looks
        looks += 1
        found = [marker_check(refused, "refused"), marker_check(first, "first")]
        if first.exists():
            found.append(marker_check(then, "then"))
        return [offer(f) for f in found if f.status is Status.FAIL]

    def decide(o: walk.Offer) -> walk.Decision:
        return walk.SKIP if o.finding.id == "refused" else o.finding.fixes[0]

    def apply_fix(finding: Finding, fix: Fix) -> fixes.Applied:
        return fixes.apply(finding, fix, on_lines=lambda _: None, recheck=None)

    walked = list(walk.walk(look, decide, apply_fix, rounds=5))
    assert [w.offer.finding.id for w in walked] == ["refused", "first", "then"]
    assert walked[0].decision == walk.SKIP and walked[0].applied is None
    assert all(w.applied is not None and w.applied.outcome.ok for w in walked[1:])
    assert first.exists() and then.exists() and not refused.exists()
    assert looks == 3  # the third found only what was offered before: nothing applied


def test_a_cancelled_fix_ends_the_walk(tmp_path: Path) -> None:
    runner = StepRunner(LocalHost())
    runner.cancel()  # pressed before the fix began: kept, so the fix never runs
    a, b = marker_check(tmp_path / "a", "a"), marker_check(tmp_path / "b", "b")

    def apply_fix(finding: Finding, fix: Fix) -> fixes.Applied:
        return fixes.apply(finding, fix, on_lines=lambda _: None, recheck=None, runner=runner)

    walked = list(walk.walk(lambda: [offer(a), offer(b)], lambda o: o.finding.fixes[0], apply_fix))
    assert [w.offer.finding.id for w in walked] == ["a"] and walked[0].cancelled
    assert not (tmp_path / "a").exists()


def test_yes_applies_what_blocks_and_leaves_a_warning_to_be_asked_for(tmp_path: Path) -> None:
    """`doctor --fix --yes`: the blocking finding's fix runs (then this machine's real doctor
    checks again); the warning's is shown after it, and not run."""
    blocks, warns = tmp_path / "blocks", tmp_path / "warns"
    target = TARGETS["flagcx-nvidia"]
    blocking = marker_check(blocks, "mpi")  # a check flagcx-nvidia requires
    warning = Finding(
        "limits", "limits", Status.WARN, "low", fixes=[Fix("raise", [f"touch {warns}"])]
    )
    report = Diagnosis("here", target, [warning, blocking])
    out = io.StringIO()
    fix_findings(report, only=None, yes=True, dry_run=False, stream=out)
    text = out.getvalue()
    assert blocks.exists() and not warns.exists()
    assert text.index("mpi: missing  [blocks flagcx-nvidia]") < text.index("limits: low")
    assert "applying: make blocks" in text
    assert "not applied: it does not block flagcx-nvidia (name it with --only)" in text
