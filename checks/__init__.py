"""Checks: what the wizard detects, one module per subject.

Importing this package registers every check in `REGISTRY`, in display order.
"""

from checks import (
    build,
    cuda,
    cudnn,
    deepspeed,
    flagcx,
    gpu,
    gtest,
    limits,
    mpi,
    nccl,
    python,
    rdma,
    slurm,
    system,
    torch,
)
from checks.base import REGISTRY, Check, Context, Finding, Fix, Status

__all__ = [
    "REGISTRY",
    "Check",
    "Context",
    "Finding",
    "Fix",
    "Status",
    "build",
    "cuda",
    "cudnn",
    "deepspeed",
    "flagcx",
    "gpu",
    "gtest",
    "limits",
    "mpi",
    "nccl",
    "python",
    "rdma",
    "slurm",
    "system",
    "torch",
]
