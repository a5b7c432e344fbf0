"""The rdma finding on fake sysfs trees built from published facts (tests/data/README.md)."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.base import Finding, Status
from tests.conftest import UBUNTU_2404
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
    port = found.details.index("mlx5_0 port 1: 4: ACTIVE (Ethernet)")
    assert found.details[port + 1 : port + 4] == [
        "  5: LinkUp, 100 Gb/sec (4X EDR)",
        "  MTU 9000 (netdev enp1s0f0np0)",
        "  GID 3 (RoCE v2) 0000:0000:0000:0000:0000:ffff:c0a8:640c",
    ]
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
    assert "rdma.nccl_net" not in found  # both pick IB


def test_hosts_whose_nccl_picks_another_network_are_in_the_differences(tmp_path: Path) -> None:
    from tests.conftest import UBUNTU_2404
    from wizard.engine.hosts.doctor_all import HostResult, differences
    from wizard.engine.hosts.hostlist import parse_host

    results = []
    for name in ("a", "b"):
        host = TreeHost(tmp_path / name)
        host.write("/etc/os-release", UBUNTU_2404)
        roce(host)
        if name == "b":
            host.write("/etc/nccl.conf", "NCCL_IB_DISABLE=1\n")
        results.append(HostResult(parse_host(name), run_doctor(host)))
    found = {d.fact: d for d in differences(results)}
    assert found["rdma.nccl_net"].values == {"a": "IB", "b": "Socket"}


# -- ibv_devinfo's MTU for InfiniBand ports ---------------------------------------------------

DEVINFO = Path(__file__).parent / "data" / "ibv_devinfo-roce-and-ib.txt"


def devinfo_host(tree: TreeHost) -> TreeHost:
    """The three devices of tests/data/ibv_devinfo-roce-and-ib.txt, their state and link
    layer in sysfs as the kernel writes them, and ibv_devinfo printing that output."""
    for device, state, layer in (
        ("mlx5_0", "4: ACTIVE", "Ethernet"),
        ("mlx5_1", "1: DOWN", "Ethernet"),
        ("mlx5_2", "4: ACTIVE", "InfiniBand"),
    ):
        tree.write(f"/sys/class/infiniband/{device}/ports/1/state", state + "\n")
        tree.write(f"/sys/class/infiniband/{device}/ports/1/link_layer", layer + "\n")
    tree.program("/usr/bin/ibv_devinfo", DEVINFO.read_text())
    tree.program("/usr/bin/ib_write_bw", "")
    return tree


def test_ibv_devinfo_output_is_parsed_per_device_and_port() -> None:
    from checks.rdma_stack import parse_devinfo

    assert parse_devinfo(DEVINFO.read_text()) == {
        ("mlx5_0", 1): {"max_mtu": 4096, "active_mtu": 1024},
        ("mlx5_1", 1): {"max_mtu": 4096, "active_mtu": 1024},
        ("mlx5_2", 1): {"max_mtu": 4096, "active_mtu": 4096},
    }


def test_an_infiniband_ports_mtu_comes_from_ibv_devinfo(tree: TreeHost) -> None:
    found = rdma(devinfo_host(tree))
    assert found.status is Status.OK, found.summary
    port = found.details.index("mlx5_2 port 1: 4: ACTIVE (InfiniBand)")
    assert found.details[port + 1] == "  active MTU 4096", found.details
    assert found.facts["rdma.mtu"] == "4096"  # the RoCE port's MTU is its netdev's, not this
    assert found.facts["rdma.link_layers"] == "Ethernet,InfiniBand"


def test_without_ibv_devinfo_the_infiniband_mtu_is_said_to_be_unknown(tree: TreeHost) -> None:
    host = devinfo_host(tree)
    (host.root / "usr/bin/ibv_devinfo").unlink()
    found = rdma(host)
    assert "ibv_devinfo not installed: the InfiniBand ports' MTU is unknown" in found.details
    assert found.facts["rdma.mtu"] == ""


def test_a_failing_ibv_devinfo_is_named_not_a_crash(tree: TreeHost) -> None:
    host = devinfo_host(tree)
    host.program("/usr/bin/ibv_devinfo", "", rc=1)
    assert "ibv_devinfo failed (exit 1)" in rdma(host).details


# -- the network NCCL will pick -----------------------------------------------------------------


def transport_line(found: Finding) -> str:
    return next(line for line in found.details if line.startswith("NCCL's network"))


def test_active_ports_mean_ib_verbs_naming_each_ports_link_layer(tree: TreeHost) -> None:
    found = rdma(devinfo_host(tree))
    assert found.facts["rdma.nccl_net"] == "IB"
    assert transport_line(found).endswith("IB verbs over mlx5_0 (RoCE), mlx5_2 (InfiniBand)")


@pytest.mark.parametrize("where", ["environment", "/etc/nccl.conf"])
def test_nccl_ib_disable_means_sockets_wherever_it_is_set(tree: TreeHost, where: str) -> None:
    if where == "environment":
        tree.env["NCCL_IB_DISABLE"] = "1"
    else:
        tree.write("/etc/nccl.conf", "NCCL_DEBUG=WARN\nNCCL_IB_DISABLE=1\n")
    found = rdma(devinfo_host(tree))
    assert found.facts["rdma.nccl_net"] == "Socket"
    assert f"NCCL_IB_DISABLE=1 ({where}): TCP sockets" in transport_line(found)


def test_nccl_net_ib_with_ib_disabled_warns_that_nccl_will_fail(tree: TreeHost) -> None:
    tree.env.update(NCCL_NET="IB", NCCL_IB_DISABLE="1")
    found = rdma(devinfo_host(tree))
    assert found.status is Status.WARN
    assert "NCCL will fail to start its network: NCCL_IB_DISABLE=1 (environment)" in found.summary


def test_a_net_plugin_on_the_library_path_is_tried_first(tree: TreeHost) -> None:
    tree.write("/usr/lib/x86_64-linux-gnu/libnccl-net.so")
    found = rdma(devinfo_host(tree))
    assert found.facts["rdma.nccl_net"] == "plugin"
    assert "net plugin /usr/lib/x86_64-linux-gnu/libnccl-net.so is loaded" in transport_line(found)


def test_nccl_net_plugin_picks_its_suffix_and_a_missing_one_is_said(tree: TreeHost) -> None:
    tree.write("/opt/ofi/lib/libnccl-net-ofi.so")
    tree.env.update(NCCL_NET_PLUGIN="ofi", LD_LIBRARY_PATH="/opt/ofi/lib")
    assert rdma(devinfo_host(tree)).facts["rdma.nccl_net"] == "plugin"
    tree.env["NCCL_NET_PLUGIN"] = "aiacc"
    found = rdma(TreeHost(tree.root, tree.env))  # a fresh host: answers are memoized
    assert found.facts["rdma.nccl_net"] == "IB"
    assert "NCCL_NET_PLUGIN=aiacc (environment): libnccl-net-aiacc.so not found" in (
        transport_line(found)
    )


def test_nccl_net_naming_a_plugin_network_with_plugins_off_warns(tree: TreeHost) -> None:
    tree.write("/usr/lib/x86_64-linux-gnu/libnccl-net.so")
    tree.env.update(NCCL_NET="AWS Libfabric", NCCL_NET_PLUGIN="none")
    found = rdma(devinfo_host(tree))
    assert found.status is Status.WARN
    assert "no net plugin is loaded (NCCL_NET_PLUGIN=none)" in found.summary


# -- eRDMA: Alibaba's repository when the erdma provider is missing ---------------------------


UBUNTU_2204 = (
    UBUNTU_2404.replace("24.04.3 LTS (Noble Numbat)", "22.04.5 LTS (Jammy Jellyfish)")
    .replace("24.04", "22.04")
    .replace("noble", "jammy")
)


def erdma_host(tree: TreeHost, release: str = UBUNTU_2204) -> TreeHost:
    """An erdma device (its driver link named as the kernel names the module), port ACTIVE
    over Ethernet, with the verbs tools and perftest installed."""
    tree.write("/etc/os-release", release)
    tree.mkdir("/sys/bus/pci/drivers/erdma")
    tree.mkdir("/sys/devices/pci0000:00/0000:00:06.0")
    tree.symlink(
        "/sys/devices/pci0000:00/0000:00:06.0/driver", str(tree.root / "sys/bus/pci/drivers/erdma")
    )
    tree.symlink(
        "/sys/class/infiniband/erdma_0/device",
        str(tree.root / "sys/devices/pci0000:00/0000:00:06.0"),
    )
    tree.write("/sys/class/infiniband/erdma_0/ports/1/state", "4: ACTIVE\n")
    tree.write("/sys/class/infiniband/erdma_0/ports/1/link_layer", "Ethernet\n")
    tree.program("/usr/bin/ibv_devinfo", "")
    tree.program("/usr/bin/ib_write_bw", "")
    return tree


def test_erdma_without_its_provider_gets_alibabas_signed_repository(tree: TreeHost) -> None:
    import shlex

    found = rdma(erdma_host(tree))
    assert found.status is Status.WARN
    assert "eRDMA device(s) erdma_0 without the erdma verbs provider" in found.summary
    commands = found.fixes[0].commands
    assert commands == [
        "curl -fsSL -o erdma-GPGKEY https://mirrors.aliyun.com/erdma/GPGKEY",
        "install -d -m 0755 /etc/apt/keyrings",
        "gpg --batch --yes --dearmor -o /etc/apt/keyrings/erdma.gpg erdma-GPGKEY",
        "echo 'deb [signed-by=/etc/apt/keyrings/erdma.gpg] https://mirrors.aliyun.com/erdma/apt/"
        "ubuntu jammy/erdma main' | tee /etc/apt/sources.list.d/erdma.list",
        "apt-get update",
        "apt-get install -y libibverbs1 ibverbs-providers ibverbs-utils librdmacm1",
    ]
    script = "\n".join(commands)
    assert "apt-key" not in script and "| sh" not in script and "| bash" not in script
    assert shlex.split(commands[3])[1].startswith("deb [signed-by=")  # one quoted word


def test_erdma_with_its_provider_installed_needs_nothing(tree: TreeHost) -> None:
    host = erdma_host(tree)
    host.write("/usr/lib/x86_64-linux-gnu/libibverbs/liberdma-rdmav34.so")
    found = rdma(host)
    assert found.status is Status.OK, found.summary
    assert not found.fixes


def test_erdma_on_a_release_alibaba_publishes_no_suite_for_names_the_guide(tree: TreeHost) -> None:
    found = rdma(erdma_host(tree, UBUNTU_2404.replace("24.04", "25.04")))
    assert found.status is Status.WARN and not found.fixes
    assert any(
        "https://www.alibabacloud.com/help/en/ecs/user-guide/erdma-usage" in d
        for d in found.details
    )


# -- rdma-core and OFED against the kernel's modules ------------------------------------------


def test_ofed_over_the_kernels_own_mlx5_core_is_said(tree: TreeHost) -> None:
    output = (Path(__file__).parent / "data" / "ofed_info-s-cx7.txt").read_text()
    tree.program("/usr/bin/ofed_info", output)
    tree.mkdir("/sys/bus/pci/drivers/mlx5_core")
    tree.mkdir("/sys/devices/pci0000:00/0000:00:05.0")
    tree.symlink(
        "/sys/devices/pci0000:00/0000:00:05.0/driver",
        str(tree.root / "sys/bus/pci/drivers/mlx5_core"),
    )
    tree.symlink(
        "/sys/class/infiniband/mlx5_0/device",
        str(tree.root / "sys/devices/pci0000:00/0000:00:05.0"),
    )
    tree.write("/sys/module/mlx5_core/taint", "\n")  # in-tree: no O
    found = rdma(roce(tree))
    assert "mlx5_core: in-tree" in found.details
    assert any("runs over the kernel's own mlx5_core" in d for d in found.details)
    tree.write("/sys/module/mlx5_core/taint", "OE\n")  # OFED's: built out of the tree
    found = rdma(TreeHost(tree.root, tree.env))
    assert "mlx5_core: out-of-tree" in found.details
