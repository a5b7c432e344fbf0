"""Targets: what the user wants to build, and so which findings block it."""

from __future__ import annotations

from dataclasses import dataclass

from checks.vendors import VENDORS, Vendor

_COMMON = ("os", "build.tools", "mpi")
_NVIDIA = ("gpu.nvidia", "cuda.toolkit", "nccl.header", "nccl.library")


@dataclass(frozen=True)
class Target:
    id: str
    title: str
    vendor: Vendor
    requires: tuple[str, ...]  # a failing finding among these blocks the target


def _flagcx(vendor: Vendor) -> Target:
    requires = _COMMON + (_NVIDIA if vendor.key == "nvidia" else ("gpu.others",))
    return Target(f"flagcx-{vendor.key}", f"FlagCX on {vendor.name}", vendor, requires)


TARGETS: dict[str, Target] = {t.id: t for t in map(_flagcx, VENDORS.values())}


def for_vendor(vendor: str) -> Target:
    return TARGETS[f"flagcx-{vendor}"]
