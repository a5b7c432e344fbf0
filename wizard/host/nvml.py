"""Ask NVIDIA's management library (through nvidia-ml-py) about the driver and the GPUs.

Returns plain data, so the answer can be stored in a snapshot and replayed. Imports nothing
but the standard library and pynvml: LocalHost runs this file as a script in a child process,
where every import counts towards the doctor's slowest probe.

Only the basics are required: that NVML starts, gives the driver's version and the CUDA
version it supports, counts the devices, and names each one with its memory. Everything else
(compute capability, NVLink state and version, the link's remote end, PCIe generation and
width, peer access, the PCIe path between two GPUs) is optional: a sub-query that fails for
any reason (an NVMLError, NotSupported, a ctypes error from a binding quirk, a function missing
from an older binding or driver) is left out and named under `unread`, and the rest stands.
"""

from __future__ import annotations

import contextlib
import json
from collections import Counter
from collections.abc import Callable
from typing import Any

# NVML's nvmlNvlinkVersion_t: what nvmlDeviceGetNvLinkVersion returns, and the NVLink
# generation each value stands for (H100 answers 6, which is NVLink 4.0).
NVLINK_GENERATIONS = {
    1: "1.0",
    2: "2.0",
    3: "2.2",
    4: "3.0",
    5: "3.1",
    6: "4.0",
    7: "5.0",
    8: "6.0",
}

# The numbers NVML's C header gives these enums; a binding may lack or mangle its constant
# (nvidia-ml-py 13.615 defines NVML_P2P_CAPS_INDEX_READ as the tuple `0,`).
_P2P_CAPS = {"READ": 0, "NVLINK": 2}
_P2P_STATUS_OK = 0
_FEATURE_ENABLED = 1
_NVLINK_DEVICE_SWITCH = 2
_MAX_LINKS_FALLBACK = 18

# A link index past the GPU's last link answers one of these: no such link, not an error.
_NO_SUCH_LINK = ("NVMLError_NotSupported", "NVMLError_InvalidArgument", "NVMLError_NotFound")


