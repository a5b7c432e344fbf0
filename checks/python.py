"""The active Python: interpreter, environment, pip, and what PyTorch and NCCL wheels it holds.

One probe runs in the user's `python3` (the one on PATH, so an activated venv or conda env
counts) and reads installed metadata only: importing torch costs seconds, reading it costs
milliseconds.
"""

from __future__ import annotations

import json
import shlex
from typing import Any

from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro
from wizard.host import Host

PROBE_KEY = "python3 <wizard python probe v1>"

PROBE = r"""
import glob, json, os, re, sys, sysconfig
from importlib import metadata, util

def version(name):
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None

paths = sysconfig.get_paths()
sites = sorted({paths["purelib"], paths["platlib"]})
out = {
    "executable": sys.executable,
    "version": "%d.%d.%d" % sys.version_info[:3],
    "venv": sys.prefix != sys.base_prefix,
    "prefix": sys.prefix,
    # PEP 668: pip refuses to install into a Python whose stdlib folder holds this file.
    "externally_managed": os.path.isfile(
        os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")
    ),
    "sites": sites,
    "pip": version("pip"),
    "torch": version("torch"),
    "deepspeed": version("deepspeed"),
    "nccl_wheels": {},
    "nccl_dirs": [],
}
for site in sites:
    for info in glob.glob(os.path.join(site, "nvidia_nccl_cu*.dist-info")):
        name, _, ver = os.path.basename(info)[: -len(".dist-info")].partition("-")
        out["nccl_wheels"][name.replace("_", "-")] = ver
    nccl = os.path.join(site, "nvidia", "nccl")
    if os.path.isdir(nccl):
        out["nccl_dirs"].append(nccl)
if out["torch"]:
    spec = util.find_spec("torch")
    folder = os.path.dirname(spec.origin) if spec and spec.origin else None
    out["torch_dir"] = folder
    try:
        text = open(os.path.join(folder, "version.py")).read()
        cuda = re.search(r"^cuda[^=]*=\s*'([^']*)'", text, re.M)
        out["torch_cuda"] = cuda.group(1) if cuda else None
    except (OSError, TypeError):
        out["torch_cuda"] = None
    requires = metadata.requires("torch") or []
    out["torch_requires_nccl"] = [r for r in requires if r.startswith("nvidia-nccl")]

# The CUDA libraries torch loads from its nvidia-* wheels, and any copy of the same file
# name in an LD_LIBRARY_PATH folder: the loader searches LD_LIBRARY_PATH before torch's own
# RUNPATH, so such a copy is the one torch gets (the classic "symbol ... version
# libcublas.so.11 not defined" when it is older).
def shadows():
    own = {}
    for site in sites:
        for lib in glob.glob(os.path.join(site, "nvidia", "*", "lib", "lib*.so*")):
            own.setdefault(os.path.basename(lib), lib)
    found = []
    for folder in os.environ.get("LD_LIBRARY_PATH", "").split(":"):
        if not folder or not os.path.isdir(folder):
            continue
        for name in sorted(own):
            path = os.path.join(folder, name)
            if os.path.exists(path) and os.path.realpath(path) != os.path.realpath(own[name]):
                found.append({"folder": folder, "file": name,
                              "real": os.path.basename(os.path.realpath(path)),
                              "own": own[name]})
    return found

if out["torch"]:
    wheels = {}
    for site in sites:
        for info in glob.glob(os.path.join(site, "nvidia_*.dist-info")):
            name, _, ver = os.path.basename(info)[: -len(".dist-info")].partition("-")
            wheels[name.replace("_", "-")] = ver
    out["nvidia_wheels"] = wheels
    out["shadows"] = shadows()
    out["ld_library_path"] = os.environ.get("LD_LIBRARY_PATH", "")

# conda as its files show it (nothing is run): where it is installed (CONDA_EXE, or the
# usual folders), its environments (envs/* and ~/.conda/environments.txt, each a prefix
# with conda-meta/) and the active one (CONDA_PREFIX).
def conda():
    home = os.path.expanduser("~")
    exe = os.environ.get("CONDA_EXE", "")
    bases = [os.path.dirname(os.path.dirname(os.path.realpath(exe)))] if exe else []
    homes = ("miniconda3", "anaconda3", "miniforge3", "mambaforge")
    bases += [os.path.join(home, n) for n in homes]
    bases.append("/opt/conda")
    base = next((b for b in bases if os.path.isdir(os.path.join(b, "conda-meta"))), None)
    if base is None:
        return None
    envs = {"base": base}
    try:
        listed = open(os.path.join(home, ".conda", "environments.txt")).read().split()
    except OSError:
        listed = []
    for prefix in sorted(set(glob.glob(os.path.join(base, "envs", "*"))) | set(listed)):
        prefix = prefix.rstrip("/")
        if prefix != base and os.path.isdir(os.path.join(prefix, "conda-meta")):
            envs[os.path.basename(prefix)] = prefix
    active = os.environ.get("CONDA_PREFIX", "").rstrip("/")
    name = next((n for n, p in envs.items() if p == active), os.environ.get("CONDA_DEFAULT_ENV"))
    return {"base": base, "envs": envs, "active": (name or active) if active else "",
            "active_prefix": active}

out["conda"] = conda()
print(json.dumps(out))
"""


