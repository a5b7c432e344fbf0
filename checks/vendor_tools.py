"""What the vendors' device tools print, read into devices.

One parser per tool whose real output was available to test against (tests/data/README.md
names each sample); a tool without one is reported as found but not read. Each parser
returns None when the text is not that tool's table at all (another vendor's tool of the same
name, an error page), and a Listing, possibly empty, when it is.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

_BUS = r"([0-9A-Fa-f]{4,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])"


@dataclass(frozen=True)
class Device:
    index: int  # the tool's (and the runtime's) logical index
    model: str
    memory_mib: int | None
    bus_id: str  # as /sys/bus/pci/devices names it: 0000:c1:00.0


@dataclass(frozen=True)
class Listing:
    devices: tuple[Device, ...]
    driver: str = ""
    sdk: str = ""  # the runtime or SDK version the tool names
    problems: tuple[str, ...] = ()  # devices the tool itself reports unhealthy


def bus_id(text: str) -> str:
    """A PCI address in sysfs' spelling: 00000000:03:00.0 -> 0000:03:00.0."""
    domain, bus, rest = text.split(":")
    return f"{int(domain, 16):04x}:{bus.lower()}:{rest.lower()}"


def _version(pattern: str, text: str) -> str:
    found = re.search(pattern, text)
    return found.group(1) if found else ""


def _table(text: str, row: str, memory: str) -> list[Device]:
    """Devices of an nvidia-smi-like table: a row with index, name and bus id, and the
    memory as `used / total` on the line below it."""
    lines = text.splitlines()
    devices = []
    for number, line in enumerate(lines):
        found = re.match(row, line)
        if not found:
            continue
        below = lines[number + 1] if number + 1 < len(lines) else ""
        total = re.search(memory, below)
        devices.append(
            Device(
                int(found.group(1)),
                found.group(2).strip(),
                int(total.group(2)) if total else None,
                bus_id(found.group(3)),
            )
        )
    return devices


def npu_smi(text: str) -> Listing | None:
    """`npu-smi info`: a row per NPU (id, name, health) and one per chip under it (bus id,
    memory, HBM). Each chip is one device to the CANN runtime."""
    version = _version(r"npu-smi\s+\S+\s+Version:\s*(\S+)", text)
    if not version:
        return None
    devices, problems, npu, name = [], [], "", ""
    chip = re.compile(r"^\|\s*\d+(?:\s+\d+)?\s*\|\s*" + _BUS + r"\s*\|(.*)\|\s*$")
    head = re.compile(r"^\|\s*(\d+)\s+(\S+)\s*\|\s*(\w+)\s*\|")
    for line in text.splitlines():
        if "Process id" in line:
            break
        if found := chip.match(line):
            totals = [int(t) for _, t in re.findall(r"(\d+)\s*/\s*(\d+)", found.group(2))]
            memory = max(totals) if totals else None
            devices.append(Device(len(devices), name, memory, bus_id(found.group(1))))
        elif found := head.match(line):
            npu, name, health = found.groups()
            if health != "OK":
                problems.append(f"NPU {npu} ({name}): health {health}")
    return Listing(tuple(devices), driver=version, problems=tuple(problems))


def xpu_smi(text: str) -> Listing | None:
    """Kunlunxin's `xpu-smi` / `xpu_smi` table (Intel's xpu-smi prints something else)."""
    if "XPU-SMI" not in text:
        return None
    row = r"^\|\s*(\d+)\s+(.+?)\s+(?:N/A|On|Off)\s*\|\s*" + _BUS
    return Listing(
        tuple(_table(text, row, r"(\d+)MiB\s*/\s*(\d+)MiB")),
        driver=_version(r"Driver Version:\s*(\S+)", text),
        sdk=_version(r"XPU-RT Version:\s*(\S+)", text),
    )


def mx_smi(text: str) -> Listing | None:
    """MetaX's `mx-smi`."""
    if "MX-SMI" not in text:
        return None
    row = r"^\|\s*(\d+)\s+(.+?)\s*\|\s*" + _BUS + r"\s*\|"
    return Listing(
        tuple(_table(text, row, r"(\d+)/(\d+) MiB")),
        driver=_version(r"Kernel Mode Driver Version:\s*(\S+)", text),
        sdk=_version(r"MACA Version:\s*(\S+)", text),
    )


def ixsmi(text: str) -> Listing | None:
    """Iluvatar CoreX's `ixsmi`."""
    if "IX-ML" not in text:
        return None
    row = r"^\|\s*(\d+)\s+(.+?)\s*\|\s*" + _BUS + r"\s*\|"
    return Listing(
        tuple(_table(text, row, r"(\d+)MiB\s*/\s*(\d+)MiB")),
        driver=_version(r"Driver Version:\s*(\S+)", text),
        sdk=_version(r"IX-ML:\s*(\S+)", text),
    )


Parser = Callable[[str], "Listing | None"]


def visible(devices: tuple[Device, ...], variable: str | None) -> tuple[Device, ...]:
    """The devices a runtime sees under its VISIBLE_DEVICES list: indexes in the order
    given, up to the first entry that names no device (as CUDA, and the runtimes modelled
    on it, read the list)."""
    if variable is None:
        return devices
    chosen: list[Device] = []
    for entry in (e.strip() for e in variable.split(",")):
        match = next((d for d in devices if entry.isdigit() and d.index == int(entry)), None)
        if match is None or match in chosen:
            break
        chosen.append(match)
    return tuple(chosen)
