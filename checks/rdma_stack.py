"""What the rdma finding reads beyond sysfs: `ibv_devinfo`'s MTUs, the network NCCL will pick,
the user-space stack's versions against the kernel's modules, and Alibaba's eRDMA packages.

Each helper takes what the check already read and asks the host through the Context, every
tool under a timeout.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field

from checks.base import Context, Fix
from checks.distro import Distro

# -- ibv_devinfo: the MTU of InfiniBand ports (sysfs has none: no netdev behind them) -------

_HCA = re.compile(r"^hca_id:\s*(\S+)")
_PORT = re.compile(r"^\s+port:\s*(\d+)")
_MTU = re.compile(r"^\s+(active_mtu|max_mtu):\s*(\d+)")


def parse_devinfo(text: str) -> dict[tuple[str, int], dict[str, int]]:
    """`ibv_devinfo` (plain or -v) as {(device, port): {"active_mtu": 4096, "max_mtu": 4096}}."""
    found: dict[tuple[str, int], dict[str, int]] = {}
    device, port = "", 0
    for line in text.splitlines():
        if match := _HCA.match(line):
            device, port = match.group(1), 0
        elif match := _PORT.match(line):
            port = int(match.group(1))
        elif (match := _MTU.match(line)) and device and port:
            found.setdefault((device, port), {})[match.group(1)] = int(match.group(2))
    return found


def devinfo_mtus(ctx: Context, program: str | None) -> tuple[dict, str]:
    """Every port's MTUs from one `ibv_devinfo` run, and what went wrong (empty when fine)."""
    if not program:
        return {}, "ibv_devinfo not installed: the InfiniBand ports' MTU is unknown"
    answer = ctx.host.run([program], timeout=10)
    if answer.error or answer.returncode != 0:
        why = answer.error or (answer.stderr.strip().splitlines() or [f"exit {answer.returncode}"])
        return {}, f"ibv_devinfo failed ({why if isinstance(why, str) else why[-1]})"
    found = parse_devinfo(answer.stdout)
    return found, "" if found else "ibv_devinfo printed no port's MTU"


# -- the network NCCL will pick ---------------------------------------------------------------
#
# NCCL's documented order (docs.nvidia.com/deeplearning/nccl/user-guide/docs/env.html, and
# its net plugin documentation): at init it loads an external net plugin, by default
# libnccl-net.so from the library search path, or libnccl-net-<NCCL_NET_PLUGIN>.so (a name
# with ".so" or a path is taken as it is; "none" loads none); the plugin's networks come
# first, then the internal "IB" (verbs: InfiniBand and RoCE ports that are ACTIVE) and then
# "Socket". NCCL_IB_DISABLE=1 takes IB out; NCCL_NET names the one network to use (IB,
# Socket or a plugin's own name, case-insensitive) and NCCL fails rather than fall back.
# The variables are read from the environment, then /etc/nccl.conf.

_SETTINGS = ("NCCL_NET", "NCCL_NET_PLUGIN", "NCCL_IB_DISABLE")


@dataclass(frozen=True)
class Transport:
    network: str  # "IB", "Socket", "plugin", or NCCL_NET's value for a plugin's own network
    why: str
    problem: str = ""  # set when NCCL will fail to start its network as configured


def nccl_settings(ctx: Context) -> dict[str, tuple[str, str]]:
    """NCCL_NET, NCCL_NET_PLUGIN and NCCL_IB_DISABLE as NCCL reads them, with where from."""
    host = ctx.host
    found = {n: (v, "environment") for n in _SETTINGS if (v := host.getenv(n)) is not None}
    for line in (host.read_text("/etc/nccl.conf") or "").splitlines():
        name, sep, value = line.strip().partition("=")
        if sep and name in _SETTINGS and name not in found:
            found[name] = (value.strip(), "/etc/nccl.conf")
    return found


def plugin_wanted(value: str | None) -> str | None:
    """The library NCCL will dlopen for NCCL_NET_PLUGIN's value (None: no plugin)."""
    if value is None or value == "":
        return "libnccl-net.so"
    if value.lower() == "none":
        return None
    if "/" in value or ".so" in value:
        return value
    return f"libnccl-net-{value}.so"


