"""The CUDA toolkit: every install, the one the build will use, and whether the driver runs it."""

from __future__ import annotations

import json
import os
import re
import shlex
from dataclasses import dataclass

from checks import gpu, versions
from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro
from wizard.host import Host

_NVCC_RELEASE = re.compile(r"release (\d+\.\d+)(?:, V(\d+\.\d+\.\d+))?")


@dataclass(frozen=True)
class Toolkit:
    home: str
    version: str | None
    source: str  # how it was found: CUDA_HOME, PATH, /usr/local/cuda*


def toolkit_version(host: Host, home: str) -> str | None:
    """From version.json (CUDA 11.1+), else from `nvcc --version`."""
    text = host.read_text(f"{home}/version.json")
    if text:
        try:
            return json.loads(text)["cuda"]["version"]
        except (ValueError, KeyError, TypeError):
            pass
    return nvcc_version(host, f"{home}/bin/nvcc")


def nvcc_version(host: Host, nvcc: str) -> str | None:
    result = host.run([nvcc, "--version"], timeout=10)
    match = _NVCC_RELEASE.search(result.stdout) if result.ok else None
    return (match.group(2) or match.group(1)) if match else None


def nvcc_home(host: Host, nvcc: str) -> str:
    """The install an nvcc belongs to: two levels above the real file (HOME/bin/nvcc)."""
    return os.path.dirname(os.path.dirname(host.realpath(nvcc)))


def is_toolkit(host: Host, home: str) -> bool:
    return host.is_file(f"{home}/bin/nvcc") and host.is_file(f"{home}/include/cuda_runtime.h")


def find_toolkits(host: Host) -> tuple[list[Toolkit], str | None]:
    """Every toolkit found, in order of preference, and the nvcc on PATH (if any)."""
    candidates: list[tuple[str, str]] = []
    for env in ("CUDA_HOME", "CUDA_PATH"):
        if value := host.getenv(env):
            candidates.append((value.rstrip("/") or "/", env))
    nvcc = host.which("nvcc")
    if nvcc:
        candidates.append((nvcc_home(host, nvcc), "PATH"))
    candidates.append(("/usr/local/cuda", "/usr/local/cuda"))
    for path in reversed(host.glob("/usr/local/cuda-*")):
        candidates.append((path, "/usr/local/cuda-*"))
    candidates.append(("/opt/cuda", "/opt/cuda"))
    toolkits, seen = [], set()
    for home, source in candidates:
        real = host.realpath(home)
        if real in seen or not is_toolkit(host, home):
            continue
        seen.add(real)
        toolkits.append(Toolkit(home, toolkit_version(host, home), source))
    # A toolkit whose version cannot be read (its nvcc crashes) comes after working ones.
    toolkits.sort(key=lambda t: t.version is None)
    return toolkits, nvcc


@check("cuda.toolkit", "CUDA toolkit", Group.ACCELERATOR, after=("os", "gpu.nvidia"))
def cuda_toolkit(ctx: Context) -> Finding:
    host = ctx.host
    toolkits, nvcc = find_toolkits(host)  # first: it need not wait for the GPU probe
    if ctx.vendor != "nvidia":
        return ctx.skip("not needed for this target")
    driver_cuda = ctx.fact("driver.cuda")
    if not toolkits:
        details = [f"nvcc on PATH: {nvcc}, but no CUDA headers next to it"] if nvcc else []
        return ctx.fail(
            "no CUDA toolkit found (nvcc, CUDA_HOME, /usr/local/cuda*)",
            details=details,
            fixes=_install_fixes(ctx, driver_cuda),
        )
    chosen = toolkits[0]
    listing = ", ".join(f"{t.home} ({t.version or '?'})" for t in toolkits)
    facts = {
        "cuda.home": chosen.home,
        "cuda.version": chosen.version or "",
        "cuda.nvcc": f"{chosen.home}/bin/nvcc",
        "cuda.installs": listing,
    }
    details = _listing(host, toolkits, nvcc)
    summary = f"CUDA {chosen.version} at {chosen.home}"
    if len(toolkits) > 1:
        summary += f" ({len(toolkits)} installs)"
    if chosen.version is None:
        probe = host.run([f"{chosen.home}/bin/nvcc", "--version"], timeout=10)
        why = probe.error or f"nvcc --version exited with {probe.returncode}"
        return ctx.warn(
            f"CUDA at {chosen.home}, version unknown: {why}", details=details, facts=facts
        )

    if not driver_cuda:
        details.append("no NVIDIA driver answered, so whether it can run this CUDA is unknown")
        return ctx.warn(
            f"{summary}; compatibility with the driver not checked (no driver answers)",
            details=details,
            facts=facts,
        )
    if versions.newer(chosen.version, driver_cuda):
        return _newer_than_driver(ctx, chosen, driver_cuda, summary, details, facts)

    mismatch = _path_mismatch(ctx, chosen, nvcc)
    if mismatch:
        details.append(mismatch)
        fix = Fix(
            f"Use {chosen.home} everywhere",
            [
                f"export CUDA_HOME={shlex.quote(chosen.home)}",
                'export PATH="$CUDA_HOME/bin:$PATH"',
                'export LD_LIBRARY_PATH="$CUDA_HOME/lib64:$LD_LIBRARY_PATH"',
            ],
            changes="this shell's environment (add the lines to ~/.bashrc to keep them)",
        )
        return ctx.warn(f"{summary}; {mismatch}", details=details, facts=facts, fixes=[fix])
    return ctx.ok(summary, details=details, facts=facts)


