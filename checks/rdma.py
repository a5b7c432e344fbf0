"""RDMA: InfiniBand / RoCE devices and their ports. Absent is normal on a single host."""

from __future__ import annotations

import os

from checks.base import Context, Finding, check

SYSFS = "/sys/class/infiniband"


@check("rdma", "RDMA network")
def rdma(ctx: Context) -> Finding:
    host = ctx.host
    devices = [os.path.basename(p) for p in host.glob(f"{SYSFS}/*")]
    if not devices:
        return ctx.skip(
            "no RDMA devices; FlagCX will use TCP sockets between hosts",
            facts={"rdma.devices": "", "rdma.active_ports": 0},
        )
    details, active, active_devices = [], 0, []
    for device in devices:
        ports = host.glob(f"{SYSFS}/{device}/ports/*")
        if not ports:
            details.append(f"{device}: no ports (its driver is not bound, or it is resetting)")
        for port_dir in ports:
            port = os.path.basename(port_dir)
            state = (host.read_text(f"{port_dir}/state") or "?").strip()
            layer = (host.read_text(f"{port_dir}/link_layer") or "?").strip()
            details.append(f"{device} port {port}: {state} ({layer})")
            if "ACTIVE" in state:
                active += 1
                active_devices.append(device)
    tool = host.which("ibv_devinfo")
    details.append(f"ibv_devinfo: {tool}" if tool else "ibv_devinfo not installed (rdma-core)")
    facts = {
        "rdma.devices": ",".join(devices),
        "rdma.active_ports": active,
        "rdma.hca": ",".join(dict.fromkeys(active_devices)),
    }
    summary = f"{len(devices)} device(s): {', '.join(devices)}; {active} port(s) ACTIVE"
    if active == 0:
        return ctx.warn(
            summary + ": no port is up (cable, subnet manager, driver)",
            details=details,
            facts=facts,
        )
    return ctx.ok(summary + f"; FLAGCX_IB_HCA={facts['rdma.hca']}", details=details, facts=facts)
