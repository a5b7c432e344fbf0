"""Slurm: the client tools, the partitions and their GPUs, and whether srun can start the
MPI found (else the wizard runs mpirun inside the allocation).

srun starts MPI ranks itself through a PMI plugin (`srun --mpi=list`): Open MPI needs PMIx
support for `--mpi=pmix` (ompi_info lists a pmix component other than `isolated`; Open MPI
5 always has it) or its `s2` component for `--mpi=pmi2`; MPICH's own PMI client speaks
what Slurm's pmi2 plugin serves, and MPICH built `--with-pmix` can use `--mpi=pmix`.
"""

from __future__ import annotations

import os
import re

from checks import versions
from checks.base import Context, Finding, Fix, Group, check

_VERSION = re.compile(r"slurm(?:-wlm)?\s+(\d+\.\d+\.\d+\S*)")
_PMIX_COMPONENT = re.compile(r"^mca:pmix:(\w+):version:", re.M)
# sinfo retries a controller that does not answer for MessageTimeout (10 s by default); the
# doctor says so sooner, as a warning.
SINFO_TIMEOUT_S = 6
NO_PMIX = {"isolated", "flux", "s1", "s2", "cray"}  # pmix components that are not PMIx
# What Slurm's clients end with where no slurm.conf (nor a configless controller found
# through DNS) names a cluster.
NO_CLUSTER = "Could not establish a configuration source"


def client_version(ctx: Context, srun: str) -> tuple[str, str]:
    """Slurm's version as its clients tell it (`slurm 22.05.8`), "" when none will: in
    22.05 even `--version` needs a slurm.conf (or a configless controller). Also what they
    said, for the details."""
    said = ""
    for tool in (srun, "sinfo"):
        answer = ctx.host.run([tool, "--version"], timeout=10).output.strip()
        if match := _VERSION.search(answer):
            return match[1], answer
        said = said or answer
    lines = said.splitlines()
    return "", lines[-1] if lines else "no version"


def mpi_plugins(text: str) -> list[str]:
    """`srun --mpi=list` as plugin names (22.05 and later print one per line, tab-led)."""
    names = []
    for line in text.splitlines():
        name = line.strip()
        if line.startswith(("\t", " ")) and name and " " not in name:
            names.append(name.removeprefix("mpi/"))
        elif "pmix plugin versions available:" in line:
            names += [v.strip() for v in line.split(":", 1)[1].split(",") if v.strip()]
    return names


def partitions(text: str) -> list[tuple[str, str, str, str]]:
    """`sinfo -h -o %P|%a|%D|%G` as (partition, state, nodes, gres), `*` off the default."""
    rows = []
    for line in text.splitlines():
        fields = line.strip().split("|")
        if len(fields) == 4:
            rows.append((fields[0], fields[1], fields[2], fields[3]))
    return rows


def ompi_launch(ctx: Context, mpirun: str, version: str) -> tuple[set[str], str]:
    """The srun plugins this Open MPI can be started by, and what says so."""
    if (versions.major_minor(version) or (0, 0)) >= (5, 0):
        return {"pmix"}, f"Open MPI {version} has PMIx built in"
    info = os.path.join(os.path.dirname(mpirun), "ompi_info")
    done = ctx.host.run([info, "--parsable"], timeout=20)
    if not done.ok:
        return set(), f"{info} --parsable failed: {done.error or done.output.strip()[-200:]}"
    components = set(_PMIX_COMPONENT.findall(done.stdout))
    can = {"pmix"} if components - NO_PMIX else set()
    if "s2" in components:
        can.add("pmi2")
    listed = ", ".join(sorted(components)) or "none"
    return can, f"ompi_info's pmix components: {listed}"


def mpich_launch(ctx: Context, mpirun: str) -> tuple[set[str], str]:
    tool = os.path.join(os.path.dirname(mpirun), "mpichversion")
    done = ctx.host.run([tool], timeout=10)
    configure = next((ln for ln in done.stdout.splitlines() if "configure" in ln), "")
    can = {"pmi2"}  # MPICH's PMI client talks the wire protocol Slurm's pmi2 plugin serves
    if "--with-pmix" in configure:
        can.add("pmix")
    return can, "MPICH" + (" built --with-pmix" if "pmix" in can else "'s own PMI client")


