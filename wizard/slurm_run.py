"""`wizard run RECIPE --slurm` (and its resume): a run across the nodes of an allocation.

The same run as across --hosts (commands.Across, engine.everywhere): build steps once per
copy of the shared folder, through srun on a node that has its own; launch steps with
mpirun inside the allocation, its daemons started by Slurm. What differs is only how the
hosts are found (the allocation) and reached (srun): engine.slurm.SlurmCluster.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from wizard.console import Console
from wizard.engine import recipe as recipes
from wizard.engine import state as st
from wizard.errors import EXIT_FAILED
from wizard.slurm_report import check_slurm_args, request_of


def run_on_slurm(
    recipe: recipes.Recipe,
    args: argparse.Namespace,
    state: st.RunState | None,
    answers: dict[str, str],
    facts: dict[str, Any],
    out: Console,
    *,
    saved_request: dict[str, Any] | None = None,
) -> int:
    from wizard.commands import _go, _values, judged
    from wizard.engine.slurm import DEFAULT_WAIT_S, Request, SlurmError, allocation, discover

    if saved_request is None:
        check_slurm_args(args)
        wanted = request_of(args)
    elif os.environ.get("SLURM_JOB_ID"):  # a resume inside an allocation: its nodes
        wanted = Request()
    else:  # a resume: a new allocation like the one the run asked for
        wanted = Request(**saved_request)
    start = getattr(args, "start", None)
    wait_s = getattr(args, "slurm_wait", None) or DEFAULT_WAIT_S
    if state is None:
        state = st.new_run(recipe.id, str(recipe.path), [s.id for s in recipe.steps], answers)
    per_host = answers.get("gpus")
    try:
        with allocation(wanted, wait_s) as job:
            out.write(job.describe())
            out.write(f"Checking {len(job.nodes)} nodes through srun ...")
            results, cluster = discover(
                job,
                wanted,
                ranks_per_host=int(per_host) if per_host and per_host.isdigit() else None,
            )
            across = judged(recipe, results, cluster, args, answers, state.folder, out, "--slurm")
            if across is None:
                return EXIT_FAILED
            values = _values(recipe, facts, answers, state.folder, ask=not args.yes, across=across)
            state.answers = answers
            try:
                return _go(recipe, state, values, out, start, across)
            finally:
                if stopped := cluster.cancel_steps():
                    out.write(f"Cancelled the job steps left running: {', '.join(stopped)}")
                if job.owned:
                    out.write(f"Giving back Slurm job {job.job_id}.")
    except SlurmError as exc:
        out.write(f"wizard: error: {exc}")
        return EXIT_FAILED
