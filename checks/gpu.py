"""Accelerators: NVIDIA GPUs through NVML, and the other vendors FlagCX supports."""

from __future__ import annotations

from collections import Counter

from checks.base import Context, Finding, Fix, check
from checks.distro import Distro
from checks.vendors import VENDORS, other_vendors


@check("gpu.nvidia", "NVIDIA GPUs", after=("os",))
def nvidia(ctx: Context) -> Finding:
    answer = ctx.host.nvml()
    if "error" in answer:
        if ctx.vendor != "nvidia":
            return ctx.skip(f"no NVIDIA driver; not needed for {VENDORS[ctx.vendor].name}")
        smi = ctx.host.which("nvidia-smi")
        details = [answer["error"]]
        if smi:
            details.append(f"{smi} is present, so a driver was installed but does not answer")
        return ctx.fail(
            "no NVIDIA driver answers (NVML): " + answer["error"],
            details=details,
            fixes=_driver_fixes(ctx),
        )
    gpus = answer.get("gpus", [])
    facts = {
        "driver.version": answer["driver_version"],
        "driver.cuda": answer["cuda_driver_version"],
        "gpu.count": len(gpus),
    }
    if not gpus:
        return ctx.fail(
            f"driver {answer['driver_version']} is loaded but no GPU is visible",
            details=["check CUDA_VISIBLE_DEVICES, and in a container the --gpus flag"],
            facts=facts,
        )
    models = Counter(gpu["name"] for gpu in gpus)
    model = ", ".join(f"{n} × {name}" for name, n in models.items())
    memory = min(gpu["memory_mib"] for gpu in gpus)
    nvlinks = min(gpu.get("nvlinks", 0) for gpu in gpus)
    p2p = answer.get("p2p_read", [])
    facts.update(
        {
            "gpu.model": next(iter(models)) if len(models) == 1 else ", ".join(models),
            "gpu.memory_mib": memory,
            "gpu.nvlinks": nvlinks,
            "gpu.p2p_all": all(ok for _, _, ok in p2p),
            # Older snapshots lack it; nvcc then builds for every architecture.
            "gpu.sm": min(
                (g["compute_capability"] for g in gpus if g.get("compute_capability")), default=""
            ).replace(".", ""),
        }
    )
    details = [
        f"GPU{gpu['index']} {gpu['name']}, {gpu['memory_mib']} MiB, PCI {gpu['pci_bus_id']}, "
        + (
            f"{gpu['nvlinks']} NVLink links (NVLink {gpu['nvlink_version']})"
            if gpu.get("nvlinks")
            else "no active NVLink"
        )
        for gpu in gpus
    ]
    details += [f"peer access GPU{i} ↔ GPU{j}: {'yes' if ok else 'no'}" for i, j, ok in p2p]
    summary = (
        f"{model} ({memory // 1024} GiB), driver {answer['driver_version']}, "
        f"supports CUDA ≤ {answer['cuda_driver_version']}"
    )
    return ctx.ok(summary, details=details, facts=facts)


def _driver_fixes(ctx: Context) -> list[Fix]:
    container = ctx.fact("os.container")
    if container:
        return [
            Fix(
                "Give the container the host's GPUs",
                ["docker run --gpus all ...   # on the host, with the NVIDIA Container Toolkit"],
                changes=f"the {container} container is recreated with the GPUs and driver mounted",
                manual=True,
            )
        ]
    distro = Distro.of(ctx)
    return distro.nvidia_packages_fix(
        "Install the NVIDIA driver from NVIDIA's CUDA repository",
        {"debian": ["cuda-drivers"], "rhel": ["cuda-drivers"], "suse": ["cuda-drivers"]},
        "adds NVIDIA's repository and installs the driver; reboot afterwards",
    )


@check("gpu.others", "Other accelerators")
def others(ctx: Context) -> Finding:
    sightings = other_vendors(ctx.host)
    wanted = VENDORS[ctx.vendor]
    found = {s.vendor.key for s in sightings}
    details = [f"{s.vendor.name}: {s.evidence}" for s in sightings]
    facts = {"gpu.vendors": ",".join(sorted(found))}
    if wanted.key != "nvidia" and wanted.key not in found:
        looked = ", ".join([*wanted.tools, *wanted.homes])
        return ctx.fail(
            f"no {wanted.name} device tools or SDK found (looked for {looked})",
            details=details,
            facts=facts,
        )
    if not sightings:
        return ctx.skip("no other FlagCX vendor's tools or SDK homes", facts=facts)
    names = ", ".join(s.vendor.name for s in sightings)
    return ctx.ok(
        f"{names}: {'; '.join(s.evidence for s in sightings)}", details=details, facts=facts
    )
