"""FlagCX's vendors: the table against FlagCX's own Makefile, and each vendor's host."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path

import pytest

from checks.base import Finding, Status
from checks.vendor_tools import Listing
from checks.vendors import VENDORS, Vendor
from tests.cli import run_wizard
from tests.treehost import TreeHost
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.doctor.targets import TARGETS
from wizard.host.snapshot import write_snapshot

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
        ("pt-smi", "/usr/local/tangrt", "flagcx-sunrise"),
        ("ppu-smi", "/usr/local/cuda", "flagcx-ppu"),
        ("hy-smi", "/opt/dtk", "flagcx-du"),
        ("rocm-smi", "/opt/rocm", "flagcx-amd"),  # amd-smi is read; rocm-smi alone is not
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
    # no real output of these tools was found to read: found, and said so
    assert others.status is Status.WARN, others.summary
    assert f"{tool} found; the wizard does not read its output yet" in others.summary


def test_makefile_variables_in_a_default_are_read_from_the_environment(tree: TreeHost) -> None:
    tree.env["NEUWARE_HOME"] = "/opt/neuware"
    tree.mkdir("/opt/neuware")
    report = run_doctor(tree, "flagcx-cambricon")
    others = next(f for f in report.findings if f.id == "gpu.others")
    assert others.status is Status.WARN and "no device tool (cnmon) on PATH" in others.summary
    assert "/opt/neuware" in others.details[0]
    assert VENDORS["cambricon"].homes(tree) == ("/opt/neuware", "/usr/local/neuware")


def test_a_plain_cuda_folder_is_no_sign_of_a_ppu(tree: TreeHost) -> None:
    tree.mkdir("/usr/local/cuda")
    report = run_doctor(tree, "flagcx-ppu")
    others = next(f for f in report.findings if f.id == "gpu.others")
    assert others.status is Status.FAIL and "ppu-smi" in others.summary


# -- each vendor's device list, played back from its tool's real output ---------------------

DATA = Path(__file__).parent / "data"


def pci(tree: TreeHost, vendor_id: str, addresses: list[str], device_class: str) -> None:
    """sysfs' /sys/bus/pci/devices/<address>/{vendor,class}, and the grep that reads them."""
    for address in addresses:
        tree.write(f"/sys/bus/pci/devices/{address}/vendor", f"{vendor_id}\n")
        tree.write(f"/sys/bus/pci/devices/{address}/class", f"{device_class}\n")
    if not (tree.root / "usr/bin/grep").exists():  # the tree itself: host answers are memoized
        tree.symlink("/usr/bin/grep", "/usr/bin/grep")


@dataclass(frozen=True)
class Sample:
    vendor: str
    tool: str
    data: str
    count: int
    model: str
    memory_mib: int
    driver: str
    sdk: str
    env: tuple[tuple[str, str], ...] = ()  # what the vendor's install sets in the environment

    def read(self) -> Listing:
        vendor = VENDORS[self.vendor]
        reader = next(r for r in vendor.readers if r.tool == self.tool)
        listing = reader.parse((DATA / self.data).read_text())
        assert listing is not None
        return listing


SAMPLES = [
    Sample("ascend", "npu-smi", "npu-smi-info-8x910b3.txt", 8, "910B3", 65536, "25.2.0", ""),
    Sample(
        "kunlunxin", "xpu_smi", "xpu-smi-8xp800.txt", 8, "P800 OAM", 98304, "5.0.21.21", "5.0.21"
    ),
    Sample("metax", "mx-smi", "mx-smi-8xc550.txt", 8, "MetaX C550", 65536, "2.15.9", "2.32.0.6"),
    Sample(
        "iluvatar_corex",
        "ixsmi",
        "ixsmi-16xbi-v150.txt",
        16,
        "Iluvatar BI-V150",
        32768,
        "4.3.0",
        "4.3.0",
    ),
    Sample("amd", "amd-smi", "amd-smi-static-4xmi300a.txt", 4, "MI300A", 64289, "6.9.0-rc5+", ""),
    Sample(
        "cambricon",
        "cnmon",
        "cnmon-2xmlu370-x8.txt",
        2,
        "MLU370-X8",
        23374,
        "5.10.13",
        "",
        env=(("NEUWARE_HOME", "/usr/local/neuware"),),  # Cambricon's env.sh sets it
    ),
    Sample(
        "musa",
        "mthreads-gmi",
        "mthreads-gmi-8xs5000.txt",
        8,
        "MTT S5000",
        81920,
        "5.1.0-server",
        "",
    ),
    Sample("enflame", "efsmi", "efsmi-2xs60.txt", 2, "S60", 49120, "1.2.0.301", ""),
]


