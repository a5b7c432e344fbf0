"""Hosts: the doctor on every host at once, each host's line as it answers, then what
differs across them (the table `wizard doctor --hosts` prints). The hosts are a host list
reached over SSH, or a Slurm allocation's nodes, checked through srun (`doctor --slurm`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import ClassVar

from rich.text import Text
from textual import work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.widgets import DataTable, Footer, Header, Static

from wizard.app.messages import HostChecked, HostsChecked, HostsFailed, HostsFound
from wizard.app.screens.base import WizardScreen
from wizard.engine.doctor.targets import TARGETS
from wizard.engine.hosts.doctor_all import (
    HostResult,
    differences,
    doctor_hosts,
    interface_difference,
    interface_of,
    ok,
    unreachable_advice,
)
from wizard.engine.hosts.hostlist import HostSpec
from wizard.engine.hosts.network import route_probe
from wizard.engine.hosts.slurm import Request, SlurmError, Stop, allocation, doctor_nodes
from wizard.host import Host


class HostsScreen(WizardScreen):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "app.pop_screen", "Back"),
        Binding("r", "check", "Check again"),
    ]

    def __init__(self, hosts: list[HostSpec] | Request) -> None:
        """`hosts`: a host list, or what to ask Slurm for (nothing, inside an allocation)."""
        super().__init__()
        self.hosts = hosts
        self.source = ""  # where the hosts came from, when that is worth saying
        self.stop = Stop()  # ends a Slurm check (salloc pending, the nodes' doctor) early

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="hosts-screen"):
            yield Static(id="hosts-status")
            yield DataTable(id="hosts", cursor_type="row", zebra_stripes=True)
            yield Static(Text("What differs across the hosts", style="bold"), classes="section")
            yield DataTable(id="differences", cursor_type="row")
            yield Static(id="hosts-advice")
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#hosts", DataTable)
        table.add_columns("host", "state")
        # As wide as the longest target from the start: a width grown by each row's update
        # came out differently from run to run.
        table.add_column("target", width=max(len(t) for t in TARGETS))
        table.add_column("what blocks")
        table.add_column("via")  # the interface toward the next host (FLAGCX_SOCKET_IFNAME)
        self.action_check()

    def action_check(self) -> None:
        session = self.wizard.session
        self.query_one("#hosts", DataTable).clear()
        self.query_one("#differences", DataTable).clear(columns=True)
        self.query_one("#hosts-advice", Static).update("")
        if isinstance(self.hosts, Request):
            asked = self.hosts.nodes
            self._status(
                f"Asking salloc for {asked} node(s) (it may wait {session.slurm_wait:g} s)…"
                if asked
                else "Reading the allocation's nodes from Slurm…"
            )
            self.stop = Stop()
            self.check_slurm(self.hosts, session.target, session.slurm_wait, self.stop)
            return
        self._add_rows([spec.label for spec in self.hosts])
        self._status(f"Checking {len(self.hosts)} hosts over SSH, all at once…")
        self.check_over_ssh(self.hosts, session.connect_host, session.ssh_config, session.target)

    @work(thread=True, exclusive=True)
    def check_over_ssh(
        self,
        specs: list[HostSpec],
        connect: Callable[[HostSpec], Host],
        ssh_config: str | None,
        target: str | None,
    ) -> None:
        """As `doctor --hosts`: each host's doctor and its route toward the next host, then
        what differs, the interfaces' names included."""
        _, toward = route_probe(specs, ssh_config)
        results = doctor_hosts(
            specs,
            connect,
            target=target,
            on_result=lambda r: self.post_message(HostChecked(r)),
            probe=toward,
        )
        self.post_message(
            HostsChecked(results, differences(results) + interface_difference(results))
        )

    @work(thread=True, exclusive=True)
    def check_slurm(self, request: Request, target: str | None, wait_s: float, stop: Stop) -> None:
        """The allocation's nodes, each node's doctor as one job step; an allocation the
        wizard asked for is given back once they have answered, or once `stop` ended the
        wait for it or for them."""
        try:
            with allocation(request, wait_s, stop) as job:
                self.post_message(HostsFound(job.nodes, job.describe()))
                results = doctor_nodes(job, target=target, stop=stop)
        except SlurmError as exc:
            self.post_message(HostsFailed(str(exc)))
            return
        self.post_message(
            HostsChecked(results, differences(results) + interface_difference(results))
        )

    def on_unmount(self) -> None:
        # Leaving (escape, quitting): a Slurm check still waiting is ended, not waited for
        # (up to salloc's wait, or the nodes' doctor's timeout) before the app can exit.
        self.stop()

    def on_hosts_found(self, message: HostsFound) -> None:
        self.source = message.note
        self._add_rows(message.labels)
        self._status(f"{message.note}: the doctor on every node through srun…")

    def on_hosts_failed(self, message: HostsFailed) -> None:
        self._status("No host was checked.")
        self.query_one("#hosts-advice", Static).update(Text(message.why, style="red"))

    def _add_rows(self, labels: list[str]) -> None:
        table = self.query_one("#hosts", DataTable)
        for label in labels:
            table.add_row(label, "checking…", "", "", "", key=label)

    def on_host_checked(self, message: HostChecked) -> None:
        self._row(message.result)

    def _row(self, result: HostResult) -> None:
        table = self.query_one("#hosts", DataTable)
        label = result.spec.label
        if result.report is None:
            cells = (Text("unreachable", style="bold red"), "", result.error or "", "")
        else:
            blocking = result.report.blocking
            state = Text("blocked", style="red") if blocking else Text("ready", style="green")
            via = (interface_of(result) or {}).get("name") or "-"
            blocks = ", ".join(f.id for f in blocking) or "-"
            cells = (state, result.report.target.id, blocks, via)
        for column, value in zip(table.ordered_columns[1:], cells, strict=True):
            table.update_cell(label, column.key, value, update_width=True)

    def on_hosts_checked(self, message: HostsChecked) -> None:
        results, diffs = message.results, message.differences
        for result in results:  # a Slurm allocation's nodes answer all at once, here
            self._row(result)
        table = self.query_one("#differences", DataTable)
        labels = [r.spec.label for r in results if r.reachable]
        table.add_columns("fact", *labels, "blocks")
        for diff in diffs:
            values = [str(diff.values.get(label) or "-") for label in labels]
            mark = Text("yes", style="bold red") if diff.blocking else Text("no")
            table.add_row(diff.fact, *values, mark)
        if not diffs:
            table.add_row("(none)", *["" for _ in labels], "")
        # The words of ssh (or srun) whole (the table's column may cut them), then what to try.
        over_ssh = not isinstance(self.hosts, Request)
        advice = [
            f"{r.spec.label}: {line}" for r in results if not r.reachable
            for line in [r.error or "unreachable", *(unreachable_advice(r) if over_ssh else [])]
        ]  # fmt: skip
        advice += [f"{d.fact}: {d.why}" for d in diffs]
        self.query_one("#hosts-advice", Static).update(Text("\n".join(advice)))
        reached = sum(r.reachable for r in results)
        verdict = "ready for a run across them" if ok(results, diffs) else "not ready"
        where = f"{self.source}. " if self.source else ""
        self._status(f"{where}{reached} of {len(results)} hosts reached; {verdict}.")

    def _status(self, text: str) -> None:
        self.query_one("#hosts-status", Static).update(Text(text, style="bold"))
