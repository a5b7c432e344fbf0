"""The rdma finding on fake sysfs trees built from published facts (tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.base import Finding, Status
from tests.treehost import TreeHost
from wizard.engine.doctor.diagnosis import run_doctor

# A ConnectX-7 RoCE port as NVIDIA/nccl#1866's ibstatus shows one (state, phys state, rate,
# link layer, default GID) and mlx5's usual GID table: link-local then IPv4-mapped, each as
# RoCE v1 and v2 (the kernel's type names), on a netdev with MTU 9000.
PORT = "/sys/class/infiniband/mlx5_0/ports/1"
GIDS = [
    ("fe80:0000:0000:0000:8ae9:a4ff:fe9c:7f1a", "IB/RoCE v1"),
    ("fe80:0000:0000:0000:8ae9:a4ff:fe9c:7f1a", "RoCE v2"),
    ("0000:0000:0000:0000:0000:ffff:c0a8:640c", "IB/RoCE v1"),
    ("0000:0000:0000:0000:0000:ffff:c0a8:640c", "RoCE v2"),
]


def roce(tree: TreeHost, *, ipv4: bool = True) -> TreeHost:
    files = {
        "state": "4: ACTIVE",
        "phys_state": "5: LinkUp",
        "rate": "100 Gb/sec (4X EDR)",
        "link_layer": "Ethernet",
    }
    for name, value in files.items():
        tree.write(f"{PORT}/{name}", value + "\n")
    for index, (gid, kind) in enumerate(GIDS if ipv4 else GIDS[:2]):
        tree.write(f"{PORT}/gids/{index}", gid + "\n")
        tree.write(f"{PORT}/gid_attrs/types/{index}", kind + "\n")
        tree.write(f"{PORT}/gid_attrs/ndevs/{index}", "enp1s0f0np0\n")
    tree.write(f"{PORT}/gids/{len(GIDS)}", "0000:0000:0000:0000:0000:0000:0000:0000\n")
    tree.write("/sys/class/net/enp1s0f0np0/mtu", "9000\n")
    if not (tree.root / "usr/bin/grep").exists():  # the tree itself: host answers are memoized
        tree.symlink("/usr/bin/grep", "/usr/bin/grep")
    return tree


def rdma(tree: TreeHost) -> Finding:
    return next(f for f in run_doctor(tree).findings if f.id == "rdma")


def test_a_roce_port_gets_its_rate_mtu_and_the_gid_index_nccl_would_use(tree: TreeHost) -> None:
    tree.program("/usr/bin/ibv_devinfo", "")
    tree.program("/usr/bin/ib_write_bw", "")
    found = rdma(roce(tree))
    assert found.status is Status.OK, found.summary
    assert found.summary.endswith("FLAGCX_IB_HCA=mlx5_0 FLAGCX_IB_GID_INDEX=3 (RoCE)")
    facts = found.facts
    assert (facts["rdma.gid_index"], facts["rdma.mtu"], facts["rdma.rate_gbps"]) == (
        "3",
        "9000",
        100.0,
    )
    assert facts["rdma.link_layers"] == "Ethernet" and facts["rdma.perftest"] is True
    assert (
        "  5: LinkUp, 100 Gb/sec (4X EDR), GID 3 0000:0000:0000:0000:0000:ffff:c0a8:640c RoCE v2,"
        " netdev enp1s0f0np0 MTU 9000"
    ) in found.details
    assert not found.fixes


def test_without_an_ipv4_gid_the_first_roce_v2_one_is_used(tree: TreeHost) -> None:
    assert rdma(roce(tree, ipv4=False)).facts["rdma.gid_index"] == "1"


def test_missing_verbs_tools_and_perftest_get_the_distros_packages(tree: TreeHost) -> None:
    found = rdma(roce(tree))
    assert "perftest (ib_write_bw) not installed" in found.details
    assert found.fixes[0].commands == [
        "apt-get update",
        "apt-get install -y rdma-core ibverbs-utils perftest",
    ]


@pytest.mark.parametrize("passed_in", [False, True])
def test_a_container_needs_the_rdma_device_nodes(tree: TreeHost, passed_in: bool) -> None:
    tree.write("/.dockerenv")
    if passed_in:
        tree.write("/dev/infiniband/uverbs0")
        tree.write("/dev/infiniband/rdma_cm")
    found = rdma(roce(tree))
    manual = [f for f in found.fixes if f.manual]
    if passed_in:
        assert not manual and found.status is Status.OK
    else:
        assert found.status is Status.WARN and "the container cannot open them" in found.summary
        assert "--device=/dev/infiniband" in manual[0].commands[0]


def test_the_ofed_release_is_named(tree: TreeHost) -> None:
    output = (Path(__file__).parent / "data" / "ofed_info-s-cx7.txt").read_text()
    tree.program("/usr/bin/ofed_info", output)
    found = rdma(roce(tree))
    assert found.facts["rdma.ofed"] == "OFED-internal-24.07-0.3.5.0.110"
    assert "OFED: OFED-internal-24.07-0.3.5.0.110" in found.details


def test_hosts_with_other_mtus_or_gid_indexes_are_in_the_differences(tmp_path: Path) -> None:
    from tests.conftest import UBUNTU_2404
    from wizard.engine.hosts.doctor_all import HostResult, differences
    from wizard.engine.hosts.hostlist import parse_host

    results = []
    for name, ipv4, mtu in (("a", True, "9000"), ("b", False, "1500")):
        host = TreeHost(tmp_path / name)
        host.write("/etc/os-release", UBUNTU_2404)
        roce(host, ipv4=ipv4)
        host.write("/sys/class/net/enp1s0f0np0/mtu", mtu + "\n")
        results.append(HostResult(parse_host(name), run_doctor(host)))
    found = {d.fact: d.values for d in differences(results)}
    assert found["rdma.mtu"] == {"a": "9000", "b": "1500"}
    assert found["rdma.gid_index"] == {"a": "3", "b": "1"}
    assert "rdma.link_layers" not in found
