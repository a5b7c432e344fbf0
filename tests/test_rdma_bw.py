"""The rdma-bw recipe, run for real by `wizard run` with stand-ins for ssh and perftest that
play back perftest's published output (tests/data/README.md)."""

from __future__ import annotations

import json
import os
import stat
import subprocess
from pathlib import Path

import pytest

from tests import netns
from tests.cli import run_wizard
from wizard.engine.recipes.parsers import (
    PERFTEST_PAIR,
    Perftest,
    Summary,
    perftest_summary,
    summary,
)

DATA = Path(__file__).parent / "data"
WRITE = DATA / "ib_write_bw-roce-100g.txt"
SEND = DATA / "ib_send_bw-roce-mtu1024.txt"


def script(path: Path, text: str) -> None:
    path.write_text("#!/bin/sh\n" + text)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


@pytest.fixture
def bin_dir(tmp_path: Path) -> Path:
    """`ssh HOST CMD` runs CMD here, in a shell, as sshd would there; `ib_*_bw` as a server
    (no address last) logs its arguments and waits a moment, as a client prints the sample."""
    folder = tmp_path / "bin"
    folder.mkdir()
    script(folder / "ssh", 'shift\nexec sh -c "$*"\n')
    for tool, sample in (("ib_write_bw", WRITE), ("ib_send_bw", SEND)):
        script(
            folder / tool,
            f'echo "$0 $*" >> {tmp_path}/calls\n'
            f'case "$*" in *" peer-roce") cat {sample} ;; *) sleep 0.3 ;; esac\n',
        )
    return folder


def wizard_env(tmp_path: Path, bin_dir: Path) -> dict[str, str]:
    return {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "NO_COLOR": "1",
    }


def run_rdma_bw(env: dict[str, str], *sets: str) -> subprocess.CompletedProcess[str]:
    return run_wizard(env, "run", "rdma-bw", *[a for s in sets for a in ("--set", s)], "--yes")


def test_each_device_pair_is_measured_parsed_and_set_against_the_port_rate(
    tmp_path: Path, bin_dir: Path
) -> None:
    """Two devices here, as the doctor's rdma.hca lists them: each against the server's
    device of the same name, each on its own perftest port; a result per pair."""
    env = wizard_env(tmp_path, bin_dir)
    sets = ["server=peer", "server_addr=peer-roce", "hca=mlx5_0,mlx5_1", "gid_index=3"]
    done = run_rdma_bw(env, *sets, "rate_gbps=100")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    servers = [c for c in calls if not c.endswith("peer-roce")]
    clients = [c for c in calls if c.endswith("peer-roce")]
    flags = "-s 65536 -q 1 -n 5000 -F --report_gbits -x 3"
    for tool in ("ib_write_bw", "ib_send_bw"):
        for device, port in (("mlx5_0", 18515), ("mlx5_1", 18516)):
            said = f"{tool} -d {device} -p {port} {flags}"
            assert [c for c in servers if said in c] and [c for c in clients if said in c]
    assert len(servers) == len(clients) == 4
    status = json.loads(run_wizard(env, "status", "--json").stdout)
    for step in ("write-bw", "send-bw"):
        pairs = status["steps"][step]["results"]["perftest"]
        assert list(pairs) == ["mlx5_0:mlx5_0", "mlx5_1:mlx5_1"]
        assert all(p["port_rate_gbps"] == 100.0 for p in pairs.values())
    write = status["steps"]["write-bw"]["results"]["perftest"]
    assert [p["rows"][0]["average_gbps"] for p in write.values()] == [98.03, 98.03]
    assert (
        "write-bw: RDMA_Write BW Test on 2 device pairs: mlx5_0:mlx5_0 98.03 Gb/s (98% of 100 "
        "Gb/s), mlx5_1:mlx5_1 98.03 Gb/s (98% of 100 Gb/s)"
    ) in done.stdout
    for device in ("mlx5_0", "mlx5_1"):
        assert (
            f"  RDMA_Write BW Test on {device}: 98.03 Gb/s at 65536 B (98% of the port's 100 Gb/s)"
            in done.stdout
        )
        assert (
            f"  Send BW Test on {device}: 56.75 Gb/s at 65536 B (57% of the port's 100 Gb/s); "
            "below 80%"
        ) in done.stdout
    assert "mlx5_1:mlx5_1 56.75 Gb/s (57% of 100 Gb/s: below 80%)" in done.stdout


