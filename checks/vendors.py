"""The accelerator vendors FlagCX builds for, as its Makefile and torch plugin name them.

The table follows current FlagCX (flagos-ai/FlagCX, v0.13): the Makefile's `USE_<VENDOR>` flags
and its DEVICE_HOME / CCL_HOME defaults (the Makefile sets them before makefiles/<key>.mk is
read, so where the two differ, PPU's CCL_HOME, the Makefile's wins), the vendor's CCL library
from makefiles/<key>.mk (`CCL_LIB`, `CCL_LINK`), and plugin/torch/_build_config.py's adaptor
names and the device tools it detects each platform by.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from wizard.host import Host

_MAKE_VAR = re.compile(r"\$[({](\w+)[)}]")


@dataclass(frozen=True)
class Vendor:
    key: str  # FlagCX's makefiles/<key>.mk, and the target flagcx-<key>
    name: str
    make_flag: str  # FlagCX's `make USE_<VENDOR>=1`
    adaptor: str  # the torch plugin's adaptor (FLAGCX_ADAPTOR, `--adaptor`)
    tools: tuple[str, ...]  # device tools whose presence means the vendor's driver is there
    device_home: str  # the Makefile's DEVICE_HOME default, as written there
    ccl_home: str  # the Makefile's CCL_HOME default, as written there
    ccl: str  # the vendor's collective library under CCL_HOME (CCL_LIB, CCL_LINK)
    also_at: tuple[str, ...] = ()  # where the SDK usually is when the default is a variable

    def default(self, value: str, host: Host) -> str:
        """A Makefile default with its `$(VAR)` / `${VAR}` read from the host's environment."""
        return _MAKE_VAR.sub(lambda m: host.getenv(m.group(1)) or "", value)

    def homes(self, host: Host) -> tuple[str, ...]:
        """The SDK homes to look at: DEVICE_HOME and CCL_HOME as make would set them, then the
        usual places."""
        found = (self.default(self.device_home, host), self.default(self.ccl_home, host))
        return tuple(dict.fromkeys(h.rstrip("/") or "/" for h in (*found, *self.also_at) if h))


VENDORS: dict[str, Vendor] = {
    v.key: v
    for v in (
        Vendor(
            "nvidia", "NVIDIA", "USE_NVIDIA", "nvidia", ("nvidia-smi",),
            "/usr/local/cuda", "/usr/local/nccl/build", "lib/libnccl.so",
        ),
        Vendor(
            "iluvatar_corex", "Iluvatar CoreX", "USE_ILUVATAR_COREX", "iluvatar_corex", ("ixsmi",),
            "/usr/local/corex", "/usr/local/corex", "lib/libnccl.so",
        ),
        Vendor(
            "cambricon", "Cambricon", "USE_CAMBRICON", "cambricon", ("cnmon",),
            "$(NEUWARE_HOME)", "$(NEUWARE_HOME)", "lib64/libcncl.so",
            also_at=("/usr/local/neuware",),
        ),
        Vendor(
            "metax", "MetaX", "USE_METAX", "metax", ("mx-smi",),
            "/opt/maca", "/opt/maca", "lib64/libmccl.so",
        ),
        Vendor(
            "musa", "Moore Threads", "USE_MUSA", "musa", ("mthreads-gmi",),
            "/usr/local/musa", "/usr/local/musa", "lib/libmccl.so",
        ),
        Vendor(
            "kunlunxin", "Kunlunxin", "USE_KUNLUNXIN", "klx", ("xpu-smi",),
            "/usr/local/xpu", "/usr/local/xccl", "so/libbkcl.so",
        ),
        Vendor(
            "du", "DU (Hygon DCU)", "USE_DU", "du", ("hy-smi",),
            "${CUDA_PATH}", "${CUDA_PATH}", "lib64/libnccl.so",
            also_at=("/opt/dtk",),
        ),
        Vendor(
            "amd", "AMD", "USE_AMD", "amd", ("rocm-smi", "amd-smi"),
            "/opt/rocm", "/opt/rocm", "lib/librccl.so",
        ),
        Vendor(
            "ascend", "Ascend", "USE_ASCEND", "ascend", ("npu-smi",),
            "/usr/local/Ascend/ascend-toolkit/latest", "/usr/local/Ascend/ascend-toolkit/latest",
            "lib64/libhccl.so",
        ),
        Vendor(
            "tsm", "TsingMicro", "USE_TSM", "tsm", ("tsm_smi",),
            "/usr/local/kuiper", "/usr/local/kuiper", "lib/libtccl.so",
        ),
        Vendor(
            "enflame", "Enflame", "USE_ENFLAME", "enflame", ("efsmi",),
            "/opt/tops/", "/usr", "lib/libeccl.so",
        ),
        Vendor(
            "sunrise", "Sunrise", "USE_SUNRISE", "sunrise", ("pt-smi",),
            "/usr/local/tangrt", "/usr/local/pccl", "lib/linux-x86_64/libpccl.so",
        ),
        Vendor(
            "ppu", "PPU", "USE_PPU", "ppu", ("ppu-smi",),
            "/usr/local/cuda", "/usr/local/cuda", "lib64/libnccl.so",
        ),
    )
}  # fmt: skip


@dataclass(frozen=True)
class Sighting:
    vendor: Vendor
    tools: tuple[str, ...]  # paths of the device tools found
    homes: tuple[str, ...]  # SDK homes that exist

    @property
    def evidence(self) -> str:
        return ", ".join([*self.tools, *self.homes])


def sight(host: Host, vendor: Vendor) -> Sighting | None:
    tools = tuple(path for tool in vendor.tools if (path := host.which(tool)))
    # /usr (Enflame's CCL_HOME) and /usr/local/cuda (PPU's) exist without the vendor's SDK
    homes = tuple(h for h in vendor.homes(host) if h not in _NOT_EVIDENCE and host.is_dir(h))
    return Sighting(vendor, tools, homes) if tools or homes else None


_NOT_EVIDENCE = frozenset({"/usr", "/usr/local/cuda"})


def other_vendors(host: Host) -> list[Sighting]:
    """Non-NVIDIA FlagCX vendors whose tools or SDK homes are on this host."""
    return [s for key, v in VENDORS.items() if key != "nvidia" and (s := sight(host, v))]


def default_vendor(host: Host) -> str:
    """NVIDIA when its driver answers; else the first other vendor whose device tool is
    present; else NVIDIA, the most common case."""
    if "error" not in host.nvml():
        return "nvidia"
    for sighting in other_vendors(host):
        if sighting.tools:
            return sighting.vendor.key
    return "nvidia"
