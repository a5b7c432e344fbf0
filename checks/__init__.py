"""Checks: what the wizard detects, one module per subject.

Importing this package registers every check in `REGISTRY`. The front ends show checks by
their group (`checks.base.Group`), within a group in the order of MODULES, and within a
module in the order they are written.
"""

from checks import (
    build,
    cuda,
    cudnn,
    deepspeed,
    flagcx,
    flagcx_env,
    gpu,
    gtest,
    limits,
    mpi,
    nccl,
    others,
    python,
    rdma,
    slurm,
    system,
    torch,
)
from checks.base import REGISTRY, Check, Context, Finding, Fix, Group, Status

MODULES = (
    *(system, build, python, limits, slurm),
    *(gpu, others, cuda, cudnn, torch, deepspeed),
    *(nccl, mpi, rdma),
    *(gtest, flagcx, flagcx_env),
)

__all__ = [
    "MODULES",
    "REGISTRY",
    "Check",
    "Context",
    "Finding",
    "Fix",
    "Group",
    "Status",
    "build",
    "cuda",
    "cudnn",
    "deepspeed",
    "flagcx",
    "flagcx_env",
    "gpu",
    "gtest",
    "limits",
    "mpi",
    "nccl",
    "others",
    "python",
    "rdma",
    "slurm",
    "system",
    "torch",
]
