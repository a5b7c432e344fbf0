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

# a PCI address with its domain in 2 (efsmi), 4 or 8 (nvidia-smi's spelling) hex digits
_BUS = r"([0-9A-Fa-f]{2,8}:[0-9A-Fa-f]{2}:[0-9A-Fa-f]{2}\.[0-7])"


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
    memory on the line below it (the total is the memory pattern's last group)."""
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
                int(total.groups()[-1]) if total else None,
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


def cnmon(text: str) -> Listing | None:
    """Cambricon's `cnmon` (driver 5.x: the table with a Bus-Id column; 4.x printed the
    driver in that place, which is not read)."""
    if "CNMON" not in text or "Bus-Id" not in text:
        return None
    row = r"^\|\s*(\d+)\s+\S+\s+(.+?)\s+v\S+\s*\|\s*" + _BUS + r"\s*\|"
    return Listing(
        tuple(_table(text, row, r"(\d+) MiB/\s*(\d+) MiB")),
        driver=_version(r"Driver v(\S+)", text),
    )


def mthreads_gmi(text: str) -> Listing | None:
    """Moore Threads' `mthreads-gmi`: each GPU's row holds its bus id and `used(total)`."""
    if "mthreads-gmi:" not in text:
        return None
    row = re.compile(r"^(\d+)\s+(.+?)\s*\|" + _BUS + r"\s*\|\S+\s+\d+MiB\((\d+)MiB\)")
    devices = [
        Device(int(found.group(1)), found.group(2), int(found.group(4)), bus_id(found.group(3)))
        for line in text.splitlines()
        if (found := row.match(line))
    ]
    return Listing(tuple(devices), driver=_version(r"Driver Version:\s*(\S+)", text))


def efsmi(text: str) -> Listing | None:
    """Enflame's `efsmi`: a row with the device, name, firmware and bus id, its memory on
    the line below."""
    if "EFSMI" not in text:
        return None
    row = r"^\|\s*(\d+)\s+(.+?)\s*\|\s*\S+\s*\|\s*" + _BUS + r"\s"
    return Listing(
        tuple(_table(text, row, r"\|\s*(\d+)MiB\s")),
        driver=_version(r"Driver Ver:\s*(\S+)", text),
    )


def amd_smi_static(text: str) -> Listing | None:
    """AMD's `amd-smi static`: a `GPU: N` block per GPU, its sections (ASIC, BUS, DRIVER,
    VRAM, ...) indented under it, their fields under those. VRAM's SIZE is in MiB (amd-smi
    divides the bytes by 1024 * 1024 and writes "MB"). An APU's `CPU: N` blocks are skipped."""
    gpus: dict[int, dict[str, str]] = {}
    fields: dict[str, str] | None = None
    section = ""
    for line in text.splitlines():
        if found := re.match(r"^(GPU|CPU): (\d+)$", line):
            fields = gpus.setdefault(int(found.group(2)), {}) if found.group(1) == "GPU" else None
        elif fields is not None and (found := re.match(r"^    (\w+):", line)):
            section = found.group(1)
        elif fields is not None and (found := re.match(r"^        (\w+): (.*)$", line)):
            fields[f"{section}.{found.group(1)}"] = found.group(2).strip()
    if not gpus:
        return None
    devices = []
    for index, info in sorted(gpus.items()):
        size = re.match(r"(\d+) MB$", info.get("VRAM.SIZE", ""))
        bdf = info.get("BUS.BDF", "")
        devices.append(
            Device(
                index,
                info.get("ASIC.MARKET_NAME", ""),
                int(size.group(1)) if size else None,
                bus_id(bdf) if re.fullmatch(_BUS, bdf) else "",
            )
        )
    drivers = {info.get("DRIVER.VERSION", "") for info in gpus.values()} - {"", "N/A"}
    return Listing(tuple(devices), driver="/".join(sorted(drivers)))


Parser = Callable[[str], "Listing | None"]


@dataclass(frozen=True)
class Reader:
    """A device tool the wizard reads: its name on PATH, the arguments that make it list
    the devices, and the parser of what it prints."""

    tool: str
    query: tuple[str, ...]
    parse: Parser


def visible(devices: tuple[Device, ...], variable: str) -> tuple[Device, ...]:
    """The devices a runtime sees under its VISIBLE_DEVICES list: each entry the ordinal of
    one of `devices` (the tool's list, or what an earlier variable left), in the order
    given, up to the first entry that names no device (as CUDA, and the runtimes modelled
    on it, read the list)."""
    chosen: list[Device] = []
    for entry in (e.strip() for e in variable.split(",")):
        match = devices[int(entry)] if entry.isdigit() and int(entry) < len(devices) else None
        if match is None or match in chosen:
            break
        chosen.append(match)
    return tuple(chosen)
