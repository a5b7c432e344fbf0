"""DeepSpeed in the active Python: installed or not; with --deep, its ds_report read into
facts and details (not a wall of dots): which ops can be built here, what the others lack
(libaio's headers, CUTLASS, ninja), and whether DeepSpeed was built with the torch and CUDA
present now. ds_report imports torch, which takes seconds: only --deep runs it."""

from __future__ import annotations

import re
import shlex
from typing import Any

from checks import python, versions
from checks.base import Context, Finding, Fix, Group, check
from checks.distro import Distro
from checks.text import plain

REPORT_KEY = "python3 -m deepspeed.env_report"

# DeepSpeed's ds_report: "fused_adam ............. [NO] ....... [OKAY]" (colour codes
# around the brackets), "ninja .................. [OKAY]", warnings, then
# "DeepSpeed general environment info:" and "torch version .................... 2.11.0".
_DS_OP = re.compile(r"^(\w+) \.+ \[(YES|NO)\] \.+ \[(OKAY|NO)\]", re.M)
_DS_NINJA = re.compile(r"^ninja \.+ \[(OKAY|FAIL)\]", re.M)
_DS_WARNING = re.compile(r"\[WARNING\]\s*(.*?)\s*$", re.M)
_DS_INFO = re.compile(r"^(\S.*?) \.{3,} (.*?)\s*$", re.M)
DS_INFO_HEADER = "DeepSpeed general environment info:"


class DsReport:
    """ds_report's op table (installed, compatible), ninja, warnings and general info."""

    LIMIT = 1 << 20  # ds_report prints a few KB; a runaway one is cut, not kept whole

    def __init__(self) -> None:
        self.text = ""

    def feed(self, lines: list[str]) -> None:
        if len(self.text) < self.LIMIT:
            self.text += plain("\n".join(lines)) + "\n"

    def results(self) -> dict[str, Any]:
        text = self.text
        ops = {
            name: {"installed": installed == "YES", "compatible": compatible == "OKAY"}
            for name, installed, compatible in _DS_OP.findall(text)
        }
        ninja = _DS_NINJA.search(text)
        _, header, general = text.partition(DS_INFO_HEADER)
        info = {k.strip(): v for k, v in _DS_INFO.findall(general)} if header else {}
        warnings = list(dict.fromkeys(w for w in _DS_WARNING.findall(text) if w))
        found: dict[str, Any] = {"ops": ops, "warnings": warnings, "info": info}
        if ninja:
            found["ninja"] = ninja.group(1) == "OKAY"
        return found if ops or info else {}


def ds_report_details(results: dict[str, Any]) -> list[str]:
    """The ops that cannot be built here, and ds_report's warnings, a line each."""
    ops = results.get("ops", {})
    unbuildable = [name for name, op in ops.items() if not op["compatible"]]
    lines = [f"cannot be built here: {', '.join(unbuildable)}"] if unbuildable else []
    return lines + [f"warning: {w}" for w in results.get("warnings", [])]


def ds_report_summary(results: dict[str, Any]) -> str:
    """ "11 of 14 DeepSpeed ops can be built here (0 prebuilt); ninja found" """
    ops = results.get("ops", {})
    usable = sum(op["compatible"] for op in ops.values())
    built = sum(op["installed"] for op in ops.values())
    text = f"{usable} of {len(ops)} DeepSpeed ops can be built here ({built} prebuilt)"
    if "ninja" in results:
        text += "; ninja " + ("found" if results["ninja"] else "missing (JIT builds need it)")
    return text


_BUILT_WITH = re.compile(r"torch ([\d.]+)(?:, cuda ([\d.]+))?")


