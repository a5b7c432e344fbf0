"""`wizard run RECIPE --slurm` (and its resume): a run across the nodes of an allocation.

The same run as across --hosts (engine.hosts.run_across, engine.hosts.everywhere): build
steps once per copy of the shared folder, through srun on a node that has its own; launch steps with
mpirun inside the allocation, its daemons started by Slurm. What differs is only how the
hosts are found (the allocation) and reached (srun): engine.slurm.SlurmCluster.
"""

from __future__ import annotations

import argparse
import os
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.cli.console import Console
from wizard.cli.run_steps import go, judged, values_of
from wizard.cli.slurm_doctor import check_slurm_args, request_of
from wizard.engine.recipes import recipe as recipes
from wizard.engine.recipes import state as st
from wizard.errors import EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK

if TYPE_CHECKING:
    from wizard.engine.hosts.slurm import Request


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
    from wizard.engine.hosts.slurm import DEFAULT_WAIT_S, Request, SlurmError, allocation, discover

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
        if getattr(args, "batch", False):
            return run_batch(recipe, args, state, answers, wanted, out)
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
            values = values_of(
                recipe, facts, answers, state.folder, ask=not args.yes, across=across
            )
            state.answers = answers
            launch = str(facts.get("slurm.launch") or "mpirun")
            if getattr(args, "slurm_mpirun", False):
                launch = "mpirun"
            if launch != "mpirun" and cluster.srun_launch(values, launch):
                out.write(f"Launch: srun --mpi={launch} starts the ranks (the slurm finding).")
            else:
                out.write("Launch: mpirun inside the allocation, its daemons started by srun.")
            try:
                code = go(recipe, state, values, out, start, across)
                if code and (note := time_limit_note(job.job_id, state) or refusal_note(state)):
                    out.write(note)
                return code
            finally:
                if stopped := cluster.cancel_steps():
                    out.write(f"Cancelled the job steps left running: {', '.join(stopped)}")
                if job.owned:
                    out.write(f"Giving back Slurm job {job.job_id}.")
    except SlurmError as exc:
        out.write(f"wizard: error: {exc}")
        return EXIT_FAILED


def run_batch(
    recipe: recipes.Recipe,
    args: argparse.Namespace,
    state: st.RunState,
    answers: dict[str, str],
    wanted: Request,
    out: Console,
) -> int:
    """Write the run's sbatch script, submit it, follow the job and its output to the end,
    then show the run's results as the job left them."""
    from wizard.engine.hosts.sbatch import follow, script_text, submit, write_script
    from wizard.engine.hosts.slurm import require_tools

    require_tools()
    state.answers = answers
    state.cluster = {"hosts": [], "ssh_config": None, "slurm": {"request": asdict(wanted)}}
    state.save()
    text = script_text(
        wanted,
        state.run_id,
        state.folder,
        Path.cwd(),
        flags=[
            f for f, on in (("--force", args.force), ("--slurm-mpirun", args.slurm_mpirun)) if on
        ],
        name=f"wizard-{recipe.id}",
    )
    script = write_script(state.folder, text)
    st.release(state.folder)  # the job's own wizard takes it; this one only follows
    out.write(f"Batch script {script}:")
    for line in text.splitlines():
        out.write(out.paint(f"  {line}", "2"))
    job = submit(script)
    out.write(
        f"Submitted batch job {job}. Following it (Ctrl-C stops following, not the job: "
        f"`scancel {job}` does)."
    )
    summarised = f"State and logs: {state.folder}"
    said: list[bool] = []  # whether the job's own wizard printed the run's summary

    def line(text: str) -> None:
        said.append(text.endswith(summarised))
        out.write(text)

    try:
        end = follow(
            job,
            state.folder / f"slurm-{job}.out",
            on_line=line,
            on_state=lambda s: out.write(out.paint(f"[job {job}] {s}", "36")),
        )
    except KeyboardInterrupt:
        out.write(
            f"Stopped following job {job}; it goes on. `squeue -j {job}` shows it, "
            f"`scancel {job}` stops it, `wizard status --run {state.run_id}` shows the run."
        )
        return EXIT_INTERRUPTED
    code = f", exit code {end.exit_code}" if end.exit_code is not None else ""
    out.write(f"Job {job} ended: {end.state}{code}.")
    finished = st.load(state.run_id, set_aside=False)
    if not any(said):  # the job ended before its wizard could say how the run went
        out.summary(recipe, finished)
    if end.state == "TIMEOUT":
        out.write(_time_limit_words(job, end.time_limit, finished))
    return EXIT_OK if end.state == "COMPLETED" and end.exit_code == 0 else EXIT_FAILED


def refusal_note(state: st.RunState) -> str | None:
    """What to do when srun could not start a launch step's ranks (a PMI plugin that is
    listed but fails, as PMIx does where its servers cannot set up): srun's words, and
    mpirun inside the allocation instead."""
    for step_id, saved in state.steps.items():
        if saved.status != st.FAILED or "srun_as_mpirun.py" not in (saved.command or ""):
            continue
        try:
            lines = Path(saved.log).read_text(errors="replace").splitlines()
        except OSError:
            continue
        said = [ln.strip() for ln in lines if ln.startswith("srun: error:")]
        if said:
            return (
                f"srun could not start {step_id}'s ranks ({said[0]}). Launch with mpirun "
                f"inside the allocation instead: wizard resume --run {state.run_id} "
                "--slurm-mpirun"
            )
    return None


def time_limit_note(job_id: str, state: st.RunState) -> str | None:
    """Why a run in an allocation failed, when it was the job's time limit."""
    from wizard.engine.hosts.sbatch import ended

    end = ended(job_id)
    return _time_limit_words(job_id, end.time_limit, state) if end.state == "TIMEOUT" else None


def _time_limit_words(job_id: str, limit: str, state: st.RunState) -> str:
    stopped = [sid for sid, s in state.steps.items() if s.status in (st.FAILED, st.CANCELLED)]
    step = stopped[-1] if stopped else "a step"
    return (
        f"Slurm job {job_id} reached its time limit ({limit or 'unknown'}) during {step}: "
        f"ask for more with --time (e.g. --time=2:00:00), then `wizard resume --run "
        f"{state.run_id}` continues from {step}."
    )
