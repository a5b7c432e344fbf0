"""mpirun's command line, started by srun: `srun_as_mpirun.py SRUN_OPTIONS... -np N PROGRAM
ARGS...` runs `srun SRUN_OPTIONS... --ntasks=N PROGRAM ARGS...`.

The recipes' launch lines are written for mpirun (`{{ mpirun }} ... -np {{ ranks }} ./test`);
on a Slurm allocation whose MPI srun can start (`srun --mpi=pmix` or `pmi2`), the wizard puts
this tool in mpirun's place, so the same line starts the ranks as Slurm's own tasks.
"""

from __future__ import annotations

import os
import sys


def main(argv: list[str]) -> int:
    if "-np" not in argv:
        print("srun_as_mpirun.py: no -np N in the command line", file=sys.stderr)
        return 2
    at = argv.index("-np")
    options, count, program = argv[:at], argv[at + 1 : at + 2], argv[at + 2 :]
    if not count or not count[0].isdigit() or not program:
        print("srun_as_mpirun.py: write ... -np N PROGRAM [ARGS]", file=sys.stderr)
        return 2
    command = ["srun", *options, f"--ntasks={count[0]}", *program]
    print("+ " + " ".join(command), file=sys.stderr, flush=True)
    os.execvp("srun", command)
    return 127  # not reached: execvp replaces this process or raises


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
