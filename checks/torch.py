"""PyTorch in the active Python: version, the CUDA it was built for, and its NCCL.

Read from installed metadata. Importing torch to ask it takes seconds, so only `--deep`
does that.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from typing import Any

from checks import python, versions
from checks.base import Context, Finding, Fix, Group, check

# The CUDA builds PyTorch publishes wheels for, newest first.
TORCH_CUDA_BUILDS = ("13.0", "12.9", "12.8", "12.6", "12.4", "12.1", "11.8")
INDEX = "https://download.pytorch.org/whl"

DEEP_KEY = "python3 <wizard torch import probe v1>"
DEEP = (
    "import json, torch; c = torch.cuda.is_available(); "
    "c and torch.cuda.init(); "
    "maps = open('/proc/self/maps').read().split(chr(10)); "
    "libs = ('libcudart', 'libcublas', 'libnccl', 'libcudnn'); "
    "print(json.dumps({'available': c, 'devices': torch.cuda.device_count() if c else 0, "
    "'nccl': '.'.join(map(str, torch.cuda.nccl.version())) if c else None, "
    "'loaded': sorted({l.split()[-1] for l in maps if any(k in l for k in libs)})}))"
)
# The dynamic loader's words when a library lacks a symbol torch was linked against.
_LOADER_ERROR = re.compile(r"not defined in file lib\w+|undefined symbol|version `\S+' not found")
_SO_VERSION = re.compile(r"\.so\.([\d.]+)$")


def wheel_for(driver_cuda: str | None) -> str | None:
    """The newest PyTorch CUDA build the driver can run, as an index suffix like 'cu130'."""
    driver = versions.major_minor(driver_cuda)
    if driver is None:
        return None
    for build in TORCH_CUDA_BUILDS:
        if versions.major_minor(build) <= driver:  # type: ignore[operator]
            return "cu" + build.replace(".", "")
    return None


def install_fix(ctx: Context, info: dict[str, Any], driver_cuda: str | None) -> list[Fix]:
    build = wheel_for(driver_cuda)
    if build is None:
        return []
    return [
        python.pip_fix(
            ctx,
            info,
            f"Install PyTorch built for {build} (the driver supports CUDA ≤ {driver_cuda})",
            f"torch --index-url {INDEX}/{build}",
            "installs or replaces torch",
        )
    ]


@check("torch", "PyTorch", Group.ACCELERATOR, after=("os", "gpu.nvidia", "python.env"))
def torch(ctx: Context) -> Finding:
    info = python.probe(ctx.host)
    driver_cuda = ctx.fact("driver.cuda")
    if info is None:
        return ctx.skip("no usable python3")
    if not info.get("torch"):
        return ctx.warn(
            f"not installed in {info['executable']}: the FlagCX torch plugin needs it",
            fixes=install_fix(ctx, info, driver_cuda),
        )
    version, built = info["torch"], info.get("torch_cuda")
    facts = {
        "torch.version": version,
        "torch.cuda": built or "",
        "torch.nccl": next(iter((info.get("nccl_wheels") or {}).values()), ""),
    }
    details = [f"at {info.get('torch_dir')}"]
    if info.get("torch_requires_nccl"):
        details.append("requires " + ", ".join(info["torch_requires_nccl"]))
    summary = f"{version}, built for CUDA {built}" if built else f"{version}, CPU-only build"
    if ctx.vendor != "nvidia":
        return ctx.ok(summary, details=details, facts=facts)
    if not built:
        return ctx.warn(
            f"{summary}: it cannot use the GPUs",
            details=details,
            facts=facts,
            fixes=install_fix(ctx, info, driver_cuda),
        )
    if driver_cuda and versions.newer(built, driver_cuda):
        ahead = versions.major_minor(built)[0] > versions.major_minor(driver_cuda)[0]  # type: ignore[index]
        message = f"{summary}, newer than the driver's CUDA {driver_cuda}"
        builder = ctx.fail if ahead else ctx.warn
        return builder(
            message, details=details, facts=facts, fixes=install_fix(ctx, info, driver_cuda)
        )
    details += shadowing(info)
    if ctx.deep:
        return _deep(ctx, info, summary, details, facts)
    if driver_cuda:
        summary += f"; the driver (CUDA ≤ {driver_cuda}) can run it"
    return ctx.ok(summary, details=details, facts=facts)


def shadowing(info: dict) -> list[str]:
    """A line per LD_LIBRARY_PATH folder holding other copies of torch's CUDA libraries.
    Whether torch loads them is another matter (torch 2.x preloads its own by path; the
    classic failure came from older builds): only importing it tells, so --deep does."""
    folders: dict[str, list[str]] = {}
    for shadow in info.get("shadows") or []:
        version = _SO_VERSION.search(shadow["real"])
        name = shadow["file"] + (f" ({version.group(1)})" if version else "")
        folders.setdefault(shadow["folder"], []).append(name)
    return [
        f"LD_LIBRARY_PATH's {folder} has other copies of {len(names)} of torch's libraries: "
        + ", ".join(names[:4])
        + (f" and {len(names) - 4} more" if len(names) > 4 else "")
        for folder, names in folders.items()
    ]


def loaded_elsewhere(info: dict, loaded: list[str]) -> list[str]:
    """Libraries the imported torch loaded from an LD_LIBRARY_PATH folder rather than from
    its own wheels (read from /proc/self/maps after CUDA started)."""
    own = {os.path.basename(s["own"]): s["own"] for s in info.get("shadows") or []}
    return [p for p in loaded if os.path.basename(p) in own and p != own[os.path.basename(p)]]


def unshadow_fix(info: dict) -> Fix | None:
    """LD_LIBRARY_PATH without the folders that hold copies of torch's libraries."""
    folders = {s["folder"] for s in info.get("shadows") or []}
    if not folders:
        return None
    path = info.get("ld_library_path", "")
    kept = [f for f in path.split(":") if f and f not in folders]
    command = (
        f"export LD_LIBRARY_PATH={shlex.quote(':'.join(kept))}" if kept else "unset LD_LIBRARY_PATH"
    )
    return Fix(
        f"Take {', '.join(sorted(folders))} out of LD_LIBRARY_PATH for torch",
        [command + "   # in the shell (or the job script) that starts training"],
        manual=True,
    )


