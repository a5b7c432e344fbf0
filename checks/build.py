"""Build tools: compilers, make, cmake and git."""

from __future__ import annotations

import re

from checks import versions
from checks.base import Context, Finding, Group, check, parallel
from checks.distro import Distro

CMAKE_MIN = (3, 18)

# (program, required, version pattern)
TOOLS = (
    ("gcc", True, r"(\d+\.\d+(?:\.\d+)?)\s*$"),
    ("g++", True, r"(\d+\.\d+(?:\.\d+)?)\s*$"),
    ("make", True, r"GNU Make (\S+)"),
    ("cmake", False, r"cmake version (\S+)"),
    ("git", False, r"git version (\S+)"),
)


def tool_version(ctx: Context, program: str, pattern: str) -> tuple[str | None, str | None]:
    """(path, version) of a tool on PATH; (None, None) when absent."""
    path = ctx.host.which(program)
    if not path:
        return None, None
    result = ctx.host.run([path, "--version"], timeout=10)
    first = result.output.strip().splitlines()[0] if result.output.strip() else ""
    match = re.search(pattern, first)
    return path, match.group(1) if match else None


@check("build.tools", "Build tools", Group.SYSTEM, after=("os",))
def build_tools(ctx: Context) -> Finding:
    found: dict[str, str | None] = {}
    missing_required, missing_optional = [], []
    answers = parallel(lambda tool: tool_version(ctx, tool[0], tool[2]), list(TOOLS))
    for (program, required, _), (path, version) in zip(TOOLS, answers, strict=True):
        if path is None:
            (missing_required if required else missing_optional).append(program)
        else:
            found[program] = version
    facts = {f"build.{name.replace('+', 'x')}": version or "" for name, version in found.items()}
    summary = ", ".join(f"{name} {version or '?'}" for name, version in found.items())
    distro = Distro.of(ctx)
    fixes = distro.install_fix(
        "Install compilers, make, cmake and git",
        {
            "debian": ["build-essential", "cmake", "git"],
            "rhel": ["gcc", "gcc-c++", "make", "cmake", "git"],
            "suse": ["gcc", "gcc-c++", "make", "cmake", "git"],
            "arch": ["base-devel", "cmake", "git"],
        },
        "installs the distro's toolchain",
    )
    if missing_required:
        return ctx.fail(
            f"missing {', '.join(missing_required)}" + (f"; have {summary}" if summary else ""),
            facts=facts,
            fixes=fixes,
        )
    problems = []
    if missing_optional:
        problems.append(f"no {', '.join(missing_optional)}")
    cmake = versions.parse(found.get("cmake"))
    if cmake and cmake < CMAKE_MIN:
        problems.append(f"cmake {found['cmake']} is older than {'.'.join(map(str, CMAKE_MIN))}")
        fixes = [*fixes]
    if problems:
        return ctx.warn(f"{summary}; {'; '.join(problems)}", facts=facts, fixes=fixes)
    return ctx.ok(summary, facts=facts)
