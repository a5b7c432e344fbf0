"""The accelerators of FlagCX's other vendors: what their tools list, and where FlagCX's make
will find their SDK and collective library.

A vendor is seen through its device tool or SDK folder; the tool's device list (run under a
timeout: these tools are known to hang) gives the count, model, memory and driver, narrowed by
the vendor's VISIBLE_DEVICES variable as its runtime narrows it, and the PCI bus confirms the
vendor (Intel ships an `xpu-smi` too).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from checks.base import Context, Finding, Group, Scalar, check
from checks.vendor_tools import Device, Listing, visible
from checks.vendors import VENDORS, Sighting, Vendor, on_the_bus, other_vendors, pci_accelerators

TOOL_TIMEOUT = 20.0


@dataclass
class Survey:
    """One vendor as this host shows it."""

    sighting: Sighting
    on_bus: bool
    pci: list[str]  # its accelerators' PCI addresses
    listing: Listing | None = None
    shown: tuple[Device, ...] = ()  # the devices its runtime will see (VISIBLE_DEVICES)
    trouble: str = ""  # why the device list could not be read
    notes: list[str] = field(default_factory=list)

    @property
    def vendor(self) -> Vendor:
        return self.sighting.vendor


def survey(ctx: Context, sighting: Sighting, pci: dict[str, list[str]] | None) -> Survey:
    vendor, host = sighting.vendor, ctx.host
    found = Survey(sighting, on_the_bus(sighting, pci), (pci or {}).get(vendor.pci, []))
    readable = [
        (path, reader)
        for reader in vendor.readers
        for path in sighting.tools
        if path.rsplit("/", 1)[-1] == reader.tool
    ]
    if not sighting.tools:
        found.trouble = f"no device tool ({' or '.join(vendor.tools)}) on PATH"
    elif not readable:
        found.trouble = (
            f"{sighting.tools[0]} found; the wizard does not read its output yet (no sample)"
        )
    else:
        tool, reader = readable[0]
        answer = host.run([tool, *reader.query], timeout=TOOL_TIMEOUT)
        listing = reader.parse(answer.stdout) if answer.returncode == 0 else None
        if answer.error:
            found.trouble = answer.error
        elif answer.returncode != 0:
            said = (answer.stderr or answer.stdout).strip().splitlines()
            found.trouble = f"{tool} exited {answer.returncode}" + (f": {said[0]}" if said else "")
        elif listing is None:
            found.trouble = f"{tool}'s output is not the {vendor.name} table the wizard reads"
        found.listing = listing
    if found.listing is not None:
        found.shown = found.listing.devices
        for name in vendor.visible:
            variable = host.getenv(name)
            if variable is not None:
                narrowed = visible(found.shown, variable)
                found.notes.append(
                    f"{name}={variable}: {len(narrowed)} of {len(found.shown)} devices used"
                )
                found.shown = narrowed
    return found


def describe(found: Survey) -> str:
    vendor, listing = found.vendor, found.listing
    if listing is None or not listing.devices:
        what = "no devices listed" if listing is not None else found.trouble
        return f"{vendor.name}: {what}"
    models = sorted({d.model for d in found.shown} or {d.model for d in listing.devices})
    memory = {d.memory_mib for d in listing.devices if d.memory_mib}
    size = f" ({max(memory) // 1024} GiB)" if memory else ""
    versions = [f"driver {listing.driver}"] if listing.driver else []
    versions += [f"SDK {listing.sdk}"] if listing.sdk else []
    return ", ".join([f"{vendor.name}: {len(found.shown)} × {'/'.join(models)}{size}", *versions])


def ccl(ctx: Context, found: Survey) -> tuple[str, str, bool]:
    """DEVICE_HOME and the vendor CCL's library under CCL_HOME, as make will look for them."""
    vendor = found.vendor
    device_home = vendor.default(vendor.device_home, ctx.host).rstrip("/") or "/"
    ccl_home = vendor.default(vendor.ccl_home, ctx.host).rstrip("/") or "/"
    library = f"{ccl_home}/{vendor.ccl}"
    return device_home, library, ctx.host.exists(library)