def vendor_host(tree: TreeHost, sample: Sample, *, ccl: bool = True) -> TreeHost:
    """A host of the sample's vendor: its tool playing the sample back, its devices on the
    PCI bus at the addresses the tool printed, its CCL where FlagCX's Makefile looks."""
    tree.program(f"/usr/bin/{sample.tool}", (DATA / sample.data).read_text())
    tree.env.update(sample.env)
    vendor = VENDORS[sample.vendor]
    pci(tree, vendor.pci, [d.bus_id for d in sample.read().devices], "0x120000")
    if ccl:
        tree.write(ccl_library(tree, vendor))
    return tree


def ccl_library(tree: TreeHost, vendor: Vendor) -> str:
    """The vendor's CCL where FlagCX's Makefile looks, its CCL_HOME read as make reads it."""
    return f"{vendor.default(vendor.ccl_home, tree).rstrip('/')}/{vendor.ccl}"


def others(tree: TreeHost, target: str | None = None) -> tuple[Finding, str]:
    report = run_doctor(tree, target)
    return next(f for f in report.findings if f.id == "gpu.others"), report.target.id


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.vendor)
def test_a_vendors_devices_are_counted_from_its_tool(tree: TreeHost, sample: Sample) -> None:
    found, target = others(vendor_host(tree, sample))
    assert target == f"flagcx-{sample.vendor}"
    assert found.status is Status.OK, found.summary
    facts = found.facts
    assert (facts["accel.count"], facts["accel.model"]) == (sample.count, sample.model)
    assert (facts["accel.memory_mib"], facts["accel.driver"]) == (sample.memory_mib, sample.driver)
    assert facts["accel.sdk"] == sample.sdk
    vendor = VENDORS[sample.vendor]
    assert facts["accel.ccl_lib"] == ccl_library(tree, vendor)
    assert f"{sample.count} × {sample.model} ({sample.memory_mib // 1024} GiB)" in found.summary
    assert (
        f"  PCI bus: {sample.count} {vendor.name} device(s) (vendor id {vendor.pci})"
        in found.details
    )


def test_the_visible_devices_variable_narrows_them_as_the_runtime_does(tree: TreeHost) -> None:
    tree.env["XPU_VISIBLE_DEVICES"] = "0,3,9,5"  # the list ends at 9, which names no device
    found, _ = others(vendor_host(tree, SAMPLES[1]))
    assert (found.facts["accel.count"], found.facts["accel.count_all"]) == (2, 8)
    assert "  XPU_VISIBLE_DEVICES=0,3,9,5: 2 of 8 devices used" in found.details


def test_amds_two_visible_devices_variables_narrow_in_turn(tree: TreeHost) -> None:
    # ROCr keeps devices 1, 2, 3; HIP then counts among those: its 2 is device 3
    tree.env.update({"ROCR_VISIBLE_DEVICES": "1,2,3", "HIP_VISIBLE_DEVICES": "2,0"})
    found, _ = others(vendor_host(tree, SAMPLES[4]))
    assert (found.facts["accel.count"], found.facts["accel.count_all"]) == (2, 4)
    notes = [d for d in found.details if "VISIBLE_DEVICES" in d]
    assert notes == [
        "  ROCR_VISIBLE_DEVICES=1,2,3: 3 of 4 devices used",
        "  HIP_VISIBLE_DEVICES=2,0: 2 of 3 devices used",
    ]
    shown = [d for d in found.details if ": MI300A, " in d]
    assert shown == [
        "  3: MI300A, 64289 MiB, PCI 0003:01:00.0",
        "  1: MI300A, 64289 MiB, PCI 0001:01:00.0",
    ]


