"""`wizard doctor` (this machine, a snapshot; --hosts and --slurm hand over to their
modules) and `wizard snapshot`."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from wizard.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from checks.base import Finding


def check_target(target: str | None) -> None:
    from wizard.engine.doctor.targets import TARGETS

    if target is not None and target not in TARGETS:
        raise UsageError(f"unknown target {target!r}; choose one of: {', '.join(TARGETS)}")


def doctor(args: argparse.Namespace) -> int:
    from wizard.host import LocalHost, SnapshotError, load_snapshot
    from wizard.paths import writable_state_dir

    check_target(args.target)
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

    check_target(args.target)
    host = LocalHost()
    report = run_doctor(host, args.target, deep=args.deep)
    try:
        crashes = {f.id: f.traceback or "" for f in report.crashed}
        ran = [f.id for f in report.findings]
        path = write_snapshot(host, args.output, note=args.note, checks=ran, crashes=crashes)
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
