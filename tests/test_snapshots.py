"""Replays of machines recorded with `wizard snapshot`: the GPU hardware CI lacks."""

from __future__ import annotations

from pathlib import Path

import pytest

from checks.base import Status
from checks.vendors import VENDORS
from wizard.cli.doctor_table import make_vars
from wizard.engine.doctor.diagnosis import Diagnosis, run_doctor
from wizard.host import load_snapshot

SNAPSHOTS = Path(__file__).resolve().parent.parent / "snapshots"


# Probes added to recorded checks after these machines were recorded (FlagCX v0.13's new
# vendors, Kunlunxin's CCL_HOME and xpu_smi): replayed as "not there", which is what these NVIDIA
# hosts had, and allowed by name so that any other missing observation still fails.
NEWER_PROBES = {
    *(
        ("which", tool)
        for key in ("tsm", "enflame", "sunrise", "ppu")
        for tool in VENDORS[key].tools
    ),
    *(("paths", home) for home in ("/usr/local/kuiper", "/opt/tops", "/usr/local/tangrt")),
    *(("paths", home) for home in ("/usr/local/pccl", "/usr/local/xccl")),
    ("which", "xpu_smi"),  # Kunlunxin's tool under its other name (ERNIE's P800 guide)
}


def replay(name: str, target: str | None = None) -> Diagnosis:
    host = load_snapshot(SNAPSHOTS / name)
    report = run_doctor(host, target)
    misses = [m for m in host.misses if m not in NEWER_PROBES]
    assert misses == [], f"{name} lacks observations the checks now make: {misses}"
    return report


def by_id(report: Diagnosis) -> dict:
    return {f.id: f for f in report.findings}


@pytest.mark.parametrize("name", sorted(p.name for p in SNAPSHOTS.glob("*.yaml")))
def test_every_snapshot_replays_completely(name: str) -> None:
    report = replay(name)
    assert {f.id for f in report.findings} >= {
        "os",
        "gpu.nvidia",
        "cuda.toolkit",
        "nccl.header",
        "mpi",
        "gtest",
        "torch",
        "limits",
        "rdma",
    }


def test_h100_machine() -> None:
    report = replay("h100-ubuntu2404.yaml")
    f = by_id(report)
    assert report.exit_code == 0 and report.target.id == "flagcx-nvidia"
    assert f["os"].facts["os.id"] == "ubuntu" and f["os"].facts["os.container"] == "docker"
    gpu = f["gpu.nvidia"]
    assert gpu.status is Status.OK
    assert gpu.facts["gpu.count"] == 1 and gpu.facts["gpu.model"] == "NVIDIA H100 80GB HBM3"
    assert gpu.facts["driver.version"].startswith("580.") and gpu.facts["driver.cuda"] == "13.0"
    assert f["cuda.toolkit"].facts["cuda.version"] == "13.0.88"
    # The system's NCCL and PyTorch's pip NCCL differ; the build uses the system's.
    assert f["nccl.header"].facts["nccl.version"] == "2.28.3"
    assert f["nccl.header"].facts["nccl.torch_version"] == "2.28.9"
    assert "PyTorch uses 2.28.9" in f["nccl.header"].summary
    assert f["nccl.library"].facts["nccl.lib_version"] == "2.28.3"
    assert f["mpi"].facts["mpi.flavor"] == "Open MPI" and f["mpi"].facts["mpi.version"] == "4.1.6"
    assert "--allow-run-as-root" in f["mpi"].facts["mpi.run_flags"]
    assert f["gtest"].status is Status.OK
    assert f["torch"].facts["torch.cuda"] == "13.0" and f["torch"].status is Status.OK
    assert f["limits"].status is Status.OK
    assert f["rdma"].status is Status.SKIP
    assert make_vars(report) == {
        "USE_NVIDIA": "1",
        "DEVICE_HOME": "/usr/local/cuda",
        "CCL_HOME": "/usr",
        "MPI_HOME": "/usr/lib/x86_64-linux-gnu/openmpi",
    }


def test_h100_with_only_the_wheel_nccl() -> None:
    report = replay("h100-wheel-nccl.yaml")
    f = by_id(report)
    wheel = "/opt/torch/.venv/lib/python3.12/site-packages/nvidia/nccl"
    assert f["nccl.header"].facts["nccl.home"] == wheel
    library = f["nccl.library"]
    assert library.status is Status.FAIL and "needs a libnccl.so link" in library.summary
    commands = library.fixes[0].commands
    assert f"ln -sf {wheel}/lib/libnccl.so.2 /root/.local/nccl/lib/libnccl.so" in commands
    assert not library.fixes[0].needs_root
    assert report.exit_code == 1 and [b.id for b in report.blocking] == ["nccl.library"]


