"""Likely causes of a failed step, from patterns in the last lines of its output."""

from __future__ import annotations

import re

HINTS: tuple[tuple[str, str], ...] = (
    (
        r"nccl\.h: No such file",
        "nccl.h is not where CCL_HOME points: see `wizard doctor` "
        "(nccl.header), or pass --set ccl_home=PREFIX",
    ),
    (
        r"cannot find -lnccl",
        "no libnccl.so in CCL_HOME/lib (the wheels ship only libnccl.so.2): "
        "see `wizard doctor` (nccl.library) for the link to make",
    ),
    (
        r"mpi\.h: No such file",
        "mpi.h is not in MPI_HOME/include: see `wizard doctor` (mpi), or "
        "pass --set mpi_home=PREFIX",
    ),
    (r"cannot find -lmpi", "no libmpi.so in MPI_HOME/lib: see `wizard doctor` (mpi)"),
    (
        r"mpirun: (command )?not found",
        "mpirun is not installed or not on PATH: see `wizard doctor` (mpi)",
    ),
    (
        r"gtest/gtest\.h: No such file|cannot find -lgtest",
        "googletest is missing: see `wizard doctor` (gtest)",
    ),
    (
        r"cuda_runtime(_api)?\.h: No such file|nvcc: (command )?not found",
        "the CUDA toolkit is not where DEVICE_HOME points: see `wizard doctor` (cuda.toolkit)",
    ),
    (
        r"error while loading shared libraries: (\S+)",
        "a shared library is not on the loader's path: check LD_LIBRARY_PATH for {0}",
    ),
    (r"allow-run-as-root", "Open MPI refuses root without --allow-run-as-root"),
    (
        r"CUDA driver version is insufficient|cudaErrorInsufficientDriver",
        "the CUDA runtime is newer than the driver: see `wizard doctor` (cuda.toolkit)",
    ),
    (
        r"No module named '?torch'?",
        "PyTorch is not installed in this Python: see `wizard doctor` (torch)",
    ),
    (
        r"unable to access '(\S+?)/?': (?:Could not resolve host|Failed to connect|"
        r"Connection timed out)",
        "this machine cannot reach {0} (offline?): clone it where the network reaches, copy "
        "the checkout here, and pass --set src=PATH of that checkout",
    ),
    (
        r"Temporary failure in name resolution|Failed to establish a new connection",
        "the step needs the network (pip fetching build dependencies?): on an offline machine "
        "install them first, or build without isolation",
    ),
    (
        r"(?s)-ll:fsize.*(?:SIGSEGV|Segmentation fault)",
        "FlexFlow (Legion) dies this way when -ll:fsize asks for more GPU memory than is free "
        "(another process on that GPU?) or -ll:zsize for more pinned host memory than the "
        "machine gives, and also when either is too small for the model: pass --set "
        "fsize=MiB (below the GPU's free memory) or --set zsize=MiB",
    ),
    (
        r"The source directory (\S+) does not contain a CMakeLists\.txt",
        "{0} is an empty submodule: run `git submodule update --init --recursive` in the "
        "checkout (the flexflow recipe's submodules step does)",
    ),
    (
        r"There are not enough slots available",
        "more ranks than slots: lower -np or add --oversubscribe",
    ),
)


def likely_cause(lines: list[str]) -> str | None:
    text = "\n".join(lines)
    for pattern, hint in HINTS:
        match = re.search(pattern, text)
        if match:
            return hint.format(*match.groups())
    return None