@check("slurm", "Slurm", Group.SYSTEM, after=("mpi",))
def slurm(ctx: Context) -> Finding:
    host = ctx.host
    srun = host.which("srun")
    if not srun:
        return ctx.skip(
            "no Slurm client tools (srun): --slurm is for clusters run by Slurm",
            facts={"slurm.version": ""},
        )
    version, said = client_version(ctx, srun)
    named = f"Slurm {version}" if version else "Slurm (version unknown)"
    facts: dict[str, str] = {"slurm.version": version}
    details = [f"srun: {srun} ({said})"]
    missing = [t for t in ("salloc", "sbatch", "scontrol", "squeue", "scancel", "sinfo")]
    missing = [t for t in missing if not host.which(t)]
    if missing:
        details.append(f"missing beside srun: {', '.join(missing)}")
    info = host.run(["sinfo", "-h", "-o", "%P|%a|%D|%G"], timeout=SINFO_TIMEOUT_S)
    if not info.ok:
        words = info.error or (info.output.strip().splitlines() or ["no answer"])[-1]
        if NO_CLUSTER in words:
            tools = (
                f"{named}'s client tools" if version else "Slurm's client tools (version unknown)"
            )
            return ctx.skip(
                f"{tools}, but no cluster: no slurm.conf (nor a configless controller) names one",
                details=[*details, words],
                facts=facts,
            )
        return ctx.warn(
            f"{named}: sinfo cannot reach the controller: {words}",
            details=[*details, "is SLURM_CONF right, and slurmctld up? `scontrol ping` says"],
            facts=facts,
        )
    rows = partitions(info.stdout)
    gpu_rows = [r for r in rows if "gpu" in r[3]]
    facts["slurm.partitions"] = ",".join(r[0].rstrip("*") for r in rows)
    facts["slurm.gpu_gres"] = ",".join(f"{r[0].rstrip('*')}:{r[3]}" for r in gpu_rows)
    details += [f"partition {p} ({state}): {n} node(s), gres {g}" for p, state, n, g in rows]
    plugins = mpi_plugins(host.run([srun, "--mpi=list"], timeout=10).output)
    facts["slurm.mpi_plugins"] = ",".join(plugins)
    details.append(f"srun --mpi=list: {', '.join(plugins) or 'nothing'}")
    launch, why, fixes = _launch(ctx, plugins)
    facts["slurm.launch"] = launch
    details.append(why)
    gpus = ", ".join(r[0].rstrip("*") for r in gpu_rows)
    summary = f"{named}: {len(rows)} partition(s), " + (
        f"GPUs in {gpus}; " if gpus else "no GPU gres; "
    )
    mpi = f"{ctx.fact('mpi.flavor') or 'MPI'} {ctx.fact('mpi.version') or ''}".strip()
    if launch == "mpirun":
        return ctx.warn(
            summary + f"srun cannot start {mpi}: runs use mpirun inside the allocation",
            details=details,
            facts=facts,
            fixes=fixes,
        )
    return ctx.ok(summary + f"srun --mpi={launch} starts {mpi}", details=details, facts=facts)


def _launch(ctx: Context, plugins: list[str]) -> tuple[str, str, list[Fix]]:
    """The srun --mpi plugin to start the MPI found with ('mpirun' when none fits), why,
    and what would let srun start it."""
    flavor, mpirun = ctx.fact("mpi.flavor"), ctx.fact("mpi.mpirun")
    version = str(ctx.fact("mpi.version") or "")
    if not mpirun:
        return "mpirun", "no MPI found to start", []
    if flavor == "Open MPI":
        can, why = ompi_launch(ctx, str(mpirun), version)
    elif flavor == "MPICH":
        can, why = mpich_launch(ctx, str(mpirun))
    else:
        can, why = set(), f"{flavor or 'this MPI'}: the wizard knows no srun plugin for it"
    for plugin in ("pmix", "pmi2"):
        if plugin in can and plugin in plugins:
            return plugin, f"{why}: srun --mpi={plugin}", []
    offered = ", ".join(sorted(can)) or "no PMI"
    fix = Fix(
        "Let srun start the MPI (or keep mpirun inside the allocation: it works)",
        [
            f"# {flavor} {version} speaks {offered}; this Slurm offers: "
            f"{', '.join(plugins) or 'no MPI plugin'}",
            "# ask the cluster's admins for Slurm's pmix plugin (srun --mpi=list lists it),",
            "# or use an MPI built for it: Open MPI's ./configure --with-pmix --with-slurm",
        ],
        manual=True,
        changes="nothing here: a note for you or the cluster's admins",
    )
    return "mpirun", f"{why}; srun's plugins: {', '.join(plugins) or 'none'}", [fix]
