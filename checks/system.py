"""The operating system: distro, version, architecture, and whether we are in a container."""

from __future__ import annotations

import re

from checks.base import Context, Finding, Group, check


def parse_os_release(text: str) -> dict[str, str]:
    values = {}
    for line in text.splitlines():
        key, sep, value = line.partition("=")
        if sep and key.strip():
            values[key.strip()] = value.strip().strip('"').strip("'")
    return values


def detect_container(ctx: Context) -> str | None:
    """'docker', 'podman', 'lxc', 'kubernetes', ... or None on bare metal and in VMs."""
    host = ctx.host
    declared = (host.read_text("/run/systemd/container") or "").strip()
    if declared:
        return declared
    if host.exists("/.dockerenv"):
        return "docker"
    if host.exists("/run/.containerenv"):
        return "podman"
    cgroup = host.read_text("/proc/1/cgroup") or ""
    for marker, name in (("kubepods", "kubernetes"), ("docker", "docker"), ("lxc", "lxc")):
        if marker in cgroup:
            return name
    if host.exists("/dev/lxd/sock"):
        return "lxc"
    return None


@check("os", "Operating system", Group.SYSTEM)
def os_check(ctx: Context) -> Finding:
    host = ctx.host
    release = parse_os_release(host.read_text("/etc/os-release") or "")
    uname = host.run(["uname", "-srm"], timeout=5)
    system, kernel, arch = ([*uname.stdout.split(), "", "", ""])[:3] if uname.ok else ("", "", "")
    uid = host.run(["id", "-u"], timeout=5)
    root = uid.ok and uid.stdout.strip() == "0"
    container = detect_container(ctx)
    name = release.get("PRETTY_NAME") or release.get("NAME") or system or "unknown system"
    facts = {
        "os.id": release.get("ID", ""),
        "os.version": release.get("VERSION_ID", ""),
        "os.id_like": release.get("ID_LIKE", ""),
        "os.name": name,
        "os.arch": arch,
        "os.kernel": kernel,
        "os.container": container or "",
        "os.root": root,
    }
    where = f"in a {container} container" if container else "not in a container"
    summary = f"{name}, {arch or 'unknown arch'}, {where}"
    details = [
        f"kernel {kernel}" if kernel else "uname failed",
        "running as root"
        if root
        else "running as a regular user (fixes that need root will use sudo)",
    ]
    if system and system != "Linux":
        return ctx.fail(f"{system} is not supported: FlagCX builds on Linux", facts=facts)
    if not release:
        return ctx.warn(
            f"{summary}; /etc/os-release is missing, fixes cannot name packages",
            details=details,
            facts=facts,
        )
    if re.fullmatch(r"lxc|lxc-libvirt", container or ""):
        details.append("LXC: the GPU driver and /dev/nvidia* come from the host")
    return ctx.ok(summary, details=details, facts=facts)
