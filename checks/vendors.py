"""The accelerator vendors FlagCX builds for, as its Makefile and torch plugin name them."""

from __future__ import annotations

from dataclasses import dataclass

from wizard.host import Host


@dataclass(frozen=True)
class Vendor:
    key: str
    name: str
    make_flag: str  # FlagCX's `make USE_<VENDOR>=1`
    adaptor: str  # plugin/torch: `setup.py develop --adaptor <adaptor>`
    tools: tuple[str, ...]  # device tools whose presence means the vendor's driver is there
    homes: tuple[str, ...]  # SDK homes, first is FlagCX's DEVICE_HOME default
    home_env: str | None = None  # an environment variable that names the home


VENDORS: dict[str, Vendor] = {
    v.key: v
    for v in (
        Vendor("nvidia", "NVIDIA", "USE_NVIDIA", "nvidia", ("nvidia-smi",), ("/usr/local/cuda",)),
        Vendor(
            "iluvatar_corex",
            "Iluvatar CoreX",
            "USE_ILUVATAR_COREX",
            "iluvatar_corex",
            ("ixsmi",),
            ("/usr/local/corex",),
        ),
        Vendor(
            "cambricon",
            "Cambricon",
            "USE_CAMBRICON",
            "cambricon",
            ("cnmon",),
            ("/usr/local/neuware",),
            home_env="NEUWARE_HOME",
        ),
        Vendor("metax", "MetaX", "USE_METAX", "metax", ("mx-smi",), ("/opt/maca",)),
        Vendor(
            "musa", "Moore Threads", "USE_MUSA", "musa", ("mthreads-gmi",), ("/usr/local/musa",)
        ),
        Vendor("kunlunxin", "Kunlunxin", "USE_KUNLUNXIN", "klx", ("xpu-smi",), ("/usr/local/xpu",)),
        Vendor("du", "DU (Hygon DCU)", "USE_DU", "du", ("hy-smi",), ("/opt/dtk",)),
        Vendor("amd", "AMD", "USE_AMD", "amd", ("rocm-smi", "amd-smi"), ("/opt/rocm",)),
        Vendor(
            "ascend",
            "Ascend",
            "USE_ASCEND",
            "ascend",
            ("npu-smi",),
            ("/usr/local/Ascend/ascend-toolkit/latest",),
        ),
    )
}


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
    candidates = list(vendor.homes)
    if vendor.home_env and (env_home := host.getenv(vendor.home_env)):
        candidates.insert(0, env_home)
    homes = tuple(home for home in candidates if host.is_dir(home))
    return Sighting(vendor, tools, homes) if tools or homes else None


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