def test_ci_machine_without_gpu() -> None:
    report = replay("ci-debian12.yaml")
    f = by_id(report)
    assert f["gpu.nvidia"].status is Status.FAIL
    assert "libnvidia-ml.so.1 not found" in f["gpu.nvidia"].summary
    assert f["nccl.header"].status is Status.FAIL
    fixes = f["nccl.header"].fixes
    assert fixes[0].commands[:2] == [  # rootless first, in a venv: no PEP 668 refusal
        "python3 -m venv /root/.local/nccl/venv",
        "/root/.local/nccl/venv/bin/python -m pip install nvidia-nccl-cu13",
    ]
    assert "LD_LIBRARY_PATH=/root/.local/nccl/lib" in fixes[0].changes
    assert any("debian12/x86_64/cuda-keyring_1.1-1_all.deb" in c for c in fixes[1].commands)
    assert not any("apt-key" in c for fix in fixes for c in fix.commands)
    assert report.exit_code == 1


def test_non_nvidia_target_on_a_gpu_machine_blocks_on_the_missing_vendor() -> None:
    report = replay("h100-ubuntu2404.yaml", "flagcx-metax")
    f = by_id(report)
    assert f["gpu.others"].status is Status.FAIL and "MetaX" in f["gpu.others"].summary
    assert f["cuda.toolkit"].status is Status.SKIP
    assert [b.id for b in report.blocking] == ["gpu.others"]


def test_a_fresh_machine_gets_every_install_for_its_distro_in_order() -> None:
    """The H100 with its toolkit, NCCL, Open MPI and googletest moved away: a driver and
    little else, as most users start."""
    report = replay("h100-fresh.yaml")
    f = by_id(report)
    assert [x.id for x in report.blocking] == ["cuda.toolkit", "nccl.header", "mpi"]
    toolkit = f["cuda.toolkit"].fixes[0]
    assert toolkit.commands == [
        "wget -q https://developer.download.nvidia.com/compute/cuda/repos/ubuntu2404/x86_64/"
        "cuda-keyring_1.1-1_all.deb",
        "dpkg -i cuda-keyring_1.1-1_all.deb",
        "apt-get update",
        "apt-get install -y cuda-toolkit-13-0",  # what the driver (CUDA 13.0) supports
    ]
    nccl = [fix.commands[-1] for fix in f["nccl.header"].fixes]
    assert nccl[-1] == "apt-get install -y libnccl2 libnccl-dev"
    assert f["mpi"].fixes[0].commands[-1] == "apt-get install -y openmpi-bin libopenmpi-dev"
    assert f["gtest"].status is Status.WARN
    assert any("libgtest-dev" in c for fix in f["gtest"].fixes for c in fix.commands)
    assert report.exit_code == 1


def test_a_toolkit_newer_than_the_driver_offers_both_ways_out() -> None:
    """CUDA 13.2 from PyPI's wheels beside a driver for CUDA 13.0, in a container."""
    f = by_id(replay("h100-toolkit-newer.yaml"))
    cuda = f["cuda.toolkit"]
    assert cuda.status is Status.WARN and cuda.facts["cuda.version"] == "13.2.86"
    assert "the driver supports CUDA ≤ 13.0" in cuda.summary
    titles = [fix.title for fix in cuda.fixes]
    assert titles == [
        "Install cuda-toolkit-13-0 from NVIDIA's repository",
        "Upgrade the NVIDIA driver to one that supports CUDA 13.2.86",
    ]
    assert cuda.fixes[1].manual  # a docker container: the host's driver


def test_two_h200s_with_deepspeed_deep() -> None:
    """Recorded with `wizard snapshot --deep` after `wizard run deepspeed` on the 2x H200."""
    host = load_snapshot(SNAPSHOTS / "2xh200-deepspeed.yaml")
    report = run_doctor(host, deep=True)
    assert [m for m in host.misses if m not in NEWER_PROBES] == []
    found = by_id(report)
    torch, deepspeed = found["torch"], found["deepspeed"]
    assert torch.status is Status.OK and "CUDA usable on 2 GPU(s), NCCL 2.28.9" in torch.summary
    assert deepspeed.status is Status.WARN
    assert deepspeed.facts["deepspeed.version"] == "0.19.8"
    assert deepspeed.facts["deepspeed.ops_missing"] == "async_io,evoformer_attn,gds"
    assert deepspeed.facts["deepspeed.built_with"] == "torch 2.11, cuda 13.0"
    assert found["gpu.nvidia"].facts["gpu.count"] == 2


