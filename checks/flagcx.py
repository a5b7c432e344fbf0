"""FlagCX's checkout: where it is, which commit, whether it is built.

Across hosts this is what must line up: mpirun starts one path on every host, and ranks of
one run should run one commit. The places looked at are the ones users put it: `~/FlagCX`
(where `wizard run flagcx` clones it and looks first), `$FLAGCX_HOME`, `/workspace/*/FlagCX`
and `/root/FlagCX` (FlagCX's guide: a shared /workspace and a link in /root).
"""

from __future__ import annotations

import shlex
from typing import Any

from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro
from wizard.host import Host

DEFAULT = "~/FlagCX"


def candidates(ctx: Context) -> list[str]:
    host = ctx.host
    home = host.getenv("HOME") or ""
    found = [f"{home}/FlagCX"] if home else []  # first: where the flagcx recipe looks
    found += [p for p in [host.getenv("FLAGCX_HOME") or ""] if p]
    found += [*sorted(host.glob("/workspace/*/FlagCX")), "/root/FlagCX"]
    return list(dict.fromkeys(p.rstrip("/") for p in found))


@check("flagcx", "FlagCX checkout", Group.TESTS, after=("os",))
def flagcx(ctx: Context) -> Finding:
    host = ctx.host
    found = [
        p for p in candidates(ctx) if host.is_file(f"{p}/Makefile") and host.is_dir(f"{p}/flagcx")
    ]
    if not found:
        return ctx.skip(
            f"no FlagCX checkout yet (`wizard run flagcx` clones it to {DEFAULT})",
            facts={"flagcx.path": ""},
        )
    path = found[0]
    real = host.realpath(path)
    layout = read_checkout(host, real)  # its commit too
    commit = layout.get("checkout.commit", "")
    built = host.is_file(f"{real}/build/lib/libflagcx.so")
    facts = {
        "flagcx.path": path,
        "flagcx.real_path": real,
        "flagcx.commit": commit,
        "flagcx.built": built,
        "flagcx.layout": layout["checkout.layout"],
    }
    where = path if real == path else f"{path} (-> {real})"
    details = [f"also at {p}" for p in found[1:]]
    details.append(f"layout {layout['checkout.layout']}: {layout['checkout.has']}")
    summary = f"{where}, commit {commit or 'unknown (not a git checkout)'}"
    summary += f", layout {layout['checkout.layout']}"
    summary += "; built" if built else "; not built yet"
    if layout.get("checkout.json") == "missing":
        return ctx.warn(
            f"{summary}; third-party/json (nlohmann/json) is missing and not installed",
            details=details,
            facts=facts,
            fixes=json_fixes(ctx, real),
        )
    return ctx.ok(summary, details=details, facts=facts)


def json_fixes(ctx: Context, path: str) -> list[Fix]:
    """The nlohmann/json headers current FlagCX builds against: its submodule where the network
    reaches github.com, else the distro's package (on the compiler's own search path)."""
    submodule = Fix(
        "Fetch FlagCX's third-party/json submodule (needs github.com)",
        [f"git -C {shlex.quote(path)} submodule update --init --depth 1 third-party/json"],
        changes=f"adds {path}/third-party/json",
    )
    packages = {
        "debian": ["nlohmann-json3-dev"],
        "rhel": ["json-devel"],
        "suse": ["nlohmann_json-devel"],
        "arch": ["nlohmann-json"],
    }
    distro = Distro.of(ctx).install_fix(
        "Install nlohmann/json from the distro", packages, "installs /usr/include/nlohmann"
    )
    return [*distro, submodule]


