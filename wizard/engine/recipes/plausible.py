"""Whether a perf figure is one the hardware can move: a figure above the link's peak, above
the GPU memory's bandwidth or faster than a kernel launch is a measuring error (an in-place
all-reduce on one rank does no work at all), not a result, and is kept out of any verdict."""

from __future__ import annotations

from typing import Any

# The time a collective cannot beat: a CUDA kernel launch alone takes a few microseconds. FlagCX
# prints its time in whole microseconds, so a time under 1 us reads as 0.
LAUNCH_FLOOR_US = 1.0

# GPU memory bandwidth in GB/s, from NVIDIA's datasheets, by a part of the model name nvidia-smi
# prints; the first that matches counts (so "H100 NVL" before "H100").
MEMORY_GBS: tuple[tuple[str, float], ...] = (
    ("B300", 8000.0),
    ("B200", 8000.0),
    ("H200", 4800.0),
    ("H100 NVL", 3900.0),
    ("H100 PCIe", 2000.0),
    ("H100", 3350.0),
    ("H800", 3350.0),
    ("A100-SXM4-80GB", 2039.0),
    ("A100 80GB PCIe", 1935.0),
    ("A100", 1555.0),
    ("A800", 2039.0),
    ("L40S", 864.0),
    ("V100", 900.0),
)
FASTEST = 8000.0  # where the model is unknown: no GPU's memory is faster than B200's


def memory_gbs(model: str) -> tuple[float, str]:
    """The GPU memory's bandwidth and what it is, for a model name ("" when unknown)."""
    for part, gbs in MEMORY_GBS:
        if part.lower() in model.lower():
            return gbs, f"the {part}'s memory bandwidth"
    return FASTEST, "the fastest GPU memory made (8000 GB/s)"


def suspect(
    row: dict[str, Any], *, link_peak: float | None, memory: tuple[float, str]
) -> str | None:
    """Why a row of a perf table cannot be a real measurement, or None when it can be."""
    memory_peak, memory_what = memory
    if row["time_us"] < LAUNCH_FLOOR_US:
        return f"time {row['time_us']:g} us is below a kernel launch ({LAUNCH_FLOOR_US:g} us)"
    if row["algbw_gbs"] > memory_peak:
        return f"algbw {row['algbw_gbs']:g} GB/s is above {memory_what} ({memory_peak:g} GB/s)"
    if link_peak and row["busbw_gbs"] > link_peak:
        return f"busbw {row['busbw_gbs']:g} GB/s is above the link's peak ({link_peak:g} GB/s)"
    return None
