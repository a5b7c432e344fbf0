"""Resource limits NCCL and RDMA care about: /dev/shm size, locked memory, open files."""

from __future__ import annotations

import re

from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro

GIB = 1024**3
SHM_MIN = 1 * GIB
NOFILE_MIN = 4096
LIMITS_FILE = "/etc/security/limits.d/90-flagcx-memlock.conf"


def parse_limits(text: str) -> dict[str, str]:
    """Soft limits from /proc/<pid>/limits: {'Max locked memory': 'unlimited', ...}."""
    limits = {}
    for line in text.splitlines()[1:]:
        match = re.match(r"(Max [a-z ]+?)\s{2,}(\S+)\s+(\S+)", line)
        if match:
            limits[match.group(1)] = match.group(2)
    return limits


def human(size: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= scale:
            return f"{size / scale:.0f} {unit}"
    return f"{size} B"


@check("limits", "Limits (shm, memlock)", Group.SYSTEM, after=("os",))
def limits(ctx: Context) -> Finding:
    host = ctx.host
    shm = host.statvfs("/dev/shm")
    soft = parse_limits(host.read_text("/proc/self/limits") or "")
    memlock = soft.get("Max locked memory")
    nofile = soft.get("Max open files")
    memlock_text = (
        "unlimited" if memlock == "unlimited" else human(int(memlock)) if memlock else "?"
    )
    facts = {
        "limits.shm_bytes": shm["total"] if shm else 0,
        "limits.memlock": memlock or "",
        "limits.nofile": nofile or "",
    }
    summary = (
        f"/dev/shm {human(shm['total']) if shm else 'missing'}, memlock {memlock_text}, "
        f"open files {nofile or '?'}"
    )
    problems, details = [], []
    if not shm or shm["total"] < SHM_MIN:
        problems.append("shm")
        details.append("/dev/shm under 1 GiB: NCCL's shared-memory transport fails between ranks")
    if memlock and memlock != "unlimited":
        problems.append("memlock")
        details.append("memlock is limited: RDMA (InfiniBand, RoCE) cannot register buffers")
    if nofile and nofile != "unlimited" and int(nofile) < NOFILE_MIN:
        problems.append("nofile")
        details.append(f"open files under {NOFILE_MIN}: many ranks run out of descriptors")
    if not problems:
        return ctx.ok(summary, facts=facts)
    return ctx.warn(summary, details=details, facts=facts, fixes=_fixes(ctx, problems))


def _fixes(ctx: Context, problems: list[str]) -> list[Fix]:
    container = ctx.fact("os.container")
    if container:
        flags = {
            "shm": "--shm-size 64G",
            "memlock": "--ulimit memlock=-1",
            "nofile": "--ulimit nofile=1048576",
        }
        chosen = " ".join(flags[p] for p in problems)
        return [
            Fix(
                "Recreate the container with larger limits",
                [f"docker run {chosen} --gpus all --ipc=host ...   # on the host"],
                changes=f"limits of a {container} container are set where it starts, not inside",
                manual=True,
            )
        ]
    distro = Distro.of(ctx)
    fixes = []
    if "shm" in problems:
        fixes.append(
            Fix(
                "Enlarge /dev/shm",
                [distro.sudo("mount -o remount,size=64G /dev/shm")],
                needs_root=True,
                changes="/dev/shm until the next boot",
            )
        )
    if "memlock" in problems or "nofile" in problems:
        lines = "\\n".join(
            [
                "* soft memlock unlimited",
                "* hard memlock unlimited",
                "* soft nofile 1048576",
                "* hard nofile 1048576",
            ]
        )
        fixes.append(
            Fix(
                "Raise memlock and open files for every login",
                [f"printf '{lines}\\n' | {distro.sudo('tee')} {LIMITS_FILE}"],
                needs_root=True,
                changes=f"writes {LIMITS_FILE}; log in again to apply",
            )
        )
    return fixes
