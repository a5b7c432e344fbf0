"""A recipe's run on a Slurm allocation, for any front end (`wizard run --slurm` in
wizard.cli.slurm_run, the app's steps screen).

`Hold` holds the allocation for the run (the one the wizard runs inside, else one asked for
now) and, when the run ends however it ends, cancels the job steps it left and gives back
what the wizard asked for. `over_slurm` checks the nodes and judges them for the recipe, as
`over_ssh` does for a host list; `launch_on` picks how the launch steps start their ranks
(srun --mpi=PLUGIN, else mpirun inside the allocation); `why_it_failed` reads a failed run
for what Slurm did to it (the job's time limit, srun refusing to start the ranks).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from wizard.engine.hosts.run_across import Across, Verdict, judged
from wizard.engine.hosts.sbatch import ended
from wizard.engine.hosts.slurm import (
    DEFAULT_WAIT_S,
    Allocation,
    Request,
    SlurmCluster,
    Stop,
    allocation,
    discover,
)
from wizard.engine.recipes import state as st
from wizard.engine.recipes.recipe import Recipe


@dataclass(frozen=True)
class Released:
    """What closing a Hold did: the job steps it cancelled, and the job it gave back."""

    steps: list[str] = field(default_factory=list)
    job_id: str | None = None  # None: nothing given back (none held, or the user's own)


class Hold:
    """The allocation a run works in, from `open()` (or the with-block's start) to
    `close()` (or its end). `stop()`, from any thread, ends the wait for it (salloc pending,
    the nodes' doctor running); `close()` may be called from any thread, more than once."""

    def __init__(self, request: Request, wait_s: float = DEFAULT_WAIT_S) -> None:
        self.request, self.wait_s = request, wait_s
        self.stop = Stop()
        self.job: Allocation | None = None
        self.cluster: SlurmCluster | None = None  # the nodes, once over_slurm checked them
        self._lock = threading.Lock()
        self._held = contextlib.ExitStack()

    def open(self) -> Allocation:
        """The allocation: its nodes read, or granted by salloc (SlurmError when refused or
        pending past `wait_s`, SlurmStopped when stopped)."""
        job = self._held.enter_context(allocation(self.request, self.wait_s, self.stop))
        with self._lock:
            self.job = job
        return job

    def close(self) -> Released:
        """Cancel the job steps the run left (a stopped srun's step may outlive it for a
        moment), then give the allocation back if the wizard asked for it."""
        with self._lock:
            job, cluster, self.job, self.cluster = self.job, self.cluster, None, None
            if job is None:
                return Released()
            steps = cluster.cancel_steps() if cluster is not None else []
            given = job.job_id if job.owned else None
            self._held.close()
        return Released(steps, given)

    def __enter__(self) -> Allocation:
        return self.open()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def over_slurm(
    recipe: Recipe,
    hold: Hold,
    *,
    answers: dict[str, str],
    run_dir: Path,
    force: bool,
) -> tuple[Verdict, Across | None]:
    """A run across the held allocation's nodes: every node's doctor (one job step, with its
    route toward the first node), the cluster they make, judged for the recipe. The `gpus`
    answer, where given, is every node's ranks."""
    assert hold.job is not None, "over_slurm needs an open Hold"
    per_host = answers.get("gpus")
    results, cluster = discover(
        hold.job,
        hold.request,
        ranks_per_host=int(per_host) if per_host and per_host.isdigit() else None,
        stop=hold.stop,
    )
    hold.cluster = cluster
    return judged(recipe, results, cluster, answers, run_dir, force=force)


@dataclass(frozen=True)
class Launch:
    """How the launch steps start their ranks on the allocation."""

    plugin: str | None  # srun --mpi=PLUGIN starts them; None: mpirun inside the allocation

    def describe(self) -> str:
        if self.plugin:
            return f"Launch: srun --mpi={self.plugin} starts the ranks (the slurm finding)."
        return "Launch: mpirun inside the allocation, its daemons started by srun."


def launch_on(
    recipe: Recipe,
    across: Across,
    values: dict[str, Any],
    answers: dict[str, str],
    facts: Mapping[str, Any],
    *,
    mpirun: bool = False,
) -> Launch:
    """The run's values changed to launch on the allocation: a recipe with a launcher
    parameter gets its slurm launcher (DeepSpeed's); the MPI launch lines go through
    `srun --mpi=PLUGIN` where this machine's slurm finding says srun can start the MPI and
    every node takes the same ranks, else (or with `mpirun`) mpirun inside the allocation."""
    cluster = across.cluster
    assert isinstance(cluster, SlurmCluster)
    if "launcher" in recipe.params and "launcher" not in answers:
        values["launcher"] = "slurm"
    plugin = "mpirun" if mpirun else str(facts.get("slurm.launch") or "mpirun")
    if plugin != "mpirun" and cluster.srun_launch(values, plugin):
        return Launch(plugin)
    return Launch(None)


def resume_request(saved: Mapping[str, Any], env: Mapping[str, str] = os.environ) -> Request:
    """What a resumed run asks Slurm for: inside an allocation, nothing (its nodes);
    else a new allocation like the one the run asked for (`saved`: its request)."""
    if env.get("SLURM_JOB_ID"):
        return Request()
    return Request(**saved)


def why_it_failed(job_id: str, state: st.RunState) -> str | None:
    """What Slurm did to a failed run, and what to type: the job's time limit, or srun
    refusing to start a launch step's ranks; None when it was neither."""
    end = ended(job_id)
    if end.state == "TIMEOUT":
        return time_limit_words(job_id, end.time_limit, state)
    return refusal_note(state)


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


def time_limit_words(job_id: str, limit: str, state: st.RunState) -> str:
    """A job ended by its time limit: the step it stopped, and how to ask for more."""
    stopped = [sid for sid, s in state.steps.items() if s.status in (st.FAILED, st.CANCELLED)]
    step = stopped[-1] if stopped else "a step"
    return (
        f"Slurm job {job_id} reached its time limit ({limit or 'unknown'}) during {step}: "
        f"ask for more with --time (e.g. --time=2:00:00), then `wizard resume --run "
        f"{state.run_id}` continues from {step}."
    )
