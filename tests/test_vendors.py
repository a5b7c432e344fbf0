"""FlagCX's vendors: the table against FlagCX's own Makefile, and each vendor's host."""

from __future__ import annotations

import pytest

from checks.base import Status
from checks.vendors import VENDORS
from tests.treehost import TreeHost
from wizard.engine.doctor import run_doctor
from wizard.engine.targets import TARGETS

# flagos-ai/FlagCX at 0c721293 (v0.13): Makefile's USE_* flags and DEVICE_HOME / CCL_HOME
# defaults, plugin/torch/_build_config.py's ADAPTOR_TO_MAKE_FLAG and _PLATFORM_COMMANDS.
UPSTREAM = [
    ("tsm", "USE_TSM", "tsm", "tsm_smi", "/usr/local/kuiper", "/usr/local/kuiper"),
    ("enflame", "USE_ENFLAME", "enflame", "efsmi", "/opt/tops/", "/usr"),
    ("sunrise", "USE_SUNRISE", "sunrise", "pt-smi", "/usr/local/tangrt", "/usr/local/pccl"),
    ("ppu", "USE_PPU", "ppu", "ppu-smi", "/usr/local/cuda", "/usr/local/cuda"),
    ("kunlunxin", "USE_KUNLUNXIN", "klx", "xpu-smi", "/usr/local/xpu", "/usr/local/xccl"),
    ("cambricon", "USE_CAMBRICON", "cambricon", "cnmon", "$(NEUWARE_HOME)", "$(NEUWARE_HOME)"),
    ("du", "USE_DU", "du", "hy-smi", "${CUDA_PATH}", "${CUDA_PATH}"),
    ("nvidia", "USE_NVIDIA", "nvidia", "nvidia-smi", "/usr/local/cuda", "/usr/local/nccl/build"),
]


@pytest.mark.parametrize(("key", "flag", "adaptor", "tool", "device_home", "ccl_home"), UPSTREAM)
def test_vendor_table_is_flagcx_makefiles(
    key: str, flag: str, adaptor: str, tool: str, device_home: str, ccl_home: str
) -> None:
    vendor = VENDORS[key]
    assert (vendor.make_flag, vendor.adaptor) == (flag, adaptor)
    assert tool in vendor.tools
    assert (vendor.device_home, vendor.ccl_home) == (device_home, ccl_home)
    assert TARGETS[f"flagcx-{key}"].vendor is vendor
    assert "gpu.others" in TARGETS[f"flagcx-{key}"].requires or key == "nvidia"


@pytest.mark.parametrize(
    ("tool", "home", "target"),
    [
        ("tsm_smi", "/usr/local/kuiper", "flagcx-tsm"),
        ("efsmi", "/opt/tops", "flagcx-enflame"),
        ("pt-smi", "/usr/local/tangrt", "flagcx-sunrise"),
        ("ppu-smi", "/usr/local/cuda", "flagcx-ppu"),
    ],
)
def test_a_new_vendors_host_gets_its_target(
    tree: TreeHost, tool: str, home: str, target: str
) -> None:
    tree.program(f"/usr/bin/{tool}", "")
    tree.mkdir(home)
    report = run_doctor(tree)
    assert report.target.id == target
    others = next(f for f in report.findings if f.id == "gpu.others")
    assert others.status is Status.OK and report.target.vendor.name in others.summary


def test_makefile_variables_in_a_default_are_read_from_the_environment(tree: TreeHost) -> None:
    tree.env["NEUWARE_HOME"] = "/opt/neuware"
    tree.mkdir("/opt/neuware")
    report = run_doctor(tree, "flagcx-cambricon")
    others = next(f for f in report.findings if f.id == "gpu.others")
    assert others.status is Status.OK and "/opt/neuware" in others.summary
    assert VENDORS["cambricon"].homes(tree) == ("/opt/neuware", "/usr/local/neuware")


def test_a_plain_cuda_folder_is_no_sign_of_a_ppu(tree: TreeHost) -> None:
    tree.mkdir("/usr/local/cuda")
    report = run_doctor(tree, "flagcx-ppu")
    others = next(f for f in report.findings if f.id == "gpu.others")
    assert others.status is Status.FAIL and "ppu-smi" in others.summary
