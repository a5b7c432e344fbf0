"""FlagCX's settings: the environment and the two conf files, as FlagCX's param.cc reads them."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from checks.base import Finding, Status
from checks.flagcx_env import chosen, conf_entries
from tests import netns
from tests.cli import run_wizard
from tests.treehost import TreeHost
from wizard.engine.doctor.diagnosis import run_doctor


def settings(tree: TreeHost) -> Finding:
    return next(f for f in run_doctor(tree).findings if f.id == "flagcx.env")


def checkout(tree: TreeHost, source_line: str) -> None:
    """A FlagCX checkout where the doctor looks (~/FlagCX), whose one source file reads
    settings with `source_line` (lines as FlagCX's sources have them)."""
    tree.write("/root/FlagCX/Makefile", "USE_NVIDIA ?= 0\n")
    tree.write("/root/FlagCX/flagcx/service/param.cc", source_line + "\n")
    tree.symlink("/usr/bin/grep", "/usr/bin/grep")  # the real grep, run in the tree


@pytest.fixture
def home(tree: TreeHost) -> TreeHost:
    tree.env["HOME"] = "/root"
    tree.mkdir("/root")
    return tree


def test_nothing_set_is_skipped(home: TreeHost) -> None:
    assert settings(home).status is Status.SKIP


def test_environment_wins_over_home_conf_over_etc_conf(home: TreeHost) -> None:
    home.env["FLAGCX_DEBUG"] = "TRACE"
    home.write("/root/.flagcx.conf", "FLAGCX_DEBUG=WARN\nFLAGCX_DEBUG_SUBSYS=NET\n")
    home.write("/etc/flagcx.conf", "FLAGCX_DEBUG=INFO\nFLAGCX_DEBUG_SUBSYS=ALL\nFLAGCX_IB_TC=106\n")
    found = settings(home)
    assert found.status is Status.OK, found.details
    assert (
        "FLAGCX_DEBUG=TRACE (environment); overrides /root/.flagcx.conf, /etc/flagcx.conf"
        in found.details
    )
    assert (
        "FLAGCX_DEBUG_SUBSYS=NET (/root/.flagcx.conf); overrides /etc/flagcx.conf" in found.details
    )
    assert "FLAGCX_IB_TC=106 (/etc/flagcx.conf)" in found.details


def test_conf_lines_are_split_at_the_first_equals_and_the_first_line_wins() -> None:
    text = "FLAGCX_DEBUG=INFO\nno equals sign\nFLAGCX_DEBUG=WARN\nFLAGCX_TOPO_FILE=a=b\n =x\n"
    assert conf_entries(text) == {"FLAGCX_DEBUG": "INFO", "FLAGCX_TOPO_FILE": "a=b", " ": "x"}


def test_a_name_current_flagcx_no_longer_reads_is_flagged(home: TreeHost) -> None:
    home.env["FLAGCX_ENABLE_TOPO_DETECT"] = "TRUE"
    found = settings(home)
    assert found.status is Status.WARN
    assert "FLAGCX_ENABLE_TOPO_DETECT is not read by FlagCX v0.13" in found.summary


def test_the_checkouts_own_sources_decide_which_names_are_read(home: TreeHost) -> None:
    # v0.6's flagcx/core/init.cc reads it; there it is a real setting
    checkout(home, '  const char *env = flagcxGetEnv("FLAGCX_ENABLE_TOPO_DETECT");')
    home.env["FLAGCX_ENABLE_TOPO_DETECT"] = "TRUE"
    home.env["FLAGCX_TOPO_DETECTION_DISABLE"] = "1"
    found = settings(home)
    assert found.status is Status.WARN
    assert found.details[0] == (
        "FLAGCX_TOPO_DETECTION_DISABLE is not read by the sources of /root/FlagCX: it does nothing"
    )
    assert not any("FLAGCX_ENABLE_TOPO_DETECT is not read" in d for d in found.details)


def test_a_flagcx_param_definition_counts_as_read(home: TreeHost) -> None:
    checkout(home, 'FLAGCX_PARAM(TopoDetectionDisable, "TOPO_DETECTION_DISABLE", 0);')
    home.env["FLAGCX_TOPO_DETECTION_DISABLE"] = "1"
    assert settings(home).status is Status.OK


@pytest.mark.parametrize(
    ("name", "value", "works"),
    [
        ("FLAGCX_SOCKET_IFNAME", "eth", True),
        ("FLAGCX_SOCKET_IFNAME", "eth9", False),
        ("FLAGCX_SOCKET_IFNAME", "=eth", False),
        ("NCCL_SOCKET_IFNAME", "^eth,lo", False),
        ("NCCL_SOCKET_IFNAME", "^docker", True),
        ("FLAGCX_SOCKET_IFNAME", "e", False),  # FlagCX ignores a 1-character value
    ],
)
def test_an_interface_list_that_matches_no_interface_warns(
    home: TreeHost, name: str, value: str, works: bool
) -> None:
    for interface in ("lo", "eth0"):
        home.mkdir(f"/sys/class/net/{interface}")
    home.env[name] = value
    found = settings(home)
    assert (found.status is Status.OK) is works, found.details
    if not works:
        assert name in found.summary


@pytest.mark.parametrize(
    ("value", "works"),
    [
        ("mlx5_0", True),
        ("mlx5_0:1", True),
        ("mlx5_0:2", False),
        ("mlx5_1", False),
        ("^mlx5", False),
    ],
)
def test_an_hca_list_that_names_no_device_port_warns(
    home: TreeHost, value: str, works: bool
) -> None:
    home.mkdir("/sys/class/infiniband/mlx5_0/ports/1")
    home.write("/root/.flagcx.conf", f"FLAGCX_IB_HCA={value}\n")
    found = settings(home)
    assert (found.status is Status.OK) is works, found.details
    if not works:
        assert f"FLAGCX_IB_HCA={value} selects no RDMA device port" in found.summary


def test_an_hca_list_on_a_host_without_rdma_warns(home: TreeHost) -> None:
    home.env["NCCL_IB_HCA"] = "mlx5_0"
    assert "this host has none" in settings(home).summary


def test_lists_match_as_flagcx_matchiflist_does() -> None:
    ports = [("mlx5_0", 1), ("mlx5_1", 1), ("mlx5_10", 1)]
    assert chosen("=mlx5_1", ports) == [("mlx5_1", 1)]
    assert chosen("mlx5_1", ports) == [("mlx5_1", 1), ("mlx5_10", 1)]
    assert chosen("^=mlx5_1", ports) == [("mlx5_0", 1), ("mlx5_10", 1)]
    assert chosen("", ports) == ports


def test_conf_lines_that_are_not_settings_are_named(home: TreeHost) -> None:
    home.write("/root/.flagcx.conf", "export FLAGCX_DEBUG=INFO\n")
    found = settings(home)
    assert found.status is Status.WARN
    assert "'export FLAGCX_DEBUG' is not a variable name" in found.summary


@pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
def test_a_remote_hosts_settings_are_read_over_ssh(tmp_path: Path) -> None:
    """A host behind a real sshd (tests/netns.py) whose sessions get FLAGCX settings through
    sshd's SetEnv: the names come over awk's ENVIRON, the values over printenv."""
    folder = tmp_path / "lab"
    folder.mkdir()
    with netns.Lab(folder, 1) as lab:
        lab.hosts[0].env = {
            "PATH": "/usr/local/bin:/usr/bin:/bin",
            "FLAGCX_ENABLE_TOPO_DETECT": "TRUE",
            "FLAGCX_DEBUG": "INFO",
        }
        lab.start(lab.hosts[0])
        done = run_wizard(
            dict(os.environ), "doctor", "--json", "--hosts", "node0",
            "--ssh-config", str(lab.config), timeout=180,
        )  # fmt: skip
    data = json.loads(done.stdout)
    found = next(f for f in data["hosts"][0]["findings"] if f["id"] == "flagcx.env")
    assert found["status"] == "warn", found
    assert "FLAGCX_ENABLE_TOPO_DETECT is not read by FlagCX v0.13" in found["summary"]
    assert "FLAGCX_DEBUG=INFO (environment)" in found["details"]
