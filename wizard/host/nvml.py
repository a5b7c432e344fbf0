"""Ask NVIDIA's management library (through nvidia-ml-py) about the driver and the GPUs.

Returns plain data, so the answer can be stored in a snapshot and replayed.
"""

from __future__ import annotations

import contextlib
from typing import Any


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
        return _query(pynvml)
    except pynvml.NVMLError as exc:
        return {"error": f"NVML failed: {exc}"}
    finally:
        with contextlib.suppress(pynvml.NVMLError):
            pynvml.nvmlShutdown()


def _query(nv: Any) -> dict[str, Any]:
    cuda = nv.nvmlSystemGetCudaDriverVersion_v2()
    handles = [nv.nvmlDeviceGetHandleByIndex(i) for i in range(nv.nvmlDeviceGetCount())]
    gpus = []
    for index, handle in enumerate(handles):
        links, version = _nvlinks(nv, handle)
        major, minor = nv.nvmlDeviceGetCudaComputeCapability(handle)
        gpus.append(
            {
                "index": index,
                "name": _text(nv.nvmlDeviceGetName(handle)),
                "memory_mib": nv.nvmlDeviceGetMemoryInfo(handle).total // (1024 * 1024),
                "compute_capability": f"{major}.{minor}",
                "pci_bus_id": _text(nv.nvmlDeviceGetPciInfo(handle).busId),
                "nvlinks": links,
                "nvlink_version": version,
            }
        )
    p2p = []
    for i in range(len(handles)):
        for j in range(i + 1, len(handles)):
            status = nv.nvmlDeviceGetP2PStatus(handles[i], handles[j], nv.NVML_P2P_CAPS_INDEX_READ)
            p2p.append([i, j, status == nv.NVML_P2P_STATUS_OK])
    return {
        "driver_version": _text(nv.nvmlSystemGetDriverVersion()),
        "cuda_driver_version": f"{cuda // 1000}.{cuda % 1000 // 10}",
        "gpus": gpus,
        "p2p_read": p2p,
    }


def _nvlinks(nv: Any, handle: Any) -> tuple[int, int | None]:
    """Active NVLink links of one GPU and their version; (0, None) where there are none."""
    active, version = 0, None
    for link in range(nv.NVML_NVLINK_MAX_LINKS):
        try:
            if nv.nvmlDeviceGetNvLinkState(handle, link) != nv.NVML_FEATURE_ENABLED:
                continue
        except nv.NVMLError:
            continue
        active += 1
        if version is None:
            with contextlib.suppress(nv.NVMLError):
                version = nv.nvmlDeviceGetNvLinkVersion(handle, link)
    return active, version


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
