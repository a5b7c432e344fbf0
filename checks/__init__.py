"""Checks: what the wizard detects, one module per subject.

Importing this package registers every check in `REGISTRY`, in display order.
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
