"""PyTorch in the active Python: version, the CUDA it was built for, and its NCCL.

Read from installed metadata. Importing torch to ask it takes seconds, so only `--deep`
does that.
"""

from __future__ import annotations

import json

from checks import python, versions
from checks.base import Context, Finding, Fix, check

# The CUDA builds PyTorch publishes wheels for, newest first.
TORCH_CUDA_BUILDS = ("13.0", "12.9", "12.8", "12.6", "12.4", "12.1", "11.8")
INDEX = "https://download.pytorch.org/whl"

DEEP_KEY = "python3 <wizard torch import probe v1>"
DEEP = (
    "import json, torch; c = torch.cuda.is_available(); "
    "print(json.dumps({'available': c, 'devices': torch.cuda.device_count() if c else 0, "
    "'nccl': '.'.join(map(str, torch.cuda.nccl.version())) if c else None}))"
)


def wheel_for(driver_cuda: str | None) -> str | None:
    """The newest PyTorch CUDA build the driver can run, as an index suffix like 'cu130'."""
    driver = versions.major_minor(driver_cuda)
    if driver is None:
        return None
    for build in TORCH_CUDA_BUILDS:
        if versions.major_minor(build) <= driver:  # type: ignore[operator]
            return "cu" + build.replace(".", "")
    return None


def install_fix(driver_cuda: str | None) -> list[Fix]:
    build = wheel_for(driver_cuda)
    if build is None:
        return []
    return [
        Fix(
            f"Install PyTorch built for {build} (the driver supports CUDA ≤ {driver_cuda})",
            [f"python3 -m pip install torch --index-url {INDEX}/{build}"],
            changes="installs or replaces torch in the active Python",
        )
    ]


@check("torch", "PyTorch", after=("gpu.nvidia", "python.env"))
def torch(ctx: Context) -> Finding:
    info = python.probe(ctx.host)
    driver_cuda = ctx.fact("driver.cuda")
    if info is None:
        return ctx.skip("no usable python3")
    if not info.get("torch"):
        return ctx.warn(
            f"not installed in {info['executable']}: the FlagCX torch plugin needs it",
            fixes=install_fix(driver_cuda),
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
            fixes=install_fix(driver_cuda),
        )
    if driver_cuda and versions.newer(built, driver_cuda):
        ahead = versions.major_minor(built)[0] > versions.major_minor(driver_cuda)[0]  # type: ignore[index]
        message = f"{summary}, newer than the driver's CUDA {driver_cuda}"
        builder = ctx.fail if ahead else ctx.warn
        return builder(message, details=details, facts=facts, fixes=install_fix(driver_cuda))
    if ctx.deep:
        return _deep(ctx, summary, details, facts)
    if driver_cuda:
        summary += f"; the driver (CUDA ≤ {driver_cuda}) can run it"
    return ctx.ok(summary, details=details, facts=facts)


def _deep(ctx: Context, summary: str, details: list[str], facts: dict) -> Finding:
    python3 = ctx.host.which("python3")
    assert python3
    result = ctx.host.run([python3, "-c", DEEP], timeout=120, key=DEEP_KEY)
    try:
        answer = json.loads(result.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        tail = result.error or result.stderr.strip().splitlines()[-1:] or ["no output"]
        return ctx.fail(
            f"{summary}; importing torch failed: {tail if isinstance(tail, str) else tail[0]}",
            details=details,
            facts=facts,
        )
    facts["torch.cuda_available"] = answer["available"]
    if not answer["available"]:
        return ctx.fail(
            f"{summary}; torch.cuda.is_available() is False", details=details, facts=facts
        )
    facts["torch.nccl"] = answer["nccl"] or ""
    return ctx.ok(
        f"{summary}; CUDA usable on {answer['devices']} GPU(s), NCCL {answer['nccl']}",
        details=details,
        facts=facts,
    )