def test_amd_smi_is_read_where_rocm_smi_is_there_too(tree: TreeHost) -> None:
    tree.program("/usr/bin/rocm-smi", "garbage, not read")
    found, target = others(vendor_host(tree, SAMPLES[4]))
    assert target == "flagcx-amd" and found.status is Status.OK, found.summary
    assert "[/usr/bin/amd-smi, /usr/bin/rocm-smi" in found.details[0]


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.vendor)
def test_no_reader_takes_another_tools_output_for_its_own(sample: Sample) -> None:
    output = (DATA / sample.data).read_text()
    own = next(r for r in VENDORS[sample.vendor].readers if r.tool == sample.tool).parse
    readers = {r.parse for vendor in VENDORS.values() for r in vendor.readers}
    assert [r.__name__ for r in readers - {own} if r(output) is not None] == []


def test_a_visible_devices_list_that_hides_them_all_fails(tree: TreeHost) -> None:
    tree.env["ASCEND_RT_VISIBLE_DEVICES"] = ""
    found, _ = others(vendor_host(tree, SAMPLES[0]))
    assert found.status is Status.FAIL
    assert "no Ascend device to run on: ASCEND_RT_VISIBLE_DEVICES=: 0 of 8" in found.summary


def test_a_missing_vendor_ccl_names_the_make_variable(tree: TreeHost) -> None:
    found, _ = others(vendor_host(tree, SAMPLES[1], ccl=False))
    assert found.status is Status.WARN
    assert "/usr/local/xccl/so/libbkcl.so is missing: build with CCL_HOME=" in found.summary


@pytest.mark.parametrize(
    ("output", "rc", "sleep", "said"),
    [
        ("", 0, 5, "npu-smi did not answer within 0.5 s"),
        ("stand-in failure", 3, 0, "/usr/bin/npu-smi exited 3: stand-in failure"),
        (
            "garbage, not a device table",
            0,
            0,
            "/usr/bin/npu-smi's output is not the Ascend table the wizard reads",
        ),
    ],
    ids=["hangs", "fails", "garbage"],
)
def test_a_tool_that_hangs_fails_or_prints_garbage_is_a_warning(
    tree: TreeHost, output: str, rc: int, sleep: float, said: str
) -> None:
    vendor_host(tree, SAMPLES[0])
    tree.program("/usr/bin/npu-smi", output, rc=rc, sleep=sleep)
    tree.timeout_cap = 0.5
    found, target = others(tree)
    assert target == "flagcx-ascend"
    assert found.status is Status.WARN and found.summary == f"Ascend: {said}"


def test_intels_xpu_smi_is_no_kunlunxin_host(tree: TreeHost) -> None:
    # an Intel GPU (vendor 0x8086, a display controller) and an xpu-smi that is not
    # Kunlunxin's: the doctor does not take the host for a Kunlunxin one
    tree.program("/usr/bin/xpu-smi", "garbage, not a Kunlunxin table")
    pci(tree, "0x8086", ["0000:03:00.0"], "0x030000")
    found, target = others(tree)
    assert target == "flagcx-nvidia"
    assert found.facts["gpu.vendors"] == ""
    assert any(
        "the PCI bus shows no Kunlunxin device (vendor id 0x1d22)" in d for d in found.details
    )


@pytest.mark.parametrize("sample", SAMPLES, ids=lambda s: s.vendor)
def test_each_vendor_host_replays_from_its_snapshot(
    tree: TreeHost, tmp_path: Path, sample: Sample
) -> None:
    """The vendor host recorded with `wizard snapshot`'s writer, then `wizard doctor
    --snapshot` in a process of its own: the replay says what the live doctor said."""
    host = vendor_host(tree, sample)
    live, _ = others(host)
    snapshot = write_snapshot(host, tmp_path / f"{sample.vendor}.yaml")
    env = {**os.environ, "NO_COLOR": "1", "XDG_STATE_HOME": str(tmp_path / "state")}
    done = run_wizard(env, "doctor", "--snapshot", str(snapshot), "--json")
    replayed = next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "gpu.others")
    assert json.loads(done.stdout)["target"] == f"flagcx-{sample.vendor}"
    assert replayed["summary"] == live.summary and replayed["status"] == "ok"
    assert replayed["facts"]["accel.count"] == sample.count
