"""FlagCX's settings: the FLAGCX_* variables in force, and those that cannot do what they say.

FlagCX reads its settings from the environment and, on its first lookup, from `~/.flagcx.conf`
then `/etc/flagcx.conf` (flagcx/service/param.cc, `initEnv`): each line `KEY=VALUE`, split at
the first `=`, nothing stripped, no comments, set with `setenv(key, value, 0)`. So the
environment wins over both files, `~/.flagcx.conf` over `/etc/flagcx.conf`, and within one file
the first line of a name wins. FlagCX finds the home folder through the password database; the
doctor reads `$HOME`, which is the same folder unless someone changed it.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from importlib import resources

from checks.base import Context, Finding, Group, check
from wizard.host.base import is_secret_name

# Interface and device lists FlagCX and NCCL match the same way (FlagCX copies NCCL's code).
IFNAME_SETTINGS = ("FLAGCX_SOCKET_IFNAME", "NCCL_SOCKET_IFNAME")
HCA_SETTINGS = ("FLAGCX_IB_HCA", "NCCL_IB_HCA")

# The literal names and FLAGCX_PARAM(Name, "SUFFIX", ...) definitions in FlagCX's sources.
_NAME_PATTERN = r'"FLAGCX_[A-Z0-9_]+"|FLAGCX_PARAM\([A-Za-z0-9_]+, *"[A-Z0-9_]+"'
_SOURCES = ("*.cc", "*.cpp", "*.cu", "*.h", "*.hpp", "*.py")
_PARAM = re.compile(r'FLAGCX_PARAM\([A-Za-z0-9_]+, *"')


@dataclass(frozen=True)
class Setting:
    name: str
    value: str
    source: str  # "environment", or the conf file it came from
    shadows: tuple[str, ...] = ()  # the sources whose value for the name it overrides

    @property
    def shown(self) -> str:
        value = "(set, not shown)" if is_secret_name(self.name) else repr(self.value)[1:-1]
        line = f"{self.name}={value} ({self.source})"
        return line + (f"; overrides {', '.join(self.shadows)}" if self.shadows else "")


def conf_entries(text: str) -> dict[str, str]:
    """A conf file's settings as FlagCX's setEnvFile reads them."""
    entries: dict[str, str] = {}
    for line in text.split("\n"):
        key, sep, value = line.partition("=")
        if sep and key:
            entries.setdefault(key[:1023], value[:1023])
    return entries


def conf_files(ctx: Context) -> list[str]:
    home = ctx.host.getenv("HOME")
    return [*([f"{home.rstrip('/')}/.flagcx.conf"] if home else []), "/etc/flagcx.conf"]


def settings(ctx: Context) -> list[Setting]:
    """Every setting in force for FlagCX, from the environment (FLAGCX_*, and the NCCL lists
    the doctor checks) and the conf files, each with the source that wins."""
    host = ctx.host
    layers: list[tuple[str, dict[str, str]]] = []
    names = [*host.env_names("FLAGCX_"), "NCCL_SOCKET_IFNAME", "NCCL_IB_HCA"]
    env = {n: v for n in names if (v := host.getenv(n)) is not None}
    layers.append(("environment", env))
    for path in conf_files(ctx):
        text = host.read_text(path)
        if text is not None:
            layers.append((path, conf_entries(text)))
    found: dict[str, Setting] = {}
    for source, entries in layers:
        for name, value in entries.items():
            if name in found:
                first = found[name]
                found[name] = Setting(name, first.value, first.source, (*first.shadows, source))
            else:
                found[name] = Setting(name, value, source)
    return sorted(found.values(), key=lambda s: s.name)


def known_names(ctx: Context) -> tuple[frozenset[str], str]:
    """The FLAGCX_* names this host's FlagCX reads, and where that list came from: the
    checkout's own sources when the doctor found one, else the names FlagCX v0.13 reads."""
    checkout = ctx.fact("flagcx.real_path") or ""
    if checkout:
        includes = [f"--include={glob}" for glob in _SOURCES]
        dirs = [f"{checkout}/flagcx", f"{checkout}/plugin"]
        grep = ctx.host.run(["grep", "-rhoE", *includes, _NAME_PATTERN, *dirs], timeout=20)
        names = {_PARAM.sub('"FLAGCX_', m).strip('"') for m in grep.stdout.splitlines()}
        if names:
            return frozenset(names), f"the sources of {checkout}"
    text = resources.files("checks").joinpath("flagcx_env_names.txt").read_text()
    shipped = frozenset(n for n in text.split("\n") if n and not n.startswith("#"))
    return shipped, "FlagCX v0.13 (its docs/environment_variables.md and sources)"


