"""Accelerators: NVIDIA GPUs through NVML, and the other vendors FlagCX supports."""

from __future__ import annotations

from collections import Counter
from typing import Any

from checks import topology
from checks.base import Context, Finding, Fix, Group, Scalar, check
from checks.distro import Distro
from checks.vendors import VENDORS


@check("gpu.nvidia", "NVIDIA GPUs", Group.ACCELERATOR, after=("os",))
def nvidia(ctx: Context) -> Finding:
    answer = ctx.host.nvml()
    if "error" in answer:
        return _no_driver(ctx, answer)
    every_gpu = answer.get("gpus", [])
    gpus, visibility = _visible(every_gpu, ctx.host.getenv("CUDA_VISIBLE_DEVICES"))
    facts: dict[str, Scalar] = {
        "driver.version": answer["driver_version"],
        "driver.cuda": answer["cuda_driver_version"],
        "gpu.count": len(gpus),
        "gpu.count_all": len(every_gpu),
    }
    if not gpus:
        return ctx.fail(
            f"driver {answer['driver_version']} is loaded but no GPU is visible",
            details=[
                visibility or "NVML counts no device",
                "check CUDA_VISIBLE_DEVICES, and in a container the --gpus flag",
            ],
            facts=facts,
        )
    used = {gpu["index"] for gpu in gpus}
    pairs = [p for p in topology.pairs_from_nvml(answer) if {p.a, p.b} <= used]
    details = [visibility] if visibility else []
    if any(not p.code for p in pairs):
        pairs, note = _fill_from_nvidia_smi(ctx, pairs)
        details.append(note)
    peak = topology.link_peak(gpus, pairs)
    facts.update(_machine_facts(gpus, pairs, peak))
    details += [_describe_gpu(gpu) for gpu in gpus]
    details += [pair.describe() for pair in pairs]
    if peak:
        details.append(
            f"link peak {peak.gbs:g} GB/s per direction ({peak.label}): what busbw is set against"
        )
    details += [
        f"could not read {u['what']} ({', '.join(u['where'])}): {u['why']}"
        for u in answer.get("unread", [])
    ]
    models = Counter(gpu["name"] for gpu in gpus)
    model = ", ".join(f"{n} × {name}" for name, n in models.items())
    summary = f"{model} ({facts['gpu.memory_mib'] // 1024} GiB)"
    if peak:
        summary += f", {peak.label}"
    summary += (
        f", driver {answer['driver_version']}, supports CUDA ≤ {answer['cuda_driver_version']}"
    )
    return ctx.ok(summary, details=details, facts=facts)


def _no_driver(ctx: Context, answer: dict[str, Any]) -> Finding:
    """NVML did not answer: not needed for another vendor; a driver that started and failed
    has no install fix; otherwise the driver (or the container's GPUs) is missing."""
    if ctx.vendor != "nvidia":
        return ctx.skip(f"no NVIDIA driver; not needed for {VENDORS[ctx.vendor].name}")
    if answer.get("started"):
        return ctx.fail(answer["error"], details=[answer["error"]])
    smi = ctx.host.which("nvidia-smi")
    details = [answer["error"]]
    if smi:
        details.append(f"{smi} is present, so a driver was installed but does not answer")
    return ctx.fail(
        "no NVIDIA driver answers (NVML): " + answer["error"],
        details=details,
        fixes=_driver_fixes(ctx),
    )


