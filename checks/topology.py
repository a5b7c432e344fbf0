"""How a machine's GPUs are linked, and the peak bandwidth of those links.

Paths use the codes of `nvidia-smi topo -m`, so NVML's answers and that matrix (the fallback
where NVML has no answer) speak one language: NV<n> (a bonded set of n NVLinks), PIX (at most
one PCIe bridge), PXB (several PCIe bridges), PHB (a PCIe host bridge), NODE (between host
bridges of one NUMA node), SYS (across the CPUs' interconnect).

Link peaks are per direction, in GB/s (10^9 bytes/s), the figure busbw is measured against.
NVLink, per link and direction, from NVIDIA's per-GPU totals (both directions) divided by the
GPU's links: P100 160 GB/s over 4 links (NVLink 1.0), V100 300 over 6 (2.0), A100 600 over 12
(3.0), H100 900 over 18 (4.0), B200 1,800 over 18 (5.0), Rubin 3,600 over 36 (6.0); 2.2 and
3.1 are the 2.0 and 3.0 signalling. PCIe, per lane and direction: the transfer rate (2.5, 5,
8, 16, 32, 64 GT/s) less line encoding (8b/10b for 1.0-2.0, 128b/130b for 3.0-5.0, 242/256
FLIT for 6.0).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NVLINK_GBS_PER_LINK = {
    "1.0": 20.0,
    "2.0": 25.0,
    "2.2": 25.0,
    "3.0": 25.0,
    "3.1": 25.0,
    "4.0": 25.0,
    "5.0": 50.0,
    "6.0": 50.0,
}
PCIE_GBS_PER_LANE = {1: 0.25, 2: 0.5, 3: 0.985, 4: 1.969, 5: 3.938, 6: 7.563}
PCIE_NAMES = {1: "1.0", 2: "2.0", 3: "3.0", 4: "4.0", 5: "5.0", 6: "6.0"}

# nvmlGpuTopologyLevel_t -> the matrix's code. INTERNAL (two GPUs of one board) is shown as PIX.
_LEVELS = {0: "PIX", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
_PATHS = {
    "PIX": "one PCIe switch",
    "PXB": "several PCIe switches",
    "PHB": "a PCIe host bridge (through the CPU)",
    "NODE": "PCIe host bridges of one NUMA node",
    "SYS": "across CPU sockets",
}
_NV = re.compile(r"NV(\d+)")
_ESCAPES = re.compile(r"\x1b\[[0-9;]*m")


@dataclass(frozen=True)
class Pair:
    """The path between two GPUs, in matrix code, and whether they can read each other."""

    a: int
    b: int
    code: str  # "NV18", "PIX", ..., or "" when nothing says
    peer_access: bool | None
    via_switch: bool = False

    @property
    def nvlinks(self) -> int:
        match = _NV.fullmatch(self.code)
        return int(match.group(1)) if match else 0

    def describe(self) -> str:
        if self.nvlinks:
            path = f"NVLink ×{self.nvlinks}" + (" through NVSwitch" if self.via_switch else "")
        else:
            path = _PATHS.get(self.code, "path unknown")
        access = {True: "peer access yes", False: "peer access no", None: "peer access unknown"}
        return f"GPU{self.a} ↔ GPU{self.b}: {path} ({self.code or '?'}), {access[self.peer_access]}"


@dataclass(frozen=True)
class Peak:
    """The slowest GPU's link bandwidth, per direction."""

    label: str  # "NVLink 4.0 ×18" or "PCIe 5.0 ×16"
    gbs: float


def bus_id(value: str) -> str:
    """A PCI address in one spelling: NVML writes 8 domain digits, other places 4."""
    parts = value.strip().lower().split(":")
    if len(parts) != 3:
        return value.strip().lower()
    domain, bus, rest = parts
    try:
        return f"{int(domain, 16):04x}:{bus}:{rest}"
    except ValueError:
        return value.strip().lower()