# -- what a checkout has -------------------------------------------------------------------
# FlagCX moves its tests between releases; the recipe follows what the checkout it is given
# has, read here, rather than a remembered path. Two layouts are known:
#   v0.6:  perf tests built in test/perf as ./test_<name>; one gtest `main` in test/unittest.
#   v0.7+: perf tests in test/perf/host_api, built as build/bin/perf_<name>; unit tests per
#          component (test/unittest/<comp>/build/bin/<comp>_unit_tests and _mpi_tests); the
#          nlohmann/json headers from third-party/json; `pip install .` at the root builds
#          the library and the torch plugin together.
HOST_API = "test/perf/host_api"
JSON_HEADER = "nlohmann/json.hpp"
VENDORED_JSON = "third-party/json/single_include"
SYSTEM_JSON = "/usr/include"


def read_checkout(host: Host, path: str) -> dict[str, Any]:
    """Facts `checkout.*` about the FlagCX checkout at `path` (nothing there: exists False)."""
    facts: dict[str, Any] = {"checkout.exists": False, "checkout.layout": ""}
    if not (host.is_file(f"{path}/Makefile") and host.is_dir(f"{path}/flagcx")):
        return facts
    head = host.run(["git", "-C", path, "rev-parse", "--short=12", "HEAD"], timeout=10)
    facts |= {"checkout.exists": True, "checkout.commit": head.stdout.strip() if head.ok else ""}
    if host.is_file(f"{path}/{HOST_API}/Makefile"):
        facts |= {
            "checkout.layout": "v0.7+",
            "checkout.perf_dir": HOST_API,
            "checkout.perf_bin": "./build/bin/perf_",
            "checkout.perf_tests": _sources(host, f"{path}/{HOST_API}"),
            "checkout.unit_tests": sorted(
                p.split("/")[-2] for p in host.glob(f"{path}/test/unittest/*/Makefile")
            ),
        }
        facts |= _json(host, path)
    elif host.is_file(f"{path}/test/perf/Makefile") and host.glob(f"{path}/test/perf/test_*.cpp"):
        facts |= {
            "checkout.layout": "v0.6",
            "checkout.perf_dir": "test/perf",
            "checkout.perf_bin": "./test_",
            "checkout.perf_tests": _sources(host, f"{path}/test/perf"),
            "checkout.unit_tests": ["main"]
            if host.is_file(f"{path}/test/unittest/Makefile")
            else [],
            "checkout.plugin_path": f"{path}/plugin/torch:",  # built in place, not installed
        }
    else:  # the steps that depend on the layout say what is there instead, from the root
        facts |= {"checkout.layout": "unknown", "checkout.perf_dir": "."}
    facts["checkout.has"] = _has(host, path)
    return facts


def _sources(host: Host, folder: str) -> list[str]:
    """The perf tests a folder has, by name: test_allreduce.cpp -> allreduce."""
    names = (p.rsplit("/", 1)[-1].removeprefix("test_").removesuffix(".cpp") for p in
             host.glob(f"{folder}/test_*.cpp"))  # fmt: skip
    return sorted(names)


def _json(host: Host, path: str) -> dict[str, Any]:
    """Where the build finds nlohmann/json: FlagCX's submodule, else the distro's package
    (nlohmann-json3-dev puts it on the compiler's own search path)."""
    if host.is_file(f"{path}/{VENDORED_JSON}/{JSON_HEADER}"):
        return {"checkout.json": "vendored", "checkout.json_include": ""}
    if host.is_file(f"{SYSTEM_JSON}/{JSON_HEADER}"):
        return {"checkout.json": "system", "checkout.json_include": SYSTEM_JSON}
    return {"checkout.json": "missing", "checkout.json_include": ""}


def _has(host: Host, path: str) -> str:
    """What the checkout's test folders hold, for messages when something expected is not
    there (upstream moves files between releases)."""
    parts = []
    for folder in ("test/perf", HOST_API, "test/unittest"):
        entries = sorted(p.rsplit("/", 1)[-1] for p in host.glob(f"{path}/{folder}/*"))
        if entries:
            shown = ", ".join(entries[:12]) + (", ..." if len(entries) > 12 else "")
            parts.append(f"{folder}: {shown}")
    return "; ".join(parts) or "no test folder"