def _deep(ctx: Context, info: dict, summary: str, details: list[str], facts: dict) -> Finding:
    python3 = ctx.host.which("python3")
    assert python3
    result = ctx.host.run([python3, "-c", DEEP], timeout=120, key=DEEP_KEY)
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = result.error or result.stderr.strip().splitlines()[-1:] or ["no output"]
        why = tail if isinstance(tail, str) else tail[0]
        clash = info.get("shadows") and _LOADER_ERROR.search(result.output)
        if clash:
            why += " (an older copy that LD_LIBRARY_PATH puts first, named below)"
        return ctx.fail(
            f"{summary}; importing torch failed: {why}",
            details=details,
            facts=facts,
            fixes=[fix for fix in [unshadow_fix(info)] if fix and clash],
        )
    facts["torch.cuda_available"] = answer["available"]
    if not answer["available"]:
        return ctx.fail(
            f"{summary}; torch.cuda.is_available() is False", details=details, facts=facts
        )
    facts["torch.nccl"] = answer["nccl"] or ""
    summary += f"; CUDA usable on {answer['devices']} GPU(s), NCCL {answer['nccl']}"
    if "loaded" in answer:  # probes recorded before it was asked lack it
        elsewhere = loaded_elsewhere(info, answer["loaded"])
        if elsewhere:
            return ctx.warn(
                f"{summary}; it loaded {', '.join(elsewhere)} through LD_LIBRARY_PATH, not "
                "its own copies",
                details=details,
                facts=facts,
                fixes=[fix for fix in [unshadow_fix(info)] if fix],
            )
        if info.get("shadows"):
            details.append("imported, torch loaded its own copies: LD_LIBRARY_PATH's are unused")
    return ctx.ok(summary, details=details, facts=facts)