def test_pairs_given_cross_the_devices(tmp_path: Path, bin_dir: Path) -> None:
    """`pairs` pairs any device here with any there. These names are no device's in sysfs,
    so without rate_gbps the rate is unknown, and said so."""
    env = wizard_env(tmp_path, bin_dir)
    sets = ["server=peer", "server_addr=peer-roce", "hca=cx7_0", "pairs=cx7_0:cx7_1,cx7_1:cx7_0"]
    done = run_rdma_bw(env, *sets)
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    write = [c.split("/")[-1].split(" -s ")[0] for c in calls if "ib_write_bw" in c]
    assert write == [  # each pair's server there, then its client here
        "ib_write_bw -d cx7_1 -p 18515",
        "ib_write_bw -d cx7_0 -p 18515",
        "ib_write_bw -d cx7_0 -p 18516",
        "ib_write_bw -d cx7_1 -p 18516",
    ]
    assert (
        "  RDMA_Write BW Test on cx7_0 to the server's cx7_1: 98.03 Gb/s at 65536 B (the "
        "port's rate is unknown: nothing to set it against)"
    ) in done.stdout
    assert "cx7_1:cx7_0 98.03 Gb/s (rate unknown)" in done.stdout


@pytest.mark.parametrize(
    ("sets", "said"),
    [
        (
            ["hca=mlx5_0,mlx5_1", "server_hca=mlx5_0"],
            "hca names 2 devices, server_hca 1: --set pairs=HERE:THERE,...",
        ),
        (["hca=mlx5_0", "pairs=mlx5_0"], "pair 'mlx5_0' is not HERE:THERE"),
        (["hca=mlx5_0,mlx5_1", "gid_index=3,5"], "GID indexes 3,5 differ by device"),
    ],
)
def test_pairs_that_do_not_pair_are_refused_before_any_test(
    tmp_path: Path, bin_dir: Path, sets: list[str], said: str
) -> None:
    done = run_rdma_bw(wizard_env(tmp_path, bin_dir), "server=peer", *sets)
    assert done.returncode == 1 and said in done.stdout + done.stderr
    assert not (tmp_path / "calls").exists()


def test_a_slow_result_names_the_usual_suspects() -> None:
    parser = Perftest()
    parser.feed(["[wizard] port rate: 100 Gb/s", *SEND.read_text().splitlines()])
    summary = perftest_summary(parser.results())
    assert "57% of the port's 100 Gb/s" in summary
    assert "the MTU (1024 B here" in summary and "the GID index (3 here" in summary
    assert "LnkSta" in summary and "NUMA node" in summary


def test_a_fast_result_names_none_and_an_unknown_rate_says_so() -> None:
    parser = Perftest()
    parser.feed(WRITE.read_text().splitlines())
    summary = perftest_summary(parser.results())
    assert summary.endswith("(the port's rate is unknown: nothing to set it against)")
    parser.feed(["[wizard] port rate: 100 Gb/s"])
    assert "below" not in perftest_summary(parser.results())


