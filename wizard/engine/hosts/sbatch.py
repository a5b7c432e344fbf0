"""`--slurm --batch`: the run as an sbatch script, submitted, and followed to its end.

The script is short and kept in the run's folder: Slurm's options for the allocation, then
`wizard resume --run RUN_ID`, which inside the job takes its nodes from SLURM_JOB_ID and
runs the same steps as `wizard run --slurm` would. Submitting it again continues the run.
The wizard follows the job (squeue while it is known, then scontrol or sacct for how it
ended) and its output file as it grows.
"""

from __future__ import annotations

import re
import shlex
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from wizard.engine.hosts.slurm import Request, SlurmError
from wizard.host.local import capture

POLL_S = 1.0
MAX_FAILURES = 60  # squeue answers in a row that are errors, before following gives up
_STATE = re.compile(r"\bJobState=(\S+)")
_EXIT = re.compile(r"\bExitCode=(\d+):(\d+)")
_LIMIT = re.compile(r"\bTimeLimit=(\S+)")


def script_text(
    request: Request, run_id: str, run_dir: Path, workdir: Path, *, flags: list[str], name: str
) -> str:
    """The script; `flags` go to `wizard resume` in the job (--force, --slurm-mpirun)."""
    options = [f"--job-name={name}", f"--chdir={workdir}", f"--output={run_dir}/slurm-%j.out"]
    options += request.salloc_args()
    resume = [sys.executable, "-m", "wizard", "resume", "--run", run_id, "--yes", *flags]
    lines = [
        "#!/bin/bash",
        f"# wizard run {run_id} as a batch job: `sbatch {run_dir}/job.sbatch` submits it",
        "# again (a resubmitted job continues the run where it stopped).",
        *(f"#SBATCH {shlex.quote(option)}" for option in options),
        shlex.join(resume),
    ]
    return "\n".join(lines) + "\n"


def write_script(run_dir: Path, text: str) -> Path:
    path = run_dir / "job.sbatch"
    path.write_text(text)
    path.chmod(0o755)
    return path


def submit(script: Path) -> str:
    """sbatch --parsable: the job id, or SlurmError with sbatch's words."""
    done = capture(["sbatch", "--parsable", str(script)], 60)
    job = done.stdout.strip().split(";")[0]
    if done.returncode or not job.isdigit():
        lines = [ln.removeprefix("sbatch: ") for ln in done.stderr.splitlines() if ln.strip()]
        raise SlurmError(f"sbatch refused {script}: {lines[-1] if lines else 'no answer'}")
    return job


@dataclass(frozen=True)
class Ended:
    state: str  # COMPLETED, FAILED, TIMEOUT, CANCELLED, ...
    exit_code: int | None
    time_limit: str = ""


def follow(
    job_id: str,
    output: Path,
    on_line: Callable[[str], None],
    on_state: Callable[[str], None] | None = None,
    poll_s: float = POLL_S,
) -> Ended:
    """Follow a job until it leaves the queue, passing on each new line of its output file
    and each change of its state (PENDING, RUNNING, ...); how it ended."""
    seen_state, offset, partial = "", 0, ""

    def read_more() -> None:
        nonlocal offset, partial
        try:
            with output.open("rb") as f:
                f.seek(offset)
                data = f.read()
        except OSError:
            return
        offset += len(data)
        text = partial + data.decode("utf-8", errors="replace")
        *lines, partial = text.split("\n")
        for line in lines:
            on_line(line)

    failures = 0
    while True:
        done = capture(["squeue", "-h", "-j", job_id, "-o", "%T"], 30)
        read_more()
        if done.returncode != 0:  # a busy controller: ask again, a while
            failures += 1
            if failures > MAX_FAILURES:
                raise SlurmError(f"squeue cannot say how job {job_id} is: {done.stderr.strip()}")
            time.sleep(poll_s)
            continue
        failures, state = 0, done.stdout.strip()
        if not state:
            break
        if state != seen_state and on_state:
            on_state(state)
        seen_state = state
        time.sleep(poll_s)
    read_more()
    if partial:
        on_line(partial)
    return ended(job_id)


def ended(job_id: str) -> Ended:
    """How a job that left the queue ended: scontrol while the controller remembers it,
    else the accounting (sacct)."""
    shown = capture(["scontrol", "show", "job", "-o", job_id], 30)
    if shown.returncode == 0 and (state := _STATE.search(shown.stdout)):
        code = _EXIT.search(shown.stdout)
        limit = _LIMIT.search(shown.stdout)
        return Ended(state[1], int(code[1]) if code else None, limit[1] if limit else "")
    acct = capture(["sacct", "-n", "-X", "-P", "-j", job_id, "-o", "State,ExitCode,Timelimit"], 30)
    fields = acct.stdout.strip().splitlines()[0].split("|") if acct.stdout.strip() else []
    if acct.returncode == 0 and len(fields) == 3:
        code = fields[1].split(":")[0]
        return Ended(fields[0].split()[0], int(code) if code.isdigit() else None, fields[2])
    return Ended("UNKNOWN", None)
