"""The accelerator vendors FlagCX builds for, as its Makefile and torch plugin name them.

The table follows current FlagCX (flagos-ai/FlagCX, v0.13): the Makefile's `USE_<VENDOR>` flags
and its DEVICE_HOME / CCL_HOME defaults (the Makefile sets them before makefiles/<key>.mk is
read, so where the two differ, PPU's CCL_HOME, the Makefile's wins), the vendor's CCL library
from makefiles/<key>.mk (`CCL_LIB`, `CCL_LINK`), and plugin/torch/_build_config.py's adaptor
names and the device tools it detects each platform by. PCI vendor ids are pci.ids
(pciutils/pciids); the VISIBLE_DEVICES variables are those FlagCX's test/perf/Makefile.old
passes per vendor (MLU, MACA, MUSA, XPU, HIP, TOPS, else CUDA), except Ascend's, which the
CANN runtime reads as ASCEND_RT_VISIBLE_DEVICES, and DU's (its DTK is HIP); AMD's ROCr runtime
narrows the devices by ROCR_VISIBLE_DEVICES before HIP reads HIP_VISIBLE_DEVICES.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from checks.vendor_tools import (
    Reader,
    amd_smi_static,
    cnmon,
    efsmi,
    ixsmi,
    mthreads_gmi,
    mx_smi,
    npu_smi,
    xpu_smi,
)
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
    pci: str = ""  # its PCI vendor id (pci.ids), to tell its devices from a namesake tool's
    visible: tuple[str, ...] = ()  # the runtime's <X>_VISIBLE_DEVICES, in the order it
    # applies them (ROCr's ROCR_VISIBLE_DEVICES, then HIP's among the devices ROCr left)
    readers: tuple[Reader, ...] = ()  # the tools read, the preferred first; none where no
    # real sample of a tool's output was found

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
            pci="0x10de", visible=("CUDA_VISIBLE_DEVICES",),
        ),
        Vendor(
            "iluvatar_corex", "Iluvatar CoreX", "USE_ILUVATAR_COREX", "iluvatar_corex", ("ixsmi",),
            "/usr/local/corex", "/usr/local/corex", "lib/libnccl.so",
            pci="0x1e3e", visible=("CUDA_VISIBLE_DEVICES",),
            readers=(Reader("ixsmi", (), ixsmi),),
        ),
        Vendor(
            "cambricon", "Cambricon", "USE_CAMBRICON", "cambricon", ("cnmon",),
            "$(NEUWARE_HOME)", "$(NEUWARE_HOME)", "lib64/libcncl.so",
            also_at=("/usr/local/neuware",), pci="0xcabc", visible=("MLU_VISIBLE_DEVICES",),
            readers=(Reader("cnmon", (), cnmon),),
        ),
        Vendor(
            "metax", "MetaX", "USE_METAX", "metax", ("mx-smi",),
            "/opt/maca", "/opt/maca", "lib64/libmccl.so",
            pci="0x9999", visible=("MACA_VISIBLE_DEVICES",),
            readers=(Reader("mx-smi", (), mx_smi),),
        ),
        Vendor(
            "musa", "Moore Threads", "USE_MUSA", "musa", ("mthreads-gmi",),
            "/usr/local/musa", "/usr/local/musa", "lib/libmccl.so",
            pci="0x1ed5", visible=("MUSA_VISIBLE_DEVICES",),
            readers=(Reader("mthreads-gmi", (), mthreads_gmi),),
        ),
        Vendor(
            "kunlunxin", "Kunlunxin", "USE_KUNLUNXIN", "klx", ("xpu-smi", "xpu_smi"),
            "/usr/local/xpu", "/usr/local/xccl", "so/libbkcl.so",
            pci="0x1d22", visible=("XPU_VISIBLE_DEVICES",),
            readers=(Reader("xpu-smi", (), xpu_smi), Reader("xpu_smi", (), xpu_smi)),
        ),
        Vendor(
            "du", "DU (Hygon DCU)", "USE_DU", "du", ("hy-smi",),
            "${CUDA_PATH}", "${CUDA_PATH}", "lib64/libnccl.so",
            also_at=("/opt/dtk",), pci="0x1d94", visible=("HIP_VISIBLE_DEVICES",),
        ),
        Vendor(
            "amd", "AMD", "USE_AMD", "amd", ("amd-smi", "rocm-smi"),
            "/opt/rocm", "/opt/rocm", "lib/librccl.so",
            pci="0x1002", visible=("ROCR_VISIBLE_DEVICES", "HIP_VISIBLE_DEVICES"),
            readers=(Reader("amd-smi", ("static",), amd_smi_static),),
        ),
        Vendor(
            "ascend", "Ascend", "USE_ASCEND", "ascend", ("npu-smi",),
            "/usr/local/Ascend/ascend-toolkit/latest", "/usr/local/Ascend/ascend-toolkit/latest",
            "lib64/libhccl.so",
            pci="0x19e5", visible=("ASCEND_RT_VISIBLE_DEVICES",),
            readers=(Reader("npu-smi", ("info",), npu_smi),),
        ),
        Vendor(
            "tsm", "TsingMicro", "USE_TSM", "tsm", ("tsm_smi",),
            "/usr/local/kuiper", "/usr/local/kuiper", "lib/libtccl.so",
        ),
        Vendor(
            "enflame", "Enflame", "USE_ENFLAME", "enflame", ("efsmi",),
            "/opt/tops/", "/usr", "lib/libeccl.so",
            pci="0x1e36", visible=("TOPS_VISIBLE_DEVICES",),
            readers=(Reader("efsmi", (), efsmi),),
        ),
        Vendor(
            "sunrise", "Sunrise", "USE_SUNRISE", "sunrise", ("pt-smi",),
            "/usr/local/tangrt", "/usr/local/pccl", "lib/linux-x86_64/libpccl.so",
            pci="0x1ecc",
        ),
        Vendor(
            "ppu", "PPU", "USE_PPU", "ppu", ("ppu-smi",),
            "/usr/local/cuda", "/usr/local/cuda", "lib64/libnccl.so",
            pci="0x1ded",
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


# PCI classes accelerators show as: display (0x03), communication controllers (0x07: Kunlun
# R300 cards in PaddleNLP's XPU guide) and processing accelerators (0x12)
_ACCELERATOR_CLASSES = ("0x03", "0x07", "0x12")
_PCI_FILE = re.compile(
    r"([0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7])/(vendor|class):(0x[0-9a-f]+)$"
)


def pci_accelerators(host: Host) -> dict[str, list[str]] | None:
    """The accelerators on the PCI bus, by vendor id: {"0x19e5": ["0000:c1:00.0", ...]}.
    None when sysfs shows no PCI bus (then nothing can be cross-checked). One command reads
    every device's vendor and class, so a remote host costs one round trip."""
    folders = host.glob("/sys/bus/pci/devices/*")
    if not folders:
        return None
    files = [f"{folder}/{name}" for folder in folders for name in ("vendor", "class")]
    answer = host.run(
        ["grep", "-H", "", *files],
        timeout=10,
        key="grep -H '' /sys/bus/pci/devices/*/{vendor,class}",
    )
    seen: dict[str, dict[str, str]] = {}
    for line in answer.stdout.splitlines():
        if match := _PCI_FILE.search(line.strip().lower()):
            seen.setdefault(match.group(1), {})[match.group(2)] = match.group(3)
    by_vendor: dict[str, list[str]] = {}
    for address, info in sorted(seen.items()):
        if info.get("class", "").startswith(_ACCELERATOR_CLASSES) and "vendor" in info:
            by_vendor.setdefault(info["vendor"], []).append(address)
    return by_vendor


def on_the_bus(sighting: Sighting, pci: dict[str, list[str]] | None) -> bool:
    """Whether the PCI bus agrees the vendor is there (True when it cannot tell): Intel's
    xpu-smi on a host with no Kunlunxin card is no Kunlunxin host."""
    return pci is None or not sighting.vendor.pci or sighting.vendor.pci in pci


def default_vendor(host: Host) -> str:
    """NVIDIA when its driver answers; else the first other vendor whose device tool is
    present and whose devices the PCI bus shows; else NVIDIA, the most common case."""
    if "error" not in host.nvml():
        return "nvidia"
    candidates = [s for s in other_vendors(host) if s.tools]
    pci = pci_accelerators(host) if candidates else None
    for sighting in candidates:
        if on_the_bus(sighting, pci):
            return sighting.vendor.key
    return "nvidia"
