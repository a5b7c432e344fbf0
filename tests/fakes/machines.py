"""NVML traces for the fake binding: the real 4x H100 trace, and machines derived from it.

Derived machines change only what a test names: more or fewer GPUs (each new GPU answers as
the recorded GPU0 does, each new pair as the recorded pair 0-1), functions an older binding
lacks, calls a driver does not support, or no NVLink at all (NVML's documented answer for a
GPU without it: NVMLError_NotSupported from nvmlDeviceGetNvLinkState).
"""

from __future__ import annotations

import ast
import copy
import json
import re
from pathlib import Path
from typing import Any

from tests.fakes.nvml_trace import PAIR_CALLS, call_key

FAKES = Path(__file__).resolve().parent
REAL_4XH100 = FAKES.parent / "data" / "nvml-trace-4xh100.json"
_CALL = re.compile(r"(\w+)\((.*)\)")
_NOT_SUPPORTED = {"raises": "NVMLError_NotSupported", "message": "Not Supported"}
_HANDLES = dict.fromkeys(PAIR_CALLS, 2)  # calls whose first two arguments are GPU handles


def real_4xh100() -> dict[str, Any]:
    return json.loads(REAL_4XH100.read_text())


def _split(key: str) -> tuple[str, tuple[Any, ...]]:
    name, args = _CALL.fullmatch(key).groups()  # type: ignore[union-attr]
    return name, ast.literal_eval(f"({args},)") if args else ()


def scaled(trace: dict[str, Any], gpus: int) -> dict[str, Any]:
    """The same machine with `gpus` GPUs (at most 26: bus ids 06 to 1f)."""
    out = copy.deepcopy(trace)
    calls: dict[str, Any] = {}
    for key, answer in trace["calls"].items():
        name, args = _split(key)
        handles = _HANDLES.get(name, 1 if name.startswith("nvmlDevice") else 0)
        if name == "nvmlDeviceGetCount":
            calls[key] = {"value": gpus}
        elif handles == 0:
            calls[key] = answer
        elif handles == 1 and args[0] == 0:
            for k in range(gpus):
                calls[call_key(name, k, *args[1:])] = _for_gpu(answer, name, k)
        elif handles == 2 and args[:2] == (0, 1):
            for i in range(gpus):
                for j in range(gpus):
                    if i != j:
                        calls[call_key(name, i, j, *args[2:])] = answer
    out["calls"] = calls
    return out


def _for_gpu(answer: dict[str, Any], name: str, k: int) -> dict[str, Any]:
    if name == "nvmlDeviceGetPciInfo":
        return {"value": {"busId": f"00000000:00:{6 + k:02X}.0"}}
    if name == "nvmlDeviceGetUUID":
        return {"value": answer["value"][:-2] + f"{k:02x}"}
    return answer


def without(trace: dict[str, Any], *functions: str) -> dict[str, Any]:
    """As seen through an older binding that lacks these functions."""
    out = copy.deepcopy(trace)
    out["missing"] = [*out.get("missing", []), *functions]
    return out


def unsupported(trace: dict[str, Any], *functions: str) -> dict[str, Any]:
    """A driver that answers NotSupported to every call of these functions."""
    out = copy.deepcopy(trace)
    for key in out["calls"]:
        if _split(key)[0] in functions:
            out["calls"][key] = dict(_NOT_SUPPORTED)
    return out


def pcie_only(trace: dict[str, Any], per_socket: int) -> dict[str, Any]:
    """No NVLink: GPUs in groups of `per_socket` behind one PCIe switch each, groups joined
    across CPU sockets; peer access only inside a group."""
    out = copy.deepcopy(trace)
    calls = out["calls"]
    for key in list(calls):
        name, args = _split(key)
        if name.startswith("nvmlDeviceGetNvLink"):
            calls[key] = dict(_NOT_SUPPORTED)
        elif name in _HANDLES:
            same = args[0] // per_socket == args[1] // per_socket
            if name == "nvmlDeviceGetTopologyCommonAncestor":
                calls[key] = {"value": 10 if same else 50}
            elif args[2:] == (2,):  # NVML_P2P_CAPS_INDEX_NVLINK
                calls[key] = {"value": 5}  # NVML_P2P_STATUS_NOT_SUPPORTED
            elif args[2:] == (0,):
                calls[key] = {"value": 0 if same else 5}
    return out


def write(trace: dict[str, Any], path: Path) -> Path:
    path.write_text(json.dumps(trace))
    return path
