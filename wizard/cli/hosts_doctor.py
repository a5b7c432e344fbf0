"""`wizard doctor --hosts/--hostfile`: every host's doctor, then what differs across them,
as text or JSON (the doctor itself: wizard.engine.hosts.doctor_all)."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable
from typing import Any, TextIO

from checks.base import Status
from wizard.cli.doctor_table import SCHEMA, TextRenderer, to_dict
from wizard.engine.hosts.doctor_all import (
    HostResult,
    differences,
    doctor_over_ssh,
    interface_difference,
    interface_of,
    mesh_failures,
    ok,
    unreachable_advice,
)
from wizard.engine.hosts.hostlist import HostListError, HostSpec, given_hosts
from wizard.engine.hosts.ssh import SshConfigMissing, check_config
from wizard.errors import EXIT_FAILED, EXIT_OK, UsageError

Advice = Callable[[HostResult], list[str]]


def hosts_of(args: argparse.Namespace) -> list[HostSpec]:
    """The hosts of --hosts and --hostfile; a mistake is a usage error."""
    try:
        return given_hosts(args.hosts, args.hostfile)
    except HostListError as exc:
        raise UsageError(str(exc)) from None


def check_ssh_config(path: str | None) -> None:
    """--ssh-config names a file here, or is a usage error (before any host is tried)."""
    try:
        check_config(path)
    except SshConfigMissing as exc:
        raise UsageError(str(exc)) from None


def doctor_many(args: argparse.Namespace, stream: TextIO = sys.stdout) -> int:
    specs = hosts_of(args)
    check_ssh_config(args.ssh_config)
    results = doctor_over_ssh(
        specs, ssh_config=args.ssh_config, target=args.target, ssh_mesh=args.ssh_mesh
    )
    diffs = differences(results) + interface_difference(results)
    if args.json:
        stream.write(json.dumps(as_json(results, diffs), indent=2) + "\n")
    else:
        render(results, diffs, stream, verbose=args.verbose)
    return EXIT_OK if ok(results, diffs) else EXIT_FAILED


def as_json(
    results: list[HostResult], diffs: list[Any], advice: Advice | None = None
) -> dict[str, Any]:
    hosts = []
    for result in results:
        entry: dict[str, Any] = {
            "host": result.spec.label,
            "reachable": result.reachable,
            "wall_s": round(result.wall_s, 3),
        }
        if result.report is not None:
            entry.update(to_dict(result.report))
            entry["host"] = result.spec.label
            entry["ssh_to"] = result.ssh_to or {}
            entry["interface"] = interface_of(result)
        else:
            entry.update({"error": result.error, "fixes": (advice or unreachable_advice)(result)})
        hosts.append(entry)
    return {
        "schema": SCHEMA,
        "hosts": hosts,
        "differences": [d.to_dict() for d in diffs],
        "ssh_failures": [
            {"from": a, "to": b, "error": why} for a, b, why in mesh_failures(results)
        ],
        "ok": ok(results, diffs),
    }


GROUP_FROM = 8  # past this many hosts, hosts that say the same are one line


def _summary(
    result: HostResult, renderer: TextRenderer, *, grouped: bool = False
) -> tuple[str, str]:
    """(mark, what the host says). Grouped, ssh's words name no host, so hosts in the same
    state say the same."""
    report = result.report
    if report is None:
        error = result.error or ""
        return renderer.mark(Status.FAIL), "unreachable: " + (
            error.replace(result.spec.name, "<host>") if grouped else error
        )
    blocking = report.blocking
    line = (
        f"{len(blocking)} blocking {report.target.id}: {', '.join(f.id for f in blocking)}"
        if blocking
        else f"nothing blocks {report.target.id}"
    )
    return renderer.mark(Status.FAIL if blocking else Status.OK), line


def _host_line(
    result: HostResult, renderer: TextRenderer, width: int, verbose: bool, advice: Advice
) -> None:
    mark, line = _summary(result, renderer)
    label = result.spec.label.ljust(width)
    if result.report is None:
        renderer.write(f" {mark} {label}  {line}")
        for command in advice(result):
            renderer.write(f"     {renderer.paint('fix:', '36')} $ {command}")
        return
    via = interface_of(result)
    where = f", via {via['name']}" if via else ""
    renderer.write(f" {mark} {label}  {line}  ({result.wall_s:.2f} s{where})")
    if verbose:
        renderer.render(result.report)
        renderer.write()


def _groups(
    results: list[HostResult], renderer: TextRenderer
) -> dict[tuple[str, str], list[HostResult]]:
    """Hosts by what they say, in the order first seen (unreachable ones with the same
    words together: a thousand hosts behind one broken jump host are one line)."""
    groups: dict[tuple[str, str], list[HostResult]] = {}
    for result in results:
        groups.setdefault(_summary(result, renderer, grouped=True), []).append(result)
    return groups


def _some(labels: list[str], shown: int = 6) -> str:
    more = len(labels) - shown
    return ", ".join(labels[:shown]) + (f" and {more} more" if more > 0 else "")


def render(
    results: list[HostResult],
    diffs: list[Any],
    stream: TextIO,
    *,
    verbose: bool = False,
    advice: Advice | None = None,
) -> None:
    """The hosts' lines, what differs and the summary; `advice` says what to type for a
    host that gave no result (ssh's advice by default)."""
    advice = advice or unreachable_advice
    renderer = TextRenderer(stream, verbose=verbose)
    paint, write = renderer.paint, renderer.write
    width = max(len(r.spec.label) for r in results)
    write(f"wizard doctor on {len(results)} hosts")
    write()
    if len(results) > GROUP_FROM and not verbose:
        for (mark, line), group in _groups(results, renderer).items():
            write(f" {mark} {len(group)} host(s): {_some([r.spec.label for r in group])}")
            write(f"     {line}")
            if group[0].report is None:
                for command in advice(group[0]):
                    write(f"     {paint('fix:', '36')} $ {command}   (and so for each)")
    else:
        for result in results:
            _host_line(result, renderer, width, verbose, advice)
    write()
    if not diffs:
        write("The hosts agree on every compared fact (MPI, NCCL, drivers, CUDA, GPUs, Python).")
    else:
        write("What differs across the hosts:")
        labels = [r.spec.label for r in results if r.reachable]
        for diff in diffs:
            mark = paint("blocks", "31") if diff.blocking else "note"
            write(f"  {diff.fact} ({mark}): {diff.why}")
            if len(labels) > GROUP_FROM:
                by_value: dict[str, list[str]] = {}
                for label in labels:
                    by_value.setdefault(str(diff.values.get(label) or "-"), []).append(label)
                for value, hosts in by_value.items():
                    write(f"      {value}: {len(hosts)} host(s): {_some(hosts)}")
                continue
            for label in labels:
                write(f"      {label.ljust(width)}  {diff.values.get(label) or '-'}")
            for command in diff.fixes:
                write(f"      {paint('fix:', '36')} $ {command}")
    failures = mesh_failures(results)
    tried = sum(len(r.ssh_to or {}) for r in results)
    if failures:
        write(paint(f"SSH between the hosts: {len(failures)} of {tried} directions fail:", "31"))
        for source, target, why in failures:
            write(f"  {source} -> {target}: {why}")
        write(
            "  fix: from each failing source, `ssh-copy-id TARGET` (or append its "
            "~/.ssh/id_*.pub to TARGET's ~/.ssh/authorized_keys, mode 600 in a 700 ~/.ssh)"
        )
    elif tried:
        write(f"SSH between the hosts: all {tried} directions work without a password.")
    reached = sum(r.reachable for r in results)
    summary = f"{reached} of {len(results)} hosts reached"
    if any(d.blocking for d in diffs):
        summary += "; a difference blocks a run across them"
    write(paint(summary + ".", "32" if ok(results, diffs) else "31"))