def _machine_facts(
    gpus: list[dict[str, Any]], pairs: list[topology.Pair], peak: topology.Peak | None
) -> dict[str, Scalar]:
    """What the visible GPUs are together: model, the smallest memory, NVLink, the link's
    peak, the lowest compute capability (what nvcc builds for)."""
    models = Counter(gpu["name"] for gpu in gpus)
    nvlinks = min(gpu.get("nvlinks", 0) for gpu in gpus)
    access = [p.peer_access for p in pairs]
    return {
        "gpu.model": next(iter(models)) if len(models) == 1 else ", ".join(models),
        "gpu.memory_mib": min(gpu["memory_mib"] for gpu in gpus),
        "gpu.nvlinks": nvlinks,
        "gpu.nvlink.generation": gpus[0].get("nvlink_generation", "") if nvlinks else "",
        "gpu.nvlink.pairs": sum(1 for p in pairs if p.nvlinks),
        "gpu.nvlink.all_pairs": bool(pairs) and all(p.nvlinks for p in pairs),
        "gpu.p2p_all": None if None in access else all(access),
        "gpu.link": peak.label if peak else "",
        "gpu.link.peak_gbs": peak.gbs if peak else None,
        # Older snapshots lack it; nvcc then builds for every architecture.
        "gpu.sm": min(
            (g["compute_capability"] for g in gpus if g.get("compute_capability")), default=""
        ).replace(".", ""),
    }


def _visible(gpus: list[dict[str, Any]], variable: str | None) -> tuple[list[dict[str, Any]], str]:
    """The GPUs CUDA programs will see, and a note when CUDA_VISIBLE_DEVICES narrows them.

    Like CUDA, entries are indexes or UUID prefixes, and the list ends at the first entry
    that names no GPU. NVML itself ignores the variable, so the doctor applies it."""
    if variable is None:
        return gpus, ""
    chosen: list[dict[str, Any]] = []
    for entry in (e.strip() for e in variable.split(",")):
        match = next((g for g in gpus if _names(g, entry)), None)
        if match is None or match in chosen:
            break
        chosen.append(match)
    indexes = ",".join(str(g["index"]) for g in chosen) or "none"
    return chosen, (
        f"CUDA_VISIBLE_DEVICES={variable}: {len(chosen)} of {len(gpus)} GPUs used "
        f"(NVML indexes {indexes})"
    )


def _names(gpu: dict[str, Any], entry: str) -> bool:
    if entry.isdigit():
        return int(entry) == gpu["index"]
    return bool(entry) and entry.startswith("GPU-") and gpu.get("uuid", "").startswith(entry)


def _fill_from_nvidia_smi(
    ctx: Context, pairs: list[topology.Pair]
) -> tuple[list[topology.Pair], str]:
    result = ctx.host.run(["nvidia-smi", "topo", "-m"], timeout=15)
    cells = topology.parse_topo_matrix(result.stdout) if result.ok else {}
    if not cells:
        why = result.error or (result.output.strip().splitlines() or ["no matrix"])[-1]
        return pairs, f"NVML gave no path for some GPU pairs, nor did `nvidia-smi topo -m`: {why}"
    return (
        topology.fill_from_matrix(pairs, cells),
        "paths NVML did not give were read from `nvidia-smi topo -m`",
    )


def _describe_gpu(gpu: dict[str, Any]) -> str:
    line = f"GPU{gpu['index']} {gpu['name']}, {gpu['memory_mib']} MiB, PCI {gpu['pci_bus_id']}"
    if gpu.get("nvlinks"):
        generation = gpu.get("nvlink_generation") or f"version {gpu.get('nvlink_version')}"
        remotes = gpu.get("nvlink_remotes") or {}
        ends = ", ".join(f"{n} to {'NVSwitch' if r == 'switch' else r}" for r, n in remotes.items())
        line += f", {gpu['nvlinks']} active NVLink links (NVLink {generation})"
        line += f": {ends}" if ends else ""
    else:
        line += ", no active NVLink"
    pcie = gpu.get("pcie") or {}
    if pcie.get("max_gen") and pcie.get("max_width"):
        line += f", PCIe gen {pcie['max_gen']} ×{pcie['max_width']}"
    return line


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
    return driver_packages_fix(ctx, "Install the NVIDIA driver from NVIDIA's CUDA repository")


def driver_packages_fix(ctx: Context, title: str) -> list[Fix]:
    """The newest driver from NVIDIA's repository (cuda-drivers), for the distro found."""
    return Distro.of(ctx).nvidia_packages_fix(
        title,
        {"debian": ["cuda-drivers"], "rhel": ["cuda-drivers"], "suse": ["cuda-drivers"]},
        "adds NVIDIA's repository and installs the driver; reboot afterwards",
    )