def _listing(host: Host, toolkits: list[Toolkit], nvcc: str | None) -> list[str]:
    """A line per install, and a word on an nvcc on PATH that is not one of them."""
    lines = [
        f"{t.home}: CUDA {t.version or 'unknown version (nvcc fails)'} (found through {t.source})"
        for t in toolkits
    ]
    if nvcc and not any(
        host.realpath(t.home) == host.realpath(nvcc_home(host, nvcc)) for t in toolkits
    ):
        lines.append(
            f"nvcc on PATH ({nvcc}) has no CUDA headers beside it: not a full toolkit, skipped"
        )
    return lines


def _newer_than_driver(
    ctx: Context,
    chosen: Toolkit,
    driver_cuda: str,
    summary: str,
    details: list[str],
    facts: dict[str, str],
) -> Finding:
    """A toolkit newer than the driver: across a major version it cannot run at all; within
    one it runs through minor-version compatibility, with gaps."""
    fixes = _install_fixes(ctx, driver_cuda) + _driver_upgrade(ctx, chosen.version or "")
    va, vd = versions.major_minor(chosen.version), versions.major_minor(driver_cuda)
    if va and vd and va[0] > vd[0]:
        return ctx.fail(
            f"CUDA {chosen.version} is newer than the driver supports (CUDA ≤ {driver_cuda})",
            details=details,
            facts=facts,
            fixes=fixes,
        )
    details.append(
        f"CUDA {chosen.version} is newer than the driver's {driver_cuda}: it runs through "
        "minor-version compatibility, but PTX JIT and some newer APIs will fail"
    )
    return ctx.warn(
        f"{summary}; the driver supports CUDA ≤ {driver_cuda}",
        details=details,
        facts=facts,
        fixes=fixes,
    )


def _driver_upgrade(ctx: Context, toolkit: str) -> list[Fix]:
    """Where the driver is at fault: a newer one. In a container it is the host's to change."""
    title = f"Upgrade the NVIDIA driver to one that supports CUDA {toolkit}"
    container = ctx.fact("os.container")
    if container:
        return [
            Fix(
                title,
                ["# on the host: install a newer driver, reboot, then restart this container"],
                changes=f"the host's driver ({container} containers use the host's)",
                manual=True,
            )
        ]
    return gpu.driver_packages_fix(ctx, title)


def _path_mismatch(ctx: Context, chosen: Toolkit, nvcc: str | None) -> str | None:
    host = ctx.host
    root = host.realpath(chosen.home)
    if nvcc:
        nvcc_root = nvcc_home(host, nvcc)
        if is_toolkit(host, nvcc_root) and host.realpath(nvcc_root) != root:
            return f"nvcc on PATH is {nvcc}, from another install than {chosen.home}"
    for entry in (host.getenv("LD_LIBRARY_PATH") or "").split(":"):
        match = re.match(r"(.*/cuda[^/]*)/(?:lib64|lib|targets)", entry)
        if match and host.is_dir(match.group(1)) and host.realpath(match.group(1)) != root:
            return f"LD_LIBRARY_PATH has {entry}, from another install than {chosen.home}"
    return None


def _install_fixes(ctx: Context, driver_cuda: str | None) -> list[Fix]:
    distro = Distro.of(ctx)
    mm = versions.major_minor(driver_cuda)
    package = f"cuda-toolkit-{mm[0]}-{mm[1]}" if mm else "cuda-toolkit"
    why = f"the CUDA the driver supports ({driver_cuda})" if mm else "the latest CUDA"
    return distro.nvidia_packages_fix(
        f"Install {package} from NVIDIA's repository",
        {"debian": [package], "rhel": [package], "suse": [package]},
        f"adds NVIDIA's repository and installs {why} under /usr/local/cuda-X.Y",
    )
