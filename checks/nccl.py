"""NCCL: where nccl.h is, which version, the library beside it, and the CCL_HOME for FlagCX."""

from __future__ import annotations

import os
import re
import shlex
from dataclasses import dataclass

from checks import cuda, python, versions
from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro
from wizard.host import Host

MULTIARCH = {"x86_64": "x86_64-linux-gnu", "aarch64": "aarch64-linux-gnu"}


@dataclass(frozen=True)
class Header:
    prefix: str  # CCL_HOME: nccl.h is in prefix/include
    version: str | None
    source: str


def header_version(text: str) -> str | None:
    parts = [re.search(rf"#define\s+NCCL_{p}\s+(\d+)", text) for p in ("MAJOR", "MINOR", "PATCH")]
    if not all(parts):
        return None
    return ".".join(m.group(1) for m in parts if m)


def find_headers(ctx: Context) -> list[Header]:
    host = ctx.host
    candidates: list[tuple[str, str]] = []
    for env in ("NCCL_HOME", "CCL_HOME"):
        if value := host.getenv(env):
            candidates.append((value.rstrip("/"), env))
    if prefix := user_prefix(ctx):  # where the wizard's rootless fixes link a wheel's NCCL
        candidates.append((prefix, "~/.local/nccl"))
    candidates += [
        ("/usr", "system"),
        ("/usr/local", "/usr/local"),
        ("/usr/local/nccl/build", "FlagCX's default CCL_HOME"),
    ]
    toolkits, _ = cuda.find_toolkits(host)  # memoised probes: shared with cuda.toolkit
    if toolkits:
        candidates.append((toolkits[0].home, "CUDA toolkit"))
    info = python.probe(host) or {}
    candidates += [(folder, "PyPI wheel") for folder in info.get("nccl_dirs", [])]
    headers, seen = [], set()
    for prefix, source in candidates:
        path = f"{prefix}/include/nccl.h"
        if path in seen or not host.is_file(path):
            continue
        seen.add(path)
        headers.append(Header(prefix, header_version(host.read_text(path, 16384) or ""), source))
    return headers


@check("nccl.header", "NCCL header", Group.COMMUNICATION, after=("os", "gpu.nvidia"))
def nccl_header(ctx: Context) -> Finding:
    headers = find_headers(ctx)
    if ctx.vendor != "nvidia":
        return ctx.skip("not needed for this target")
    torch_nccl = _torch_nccl(ctx.host)
    details = [f"{h.prefix}/include/nccl.h: NCCL {h.version or '?'} ({h.source})" for h in headers]
    if torch_nccl:
        details.append(f"PyTorch's NCCL: {torch_nccl}")
    if not headers:
        return ctx.fail(
            "nccl.h not found (NCCL_HOME, /usr/include, /usr/local/nccl/build, CUDA, wheels)",
            details=details,
            fixes=header_fixes(ctx),
        )
    chosen = headers[0]
    facts = {
        "nccl.home": chosen.prefix,
        "nccl.version": chosen.version or "",
        "nccl.torch_version": torch_nccl or "",
    }
    summary = f"NCCL {chosen.version} at {chosen.prefix}/include (CCL_HOME={chosen.prefix})"
    if torch_nccl and torch_nccl != chosen.version:
        summary += f"; PyTorch uses {torch_nccl}"
    return ctx.ok(summary, details=details, facts=facts)


def _torch_nccl(host: Host) -> str | None:
    info = python.probe(host) or {}
    if not info.get("torch"):
        return None
    wheels = info.get("nccl_wheels") or {}
    return next(iter(wheels.values()), None)


def user_prefix(ctx: Context) -> str | None:
    """Where the wizard's rootless fixes link NCCL (~/.local/nccl), as mpi.user_prefix does
    for MPI; None with HOME unset."""
    home = ctx.host.getenv("HOME")
    return f"{home}/.local/nccl" if home else None


def header_fixes(ctx: Context) -> list[Fix]:
    """Least change first: a wheel (no root), then NVIDIA's packages."""
    q = shlex.quote
    distro = Distro.of(ctx)
    toolkits, _ = cuda.find_toolkits(ctx.host)
    version = versions.major_minor(toolkits[0].version if toolkits else ctx.fact("driver.cuda"))
    major = version[0] if version else 12
    fixes = []
    if prefix := user_prefix(ctx):  # with HOME unset there is no rootless place for it
        fixes.append(
            Fix(
                f"Install NCCL from the nvidia-nccl-cu{major} wheel, without root",
                [
                    # A venv of its own: a distro's Python refuses pip installs (PEP 668).
                    f"python3 -m venv {q(prefix)}/venv",
                    f"{q(prefix)}/venv/bin/python -m pip install nvidia-nccl-cu{major}",
                    f"NCCL_DIR=$({q(prefix)}/venv/bin/python -c "
                    "'import nvidia.nccl as m; print(list(m.__path__)[0])')",
                    *link_commands('"$NCCL_DIR/include"', '"$NCCL_DIR/lib/libnccl.so.2"', prefix),
                ],
                changes=f"a virtual environment at {prefix}/venv holding the wheel, linked as "
                f"{prefix}/include and {prefix}/lib (CCL_HOME={prefix}). "
                + _RUNTIME.format(prefix),
                home=ctx.host.getenv("HOME") or "",
            )
        )
    return [
        *fixes,
        *distro.nvidia_packages_fix(
            "Install libnccl-dev from NVIDIA's repository",
            {"debian": ["libnccl2", "libnccl-dev"], "rhel": ["libnccl", "libnccl-devel"]},
            "adds NVIDIA's repository and installs NCCL under /usr (CCL_HOME=/usr)",
        ),
    ]


