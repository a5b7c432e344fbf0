"""Record what the real NVML binding answers, call by call, so a fake can answer the same.

Run on a GPU machine: `python -m tests.fakes.nvml_trace > trace.json`. Every call the wizard's
NVML query makes (and every NVLink index up to the binding's maximum) is recorded as
{"value": ...} or {"raises": "<exception class>", "message": ...}. The binding's constants are
recorded as they are, quirks included (a tuple stays a list in JSON, marked as such).
"""

from __future__ import annotations

import json
import sys
from typing import Any

SYSTEM_CALLS = (
    "nvmlDeviceGetCount",
    "nvmlSystemGetDriverVersion",
    "nvmlSystemGetCudaDriverVersion_v2",
)
GPU_CALLS = (  # (handle)
    "nvmlDeviceGetName",
    "nvmlDeviceGetMemoryInfo",
    "nvmlDeviceGetCudaComputeCapability",
    "nvmlDeviceGetPciInfo",
    "nvmlDeviceGetUUID",
    "nvmlDeviceGetMaxPcieLinkGeneration",
    "nvmlDeviceGetMaxPcieLinkWidth",
)
LINK_CALLS = (  # (handle, link)
    "nvmlDeviceGetNvLinkState",
    "nvmlDeviceGetNvLinkVersion",
    "nvmlDeviceGetNvLinkRemoteDeviceType",
    "nvmlDeviceGetNvLinkRemotePciInfo",
)
PAIR_CALLS = ("nvmlDeviceGetP2PStatus", "nvmlDeviceGetTopologyCommonAncestor")  # (a, b, ...)
CALLS = (*SYSTEM_CALLS, *GPU_CALLS, *LINK_CALLS, *PAIR_CALLS)


class Handle(int):
    """A GPU index that stands for its NVML handle in a recorded call."""


CONSTANTS = (
    "NVML_NVLINK_MAX_LINKS",
    "NVML_FEATURE_ENABLED",
    "NVML_P2P_CAPS_INDEX_READ",
    "NVML_P2P_CAPS_INDEX_NVLINK",
    "NVML_P2P_STATUS_OK",
    "NVML_NVLINK_DEVICE_TYPE_SWITCH",
)


def _plain(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "busId"):
        return {"busId": _plain(value.busId)}
    if hasattr(value, "total"):
        return {"total": value.total}
    return value


def call_key(name: str, *args: Any) -> str:
    """How one call is named in a trace: "nvmlDeviceGetNvLinkState(0, 17)"."""
    return f"{name}({', '.join(repr(a) for a in args)})"


def trace(nv: Any) -> dict[str, Any]:
    calls: dict[str, Any] = {}

    def record(name: str, *args: Any) -> Any:
        key = call_key(name, *args)
        try:
            value = getattr(nv, name)(*[handles[a] if isinstance(a, Handle) else a for a in args])
        except Exception as exc:
            calls[key] = {"raises": type(exc).__name__, "message": str(exc)}
            return None
        calls[key] = {"value": _plain(value)}
        return value

    nv.nvmlInit()
    handles: dict[int, Any] = {}
    count = record("nvmlDeviceGetCount")
    for i in range(count):
        handles[i] = nv.nvmlDeviceGetHandleByIndex(i)
    for name in SYSTEM_CALLS[1:]:
        record(name)
    for i in range(count):
        h = Handle(i)
        for name in GPU_CALLS:
            record(name, h)
        for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", 18)):
            for name in LINK_CALLS:
                record(name, h, link)
        for j in range(count):
            if i != j:
                for index in (0, 2):  # NVML_P2P_CAPS_INDEX_READ and _NVLINK
                    record("nvmlDeviceGetP2PStatus", h, Handle(j), index)
                record("nvmlDeviceGetTopologyCommonAncestor", h, Handle(j))
    # The binding's own constant, passed as the wizard once did.
    if count > 1:
        record("nvmlDeviceGetP2PStatus", Handle(0), Handle(1), nv.NVML_P2P_CAPS_INDEX_READ)
    nv.nvmlShutdown()
    constants = {}
    for name in CONSTANTS:
        value = getattr(nv, name, None)
        constants[name] = {"tuple": list(value)} if isinstance(value, tuple) else value
    from importlib.metadata import version

    return {"binding": version("nvidia-ml-py"), "constants": constants, "calls": calls}


if __name__ == "__main__":
    import pynvml

    json.dump(trace(pynvml), sys.stdout, indent=1, sort_keys=True)