def parse_list(value: str) -> tuple[bool, bool, list[tuple[str, int]]]:
    """FlagCX's (and NCCL's) `[^][=]name[:port],...` list: exclude, exact, (prefix, port)
    with port -1 for any, as parseStringList in flagcx/service/utils.cc reads it."""
    exclude = value.startswith("^")
    value = value[1:] if exclude else value
    exact = value.startswith("=")
    value = value[1:] if exact else value
    items = []
    for item in value.split(","):
        name, colon, port = item.partition(":")
        if name:
            digits = re.match(r"-?\d+", port)
            items.append((name, (int(digits.group()) if digits else 0) if colon else -1))
    return exclude, exact, items


def chosen(value: str, candidates: list[tuple[str, int]]) -> list[tuple[str, int]]:
    """The (name, port) candidates a list selects, as matchIfList does."""
    exclude, exact, items = parse_list(value)

    def listed(name: str, port: int) -> bool:
        return any(
            (name == prefix if exact else name.startswith(prefix))
            and (want == -1 or port == -1 or want == port)
            for prefix, want in items
        )

    return [c for c in candidates if listed(*c) != exclude] if items else candidates


def problems(ctx: Context, setting: Setting) -> list[str]:
    """Why a setting's value cannot work on this host (empty: nothing wrong seen)."""
    host, name, value = ctx.host, setting.name, setting.value
    if name in IFNAME_SETTINGS:
        interfaces = sorted(os.path.basename(p) for p in host.glob("/sys/class/net/*"))
        if name.startswith("FLAGCX_") and len(value) < 2:
            return [f"{name}={value!r} is ignored: FlagCX reads only values of 2+ characters"]
        if interfaces and not chosen(value, [(i, -1) for i in interfaces]):
            return [f"{name}={value} matches no interface (there are {', '.join(interfaces)})"]
    if name in HCA_SETTINGS:
        sysfs = "/sys/class/infiniband"
        devices = sorted(os.path.basename(p) for p in host.glob(f"{sysfs}/*"))
        ports = [
            (d, int(os.path.basename(p)))
            for d in devices
            for p in host.glob(f"{sysfs}/{d}/ports/*")
            if os.path.basename(p).isdigit()
        ]
        if not devices:
            return [f"{name}={value} names RDMA devices, and this host has none"]
        if not chosen(value, ports):
            return [f"{name}={value} selects no RDMA device port (there are {', '.join(devices)})"]
    if value != value.strip():
        return [f"{name}'s value has leading or trailing spaces, which FlagCX keeps"]
    return []


@check("flagcx.env", "FlagCX settings", Group.TESTS, after=("flagcx",))
def flagcx_env(ctx: Context) -> Finding:
    found = settings(ctx)
    files = conf_files(ctx)
    if not found:
        return ctx.skip(
            f"no FLAGCX_* settings (environment, {', '.join(files)}): FlagCX's defaults",
            facts={"flagcx.settings": 0},
        )
    known, known_from = known_names(ctx)
    details = [s.shown for s in found]
    warnings = []
    for setting in found:
        if setting.name.startswith("FLAGCX_") and setting.name not in known:
            warnings.append(f"{setting.name} is not read by {known_from}: it does nothing")
        elif setting.source != "environment" and not re.fullmatch(r"[A-Za-z_]\w*", setting.name):
            warnings.append(f"{setting.source}: {setting.name!r} is not a variable name")
        warnings += problems(ctx, setting)
    facts = {"flagcx.settings": len(found), "flagcx.settings_unworkable": len(warnings)}
    summary = f"{len(found)} setting(s): " + ", ".join(s.name for s in found)
    if warnings:
        return ctx.warn(
            f"{len(warnings)} problem(s) in {len(found)} setting(s): {warnings[0]}",
            details=warnings + details,
            facts=facts,
        )
    return ctx.ok(summary, details=details, facts=facts)