def link_commands(include: str, library: str, home: str) -> list[str]:
    """A folder whose lib/libnccl.so lets `-lnccl` link against a library shipped only as
    libnccl.so.2 (as the PyPI wheels ship it). `include` and `library` are shell words,
    already quoted (a path through shlex.quote, or a double-quoted "$VARIABLE/..."); `home`
    is a path."""
    q = shlex.quote
    return [
        f"mkdir -p {q(home)}/lib",
        f"ln -sfn {include} {q(home)}/include",
        f"ln -sf {library} {q(home)}/lib/libnccl.so.2",
        f"ln -sf {library} {q(home)}/lib/libnccl.so",
    ]


def library_dirs(ctx: Context, prefix: str) -> list[str]:
    dirs = [f"{prefix}/lib", f"{prefix}/lib64"]
    if prefix in ("/usr", "/usr/local"):
        multiarch = MULTIARCH.get(ctx.fact("os.arch") or "", "x86_64-linux-gnu")
        dirs.insert(0, f"{prefix}/lib/{multiarch}")
    return dirs


@check(
    "nccl.library", "NCCL library", Group.COMMUNICATION, after=("os", "gpu.nvidia", "nccl.header")
)
def nccl_library(ctx: Context) -> Finding:
    if ctx.vendor != "nvidia":
        return ctx.skip("not needed for this target")
    prefix = ctx.fact("nccl.home")
    if not prefix:
        return ctx.skip("no nccl.h, so no library to match")
    host = ctx.host
    for folder in library_dirs(ctx, prefix):
        found = {os.path.basename(p): p for p in host.glob(f"{folder}/libnccl.so*")}
        if not found:
            continue
        soname = found.get("libnccl.so.2") or found.get("libnccl.so")
        real = host.realpath(soname) if soname else next(iter(found.values()))
        lib_version = _library_version(os.path.basename(real))
        facts = {"nccl.lib": folder, "nccl.lib_version": lib_version or ""}
        details = [
            f"{p}" + (f" -> {host.realpath(p)}" if host.realpath(p) != p else "")
            for p in found.values()
        ]
        header_version = ctx.fact("nccl.version")
        if "libnccl.so" not in found:
            return ctx.fail(
                f"only libnccl.so.2 in {folder}: `-lnccl` needs a libnccl.so link",
                details=details,
                facts=facts,
                fixes=_link_fixes(ctx, f"{prefix}/include", f"{folder}/libnccl.so.2"),
            )
        if not lib_version and (lib_version := _wheel_version(ctx, real)):
            facts["nccl.lib_version"] = lib_version
        if lib_version and header_version and lib_version != header_version:
            return ctx.warn(
                f"libnccl {lib_version} in {folder} does not match nccl.h {header_version}",
                details=details,
                facts=facts,
            )
        return ctx.ok(
            f"libnccl {lib_version or '(version unknown)'} in {folder}",
            details=details,
            facts=facts,
        )
    searched = ", ".join(library_dirs(ctx, prefix))
    return ctx.fail(
        f"nccl.h is in {prefix}/include but no libnccl.so* in {searched}",
        fixes=header_fixes(ctx),
    )


def _link_fixes(ctx: Context, include: str, library: str) -> list[Fix]:
    """A CCL_HOME of links: under ~/.local/nccl without root, else (no HOME) /usr/local/nccl."""
    title = f"Make a CCL_HOME whose lib/libnccl.so links to {library}"
    if prefix := user_prefix(ctx):
        commands = link_commands(shlex.quote(include), shlex.quote(library), prefix)
        home = ctx.host.getenv("HOME") or ""
        return [Fix(title, commands, changes=_links_changes(prefix), home=home)]
    distro = Distro.of(ctx)
    prefix = "/usr/local/nccl"
    words = shlex.quote(include), shlex.quote(library)
    commands = [distro.sudo(c) for c in link_commands(*words, prefix)]
    return [Fix(title, commands, needs_root=True, changes=_links_changes(prefix))]


def _links_changes(prefix: str) -> str:
    return f"creates {prefix} (symbolic links only); use CCL_HOME={prefix}. " + _RUNTIME.format(
        prefix
    )


# What a user of a linked or wheel NCCL must know beyond `-lnccl`.
_RUNTIME = (
    "Programs find libnccl.so.2 at run time through LD_LIBRARY_PATH={0}/lib (the flagcx "
    "recipe sets it) or an rpath; nccl.h includes CUDA's headers, so the toolkit's include "
    "folder must be on the compiler's path too (DEVICE_HOME)."
)


def _wheel_version(ctx: Context, library: str) -> str | None:
    """A wheel's libnccl.so.2 carries no version in its name; the wheel's dist-info folder,
    in the site-packages that holds nvidia/nccl/lib, does."""
    site, found, _ = library.partition("/nvidia/nccl/lib/")
    if not found:
        return None
    for info in ctx.host.glob(f"{site}/nvidia_nccl_cu*.dist-info"):
        version = os.path.basename(info)[: -len(".dist-info")].partition("-")[2]
        if version:
            return version
    return None


def _library_version(filename: str) -> str | None:
    match = re.match(r"libnccl\.so\.(\d+\.\d+\.\d+)$", filename)
    return match.group(1) if match else None