def nccl_transport(
    settings: dict[str, tuple[str, str]], plugins: list[str], active: list[tuple[str, str]]
) -> Transport:
    """The network NCCL will use between hosts. `plugins` are the libnccl-net*.so found on
    the library path; `active` the (device, link layer) of each ACTIVE port."""

    def said(name: str) -> str:
        value, where = settings[name]
        return f"{name}={value} ({where})"

    wanted = plugin_wanted(settings.get("NCCL_NET_PLUGIN", (None, ""))[0])
    loaded = next(
        (
            p
            for p in plugins
            if wanted and (p == wanted or p.rsplit("/", 1)[-1] in (wanted, wanted + ".0"))
        ),
        None,
    )
    ib_off = settings.get("NCCL_IB_DISABLE", ("0", ""))[0].strip() not in ("", "0")
    ports = ", ".join(f"{d} ({'RoCE' if layer == 'Ethernet' else layer})" for d, layer in active)
    forced = settings.get("NCCL_NET", ("", ""))[0].strip()
    if forced.lower() == "ib":
        if ib_off:
            return Transport("IB", said("NCCL_NET"), f"{said('NCCL_IB_DISABLE')} takes IB away")
        if not active:
            return Transport("IB", said("NCCL_NET"), "no RDMA port is ACTIVE for it")
        return Transport("IB", f"{said('NCCL_NET')}: IB verbs over {ports}")
    if forced.lower() == "socket":
        return Transport("Socket", f"{said('NCCL_NET')}: TCP sockets, RDMA unused")
    if forced:
        if loaded:
            return Transport(forced, f"{said('NCCL_NET')}: the network of plugin {loaded}")
        where = f" ({wanted} not found)" if wanted else " (NCCL_NET_PLUGIN=none)"
        return Transport(forced, said("NCCL_NET"), f"no net plugin is loaded{where}")
    if loaded:
        return Transport(
            "plugin",
            f"net plugin {loaded} is loaded and tried first"
            + (f"; IB verbs over {ports} if it finds no device" if ports and not ib_off else ""),
        )
    missing = ""
    if "NCCL_NET_PLUGIN" in settings and wanted:
        missing = f"{said('NCCL_NET_PLUGIN')}: {wanted} not found; "
    if ib_off:
        return Transport("Socket", f"{missing}{said('NCCL_IB_DISABLE')}: TCP sockets")
    if active:
        return Transport("IB", f"{missing}IB verbs over {ports}")
    return Transport("Socket", f"{missing}no RDMA port is ACTIVE: TCP sockets")


# -- user space against the kernel's modules ---------------------------------------------------
#
# MLNX_OFED installs its own kernel modules, built outside the kernel tree: the kernel marks
# such a module with taint flag O in /sys/module/<name>/taint (Documentation/admin-guide/
# tainted-kernels.rst), and an in-tree module has no O. OFED's user space over the kernel's
# own mlx5 modules is what openucx/ucx#6906 came down to ("the mlx5_ib module did not come
# from mlnx-ofed": modinfo's intree: Y), usually after a kernel update OFED was not rebuilt
# for; it is also what `mlnxofedinstall --user-space-only` sets up on purpose (containers), so
# it is said, not warned about. No rule is applied to the version an out-of-tree module
# reports: no published sample of /sys/module/mlx5_core/version under OFED was found to
# compare ofed_info's release with, so that version is shown, not judged.


def rdma_core_version(ctx: Context) -> str:
    """The installed rdma-core package's version, asked of the package manager."""
    family = Distro.of(ctx).family
    if family == "debian":
        argv = ["dpkg-query", "-W", "-f", "${Version}", "rdma-core"]
    elif family in ("rhel", "suse"):
        argv = ["rpm", "-q", "--qf", "%{VERSION}-%{RELEASE}", "rdma-core"]
    else:
        return ""
    answer = ctx.host.run(argv, timeout=10)
    text = answer.stdout.strip()
    return text if answer.ok and text and " " not in text else ""