def probe(host: Host) -> dict[str, Any] | None:
    """The probe's answer, or None when there is no python3 or it failed."""
    python = host.which("python3")
    if not python:
        return None
    result = host.run([python, "-c", PROBE], timeout=20, key=PROBE_KEY)
    if not result.ok:
        return None
    try:
        return json.loads(result.stdout)
    except ValueError:
        return None


GPU_VENV = ".venvs/gpu"  # under HOME: where pip installs go when the user's Python refuses them


def pip_fix(ctx: Context, info: dict[str, Any], title: str, packages: str, what: str) -> Fix:
    """A pip install that pip accepts for the user's Python, saying where it goes: into its
    venv or conda env; else, when that Python is externally managed (PEP 668, as on Debian
    12 and Ubuntu 24.04) or was probed before the wizard asked, into a venv of its own at
    ~/.venvs/gpu; else into it as root, or with --user."""
    python3, q = info["executable"], shlex.quote
    home = ctx.host.getenv("HOME") or ""
    active = (info.get("conda") or {}).get("active_prefix")
    into = f"{q(python3)} -m pip install {packages}"
    if info["venv"] or (active and info["prefix"] == active):
        return Fix(title, [into], changes=f"{what} into {info['prefix']}")
    managed = info.get("externally_managed")  # None: a probe recorded before it was asked
    if managed is not False and home:
        venv = f"{home}/{GPU_VENV}"
        why = "is externally managed" if managed else "may be externally managed"
        return Fix(
            f"{title}, into a new venv ({python3} {why})",
            [f"python3 -m venv {q(venv)}", f"{q(venv)}/bin/python -m pip install {packages}"],
            changes=f"{what} into a virtual environment at {venv}: {python3} {why} (PEP 668: "
            f"pip refuses to install into it). Then put the venv first on PATH (`source "
            f"{q(venv)}/bin/activate`) and run wizard again: the checks and the recipes use "
            "the python3 on PATH",
            home=home,
        )
    if ctx.fact("os.root"):
        return Fix(title, [into], changes=f"{what} into {info['prefix']}")
    return Fix(
        f"{title}, for you (pip --user)",
        [f"{q(python3)} -m pip install --user {packages}"],
        changes=f"{what} into your user site-packages under {home or '~'}/.local",
        home=home,
    )


@check("python.env", "Python", Group.SYSTEM, after=("os",))
def python_env(ctx: Context) -> Finding:
    info = probe(ctx.host)
    if info is None:
        python = ctx.host.which("python3")
        why = "python3 is not on PATH" if not python else f"{python} failed to run the probe"
        return ctx.warn(
            f"{why}; the torch plugin needs Python 3",
            fixes=Distro.of(ctx).install_fix(
                "Install Python 3 with pip and venv",
                {
                    "debian": ["python3", "python3-pip", "python3-venv"],
                    "rhel": ["python3", "python3-pip"],
                },
                "installs the distro's Python 3",
            ),
        )
    conda = info.get("conda") or {}  # absent from probes recorded before it was asked
    active = conda.get("active_prefix")
    kind = (
        "conda env" if active and info["prefix"] == active else "venv" if info["venv"] else "system"
    )
    facts = {
        "python.executable": info["executable"],
        "python.version": info["version"],
        "python.env": kind,
        "python.pip": info["pip"] or "",
        **conda_facts(conda),
    }
    summary = f"Python {info['version']} ({kind}) at {info['executable']}"
    details = [f"site-packages: {', '.join(info['sites'])}", *conda_details(conda)]
    if active and kind != "conda env":
        return ctx.warn(
            f"{summary}, not the active conda env's ({conda['active']} at {active}): the "
            "wizard checks, and the recipes run, the python3 first on PATH",
            details=details,
            facts=facts,
            fixes=[
                Fix(
                    f"Put the conda env {conda['active']} first on PATH",
                    [
                        f'export PATH={shlex.quote(active + "/bin")}:"$PATH"'
                        f"   # or: conda activate {shlex.quote(conda['active'])}"
                    ],
                    manual=True,
                )
            ],
        )
    if not info["pip"]:
        return ctx.warn(summary + "; pip is missing", details=details, facts=facts)
    details.append(f"pip {info['pip']}")
    return ctx.ok(summary + f", pip {info['pip']}", details=details, facts=facts)


def conda_facts(conda: dict[str, Any]) -> dict[str, Any]:
    if not conda:
        return {"python.conda": ""}
    return {
        "python.conda": conda["base"],
        "python.conda_envs": ",".join(conda["envs"]),
        "python.conda_active": conda["active"],
    }


def conda_details(conda: dict[str, Any]) -> list[str]:
    if not conda:
        return []
    envs = ", ".join(f"{n} ({p})" for n, p in conda["envs"].items())
    lines = [f"conda at {conda['base']}; environments: {envs}"]
    if conda["active"]:
        lines.append(f"active: {conda['active']}")
    else:
        lines.append(
            "no conda env is active: if you train in one, `conda activate NAME` and run the "
            "wizard again, so it checks that env's Python"
        )
    return lines