@check("gpu.others", "Other accelerators", Group.ACCELERATOR)
def others(ctx: Context) -> Finding:
    sightings = other_vendors(ctx.host)
    pci = pci_accelerators(ctx.host) if sightings else None
    surveys = [survey(ctx, s, pci) for s in sightings]
    real = [f for f in surveys if f.on_bus]
    wanted = VENDORS[ctx.vendor]
    facts: dict[str, Scalar] = {"gpu.vendors": ",".join(sorted(f.vendor.key for f in real))}
    details = []
    for found in surveys:
        details.append(f"{describe(found)} [{found.sighting.evidence}]")
        details += [  # as the NVIDIA GPUs' lines: model, memory, PCI address
            f"  {d.index}: {d.model}"
            + (f", {d.memory_mib} MiB" if d.memory_mib else "")
            + f", PCI {d.bus_id}"
            for d in found.shown
        ]
        details += [
            f"  {note}"
            for note in found.notes + list(found.listing.problems if found.listing else ())
        ]
        listed = len(found.listing.devices) if found.listing else 0
        if found.pci:
            details.append(
                f"  PCI bus: {len(found.pci)} {found.vendor.name} device(s) (vendor id "
                f"{found.vendor.pci})"
                + (f"; {listed} listed by the tool" if 0 < listed < len(found.pci) else "")
            )
        if not found.on_bus:
            details.append(
                f"  the PCI bus shows no {found.vendor.name} device (vendor id "
                f"{found.vendor.pci}): {', '.join(found.sighting.tools) or 'its SDK'} here is not"
                f" {found.vendor.name}'s, or its devices were not passed in"
            )
    target = next((f for f in real if f.vendor.key == wanted.key), None)
    if wanted.key != "nvidia" and target is None:
        looked = ", ".join([*wanted.tools, *wanted.homes(ctx.host)])
        return ctx.fail(
            f"no {wanted.name} device tools or SDK found (looked for {looked})",
            details=details,
            facts=facts,
        )
    if target is None:
        if not surveys:
            return ctx.skip("no other FlagCX vendor's tools or SDK homes", facts=facts)
        return ctx.ok("; ".join(describe(f) for f in surveys), details=details, facts=facts)
    device_home, library, has_ccl = ccl(ctx, target)
    listing = target.listing
    facts.update(
        {
            "accel.count": len(target.shown) if listing else None,
            "accel.count_all": len(listing.devices) if listing else None,
            "accel.model": "/".join(sorted({d.model for d in target.shown})) if listing else "",
            "accel.memory_mib": max((d.memory_mib or 0 for d in target.shown), default=0) or None,
            "accel.driver": listing.driver if listing else "",
            "accel.sdk": listing.sdk if listing else "",
            "accel.device_home": device_home,
            "accel.ccl_lib": library if has_ccl else "",
        }
    )
    summary = describe(target)
    details.append(
        f"DEVICE_HOME={device_home}" + ("" if ctx.host.is_dir(device_home) else " (missing)")
    )
    details.append(f"{library}: {'found' if has_ccl else 'missing'}")
    if listing is not None and not target.shown:
        why = "; ".join(target.notes) or f"{target.sighting.tools[0]} lists no devices"
        return ctx.fail(f"no {wanted.name} device to run on: {why}", details=details, facts=facts)
    if not has_ccl:
        return ctx.warn(
            f"{summary}; its collective library {library} is missing: build with "
            f"CCL_HOME=<the folder whose {target.vendor.ccl} it is>",
            details=details,
            facts=facts,
        )
    if listing is None:  # the summary says why the tool could not be read
        return ctx.warn(summary, details=details, facts=facts)
    if target.trouble or listing.problems:
        problem = target.trouble or "; ".join(listing.problems)
        return ctx.warn(f"{summary}; {problem}", details=details, facts=facts)
    return ctx.ok(f"{summary}; CCL {library}", details=details, facts=facts)
