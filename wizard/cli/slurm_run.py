"""`wizard run RECIPE --slurm` (and its resume): a run across the nodes of an allocation.

What it says; what it does is the engine's (wizard.engine.hosts.slurm_run: the allocation
held and given back, the nodes checked and judged, the launch through srun or mpirun, the
job steps cancelled at the end), shared with the app. `--batch`: the run as an sbatch
script, submitted and followed (wizard.engine.hosts.sbatch).
"""

from __future__ import annotations

import argparse
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.cli.console import Console
from wizard.cli.run_steps import go, say_verdict, values_of
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
    from wizard.engine.hosts.slurm import DEFAULT_WAIT_S, SlurmError
    from wizard.engine.hosts.slurm_run import (
        Hold,
        launch_on,
        over_slurm,
        resume_request,
        why_it_failed,
    )

    if saved_request is None:
        check_slurm_args(args)
        wanted = request_of(args)
    else:  # a resume: the allocation it runs inside, else a new one like the run's
        wanted = resume_request(saved_request)
    start = getattr(args, "start", None)
    wait_s = getattr(args, "slurm_wait", None) or DEFAULT_WAIT_S
    if state is None:
        state = st.new_run(recipe.id, str(recipe.path), [s.id for s in recipe.steps], answers)
    try:
        if getattr(args, "batch", False):
            return run_batch(recipe, args, state, answers, wanted, out)
        hold = Hold(wanted, wait_s)
        with hold as job:
            out.write(job.describe())
            out.write(f"Checking {len(job.nodes)} nodes through srun ...")
            verdict, across = over_slurm(
                recipe, hold, answers=answers, run_dir=state.folder, force=args.force
            )
            say_verdict(verdict, out, "--slurm")
            if across is None:
                return EXIT_FAILED
            values = values_of(
                recipe, facts, answers, state.folder, ask=not args.yes, across=across
            )
            state.answers = answers
            launch = launch_on(
                recipe, across, values, answers, facts, mpirun=getattr(args, "slurm_mpirun", False)
            )
            out.write(launch.describe())
            try:
                code = go(recipe, state, values, out, start, across)
                if code and (note := why_it_failed(job.job_id, state)):
                    out.write(note)
                return code
            finally:
                released = hold.close()
                if released.steps:
                    out.write(f"Cancelled the job steps left running: {', '.join(released.steps)}")
                if released.job_id:
                    out.write(f"Giving back Slurm job {released.job_id}.")
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
    from wizard.engine.hosts.slurm_run import time_limit_words

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
        out.write(time_limit_words(job, end.time_limit, finished))
    return EXIT_OK if end.state == "COMPLETED" and end.exit_code == 0 else EXIT_FAILED