def kernel_modules(ctx: Context, module: str) -> tuple[str, str]:
    """("in-tree" or "out-of-tree", its version file) for a loaded module, ("", "") if not."""
    host = ctx.host
    if not host.is_dir(f"/sys/module/{module}"):
        return "", ""
    taint = (host.read_text(f"/sys/module/{module}/taint") or "").strip()
    version = (host.read_text(f"/sys/module/{module}/version") or "").strip()
    return ("out-of-tree" if "O" in taint else "in-tree"), version


@dataclass
class Versions:
    core: str = ""  # the rdma-core package's version
    lines: list[str] = field(default_factory=list)


def stack_versions(ctx: Context, ofed: str, drivers: set[str]) -> Versions:
    """rdma-core's package version, and OFED against the kernel's mlx5 modules."""
    core = rdma_core_version(ctx)
    found = Versions(core, [f"rdma-core {core} (package)"] if core else [])
    if "mlx5_core" not in drivers:
        return found
    origin, version = kernel_modules(ctx, "mlx5_core")
    if origin:
        found.lines.append(f"mlx5_core: {origin}" + (f", version {version}" if version else ""))
    if ofed and origin == "in-tree":
        found.lines.append(
            f"{ofed}'s user space runs over the kernel's own mlx5_core (OFED's modules are not "
            "loaded: a kernel updated after OFED was installed, or a --user-space-only install)"
        )
    return found


# -- eRDMA: Alibaba's user-space packages --------------------------------------------------------
#
# Alibaba documents its own apt repository for eRDMA's user space (the erdma verbs provider
# that older distro rdma-core lacks): the key at https://mirrors.aliyun.com/erdma/GPGKEY, the
# suite `<codename>/erdma main` under https://mirrors.aliyun.com/erdma/apt/ubuntu, and the
# packages below (tests/data/README.md names where this was read). Only the Ubuntu codenames
# seen published get the repository; elsewhere the finding points at Alibaba's guide.

ERDMA_MIRROR = "https://mirrors.aliyun.com/erdma"
ERDMA_KEYRING = "/etc/apt/keyrings/erdma.gpg"
ERDMA_PACKAGES = ["libibverbs1", "ibverbs-providers", "ibverbs-utils", "librdmacm1"]
ERDMA_GUIDE = "https://www.alibabacloud.com/help/en/ecs/user-guide/erdma-usage"
_UBUNTU_CODENAMES = {"18.04": "bionic", "22.04": "jammy", "24.04": "noble"}


def erdma_provider(ctx: Context) -> str | None:
    """The erdma verbs provider library libibverbs loads, or None."""
    host = ctx.host
    for folder in ("/usr/lib/x86_64-linux-gnu", "/usr/lib/aarch64-linux-gnu", "/usr/lib64"):
        found = host.glob(f"{folder}/libibverbs/liberdma-rdmav*.so")
        if found:
            return found[0]
    return None


def erdma_fix(ctx: Context, perftest: bool) -> Fix | None:
    """Alibaba's repository added with a signed-by keyring, then its user-space packages."""
    distro = Distro.of(ctx)
    codename = _UBUNTU_CODENAMES.get(distro.version) if distro.id == "ubuntu" else None
    if codename is None:
        return None
    q = shlex.quote
    entry = f"deb [signed-by={ERDMA_KEYRING}] {ERDMA_MIRROR}/apt/ubuntu {codename}/erdma main"
    packages = [*ERDMA_PACKAGES, *([] if perftest else ["perftest"])]
    return Fix(
        "Add Alibaba's eRDMA repository and install its user-space packages",
        [
            f"curl -fsSL -o erdma-GPGKEY {q(ERDMA_MIRROR + '/GPGKEY')}",
            distro.sudo("install -d -m 0755 /etc/apt/keyrings"),
            distro.sudo(f"gpg --batch --yes --dearmor -o {q(ERDMA_KEYRING)} erdma-GPGKEY"),
            f"echo {q(entry)} | " + distro.sudo("tee /etc/apt/sources.list.d/erdma.list"),
            distro.sudo("apt-get update"),
            distro.sudo(f"apt-get install -y {shlex.join(packages)}"),
        ],
        needs_root=True,
        changes=(
            f"adds {ERDMA_MIRROR}/apt/ubuntu ({codename}/erdma) trusted only through "
            f"{ERDMA_KEYRING}, and installs {', '.join(packages)} (the erdma verbs provider)"
        ),
    )
