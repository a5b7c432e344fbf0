"""FlagCX's checkout: where it is, which commit, whether it is built.

Across hosts this is what must line up: mpirun starts one path on every host, and ranks of
one run should run one commit. The places looked at are the ones users put it: `~/FlagCX`
(where `wizard run flagcx` clones it and looks first), `$FLAGCX_HOME`, `/workspace/*/FlagCX`
and `/root/FlagCX` (FlagCX's guide: a shared /workspace and a link in /root).
"""

from __future__ import annotations

from checks.base import Context, Finding, check

DEFAULT = "~/FlagCX"


def candidates(ctx: Context) -> list[str]:
    host = ctx.host
    home = host.getenv("HOME") or ""
    found = [f"{home}/FlagCX"] if home else []  # first: where the flagcx recipe looks
    found += [p for p in [host.getenv("FLAGCX_HOME") or ""] if p]
    found += [*sorted(host.glob("/workspace/*/FlagCX")), "/root/FlagCX"]
    return list(dict.fromkeys(p.rstrip("/") for p in found))


@check("flagcx", "FlagCX checkout")
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
    head = host.run(["git", "-C", real, "rev-parse", "--short=12", "HEAD"], timeout=10)
    commit = head.stdout.strip() if head.ok else ""
    built = host.is_file(f"{real}/build/lib/libflagcx.so")
    facts = {
        "flagcx.path": path,
        "flagcx.real_path": real,
        "flagcx.commit": commit,
        "flagcx.built": built,
    }
    where = path if real == path else f"{path} (-> {real})"
    details = [f"also at {p}" for p in found[1:]]
    summary = f"{where}, commit {commit or 'unknown (not a git checkout)'}"
    summary += "; built" if built else "; not built yet"
    return ctx.ok(summary, details=details, facts=facts)
