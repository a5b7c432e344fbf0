"""Machines with 1, 2, 4 and 8 GPUs, through a fake NVML binding that answers as the real one
did on the lent 4x H100 machine (tests/data/nvml-trace-4xh100.json), quirks included."""

from __future__ import annotations

import ctypes
import importlib.util
import json
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from checks import topology
from checks.base import Status
from tests.cli import run_wizard
from tests.fakes import machines
from tests.fakes.nvml_trace import trace as trace_of
from tests.treehost import TreeHost
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.host import load_snapshot
from wizard.host.nvml import query

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"
TOPO_4XH100 = (DATA / "nvidia-smi-topo-4xh100.txt").read_text()


@pytest.fixture
def fake_nvml(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    """fake_nvml(trace) makes `import pynvml` give the fake binding answering from trace."""

    def install(trace: dict[str, Any]) -> ModuleType:
        path = machines.write(trace, tmp_path / f"trace-{len(trace['calls'])}.json")
        monkeypatch.setenv("FAKE_NVML_TRACE", str(path))
        spec = importlib.util.spec_from_file_location("pynvml", machines.FAKES / "pynvml.py")
        assert spec and spec.loader
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        monkeypatch.setitem(sys.modules, "pynvml", module)
        return module

    return install


def gpu_finding(answer: dict[str, Any], env: dict[str, str] | None = None, tmp: Path = ROOT):
    host = TreeHost(tmp, env=env, nvml=answer)
    return next(f for f in run_doctor(host).findings if f.id == "gpu.nvidia")


# -- the fake is the real binding --------------------------------------------------------


def test_the_fake_answers_every_recorded_call_as_the_real_binding_did(fake_nvml: Any) -> None:
    real = machines.real_4xh100()
    replayed = trace_of(fake_nvml(real))
    assert replayed["constants"] == real["constants"]
    assert replayed["calls"] == real["calls"]


def test_the_fake_keeps_the_tuple_constant_and_its_ctypes_error(fake_nvml: Any) -> None:
    nv = fake_nvml(machines.real_4xh100())
    assert nv.NVML_P2P_CAPS_INDEX_READ == (0,)  # as nvidia-ml-py 13.615 defines it
    a, b = nv.nvmlDeviceGetHandleByIndex(0), nv.nvmlDeviceGetHandleByIndex(1)
    with pytest.raises(ctypes.ArgumentError, match="Don't know how to convert parameter 3"):
        nv.nvmlDeviceGetP2PStatus(a, b, nv.NVML_P2P_CAPS_INDEX_READ)


def test_query_on_the_fake_equals_the_real_machines_answer(fake_nvml: Any) -> None:
    """The snapshot was recorded by `wizard snapshot` on a later lease of the same kind of
    machine than the trace: only the GPUs' UUIDs differ."""
    fake_nvml(machines.real_4xh100())
    recorded = yaml.safe_load((ROOT / "snapshots" / "4xh100-nvlink.yaml").read_text())
    answer, real = query(), recorded["observations"]["nvml"]["query"]
    for gpu in [*answer["gpus"], *real["gpus"]]:
        assert gpu.pop("uuid").startswith("GPU-")
    assert answer == real


# -- 1, 2, 4, 8 GPUs --------------------------------------------------------------------


@pytest.mark.parametrize("gpus", [1, 2, 4, 8])
def test_every_size_reads_count_links_and_peak(fake_nvml: Any, gpus: int) -> None:
    fake_nvml(machines.scaled(machines.real_4xh100(), gpus))
    answer = query()
    assert answer["unread"] == []
    finding = gpu_finding(answer)
    assert finding.status is Status.OK
    facts = finding.facts
    assert facts["gpu.count"] == gpus and facts["gpu.nvlinks"] == 18
    assert facts["gpu.nvlink.generation"] == "4.0"  # NVML's enum 6, not "NVLink 6"
    assert facts["gpu.link"] == "NVLink 4.0 ×18" and facts["gpu.link.peak_gbs"] == 450.0
    pairs = gpus * (gpus - 1) // 2
    assert facts["gpu.nvlink.pairs"] == pairs
    assert facts["gpu.p2p_all"] is True
    assert sum("↔" in line for line in finding.details) == pairs
    if gpus > 1:
        assert "GPU0 ↔ GPU1: NVLink ×18 through NVSwitch (NV18), peer access yes" in finding.details


def test_pcie_machine_without_nvlink(fake_nvml: Any) -> None:
    fake_nvml(machines.pcie_only(machines.scaled(machines.real_4xh100(), 8), per_socket=4))
    answer = query()
    assert answer["unread"] == []  # NotSupported on link 0 means no NVLink, not a failure
    finding = gpu_finding(answer)
    assert finding.facts["gpu.nvlinks"] == 0 and finding.facts["gpu.nvlink.pairs"] == 0
    assert finding.facts["gpu.link"] == "PCIe 5.0 ×16"
    assert finding.facts["gpu.link.peak_gbs"] == pytest.approx(63.008)
    assert finding.facts["gpu.p2p_all"] is False
    assert "GPU0 ↔ GPU1: one PCIe switch (PIX), peer access yes" in finding.details
    assert "GPU3 ↔ GPU4: across CPU sockets (SYS), peer access no" in finding.details


# -- a sub-query that fails keeps the rest ------------------------------------------------


@pytest.mark.parametrize(
    ("broken", "what"),
    [
        (lambda t: machines.without(t, "nvmlDeviceGetP2PStatus"), "peer read status"),
        (lambda t: machines.unsupported(t, "nvmlDeviceGetNvLinkVersion"), "NVLink version"),
        (
            lambda t: machines.without(t, "nvmlDeviceGetNvLinkRemoteDeviceType"),
            "NVLink remote device type",
        ),
        (lambda t: machines.unsupported(t, "nvmlDeviceGetNvLinkState"), None),
    ],
    ids=["missing-p2p", "version-not-supported", "missing-remote-type", "no-nvlink-state"],
)
def test_a_failing_optional_query_keeps_count_model_memory_driver(
    fake_nvml: Any, broken: Any, what: str | None
) -> None:
    fake_nvml(broken(machines.scaled(machines.real_4xh100(), 4)))
    answer = query()
    assert "error" not in answer
    finding = gpu_finding(answer)
    assert finding.status is Status.OK
    assert finding.facts["gpu.count"] == 4
    assert finding.facts["gpu.model"] == "NVIDIA H100 80GB HBM3"
    assert finding.facts["driver.version"] == "580.159.04"
    assert "no NVIDIA driver answers" not in finding.summary
    if what:
        assert any(line.startswith(f"could not read {what} (") for line in finding.details)


def test_a_failing_required_query_is_not_called_a_missing_driver(fake_nvml: Any) -> None:
    fake_nvml(machines.unsupported(machines.real_4xh100(), "nvmlDeviceGetMemoryInfo"))
    answer = query()
    assert answer["error"] == (
        "NVML started but could not list the GPUs: NVMLError_NotSupported: Not Supported"
    )
    finding = gpu_finding(answer)
    assert finding.status is Status.FAIL and finding.fixes == []
    assert "no NVIDIA driver" not in finding.summary


def test_missing_remote_type_still_finds_nvlink_pairs_through_p2p(fake_nvml: Any) -> None:
    trace = machines.without(
        machines.scaled(machines.real_4xh100(), 4), "nvmlDeviceGetNvLinkRemoteDeviceType"
    )
    fake_nvml(trace)
    finding = gpu_finding(query())
    assert finding.facts["gpu.nvlink.pairs"] == 6
    assert finding.facts["gpu.link.peak_gbs"] == 450.0


def test_no_driver_is_the_only_case_for_the_driver_fix(fake_nvml: Any, monkeypatch: Any) -> None:
    fake_nvml(machines.real_4xh100())
    monkeypatch.setenv("FAKE_NVML_TRACE", "")
    spec = importlib.util.spec_from_file_location("pynvml", machines.FAKES / "pynvml.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    monkeypatch.setitem(sys.modules, "pynvml", module)
    assert "no NVIDIA driver" in query()["error"]


# -- topology fallback and CUDA_VISIBLE_DEVICES ------------------------------------------


def test_real_topo_matrix_is_parsed_despite_its_escape_codes() -> None:
    cells = topology.parse_topo_matrix(TOPO_4XH100)
    assert len(cells) == 12 and set(cells.values()) == {"NV18"}


def test_nvidia_smi_fills_paths_nvml_cannot_give(fake_nvml: Any, tmp_path: Path) -> None:
    trace = machines.without(
        machines.unsupported(
            machines.real_4xh100(),
            "nvmlDeviceGetNvLinkRemoteDeviceType",
            "nvmlDeviceGetTopologyCommonAncestor",
        ),
        "nvmlDeviceGetP2PStatus",
    )
    fake_nvml(trace)
    host = TreeHost(tmp_path, nvml=query())
    host.program("/usr/bin/nvidia-smi", TOPO_4XH100)
    finding = next(f for f in run_doctor(host).findings if f.id == "gpu.nvidia")
    assert "paths NVML did not give were read from `nvidia-smi topo -m`" in finding.details
    assert finding.facts["gpu.nvlink.pairs"] == 6
    assert "GPU2 ↔ GPU3: NVLink ×18 (NV18), peer access unknown" in finding.details
    assert finding.facts["gpu.p2p_all"] is None


@pytest.mark.parametrize(
    ("visible", "count"),
    [("0,1", 2), ("2", 1), ("1,7,2", 1), ("", 0), ("GPU-5b01ce3c", 1), ("-1", 0)],
)
def test_cuda_visible_devices_narrows_the_gpus(
    fake_nvml: Any, tmp_path: Path, visible: str, count: int
) -> None:
    fake_nvml(machines.real_4xh100())
    finding = gpu_finding(query(), env={"CUDA_VISIBLE_DEVICES": visible}, tmp=tmp_path)
    assert finding.facts["gpu.count"] == count and finding.facts["gpu.count_all"] == 4
    assert finding.status is (Status.OK if count else Status.FAIL)
    assert f"CUDA_VISIBLE_DEVICES={visible}: {count} of 4 GPUs used" in " ".join(finding.details)


def test_two_gpu_snapshot_replays_with_two_gpus() -> None:
    report = run_doctor(load_snapshot(ROOT / "snapshots" / "2xh100-nvlink.yaml"))
    gpu = next(f for f in report.findings if f.id == "gpu.nvidia")
    assert gpu.facts["gpu.count"] == 2 and gpu.facts["gpu.nvlink.pairs"] == 1


def test_four_gpu_snapshot_replays_topology_and_peak() -> None:
    report = run_doctor(load_snapshot(ROOT / "snapshots" / "4xh100-nvlink.yaml"))
    gpu = next(f for f in report.findings if f.id == "gpu.nvidia")
    assert gpu.facts["gpu.count"] == 4 and gpu.facts["gpu.nvlink.all_pairs"] is True
    assert gpu.facts["gpu.link.peak_gbs"] == 450.0
    assert gpu.summary.startswith("4 × NVIDIA H100 80GB HBM3 (79 GiB), NVLink 4.0 ×18")


# -- the doctor as a user runs it, through the real child process -------------------------


@pytest.mark.parametrize("gpus", [2, 8])
def test_wizard_doctor_json_with_the_fake_binding(tmp_path: Path, gpus: int) -> None:
    trace = machines.write(machines.scaled(machines.real_4xh100(), gpus), tmp_path / "t.json")
    env = {
        **os.environ,
        "PYTHONPATH": f"{machines.FAKES}{os.pathsep}{ROOT}",
        "FAKE_NVML_TRACE": str(trace),
    }
    env.pop("CUDA_VISIBLE_DEVICES", None)
    done = run_wizard(env, "doctor", "--json")
    gpu = next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "gpu.nvidia")
    assert gpu["status"] == "ok" and not gpu["blocking"]
    assert gpu["facts"]["gpu.count"] == gpus
    assert gpu["facts"]["gpu.nvlink.pairs"] == gpus * (gpus - 1) // 2
    assert gpu["facts"]["gpu.link.peak_gbs"] == 450.0