def query() -> dict[str, Any]:
    try:
        import pynvml
    except ImportError:
        return {"error": "the Python package nvidia-ml-py is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError_LibraryNotFound:
        return {"error": "libnvidia-ml.so.1 not found: no NVIDIA driver is installed or visible"}
    except pynvml.NVMLError as exc:
        return {"error": f"NVML could not start: {exc}"}
    try:
        return Query(pynvml).answer()
    except Exception as exc:  # a required query: the driver answered, but not with this
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return {"error": f"NVML started but could not list the GPUs: {why}", "started": True}
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


class Query:
    """One pass over NVML. Required calls raise; optional ones go through `optional`."""

    def __init__(self, nv: Any) -> None:
        self.nv = nv
        # (what, why) -> where: one entry per kind of failure, not one per GPU and link.
        self.failures: dict[tuple[str, str], list[str]] = {}

    def optional(self, where: str, what: str, call: Callable[[], Any]) -> Any:
        """call(), or None with the failure noted for `unread`."""
        try:
            return call()
        except Exception as exc:  # any failure of an optional sub-query: see the module doc
            self.note(where, what, exc)
            return None

    def note(self, where: str, what: str, exc: BaseException) -> None:
        why = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        self.failures.setdefault((what, why), []).append(where)

    def unread(self) -> list[dict[str, Any]]:
        return [
            {"what": what, "why": why, "where": sorted(where)}
            for (what, why), where in sorted(self.failures.items())
        ]

    def answer(self) -> dict[str, Any]:
        nv = self.nv
        handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
        # One call at a time: NVML serialises them anyway (threads measured no faster on
        # 4x H100), and a whole 4-GPU pass takes about 0.1 s.
        gpus = [self.gpu(index, handle) for index, handle in enumerate(handles)]
        pairs = [
            self.pair(i, j, handles, _nvlinked(gpus[i], gpus[j]))
            for i in range(len(handles))
            for j in range(i + 1, len(handles))
        ]
        cuda = nv.nvmlSystemGetCudaDriverVersion_v2()
        answer: dict[str, Any] = {
            "driver_version": _text(nv.nvmlSystemGetDriverVersion()),
            "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}",
            "gpus": gpus,
            "pairs": pairs,
        }
        # The answer's older shape, kept for tools that read it.
        answer["p2p_read"] = [[p["gpus"][0], p["gpus"][1], p["p2p_read"]] for p in pairs]
        answer["unread"] = self.unread()
        return answer

    def gpu(self, index: int, handle: Any) -> dict[str, Any]:
        nv = self.nv
        where = f"GPU{index}"
        capability = self.optional(
            where, "compute capability", lambda: nv.nvmlDeviceGetCudaComputeCapability(handle)
        )
        pci = self.optional(where, "PCI bus id", lambda: nv.nvmlDeviceGetPciInfo(handle).busId)
        uuid = self.optional(where, "UUID", lambda: nv.nvmlDeviceGetUUID(handle))
        remotes, version = self.nvlinks(where, handle)
        return {
            "index": index,
            "name": _text(nv.nvmlDeviceGetName(handle)),
            "memory_mib": nv.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024),
            "compute_capability": f"{capability[0]}.{capability[1]}" if capability else "",
            "pci_bus_id": _text(pci) if pci else "",
            "uuid": _text(uuid) if uuid else "",
            "nvlinks": len(remotes),
            "nvlink_version": version,
            "nvlink_generation": NVLINK_GENERATIONS.get(version or 0, ""),
            # How many active links end at each far end: {"switch": 18} or {bus id: 4, ...}
            "nvlink_remotes": dict(Counter(r or "unknown" for r in remotes)),
            "pcie": self.pcie(where, handle),
        }

    def nvlinks(self, where: str, handle: Any) -> tuple[list[str], int | None]:
        """What is at the other end of each active link (a GPU's bus id or "switch"), and
        their NVLink version. Links are numbered from 0 with no gaps, so the first index NVML
        calls invalid ends the loop: 19 calls for an H100's 18 links, not the binding's 36."""
        nv = self.nv
        remotes: list[str] = []
        version = None
        for link in range(getattr(nv, "NVML_NVLINK_MAX_LINKS", _MAX_LINKS_FALLBACK)):
            try:
                state = nv.nvmlDeviceGetNvLinkState(handle, link)
            except Exception as exc:
                if type(exc).__name__ not in _NO_SUCH_LINK:
                    self.note(where, "NVLink state", exc)
                break
            if state != getattr(nv, "NVML_FEATURE_ENABLED", _FEATURE_ENABLED):
                continue
            label = f"{where} link {link}"
            if version is None:  # every link of a GPU is of one generation
                version = self.optional(
                    label,
                    "NVLink version",
                    lambda li=link: nv.nvmlDeviceGetNvLinkVersion(handle, li),
                )
            remotes.append(self.remote(label, handle, link))
        return remotes, version

    def remote(self, label: str, handle: Any, link: int) -> str:
        nv = self.nv
        kind = self.optional(
            label,
            "NVLink remote device type",
            lambda: nv.nvmlDeviceGetNvLinkRemoteDeviceType(handle, link),
        )
        if kind == getattr(nv, "NVML_NVLINK_DEVICE_TYPE_SWITCH", _NVLINK_DEVICE_SWITCH):
            return "switch"
        pci = self.optional(
            label,
            "NVLink remote PCI bus id",
            lambda: nv.nvmlDeviceGetNvLinkRemotePciInfo(handle, link).busId,
        )
        return _text(pci) if pci else ""

    def pcie(self, where: str, handle: Any) -> dict[str, int | None]:
        nv = self.nv
        return {
            "max_gen": self.optional(
                where, "PCIe generation", lambda: nv.nvmlDeviceGetMaxPcieLinkGeneration(handle)
            ),
            "max_width": self.optional(
                where, "PCIe width", lambda: nv.nvmlDeviceGetMaxPcieLinkWidth(handle)
            ),
        }

    def pair(self, i: int, j: int, handles: list[Any], nvlinked: bool) -> dict[str, Any]:
        """Peer access between two GPUs, and the path when NVLink does not already give it:
        the PCIe path is the slowest query here (~5 ms a pair on an H100 VM), and 8 GPUs
        have 28 pairs."""
        nv = self.nv
        a, b = handles[i], handles[j]
        where = f"GPU{i}-GPU{j}"
        read = self.optional(
            where,
            "peer read status",
            lambda: nv.nvmlDeviceGetP2PStatus(a, b, _p2p_index(nv, "READ")),
        )
        entry: dict[str, Any] = {
            "gpus": [i, j],
            "p2p_read": None if read is None else read == _p2p_ok(nv),
            "p2p_nvlink": None,
            "common_ancestor": None,
        }
        if nvlinked:
            return entry
        over_nvlink = self.optional(
            where,
            "peer NVLink status",
            lambda: nv.nvmlDeviceGetP2PStatus(a, b, _p2p_index(nv, "NVLINK")),
        )
        entry["p2p_nvlink"] = None if over_nvlink is None else over_nvlink == _p2p_ok(nv)
        entry["common_ancestor"] = self.optional(
            where, "PCIe path", lambda: nv.nvmlDeviceGetTopologyCommonAncestor(a, b)
        )
        return entry


def _p2p_ok(nv: Any) -> int:
    return getattr(nv, "NVML_P2P_STATUS_OK", _P2P_STATUS_OK)


def _nvlinked(a: dict[str, Any], b: dict[str, Any]) -> bool:
    """Joined by NVLink as far as their links' far ends tell: both on NVSwitch, or a link of
    one ending at the other."""
    ends_a, ends_b = a["nvlink_remotes"], b["nvlink_remotes"]
    if ends_a.get("switch") and ends_b.get("switch"):
        return True
    return bool(b["pci_bus_id"] and ends_a.get(b["pci_bus_id"]))


def _p2p_index(nv: Any, name: str) -> int:
    """NVML_P2P_CAPS_INDEX_<name> as the int NVML expects, whatever the binding made of it."""
    value = getattr(nv, f"NVML_P2P_CAPS_INDEX_{name}", _P2P_CAPS[name])
    if isinstance(value, tuple):  # `NVML_P2P_CAPS_INDEX_READ = 0,` in nvidia-ml-py 13.615
        value = value[0]
    return int(value)


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


if __name__ == "__main__":
    print(json.dumps(query()))
