"""RDMA: InfiniBand, RoCE and eRDMA devices, their ports and GIDs, and the user-space stack.
Absent is normal on a single host.

Everything about a port is read from sysfs (/sys/class/infiniband/<dev>/ports/<n>/: state,
phys_state, link_layer, rate, gids/<i>, gid_attrs/types/<i>, gid_attrs/ndevs/<i>), the files
`ibstatus` and `ibv_devinfo` read too, in one grep so a remote host costs one round trip.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field

from checks import rdma_stack
from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro

SYSFS = "/sys/class/infiniband"
_PORT_FILES = ("state", "phys_state", "link_layer", "rate")
_LINE = re.compile(
    SYSFS + r"/([^/]+)/ports/(\d+)/(state|phys_state|link_layer|rate|gids/\d+|"
    r"gid_attrs/types/\d+|gid_attrs/ndevs/\d+):(.*)$"
)
_ZERO_GID = "0000:0000:0000:0000:0000:0000:0000:0000"
# Debian/Ubuntu, RHEL/Fedora and SUSE name the verbs tools and perftest alike but not quite
_USER_SPACE = {
    "debian": ["rdma-core", "ibverbs-utils", "perftest"],
    "rhel": ["rdma-core", "libibverbs-utils", "perftest"],
    "suse": ["rdma-core", "libibverbs-utils", "perftest"],
}


@dataclass
class Gid:
    index: int
    address: str
    kind: str = ""  # "RoCE v2", "IB/RoCE v1"
    netdev: str = ""

    @property
    def ipv4(self) -> bool:
        return self.address.startswith("0000:0000:0000:0000:0000:ffff:")


@dataclass
class Port:
    device: str
    number: int
    files: dict[str, str] = field(default_factory=dict)
    gids: dict[int, Gid] = field(default_factory=dict)

    @property
    def state(self) -> str:
        return self.files.get("state", "?")

    @property
    def layer(self) -> str:
        return self.files.get("link_layer", "?")

    @property
    def active(self) -> bool:
        return "ACTIVE" in self.state

    @property
    def rate_gbps(self) -> float | None:
        found = re.match(r"([\d.]+) Gb/sec", self.files.get("rate", ""))
        return float(found.group(1)) if found else None

    def gid_index(self) -> Gid | None:
        """The GID NCCL and FlagCX pick by default: on Ethernet (RoCE) the first RoCE v2 GID
        with an IPv4-mapped address, else the first RoCE v2 one, else the first set; on
        InfiniBand index 0."""
        used = [g for i, g in sorted(self.gids.items()) if g.address != _ZERO_GID]
        if self.layer != "Ethernet":
            return used[0] if used else None
        for wanted in (lambda g: g.kind == "RoCE v2" and g.ipv4, lambda g: g.kind == "RoCE v2"):
            if chosen := next((g for g in used if wanted(g)), None):
                return chosen
        return used[0] if used else None


def read_ports(ctx: Context, devices: list[str]) -> list[Port]:
    host = ctx.host
    folders = [p for d in devices for p in host.glob(f"{SYSFS}/{d}/ports/*")]
    files = [f"{p}/{name}" for p in folders for name in _PORT_FILES]
    for folder in folders:
        for gid in host.glob(f"{folder}/gids/*"):
            index = os.path.basename(gid)
            files += [gid, f"{folder}/gid_attrs/types/{index}", f"{folder}/gid_attrs/ndevs/{index}"]
    ports = {
        (os.path.basename(os.path.dirname(os.path.dirname(p))), int(os.path.basename(p))): None
        for p in folders
        if os.path.basename(p).isdigit()
    }
    found = {key: Port(*key) for key in ports}
    if files:
        answer = host.run(["grep", "-H", "", *files], timeout=10, key=f"grep -H '' {SYSFS}/*")
        lines = answer.stdout.splitlines()
        if answer.returncode is None:  # no grep here: the files one by one
            lines = [f"{f}:{text}" for f in files if (text := host.read_text(f)) is not None]
        for line in lines:
            match = _LINE.search(line)
            if not match or (match.group(1), int(match.group(2))) not in found:
                continue
            port, name, value = found[match.group(1), int(match.group(2))], match[3], match[4]
            kind, _, index = name.rpartition("/")
            if name in _PORT_FILES:
                port.files[name] = value.strip()
            elif index.isdigit():
                gid = port.gids.setdefault(int(index), Gid(int(index), ""))
                if kind == "gids":
                    gid.address = value.strip()
                elif kind == "gid_attrs/types":
                    gid.kind = value.strip()
                else:
                    gid.netdev = value.strip()
    return [found[key] for key in sorted(found)]


def driver(ctx: Context, device: str) -> str:
    link = f"{SYSFS}/{device}/device/driver"
    target = ctx.host.realpath(link)
    return os.path.basename(target) if target != link else ""


def describe(port: Port, gid: Gid | None, netdev_mtu: str, mtu: dict[str, int] | None) -> list[str]:
    """A port in short lines, each a few facts, so a narrow pane wraps none mid-way: state and
    link layer, physical state and rate, MTU, the GID NCCL would use."""
    lines = [f"{port.device} port {port.number}: {port.state} ({port.layer})"]
    link = [port.files.get("phys_state", ""), port.files.get("rate", "")]
    if any(link):
        lines.append("  " + ", ".join(e for e in link if e))
    if mtu and "active_mtu" in mtu:  # ibv_devinfo's, for InfiniBand ports
        most = mtu.get("max_mtu")
        lines.append(
            f"  active MTU {mtu['active_mtu']}"
            + (
                f" (max {most}: the subnet manager's partition MTU)"
                if most != mtu["active_mtu"]
                else ""
            )
        )
    if gid is not None:
        if gid.netdev:
            netdev = f"netdev {gid.netdev}"
            lines.append(f"  MTU {netdev_mtu} ({netdev})" if netdev_mtu else f"  {netdev}")
        lines.append(
            f"  GID {gid.index}" + (f" ({gid.kind})" if gid.kind else "") + f" {gid.address}"
        )
    return lines


def user_space(ctx: Context) -> tuple[list[str], list[Fix], dict[str, str | bool]]:
    """rdma-core's tools, OFED, eRDMA's tool, perftest; the fix when the tools are missing."""
    host = ctx.host
    details, facts = [], {}
    tools = {t: host.which(t) for t in ("ibv_devinfo", "ib_write_bw", "ofed_info", "eadm")}
    if tools["ofed_info"]:
        # one line naming the release: MLNX_OFED_LINUX-23.10-1.1.9.0: or OFED-internal-24.07-...:
        answer = host.run([tools["ofed_info"], "-s"], timeout=10)
        lines = answer.stdout.strip().splitlines() if answer.ok else []
        release = lines[0].rstrip(":") if len(lines) == 1 and "OFED" in lines[0] else ""
        facts["rdma.ofed"] = release
        details.append(f"OFED: {release}" if release else "ofed_info -s: no OFED release named")
    if tools["eadm"]:
        details.append(f"eRDMA tools: {tools['eadm']}")
    details.append(
        f"ibv_devinfo: {tools['ibv_devinfo']}"
        if tools["ibv_devinfo"]
        else "ibv_devinfo not installed (rdma-core)"
    )
    details.append(
        f"perftest: {tools['ib_write_bw']}"
        if tools["ib_write_bw"]
        else "perftest (ib_write_bw) not installed"
    )
    facts["rdma.perftest"] = bool(tools["ib_write_bw"])
    fixes = []
    if not tools["ibv_devinfo"] or not tools["ib_write_bw"]:
        fixes = Distro.of(ctx).install_fix(
            "Install rdma-core's verbs tools and perftest",
            _USER_SPACE,
            "installs the distro's rdma-core, its verbs utilities and perftest (ib_write_bw)",
        )
    return details, fixes, facts


def gpudirect(ctx: Context) -> str:
    host = ctx.host
    if host.is_dir("/sys/module/nvidia_peermem"):
        return "GPUDirect RDMA: nvidia_peermem loaded"
    if host.is_dir("/sys/module/nvidia"):
        return (
            "GPUDirect RDMA: nvidia_peermem not loaded (`modprobe nvidia_peermem`; NCCL can use "
            "DMA-BUF instead with the open kernel modules on Linux 5.12+)"
        )
    return ""


def net_plugins(ctx: Context) -> list[str]:
    host = ctx.host
    folders = [d for d in (host.getenv("LD_LIBRARY_PATH") or "").split(":") if d]
    folders += ["/usr/lib/x86_64-linux-gnu", "/usr/lib64", "/usr/local/lib"]
    found = [p for d in dict.fromkeys(folders) for p in host.glob(f"{d}/libnccl-net*.so*")]
    return list(dict.fromkeys(found))


def container_nodes(ctx: Context) -> Fix | None:
    """In a container, RDMA needs /dev/infiniband passed in (and memlock unlimited)."""
    if not ctx.fact("os.container"):
        return None
    host = ctx.host
    if host.glob("/dev/infiniband/uverbs*") and host.exists("/dev/infiniband/rdma_cm"):
        return None
    return Fix(
        "Start the container with the RDMA devices",
        ["docker run --device=/dev/infiniband --ulimit memlock=-1 --cap-add=IPC_LOCK ..."],
        changes="the container is recreated with /dev/infiniband/uverbs* and rdma_cm inside",
        manual=True,
    )


def _ports_and_mtus(ctx: Context, ports: list[Port]) -> tuple[list[str], set[int]]:
    """A description of every port, and the MTUs of the active ones: RoCE's from the netdev
    behind its GID, InfiniBand's from ibv_devinfo (sysfs has none for them)."""
    host, lines = ctx.host, []
    active = [p for p in ports if p.active]
    ib_mtus: dict = {}
    if any(p.layer == "InfiniBand" for p in active):
        ib_mtus, trouble = rdma_stack.devinfo_mtus(ctx, host.which("ibv_devinfo"))
        if trouble:
            lines.append(trouble)
    mtus: set[int] = set()
    for port in ports:
        gid = port.gid_index()
        netdev_mtu = (
            (host.read_text(f"/sys/class/net/{gid.netdev}/mtu") or "").strip()
            if gid and gid.netdev
            else ""
        )
        ib = ib_mtus.get((port.device, port.number)) if port.layer == "InfiniBand" else None
        lines += describe(port, gid, netdev_mtu, ib)
        if port.active and port.layer == "Ethernet" and netdev_mtu.isdigit():
            mtus.add(int(netdev_mtu))
        if port.active and ib and "active_mtu" in ib:
            mtus.add(ib["active_mtu"])
    return lines, mtus


