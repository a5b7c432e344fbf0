"""The doctor on many hosts at once, over SSH, and what differs between them.

Each host gets its own SSH connection and its own doctor run, in parallel (up to
`PARALLEL` at a time, so a thousand hosts do not open a thousand connections at once). A host
that cannot be reached is a result with ssh's words, not a crash: the others still report.
The comparison lists only the facts whose values differ, and says which differences block a
run across the hosts.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from wizard.engine.doctor import Report, run_doctor
from wizard.engine.hostlist import HostSpec
from wizard.host import Host

PARALLEL = 32


@dataclass
class HostResult:
    spec: HostSpec
    report: Report | None
    error: str | None = None  # why it could not be reached
    wall_s: float = 0.0

    @property
    def reachable(self) -> bool:
        return self.report is not None


@dataclass(frozen=True)
class Compared:
    fact: str
    blocking: bool
    why: str


# What must match across hosts, and what only informs. A difference in the first group makes
# a run across the hosts fail or hang; the second is worth knowing (and often normal).
COMPARED = (
    Compared(
        "mpi.flavor", True, "mpirun starts every host's ranks: one MPI implementation everywhere"
    ),
    Compared("mpi.version", True, "MPI's wire protocol differs between versions"),
    Compared("nccl.version", True, "NCCL ranks across hosts must run one NCCL version"),
    Compared("target", False, "hosts of several vendors: each builds FlagCX with its own flag"),
    Compared("gpu.count", False, "ranks per host (slots) follow each host's GPU count"),
    Compared("gpu.model", False, "the slowest GPU sets the pace of a collective"),
    Compared("driver.version", False, "drivers may differ; each must support its CUDA"),
    Compared("cuda.version", False, "each host's toolkit must suit its own driver"),
    Compared("python.version", False, "torchrun across hosts wants the same Python"),
    Compared("torch.version", False, "torch.distributed across hosts wants one PyTorch"),
    Compared("rdma.devices", False, "FLAGCX_IB_HCA names devices every host has"),
)


@dataclass(frozen=True)
class Difference:
    fact: str
    values: dict[str, Any]
    blocking: bool
    why: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "fact": self.fact,
            "values": self.values,
            "blocking": self.blocking,
            "why": self.why,
        }


def doctor_hosts(
    specs: list[HostSpec],
    connect: Callable[[HostSpec], Host],
    *,
    target: str | None = None,
    parallel: int = PARALLEL,
    on_result: Callable[[HostResult], None] | None = None,
) -> list[HostResult]:
    """Every host's doctor, in the order given. `connect` makes a host (an SshHost) or raises
    with the reason it cannot; `on_result` hears each result as it comes."""

    def one(spec: HostSpec) -> HostResult:
        started = time.perf_counter()
        try:
            host = connect(spec)
        except Exception as exc:  # unreachable: ssh's words, the others carry on
            result = HostResult(spec, None, str(exc), time.perf_counter() - started)
        else:
            try:
                report = run_doctor(host, target)
            finally:
                close = getattr(host, "close", None)
                if close:
                    close()
            result = HostResult(spec, report, None, time.perf_counter() - started)
        if on_result:
            on_result(result)
        return result

    with ThreadPoolExecutor(max_workers=max(1, min(parallel, len(specs)))) as pool:
        return list(pool.map(one, specs))


def differences(results: list[HostResult]) -> list[Difference]:
    """The compared facts whose values differ between the reachable hosts."""
    reached = [r for r in results if r.report is not None]
    found = []
    for compared in COMPARED:
        values = {r.spec.label: _value(r.report, compared.fact) for r in reached}  # type: ignore[arg-type]
        present = {repr(v) for v in values.values() if v not in (None, "")}
        if len(present) > 1:
            found.append(Difference(compared.fact, values, compared.blocking, compared.why))
    return found


def _value(report: Report, fact: str) -> Any:
    if fact == "target":
        return report.target.id
    return report.facts().get(fact)


def ok(results: list[HostResult], diffs: list[Difference]) -> bool:
    """Every host reached, none blocked by its own findings, no blocking difference."""
    return all(r.report is not None and not r.report.blocking for r in results) and not any(
        d.blocking for d in diffs
    )