def test_ld_library_path_copies_of_torchs_libraries_are_named_and_checked() -> None:
    """Recorded on the H100 with the toolkit's and the system's copies first on
    LD_LIBRARY_PATH: torch 2.11 preloads its own (read from /proc/self/maps), so the copies
    are named but do not warn."""
    host = load_snapshot(SNAPSHOTS / "h100-ld-library-path.yaml")
    torch = by_id(run_doctor(host, deep=True))["torch"]
    assert [m for m in host.misses if m not in NEWER_PROBES] == []
    assert torch.status is Status.OK
    assert any(
        line.startswith("LD_LIBRARY_PATH's /usr/local/cuda/lib64 has other copies of 23 of ")
        and "libcublas.so.13 (13.1.0.3)" in line
        for line in torch.details
    )
    assert "imported, torch loaded its own copies: LD_LIBRARY_PATH's are unused" in torch.details


def test_the_classic_cublas_clash_is_explained() -> None:
    """The loader's words from the issue's user (torch 2.0.1+cu117 with CUDA 11.4's cuBLAS
    first), and a torch that loaded a copy from LD_LIBRARY_PATH."""
    from checks.torch import _LOADER_ERROR, loaded_elsewhere, unshadow_fix

    words = (
        "ImportError: /opt/conda/lib/python3.8/site-packages/torch/lib/libtorch_cuda.so: symbol "
        "cublasSetWorkspace_v2, version libcublas.so.11 not defined in file libcublas.so.11 "
        "with link time reference"
    )
    assert _LOADER_ERROR.search(words)
    own = "/env/site-packages/nvidia/cublas/lib/libcublas.so.11"
    info = {
        "shadows": [
            {
                "folder": "/usr/local/cuda-11.4/lib64",
                "file": "libcublas.so.11",
                "real": "libcublas.so.11.6.5.2",
                "own": own,
            }
        ],
        "ld_library_path": "/usr/local/cuda-11.4/lib64:/opt/x/lib",
    }
    assert loaded_elsewhere(info, ["/usr/local/cuda-11.4/lib64/libcublas.so.11", own]) == [
        "/usr/local/cuda-11.4/lib64/libcublas.so.11"
    ]
    fix = unshadow_fix(info)
    assert fix is not None and fix.commands[0].startswith("export LD_LIBRARY_PATH=/opt/x/lib ")


def test_a_check_newer_than_the_snapshot_is_reported_not_replayed() -> None:
    """h100-ubuntu2404 was recorded before the deepspeed check existed: the replay says so
    instead of answering its questions with "nothing there"."""
    host = load_snapshot(SNAPSHOTS / "h100-ubuntu2404.yaml")
    deepspeed = by_id(run_doctor(host))["deepspeed"]
    assert deepspeed.status is Status.SKIP
    assert deepspeed.summary.startswith("not in this snapshot: it was recorded before")
    assert [m for m in host.misses if m not in NEWER_PROBES] == []


def test_cudnn_from_the_system_and_from_torchs_wheel() -> None:
    """The H100 as lent: libcudnn9 (headers under include/x86_64-linux-gnu) and torch's
    nvidia-cudnn wheel, each with its version from cudnn_version.h."""
    cudnn = by_id(replay("h100-cudnn.yaml"))["cudnn"]
    assert cudnn.status is Status.OK
    assert cudnn.facts["cudnn.version"] == "9.14.0"
    assert cudnn.facts["cudnn.include"] == "/usr/include/x86_64-linux-gnu"
    assert any(
        "nvidia/cudnn (a PyPI wheel (nvidia-cudnn)): cuDNN 9.19.0" in d for d in cudnn.details
    )


def test_no_cudnn_offers_nvidias_package_and_the_wheel() -> None:
    """This machine (CI's kind: Debian, no cuDNN) has none: not blocking, two ways in."""
    from wizard.host import LocalHost

    cudnn = by_id(run_doctor(LocalHost()))["cudnn"]
    if cudnn.status is Status.OK:
        pytest.skip("this machine has cuDNN")
    assert cudnn.status is Status.SKIP and cudnn.summary.startswith("not found")
    commands = [c for fix in cudnn.fixes for c in fix.commands]
    assert any(c.startswith("apt-get install -y libcudnn9-dev-cuda-") for c in commands)
    assert any(" -m pip install nvidia-cudnn-cu" in c for c in commands)


def test_a_current_flagcx_checkout_recorded_on_an_h200() -> None:
    findings = by_id(replay("h200-flagcx-current.yaml"))
    flagcx = findings["flagcx"]
    assert flagcx.status is Status.OK
    assert (
        flagcx.facts["flagcx.layout"] == "v0.7+" and flagcx.facts["flagcx.commit"] == "0c721293a793"
    )
    assert findings["gpu.nvidia"].facts["gpu.count"] == 1
    assert findings["nccl.header"].facts["nccl.home"] == "/usr"