def _stack(ctx: Context, active: list[Port]) -> tuple[rdma_stack.Transport, list[str]]:
    """GPUDirect, NCCL's net plugins and the network NCCL will pick between hosts."""
    plugins = net_plugins(ctx)
    lines = [line for line in (gpudirect(ctx), *(f"NCCL net plugin: {p}" for p in plugins)) if line]
    transport = rdma_stack.nccl_transport(
        rdma_stack.nccl_settings(ctx), plugins, [(p.device, p.layer) for p in active]
    )
    lines.append(
        f"NCCL's network between hosts: {transport.network}: {transport.why}"
        + (f"; it will fail: {transport.problem}" if transport.problem else "")
    )
    return transport, lines


@check("rdma", "RDMA network", Group.COMMUNICATION, after=("os", "limits"))
def rdma(ctx: Context) -> Finding:
    host = ctx.host
    devices = [os.path.basename(p) for p in host.glob(f"{SYSFS}/*")]
    if not devices:
        return ctx.skip(
            "no RDMA devices; FlagCX will use TCP sockets between hosts",
            facts={"rdma.devices": "", "rdma.active_ports": 0},
        )
    ports = read_ports(ctx, devices)
    drivers = {device: driver(ctx, device) for device in devices}
    details = [
        f"{device}: driver {kind}" + (" (Alibaba eRDMA)" if kind == "erdma" else "")
        for device, kind in drivers.items()
        if kind
    ] + [
        f"{device}: no ports (its driver is not bound, or it is resetting)"
        for device in devices
        if not any(p.device == device for p in ports)
    ]
    active = [p for p in ports if p.active]
    port_lines, mtus = _ports_and_mtus(ctx, ports)
    details += port_lines
    gids = [g for p in active if p.layer == "Ethernet" and (g := p.gid_index())]
    space, fixes, space_facts = user_space(ctx)
    details += space
    versions = rdma_stack.stack_versions(
        ctx, str(space_facts.get("rdma.ofed") or ""), set(drivers.values())
    )
    transport, stack_lines = _stack(ctx, active)
    details += [*versions.lines, *stack_lines]
    erdma = [d for d, kind in drivers.items() if kind == "erdma"]
    no_provider = bool(erdma) and rdma_stack.erdma_provider(ctx) is None
    if no_provider:
        fix = rdma_stack.erdma_fix(ctx, perftest=bool(space_facts.get("rdma.perftest")))
        if fix:
            fixes = [fix]  # Alibaba's packages carry the erdma provider the distro's may lack
        else:
            details.append(f"Alibaba's guide installs eRDMA's user space: {rdma_stack.ERDMA_GUIDE}")
    container_fix = container_nodes(ctx)
    if container_fix:
        details.append("in a container without /dev/infiniband/uverbs* and rdma_cm")
        fixes = [container_fix, *fixes]
    rates = [r for p in active if (r := p.rate_gbps)]
    facts = {
        "rdma.devices": ",".join(devices),
        "rdma.active_ports": len(active),
        "rdma.hca": ",".join(dict.fromkeys(p.device for p in active)),
        "rdma.link_layers": ",".join(sorted({p.layer for p in active})),
        "rdma.gid_index": ",".join(sorted({str(g.index) for g in gids})),
        "rdma.mtu": ",".join(map(str, sorted(mtus))),
        "rdma.rate_gbps": max(rates) if rates else None,
        "rdma.nccl_net": transport.network,
        "rdma.core_version": versions.core,
        **space_facts,
    }
    summary = f"{len(devices)} device(s): {', '.join(devices)}; {len(active)} port(s) ACTIVE"
    if not active:
        return ctx.warn(
            summary + ": no port is up (cable, subnet manager, driver)",
            details=details,
            facts=facts,
            fixes=fixes,
        )
    hints = f"; FLAGCX_IB_HCA={facts['rdma.hca']}"
    if len(set(facts["rdma.gid_index"].split(","))) == 1 and facts["rdma.gid_index"]:
        hints += f" FLAGCX_IB_GID_INDEX={facts['rdma.gid_index']} (RoCE)"
    if container_fix:
        return ctx.warn(
            summary + ": the container cannot open them", details=details, facts=facts, fixes=fixes
        )
    problems = [
        text
        for text, on in (
            (f"eRDMA device(s) {', '.join(erdma)} without the erdma verbs provider", no_provider),
            (f"NCCL will fail to start its network: {transport.problem}", transport.problem),
        )
        if on
    ]
    if problems:
        return ctx.warn(
            summary + ": " + "; ".join(problems), details=details, facts=facts, fixes=fixes
        )
    return ctx.ok(summary + hints, details=details, facts=facts, fixes=fixes)
