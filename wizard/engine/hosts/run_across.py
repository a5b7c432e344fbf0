"""A recipe run across hosts, for any front end: the doctor on every host, judged for the
recipe (`judged`), and the run's part that differs per host (`Across`: each builder's
values, and the steps that run on every host, through Everywhere).

`over_ssh` is the whole start for `--hosts`: a Slurm allocation finds its hosts its own way
(wizard.engine.hosts.slurm.discover), then is judged the same.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from checks.base import Finding
from wizard.engine.hosts.across import Builder, Cluster, ClusterError, discover
from wizard.engine.hosts.doctor_all import Difference, HostResult, differences
from wizard.engine.hosts.everywhere import Everywhere
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.ssh import check_config, connect
from wizard.engine.recipes import state as st
from wizard.engine.recipes.recipe import Recipe, Step, render
from wizard.engine.recipes.run import (
    Listener,
    ParamError,
    failing_requirements,
    refresh_checkout,
    resolve,
)
from wizard.engine.recipes.runner import Outcome, StepRunner


@dataclass
class HostVerdict:
    """One host as the run found it: unreachable (`error`), or its ranks, its doctor's
    target and the findings it fails that the recipe requires."""

    label: str
    slots: int
    target: str = ""
    error: str | None = None
    failing: list[Finding] = field(default_factory=list)


@dataclass
class Verdict:
    """Whether the hosts can run the recipe together, and what stands in the way."""

    hosts: list[HostVerdict]
    blocking: list[Difference]  # differences that make a run across the hosts fail
    one_gpu: list[str]  # hosts with one GPU: FlagCX falls back to host-based communication
    force: bool  # findings and differences are warnings, not stops

    @property
    def stops(self) -> bool:
        """A host cannot be reached; or, without force, one fails what the recipe requires,
        or the hosts differ where they must not."""
        if any(h.error is not None for h in self.hosts):
            return True
        return not self.force and (any(h.failing for h in self.hosts) or bool(self.blocking))


class Across:
    """A run across hosts: the cluster, and each builder's parameter values (its own
    doctor's facts, so each host builds for what it has). `local` is this machine's values,
    set once they are resolved."""

    def __init__(
        self, recipe: Recipe, cluster: Cluster, answers: dict[str, str], run_dir: Path
    ) -> None:
        self.recipe, self.cluster, self.answers, self.run_dir = recipe, cluster, answers, run_dir
        self.local: dict[str, Any] = {}

    def values_for(self, builder: Builder) -> dict[str, Any]:
        if builder.host is None:  # read again: an earlier step may have cloned the checkout
            return refresh_checkout(self.recipe, self.local, self.answers)
        return resolve(
            self.recipe, builder.host.facts, self.answers, self.run_dir, cluster=self.cluster
        )

    def check_values(self, answers: dict[str, str]) -> None:
        """Every host's values, now: a parameter one host has no value for is an error
        (ClusterError, naming the host) before anything runs, not halfway through a build."""
        self.answers = answers
        for host in self.cluster.hosts:
            try:
                resolve(self.recipe, host.facts, answers, self.run_dir, cluster=self.cluster)
            except ParamError as exc:
                raise ClusterError(f"{host.label}: {exc}") from None

    def source_notes(self) -> list[str]:
        """Which commit of the shared folder each host has: ranks of one run should run one
        FlagCX; a host without it gets it from the source step."""
        if not self.recipe.shared:
            return []
        folder = render(self.recipe.shared, self.local, quote=False)
        commits = self.cluster.commits(folder)
        found = {c for c in commits.values() if c}
        if not found:
            return []
        listed = ", ".join(f"{h} {c or '(none)'}" for h, c in commits.items())
        if len(found) == 1 and all(commits.values()):
            return [f"{folder} is at {found.pop()} on every host."]
        return [
            f"warning: {folder} differs across the hosts: {listed}. Ranks of one run should "
            f"run one commit: `git -C {folder} checkout COMMIT` on the others (hosts without "
            "it clone it in the source step)."
        ]

    # -- what execute() asks of a run across hosts (wizard.engine.recipes.run.Spread) ------

    def launch_env(self, flavor: str) -> dict[str, str]:
        return {**self.cluster.launcher_env(flavor), **self.cluster.rank_env()}

    def run_everywhere(
        self,
        step: Step,
        index: int,
        total: int,
        state: st.RunState,
        base_env: dict[str, str],
        listener: Listener,
        runner: StepRunner,
    ) -> Outcome:
        everywhere = Everywhere(self.recipe, self.cluster, self.values_for, runner)
        return everywhere.run(step, index, total, state, base_env, listener)


def judged(
    recipe: Recipe,
    results: list[HostResult],
    cluster: Cluster,
    answers: dict[str, str],
    run_dir: Path,
    *,
    force: bool,
) -> tuple[Verdict, Across | None]:
    """The hosts the doctor reached, judged for the recipe; and the run across them, unless
    the verdict stops it."""
    hosts = []
    for result, host in zip(results, cluster.hosts, strict=True):
        if result.report is None:
            hosts.append(HostVerdict(host.label, host.slots, error=result.error or ""))
            continue
        failing = failing_requirements(recipe, result.report)
        hosts.append(HostVerdict(host.label, host.slots, result.report.target.id, None, failing))
    blocking = [d for d in differences(results) if d.blocking]
    verdict = Verdict(hosts, blocking, cluster.one_gpu_hosts(), force)
    return verdict, None if verdict.stops else Across(recipe, cluster, answers, run_dir)


def over_ssh(
    recipe: Recipe,
    specs: list[HostSpec],
    *,
    ssh_config: str | None,
    answers: dict[str, str],
    run_dir: Path,
    force: bool,
    on_result: Callable[[HostResult], None] | None = None,
) -> tuple[Verdict, Across | None]:
    """A run across `specs`, reached over the user's ssh: every host's doctor (with its
    route toward the next), the cluster they make, judged. The `gpus` answer, where given,
    is every host's ranks. Raises SshConfigMissing before any host is tried."""
    check_config(ssh_config)
    per_host = answers.get("gpus")
    results, cluster = discover(
        specs,
        lambda spec: connect(spec, ssh_config),
        ssh_config=ssh_config,
        ranks_per_host=int(per_host) if per_host and per_host.isdigit() else None,
        on_result=on_result,
    )
    return judged(recipe, results, cluster, answers, run_dir, force=force)