@check("deepspeed", "DeepSpeed", Group.ACCELERATOR, after=("os", "python.env", "torch"))
def deepspeed(ctx: Context) -> Finding:
    info = python.probe(ctx.host)
    if info is None:
        return ctx.skip("no usable python3")
    python3 = info["executable"]
    version = info.get("deepspeed")
    if not version:
        return ctx.skip(
            f"not installed in {python3} (only the deepspeed recipe needs it)",
            fixes=[
                python.pip_fix(
                    ctx, info, "Install DeepSpeed", "deepspeed", "installs deepspeed and its needs"
                )
            ],
        )
    facts: dict = {"deepspeed.version": version}
    if not ctx.deep:
        return ctx.ok(f"{version} (`wizard doctor --deep` reads its ds_report)", facts=facts)
    result = ctx.host.run([python3, "-m", "deepspeed.env_report"], timeout=180, key=REPORT_KEY)
    parser = DsReport()
    parser.feed(result.output.splitlines())
    found = parser.results()
    details, fixes, problems = _read(ctx, found, facts, python3)
    if not result.ok:
        lines = [ln.strip() for ln in result.output.splitlines() if ln.strip()]
        why = result.error or (lines[-1] if lines else f"exit code {result.returncode}")
        return ctx.warn(
            f"{version}; ds_report failed: {why}",
            details=[*details, "what it printed before failing is read above"] if details else [],
            facts=facts,
            fixes=fixes,
        )
    summary = f"{version}; {ds_report_summary(found)}" if found else f"{version}"
    if problems:
        summary += "; " + "; ".join(problems)
        return ctx.warn(summary, details=details, facts=facts, fixes=fixes)
    return ctx.ok(summary, details=details, facts=facts, fixes=fixes)


def _read(
    ctx: Context, found: dict, facts: dict, python3: str
) -> tuple[list[str], list[Fix], list[str]]:
    """Details, fixes and problems from a parsed ds_report; facts are added to `facts`."""
    ops = found.get("ops", {})
    usable = sorted(name for name, op in ops.items() if op["compatible"])
    unusable = sorted(name for name, op in ops.items() if not op["compatible"])
    facts["deepspeed.ops_compatible"] = ",".join(usable)
    facts["deepspeed.ops_missing"] = ",".join(unusable)
    if "ninja" in found:
        facts["deepspeed.ninja"] = found["ninja"]
    details, fixes, problems = [], [], []
    warnings = found.get("warnings", [])
    for name in unusable:
        why = next((w for w in warnings if w.startswith(name) and "requires" in w), "")
        cutlass = name == "evoformer_attn" and any("CUTLASS" in w for w in warnings)
        reason = why.removeprefix(name).strip() or "see ds_report"
        reason = "CUTLASS not found" if cutlass else reason
        details.append(f"{name} cannot be built here: {reason}")
    if unusable:
        problems.append(f"{len(unusable)} op(s) cannot be built ({', '.join(unusable)})")
    if any("libaio" in w for w in warnings):
        fixes += Distro.of(ctx).install_fix(
            "Install libaio's development files (async_io, gds: NVMe offload)",
            {"debian": ["libaio-dev"], "rhel": ["libaio-devel"], "suse": ["libaio-devel"]},
            "installs libaio headers and library",
        )
    if any("CUTLASS" in w for w in warnings):
        fixes.append(
            Fix(
                "Install CUTLASS from PyPI (evoformer_attn)",
                [f"{shlex.quote(python3)} -m pip install nvidia-cutlass"],
                changes="installs nvidia-cutlass into this Python",
            )
        )
    if found.get("ninja") is False:
        problems.append("ninja is missing: no op can be compiled at run time")
        fixes.append(
            Fix(
                "Install ninja",
                [f"{shlex.quote(python3)} -m pip install ninja"],
                changes="installs ninja",
            )
        )
    info = found.get("info", {})
    details += [f"{key}: {value}" for key, value in info.items()]
    built = _BUILT_WITH.search(info.get("deepspeed wheel compiled w.", ""))
    if built:
        facts["deepspeed.built_with"] = info["deepspeed wheel compiled w."].strip()
        mismatch = _built_mismatch(built.group(1), built.group(2), info)
        if mismatch:
            problems.append(mismatch)
            fixes.append(
                Fix(
                    "Rebuild DeepSpeed against the torch installed now",
                    [
                        f"{shlex.quote(python3)} -m pip install --force-reinstall --no-deps "
                        "--no-cache-dir "
                        "deepspeed"
                    ],
                    changes="reinstalls deepspeed (its ops are built again for this torch)",
                )
            )
    return details, fixes, problems


def _built_mismatch(torch_built: str, cuda_built: str | None, info: dict) -> str | None:
    torch_now = info.get("torch version", "").split("+")[0]
    cuda_now = info.get("torch cuda version", "")
    if torch_now and versions.major_minor(torch_built) != versions.major_minor(torch_now):
        return f"built with torch {torch_built}, but torch is {torch_now} now"
    same_cuda = versions.major_minor(cuda_built) == versions.major_minor(cuda_now)
    if cuda_built and cuda_now and not same_cuda:
        return f"built with CUDA {cuda_built}, but torch uses CUDA {cuda_now} now"
    return None