def test_each_announced_pair_keeps_its_own_result_in_one_chunk_or_across_chunks() -> None:
    lines = [
        f"{PERFTEST_PAIR}mlx5_0:mlx5_0",
        "[wizard] port rate: 100 Gb/s",
        *WRITE.read_text().splitlines(),
        f"{PERFTEST_PAIR}mlx5_1:mlx5_3",
        "[wizard] port rate: 200 Gb/s",
        *SEND.read_text().splitlines(),
    ]
    for chunk in (len(lines), 3):
        parser = Perftest()
        for start in range(0, len(lines), chunk):
            parser.feed(lines[start : start + chunk])
        pairs = parser.results()["perftest"]
        assert list(pairs) == ["mlx5_0:mlx5_0", "mlx5_1:mlx5_3"]
        first, second = pairs.values()
        assert (first["test"], first["mtu"], first["port_rate_gbps"]) == (
            "RDMA_Write BW Test",
            4096,
            100.0,
        )
        assert (second["test"], second["mtu"], second["port_rate_gbps"]) == (
            "Send BW Test",
            1024,
            200.0,
        )
        assert [r["average_gbps"] for r in second["rows"]] == [56.75]
    said = summary(parser.results())
    assert said is not None
    assert said.details == [
        "RDMA_Write BW Test on mlx5_0: 98.03 Gb/s at 65536 B (98% of the port's 100 Gb/s)",
        "Send BW Test on mlx5_1 to the server's mlx5_3: 56.75 Gb/s at 65536 B (28% of the "
        "port's 200 Gb/s); below 80%: check the MTU (1024 B here; RoCE wants 4096, so a netdev "
        "MTU over 4200); the GID index (3 here: use a RoCE v2 one); the NIC's PCIe link (`lspci "
        "-vv`: LnkSta width and speed below LnkCap); a NIC on another NUMA node than the cores "
        "the test ran on (`numactl -N <node>`)",
    ]


def test_output_in_mb_per_second_is_not_taken_for_gbits() -> None:
    parser = Perftest()
    parser.feed(
        [
            " #bytes     #iterations    BW peak[MB/sec]    BW average[MB/sec]   MsgRate[Mpps]",
            *WRITE.read_text().splitlines()[-2:],
        ]
    )
    assert parser.results() == {}


@pytest.mark.skipif(netns.available() is not None, reason=str(netns.available()))
def test_the_server_runs_on_another_host_over_real_ssh(tmp_path: Path, bin_dir: Path) -> None:
    """node0 behind a real sshd (tests/netns.py) runs the servers, from the same stand-ins on
    its PATH; the clients run here. The device name has a space and a quote: it reaches the
    shell there as one word."""
    (bin_dir / "ssh").unlink()  # the real ssh this time
    folder = tmp_path / "lab"
    folder.mkdir()
    odd = "mlx5 0'x"
    with netns.Lab(folder, 1) as lab:
        lab.hosts[0].env = {"PATH": f"{bin_dir}:/usr/local/bin:/usr/bin:/bin"}
        lab.start(lab.hosts[0])
        env = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "XDG_STATE_HOME": str(tmp_path / "state"),
            "NO_COLOR": "1",
        }
        sets = [
            "server=node0", "server_addr=peer-roce", "hca=mlx5_0", f"server_hca={odd}",
            "rate_gbps=100", f"ssh=ssh -F {lab.config}",
        ]  # fmt: skip
        done = run_wizard(env, "run", "rdma-bw", *[a for s in sets for a in ("--set", s)], "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    servers = [c for c in calls if not c.endswith("peer-roce")]
    assert len(servers) == 2 and all(f"-d {odd} -p 18515" in c for c in servers)
    assert "98% of the port's 100 Gb/s" in done.stdout


def test_a_run_saved_before_device_pairs_is_still_described() -> None:
    """`wizard status` on a run of the one-device recipe: its results held one run's banner
    and rows, not a table of pairs, and are read as the pair of the device they name."""
    saved = {
        "perftest": {
            "test": "RDMA_Write BW Test",
            "device": "mlx5_0",
            "port_rate_gbps": 100.0,
            "rows": [
                {"size_bytes": 65536, "iterations": 5000, "peak_gbps": 98.1,
                 "average_gbps": 98.03, "msg_rate_mpps": 0.187},
            ],
        }
    }  # fmt: skip
    line = perftest_summary(saved)
    assert line.startswith("RDMA_Write BW Test on mlx5_0: 98.03 Gb/s"), line
    assert "98% of the port's 100 Gb/s" in line
    assert summary(saved) == Summary(line, [])
