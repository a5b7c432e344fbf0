"""cuDNN: its headers and library, their versions, and where PyTorch's wheel keeps its own.

FlagCX does not use cuDNN; FlexFlow's build does (`config/config.linux` takes its path), so
a missing cuDNN is reported, not blocking, with the distro's packages from NVIDIA's
repository or, without root, PyPI's `nvidia-cudnn-cuXX` wheel.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from checks import python, versions
from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro
from checks.nccl import MULTIARCH

HEADERS = ("cudnn_version.h", "cudnn.h")  # cuDNN 8+ keeps the version in the first


@dataclass(frozen=True)
class Install:
    prefix: str  # CUDNN_HOME: headers in prefix/include, library in prefix/lib(64)
    source: str
    version: str | None
    include: str | None
    lib: str | None


def header_version(text: str) -> str | None:
    parts = [re.search(rf"#define\s+CUDNN_{p}\s+(\d+)", text) for p in ("MAJOR", "MINOR")]
    if not all(parts):
        return None
    patch = re.search(r"#define\s+CUDNN_PATCHLEVEL\s+(\d+)", text)
    found = [m.group(1) for m in parts if m] + ([patch.group(1)] if patch else [])
    return ".".join(found)


def _prefixes(ctx: Context) -> list[tuple[str, str]]:
    host = ctx.host
    found = [
        (value.rstrip("/"), env)
        for env in ("CUDNN_HOME", "CUDNN_PATH")
        if (value := host.getenv(env))
    ]
    if cuda_home := ctx.fact("cuda.home"):
        found.append((cuda_home, "the CUDA toolkit"))
    found.append(("/usr", "the system"))
    info = python.probe(host)
    for site in (info or {}).get("sites", []):
        found.append((f"{site}/nvidia/cudnn", "a PyPI wheel (nvidia-cudnn)"))
    return found


def _look(ctx: Context, prefix: str, source: str) -> Install | None:
    host = ctx.host
    multiarch = MULTIARCH.get(ctx.fact("os.arch") or "", "x86_64-linux-gnu")
    include = next(
        (
            f"{folder}/{name}"
            for folder in (f"{prefix}/include", f"{prefix}/include/{multiarch}")
            for name in HEADERS
            if host.is_file(f"{folder}/{name}")
        ),
        None,
    )
    lib = next(
        (
            match
            for folder in (f"{prefix}/lib", f"{prefix}/lib64", f"{prefix}/lib/{multiarch}")
            for match in sorted(host.glob(f"{folder}/libcudnn.so.*"))
        ),
        None,
    )
    if include is None and lib is None:
        return None
    version = header_version(host.read_text(include) or "") if include else None
    if version is None and lib:
        real = re.search(r"libcudnn\.so\.([\d.]+)$", host.realpath(lib))
        version = real.group(1) if real else None
    return Install(prefix, source, version, include, lib)


@check(
    "cudnn", "cuDNN", Group.ACCELERATOR, after=("os", "gpu.nvidia", "cuda.toolkit", "python.env")
)
def cudnn(ctx: Context) -> Finding:
    installs = [i for p, s in _prefixes(ctx) if (i := _look(ctx, p, s))]
    complete = [i for i in installs if i.include and i.lib]
    details = [
        f"{i.prefix} ({i.source}): cuDNN {i.version or '?'}; "
        f"headers {i.include or 'missing'}; library {i.lib or 'missing'}"
        for i in installs
    ]
    if complete:
        best = complete[0]
        facts = {
            "cudnn.version": best.version or "",
            "cudnn.home": best.prefix,
            "cudnn.include": best.include.rsplit("/", 1)[0] if best.include else "",
            "cudnn.lib": best.lib.rsplit("/", 1)[0] if best.lib else "",
        }
        return ctx.ok(
            f"cuDNN {best.version or '?'} in {best.prefix} ({best.source})",
            details=details,
            facts=facts,
        )
    fixes = _install_fixes(ctx)
    if installs:
        half = installs[0]
        missing = "headers" if half.include is None else "library"
        return ctx.warn(
            f"cuDNN {half.version or '?'} in {half.prefix} without its {missing} (FlexFlow "
            "builds need both)",
            details=details,
            facts={"cudnn.version": ""},
            fixes=fixes,
        )
    return ctx.skip(
        "not found (FlagCX does not need it; FlexFlow does)",
        details=["looked in CUDNN_HOME, the CUDA toolkit, /usr and the Python's nvidia wheels"],
        facts={"cudnn.version": ""},
        fixes=fixes,
    )


def _install_fixes(ctx: Context) -> list[Fix]:
    """NVIDIA's packages for the toolkit's CUDA major (its repository, as the CUDA check
    adds it), or the PyPI wheel into the user's Python without root."""
    cuda = versions.major_minor(ctx.fact("cuda.version") or ctx.fact("driver.cuda") or "")
    major = cuda[0] if cuda else 12
    distro = Distro.of(ctx)
    fixes = distro.install_fix(
        f"Install cuDNN 9 for CUDA {major} from NVIDIA's repository",
        {"debian": [f"libcudnn9-dev-cuda-{major}"], "rhel": [f"libcudnn9-devel-cuda-{major}"]},
        "installs cuDNN's headers and library under /usr (needs NVIDIA's CUDA repository)",
    )
    info = python.probe(ctx.host)
    if info is not None:
        fixes.append(
            python.pip_fix(
                ctx,
                info,
                f"Install PyPI's nvidia-cudnn-cu{major} wheel",
                f"nvidia-cudnn-cu{major}",
                "installs cuDNN under site-packages/nvidia/cudnn (the check finds it there; "
                "pass it as CUDNN_HOME to builds)",
            )
        )
    return fixes
