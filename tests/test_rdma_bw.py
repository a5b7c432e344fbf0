"""The rdma-bw recipe, run for real by `wizard run` with stand-ins for ssh and perftest that
play back perftest's published output (tests/data/README.md)."""

from __future__ import annotations

import json
import os
import stat
from pathlib import Path

import pytest

from tests import netns
from tests.cli import run_wizard
from wizard.engine.recipes.parsers import Perftest, perftest_summary

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


def test_both_tests_run_parse_and_are_set_against_the_port_rate(
    tmp_path: Path, bin_dir: Path
) -> None:
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "XDG_STATE_HOME": str(tmp_path / "state"),
        "NO_COLOR": "1",
    }
    sets = ["server=peer", "server_addr=peer-roce", "hca=mlx5_0", "gid_index=3", "rate_gbps=100"]
    done = run_wizard(env, "run", "rdma-bw", *[a for s in sets for a in ("--set", s)], "--yes")
    assert done.returncode == 0, done.stdout + done.stderr
    calls = (tmp_path / "calls").read_text().splitlines()
    servers = [c for c in calls if not c.endswith("peer-roce")]
    clients = [c for c in calls if c.endswith("peer-roce")]
    assert len(servers) == 2 and len(clients) == 2
    for call in calls:
        assert "-d mlx5_0 -p 18515 -s 65536 -q 1 -n 5000 -F --report_gbits -x 3" in call
    status = json.loads(run_wizard(env, "status", "--json").stdout)
    write = status["steps"]["write-bw"]["results"]["perftest"]
    assert write["rows"][0]["average_gbps"] == 98.03 and write["port_rate_gbps"] == 100.0
    assert (
        "RDMA_Write BW Test on mlx5_0: 98.03 Gb/s at 65536 B (98% of the port's 100 Gb/s)"
        in done.stdout
    )
    assert (
        "Send BW Test on mlx5_0: 56.75 Gb/s at 65536 B (57% of the port's 100 Gb/s); below 80%"
        in done.stdout
    )


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
