"""`--slurm`: the options that pick the hosts from Slurm, and `wizard doctor --slurm`."""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING, TextIO

from wizard.errors import EXIT_FAILED, EXIT_OK, UsageError

if TYPE_CHECKING:
    from wizard.engine.hosts.doctor_all import HostResult
    from wizard.engine.hosts.slurm import Request

SLURM_OPTIONS = ("nodes", "partition", "gpus_per_node", "time", "account")


def slurm_options(group: argparse._ArgumentGroup, *, batch: bool = False) -> None:
    group.add_argument(
        "--slurm",
        action="store_true",
        help="the nodes of a Slurm allocation: the one this runs inside (SLURM_JOB_ID), "
        "else one asked for with salloc and the options below, given back at the end",
    )
    group.add_argument("-N", "--nodes", type=_positive, metavar="N", help="salloc: N nodes")
    group.add_argument("-p", "--partition", metavar="NAME", help="salloc: this partition")
    group.add_argument(
        "--gpus-per-node", type=_positive, metavar="N", help="salloc: N GPUs on each node"
    )
    group.add_argument("--time", metavar="LIMIT", help="salloc: the time limit, e.g. 30 or 1:00:00")
    group.add_argument("-A", "--account", metavar="NAME", help="salloc: charge this account")
    group.add_argument(
        "--slurm-wait",
        type=_positive,
        metavar="SECONDS",
        default=None,
        help="how long salloc may wait for the nodes before the wizard gives up (default 300)",
    )
    if batch:
        launch_option(group)
        group.add_argument(
            "--batch",
            action="store_true",
            help="with --slurm: write the run as an sbatch script (kept in the run folder), "
            "submit it and follow the job and its output to the end",
        )


def launch_option(group: argparse._ArgumentGroup | argparse.ArgumentParser) -> None:
    group.add_argument(
        "--slurm-mpirun",
        action="store_true",
        help="with --slurm: launch with mpirun inside the allocation even where the slurm "
        "finding says srun --mpi=pmix|pmi2 can start the MPI",
    )


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


def check_slurm_args(args: argparse.Namespace) -> None:
    """Slurm's options go with --slurm, and --slurm with no host list."""
    given = [f"--{o.replace('_', '-')}" for o in SLURM_OPTIONS if getattr(args, o, None)]
    given += [
        f"--{o.replace('_', '-')}"
        for o in ("slurm_wait", "batch", "slurm_mpirun")
        if getattr(args, o, None)
    ]
    if given and not args.slurm:
        raise UsageError(f"{', '.join(given)} go(es) with --slurm")
    if args.slurm and (getattr(args, "hosts", None) or getattr(args, "hostfile", None)):
        raise UsageError("--slurm takes the hosts from Slurm: leave out --hosts and --hostfile")


def wants_slurm(args: argparse.Namespace) -> bool:
    """--slurm or any of its options (which check_slurm_args then refuses without it)."""
    extra = ("slurm_wait", "batch", "slurm_mpirun")
    return bool(args.slurm or any(getattr(args, o, None) for o in (*SLURM_OPTIONS, *extra)))


def request_of(args: argparse.Namespace) -> Request:
    from wizard.engine.hosts.slurm import Request

    return Request(args.nodes, args.partition, args.gpus_per_node, args.time, args.account)


def node_advice(result: HostResult) -> list[str]:
    """What to type when a node's doctor gave no result: the same step, by hand, on it."""
    return [f"srun -N1 -w {result.spec.name} python3 -m wizard doctor   # its own words"]


def doctor_slurm(args: argparse.Namespace, stream: TextIO = sys.stdout) -> int:
    """The doctor on every node of the allocation, then what differs across them."""
    from wizard.cli.hosts_doctor import _some, as_json, interface_difference, render
    from wizard.engine.hosts.doctor_all import differences, ok
    from wizard.engine.hosts.slurm import DEFAULT_WAIT_S, SlurmError, allocation, doctor_nodes

    check_slurm_args(args)
    if args.fix or args.snapshot or args.ssh_mesh or args.ssh_config:
        raise UsageError("--slurm goes with none of --fix, --snapshot, --ssh-mesh, --ssh-config")
    try:
        with allocation(request_of(args), args.slurm_wait or DEFAULT_WAIT_S) as job:
            if not args.json:
                stream.write(job.describe() + "\n")
            results = doctor_nodes(job, target=args.target, deep=args.deep)
    except SlurmError as exc:
        print(f"wizard: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    diffs = differences(results) + interface_difference(results)
    if args.json:
        data = as_json(results, diffs, advice=node_advice)
        data["slurm"] = job.to_dict()
        stream.write(json.dumps(data, indent=2) + "\n")
    else:
        render(results, diffs, stream, verbose=args.verbose, advice=node_advice)
        failing: dict[str, list[str]] = {}  # the blocking findings -> the nodes with them
        for result in results:
            if result.report is not None and result.report.blocking:
                ids = ", ".join(f.id for f in result.report.blocking)
                failing.setdefault(ids, []).append(result.spec.name)
        for ids, nodes in failing.items():
            which = f"Node {nodes[0]} fails" if len(nodes) == 1 else f"Nodes {_some(nodes)} fail"
            stream.write(
                f"{which} {ids}: `wizard doctor` on a node shows the fixes; taking a node "
                "out of service (drain) is for the cluster's admins.\n"
            )
    return EXIT_OK if ok(results, diffs) else EXIT_FAILED
