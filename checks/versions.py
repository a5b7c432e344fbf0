"""Small helpers for version strings."""

from __future__ import annotations

import re


def parse(text: str | None) -> tuple[int, ...] | None:
    """The leading dotted number of `text`: '13.0.88' -> (13, 0, 88); None when there is none."""
    match = re.search(r"\d+(?:\.\d+)*", text or "")
    return tuple(int(part) for part in match.group().split(".")) if match else None


def major_minor(text: str | None) -> tuple[int, int] | None:
    version = parse(text)
    if not version:
        return None
    return (version[0], version[1] if len(version) > 1 else 0)


def newer(a: str | None, b: str | None) -> bool:
    """True when a is a newer major.minor than b (both known)."""
    va, vb = major_minor(a), major_minor(b)
    return va is not None and vb is not None and va > vb
