"""googletest: headers and a built library, or sources that still need building."""

from __future__ import annotations

import shlex

from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro
from checks.nccl import MULTIARCH

SOURCE_DIR = "/usr/src/googletest"
SYSTEM_INCLUDES = ("/usr/include", "/usr/local/include")


def prefixes(ctx: Context) -> list[str]:
    found = [p.rstrip("/") for env in ("GTEST_ROOT", "GTEST_HOME") if (p := ctx.host.getenv(env))]
    home = ctx.host.getenv("HOME")
    return [*found, "/usr", "/usr/local", *([f"{home}/.local"] if home else [])]


def library_dirs(ctx: Context, prefix: str) -> list[str]:
    multiarch = MULTIARCH.get(ctx.fact("os.arch") or "", "x86_64-linux-gnu")
    return [f"{prefix}/lib/{multiarch}", f"{prefix}/lib", f"{prefix}/lib64"]


def build_fixes(ctx: Context, source: str) -> list[Fix]:
    """Build with cmake; into /usr/local (root) or into ~/.local (no root), both searched.
    The build folder is a private one mktemp makes (a fixed path under /tmp is one another
    user could fill first, and root installs from it)."""
    distro = Distro.of(ctx)
    home = ctx.host.getenv("HOME")
    q = shlex.quote
    make_folder = 'build=$(mktemp -d "${TMPDIR:-/tmp}/wizard-googletest.XXXXXX")'
    configure = (
        f'cmake -S {q(source)} -B "$build" -DCMAKE_BUILD_TYPE=Release '
        "-DCMAKE_POSITION_INDEPENDENT_CODE=ON"
    )
    compile_ = 'cmake --build "$build" -j"$(nproc)"'
    clean = 'rm -rf "$build"'
    fixes = [
        Fix(
            f"Build googletest from {source} and install it into /usr/local",
            [
                make_folder,
                configure,
                compile_,
                distro.sudo('cmake --install "$build" --prefix /usr/local'),
                clean,
            ],
            needs_root=True,
            changes="installs gtest/gmock headers and static libraries under /usr/local",
        )
    ]
    if home:
        prefix = f"{home}/.local"
        fixes.append(
            Fix(
                f"Build googletest from {source} and install it into {prefix} (no root)",
                [
                    make_folder,
                    configure,
                    compile_,
                    f'cmake --install "$build" --prefix {q(prefix)}',
                    clean,
                ],
                changes=f"installs gtest/gmock headers and static libraries under {prefix}",
                home=home,
            )
        )
    return fixes


@check("gtest", "googletest", Group.TESTS, after=("os",))
def gtest(ctx: Context) -> Finding:
    host = ctx.host
    distro = Distro.of(ctx)
    header_prefix = next(
        (p for p in prefixes(ctx) if host.is_file(f"{p}/include/gtest/gtest.h")), None
    )
    libraries = [
        path
        for prefix in prefixes(ctx)
        for folder in library_dirs(ctx, prefix)
        for path in host.glob(f"{folder}/libgtest.*")
        if path.endswith((".a", ".so"))
    ]
    source = SOURCE_DIR if host.is_file(f"{SOURCE_DIR}/CMakeLists.txt") else None
    install = distro.install_fix(
        "Install googletest from the distro",
        {"debian": ["libgtest-dev"], "rhel": ["gtest-devel"], "suse": ["gtest"], "arch": ["gtest"]},
        "installs gtest headers and libraries under /usr",
    )
    if header_prefix and libraries:
        library = libraries[0]
        include = f"{header_prefix}/include"
        facts = {
            "gtest.root": header_prefix,
            "gtest.include": include,
            # What a compiler needs added (never a default folder: that reorders
            # #include_next and breaks the C++ library's headers).
            "gtest.extra_include": "" if include in SYSTEM_INCLUDES else include,
            "gtest.lib": library.rsplit("/", 1)[0],
        }
        return ctx.ok(
            f"headers in {header_prefix}/include, {library}", details=libraries, facts=facts
        )
    if source:
        what = "headers but no built library" if header_prefix else "sources only"
        return ctx.warn(
            f"googletest {what}: {SOURCE_DIR} is not built",
            details=["FlagCX's unit tests link libgtest; the perf tests do not need it"],
            fixes=build_fixes(ctx, SOURCE_DIR),
        )
    if header_prefix:
        return ctx.warn(f"gtest headers in {header_prefix}/include but no libgtest", fixes=install)
    return ctx.warn(
        "googletest not found: FlagCX's unit tests need it (the library and perf tests do not)",
        fixes=install,
    )
