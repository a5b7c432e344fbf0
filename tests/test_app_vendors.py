"""The app on replayed machines of FlagCX's other vendors with RDMA ports: the start screen
picks the vendor's target, and the checks show the vendor's devices and each RDMA port as
they show NVIDIA's GPUs. The machines are tests/test_vendors.py's samples (each vendor tool's
published output) and tests/test_rdma.py's sysfs trees, recorded as `wizard snapshot` writes
them and replayed."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.geometry import Region
from textual.widget import Widget
from textual.widgets import Select, Static

from tests.test_app import until
from tests.test_rdma import devinfo_host, roce
from tests.test_vendors import SAMPLES, Sample, vendor_host
from tests.treehost import TreeHost
from wizard.app.app import Session, WizardApp
from wizard.app.screens.checks import ChecksScreen
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.host import load_snapshot
from wizard.host.snapshot import write_snapshot

SHOWN = [s for s in SAMPLES if s.vendor in ("kunlunxin", "metax", "amd")]


@pytest.fixture(autouse=True)
def state_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))


def recorded(tree: TreeHost, tmp_path: Path, sample: Sample) -> Path:
    """The vendor's host with a RoCE port (rate, GIDs, a netdev of MTU 9000), a port down
    and an InfiniBand port whose MTU ibv_devinfo gives, recorded as a snapshot."""
    host = roce(devinfo_host(vendor_host(tree, sample)))
    run_doctor(host)  # a snapshot holds what the doctor observed
    return write_snapshot(host, tmp_path / f"{sample.vendor}.yaml")


def shown(widget: Widget) -> str:
    """What the widget shows at its own width, the lines it wrapped joined again."""
    strips = widget.render_lines(Region(0, 0, widget.size.width, widget.size.height))
    return " ".join(" ".join(strip.text.split()) for strip in strips)


@pytest.mark.parametrize("sample", SHOWN, ids=lambda s: s.vendor)
async def test_a_vendors_devices_and_rdma_ports_are_shown_as_nvidias_are(
    tree: TreeHost, tmp_path: Path, sample: Sample
) -> None:
    snapshot = recorded(tree, tmp_path, sample)
    app = WizardApp(Session(lambda: load_snapshot(snapshot), replay=snapshot.name))
    target = f"flagcx-{sample.vendor}"
    async with app.run_test(size=(120, 40)) as pilot:
        select = app.screen.query_one("#target", Select)
        await until(pilot, lambda: select.value == target)  # pre-selected from the replay
        await pilot.press("ctrl+n")
        await until(pilot, lambda: app.session.report is not None)
        assert app.session.report is not None and app.session.report.target.id == target
        screen = app.screen
        assert isinstance(screen, ChecksScreen)

        async def details(check_id: str) -> str:
            screen.query_one("#checks").select_node(screen.nodes[check_id])  # type: ignore[attr-defined]
            await pilot.pause(0.2)
            text = shown(screen.query_one("#detail-text", Static))
            assert "…" not in text  # wrapped in the pane, never cut off
            return text

        assert str(screen.nodes["gpu.others"].label) == "✓ Other accelerators"
        devices = await details("gpu.others")
        listing = sample.read()
        summary = f"{sample.count} × {sample.model} ({sample.memory_mib // 1024} GiB), driver "
        assert summary + sample.driver in devices
        for device in listing.devices:
            line = f"{device.index}: {device.model}, {device.memory_mib} MiB, PCI {device.bus_id}"
            assert line in devices
        assert "accel.count = " + str(sample.count) in devices

        ports = await details("rdma")
        for port in (  # state (link layer), physical state and rate, MTU, GID
            "mlx5_0 port 1: 4: ACTIVE (Ethernet) 5: LinkUp, 100 Gb/sec (4X EDR) MTU 9000 (netdev "
            "enp1s0f0np0) GID 3 (RoCE v2) 0000:0000:0000:0000:0000:ffff:c0a8:640c",
            "mlx5_1 port 1: 1: DOWN (Ethernet) mlx5_2 port 1",
            "mlx5_2 port 1: 4: ACTIVE (InfiniBand) active MTU 4096",
        ):
            assert port in ports