def pairs_from_nvml(answer: dict[str, Any]) -> list[Pair]:
    """Every pair of GPUs as NVML sees it. Older snapshots have only `p2p_read`."""
    gpus = answer.get("gpus", [])
    if "pairs" not in answer:
        return [Pair(i, j, "", ok) for i, j, ok in answer.get("p2p_read", [])]
    by_bus = {bus_id(g.get("pci_bus_id", "")): g["index"] for g in gpus}
    remotes = {
        g["index"]: {
            (r if r == "switch" else by_bus.get(bus_id(r), r)): n
            for r, n in g.get("nvlink_remotes", {}).items()
        }
        for g in gpus
    }
    links = {g["index"]: g.get("nvlinks", 0) for g in gpus}
    pairs = []
    for entry in answer["pairs"]:
        i, j = entry["gpus"]
        direct = remotes[i].get(j, 0)
        switched = min(remotes[i].get("switch", 0), remotes[j].get("switch", 0))
        if entry.get("p2p_nvlink") is False:
            switched = 0
        if direct:
            code = f"NV{direct}"
        elif switched:
            code = f"NV{switched}"
        elif entry.get("p2p_nvlink") and links[i] and links[j]:
            # NVML says they talk over NVLink but not where each link ends (an older binding)
            code = f"NV{min(links[i], links[j])}"
        else:
            code = _LEVELS.get(entry.get("common_ancestor"), "")
        pairs.append(
            Pair(i, j, code, entry.get("p2p_read"), via_switch=bool(switched and not direct))
        )
    return pairs


def parse_topo_matrix(text: str) -> dict[tuple[int, int], str]:
    """The GPU-to-GPU cells of `nvidia-smi topo -m`: {(0, 1): "NV18", ...}."""
    # nvidia-smi underlines the header with escape codes, even into a pipe or a file
    lines = [line for line in _ESCAPES.sub("", text).splitlines() if line.strip()]
    header = next((line.split() for line in lines if line.split()[:1] == ["GPU0"]), None)
    if header is None:
        return {}
    columns = []
    for name in header:
        if not re.fullmatch(r"(GPU|NIC)\d+", name):
            break
        columns.append(name)
    cells: dict[tuple[int, int], str] = {}
    for line in lines:
        fields = line.split()
        if not fields or not re.fullmatch(r"GPU\d+", fields[0]) or fields == header:
            continue
        row = int(fields[0][3:])
        for column, cell in zip(columns, fields[1:], strict=False):
            if column.startswith("GPU") and cell != "X":
                cells[(row, int(column[3:]))] = cell
    return cells


def fill_from_matrix(pairs: list[Pair], cells: dict[tuple[int, int], str]) -> list[Pair]:
    """Pairs whose path NVML left unknown, completed from the matrix."""
    return [
        Pair(p.a, p.b, cells.get((p.a, p.b), ""), p.peer_access) if not p.code else p for p in pairs
    ]


def link_peak(gpus: list[dict[str, Any]], pairs: list[Pair]) -> Peak | None:
    """NVLink when every GPU has active links of one known generation and every pair is
    joined by NVLink; else PCIe (a collective over all GPUs is as fast as its slowest hop);
    else None."""
    if not gpus:
        return None
    generations = {g.get("nvlink_generation") or "" for g in gpus}
    links = min(g.get("nvlinks", 0) for g in gpus)
    all_nvlink = all(p.nvlinks for p in pairs)
    if links and all_nvlink and len(generations) == 1:
        gen = generations.pop()
        if gen in NVLINK_GBS_PER_LINK:
            return Peak(f"NVLink {gen} ×{links}", links * NVLINK_GBS_PER_LINK[gen])
    pcie = [g.get("pcie") or {} for g in gpus]
    if all(p.get("max_gen") in PCIE_GBS_PER_LANE and p.get("max_width") for p in pcie):
        slowest = min(pcie, key=lambda p: p["max_width"] * PCIE_GBS_PER_LANE[p["max_gen"]])
        gen, width = slowest["max_gen"], slowest["max_width"]
        return Peak(f"PCIe {PCIE_NAMES[gen]} ×{width}", width * PCIE_GBS_PER_LANE[gen])
    return None
