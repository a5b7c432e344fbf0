"""Checks against small trees, for cases the recorded machines do not show."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import yaml

import checks
from checks.base import Check, Finding, Group, Status
from checks.distro import Distro
from checks.limits import parse_limits
from checks.mpi import flavor
from tests.treehost import TreeHost, recorded_nvml, recorded_output
from wizard.cli.doctor_table import TextRenderer, to_dict
from wizard.engine.doctor.diagnosis import Diagnosis, UndeclaredFact, ordered_checks, run_doctor
from wizard.host import load_snapshot, write_snapshot

NVCC_13_0 = recorded_output("/usr/local/cuda/bin/nvcc --version")


def doctor(host: TreeHost, target: str | None = None) -> tuple[Diagnosis, dict]:
    report = run_doctor(host, target)
    return report, {f.id: f for f in report.findings}


def toolkit(tree: TreeHost, home: str, version: str) -> None:
    """A toolkit laid out as NVIDIA installs it: bin/nvcc, include/, version.json."""
    tree.write(f"{home}/include/cuda_runtime.h", "/* cuda runtime */")
    tree.write(
        f"{home}/version.json", json.dumps({"cuda": {"name": "CUDA SDK", "version": version}})
    )
    tree.program(f"{home}/bin/nvcc", NVCC_13_0 if version.startswith("13.0") else "", rc=0)


# -- CUDA ------------------------------------------------------------------------------------


def test_toolkit_newer_major_than_driver_fails_with_matching_toolkit_fix(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml(cuda_driver_version="12.4")
    toolkit(tree, "/usr/local/cuda-13.0", "13.0.2")
    tree.symlink("/usr/local/cuda", "cuda-13.0")
    _, f = doctor(tree)
    cuda = f["cuda.toolkit"]
    assert cuda.status is Status.FAIL
    assert "CUDA 13.0.2 is newer than the driver supports (CUDA ≤ 12.4)" in cuda.summary
    commands = cuda.fixes[0].commands
    assert commands[0].endswith("/repos/ubuntu2404/x86_64/cuda-keyring_1.1-1_all.deb")
    assert commands[-1] == "apt-get install -y cuda-toolkit-12-4"  # root: no sudo


def test_toolkit_newer_minor_than_driver_warns(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml(cuda_driver_version="13.0")
    toolkit(tree, "/usr/local/cuda-13.1", "13.1.0")
    _, f = doctor(tree)
    assert f["cuda.toolkit"].status is Status.WARN
    assert any("minor-version compatibility" in d for d in f["cuda.toolkit"].details)


def test_path_and_cuda_home_pointing_at_different_installs_warns(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml()
    toolkit(tree, "/usr/local/cuda-13.0", "13.0.2")
    toolkit(tree, "/usr/local/cuda-12.4", "12.4.1")
    tree.env.update(CUDA_HOME="/usr/local/cuda-13.0", PATH="/usr/local/cuda-12.4/bin:/usr/bin")
    _, f = doctor(tree)
    cuda = f["cuda.toolkit"]
    assert cuda.status is Status.WARN
    assert "nvcc on PATH is /usr/local/cuda-12.4/bin/nvcc" in cuda.summary
    assert cuda.facts["cuda.home"] == "/usr/local/cuda-13.0"
    assert "export CUDA_HOME=/usr/local/cuda-13.0" in cuda.fixes[0].commands
    assert "2 installs" in cuda.summary


def test_ld_library_path_from_another_install_warns(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml()
    toolkit(tree, "/usr/local/cuda-13.0", "13.0.2")
    toolkit(tree, "/usr/local/cuda-12.4", "12.4.1")
    tree.env.update(CUDA_HOME="/usr/local/cuda-13.0", LD_LIBRARY_PATH="/usr/local/cuda-12.4/lib64")
    _, f = doctor(tree)
    assert "LD_LIBRARY_PATH has /usr/local/cuda-12.4/lib64" in f["cuda.toolkit"].summary


def test_no_toolkit_proposes_the_one_the_driver_supports(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml()
    _, f = doctor(tree)
    assert f["cuda.toolkit"].status is Status.FAIL
    assert f["cuda.toolkit"].fixes[0].commands[-1] == "apt-get install -y cuda-toolkit-13-0"


def test_toolkit_newer_than_the_driver_also_offers_the_driver_upgrade(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml(cuda_driver_version="12.4")
    toolkit(tree, "/usr/local/cuda-13.0", "13.0.2")
    _, f = doctor(tree)
    titles = [fix.title for fix in f["cuda.toolkit"].fixes]
    assert titles[0] == "Install cuda-toolkit-12-4 from NVIDIA's repository"
    upgrade = f["cuda.toolkit"].fixes[-1]
    assert upgrade.title == "Upgrade the NVIDIA driver to one that supports CUDA 13.0.2"
    assert upgrade.commands[-1] == "apt-get install -y cuda-drivers" and upgrade.needs_root
    tree.write("/.dockerenv")  # in a container the driver is the host's
    _, f = doctor(TreeHost(tree.root, env=tree.env, nvml=tree.nvml_answer))
    upgrade = f["cuda.toolkit"].fixes[-1]
    assert upgrade.manual and upgrade.commands[0].startswith("# on the host")


def test_unknown_driver_means_compatibility_not_checked(tree: TreeHost) -> None:
    toolkit(tree, "/usr/local/cuda-13.0", "13.0.2")  # the tree has no NVIDIA driver
    _, f = doctor(tree)
    assert f["cuda.toolkit"].status is Status.WARN
    assert "compatibility with the driver not checked" in f["cuda.toolkit"].summary


def test_a_working_toolkit_is_chosen_over_one_whose_nvcc_crashes(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml()
    tree.write("/usr/local/cuda/include/cuda_runtime.h")
    tree.program("/usr/local/cuda/bin/nvcc", "Segmentation fault", rc=139)
    toolkit(tree, "/usr/local/cuda-13.0", "13.0.2")
    _, f = doctor(tree)
    assert f["cuda.toolkit"].facts["cuda.home"] == "/usr/local/cuda-13.0"
    assert "/usr/local/cuda: CUDA unknown version (nvcc fails)" in " ".join(
        f["cuda.toolkit"].details
    )


def test_an_nvcc_on_path_that_is_no_toolkit_is_named(tree: TreeHost) -> None:
    tree.nvml_answer = recorded_nvml()
    toolkit(tree, "/usr/local/cuda-13.0", "13.0.2")
    tree.program("/opt/conda/bin/nvcc", NVCC_13_0)
    tree.env["PATH"] = "/opt/conda/bin:/usr/bin:/bin"
    _, f = doctor(tree)
    assert (
        "nvcc on PATH (/opt/conda/bin/nvcc) has no CUDA headers beside it: not a full "
        "toolkit, skipped"
    ) in f["cuda.toolkit"].details


def test_a_hung_nvcc_is_reported_not_waited_for(tmp_path: Path) -> None:
    tree = TreeHost(tmp_path, nvml=recorded_nvml(), timeout_cap=0.5)
    tree.write("/usr/local/cuda/include/cuda_runtime.h")
    tree.program("/usr/local/cuda/bin/nvcc", NVCC_13_0, sleep=30)
    report, f = doctor(tree)
    assert report.wall_s < 10
    assert f["cuda.toolkit"].status is Status.WARN
    assert "nvcc did not answer within 0.5 s" in f["cuda.toolkit"].summary


# -- NCCL ------------------------------------------------------------------------------------

NCCL_H = """#ifndef NCCL_H_
#define NCCL_H_
#define NCCL_MAJOR 2
#define NCCL_MINOR 21
#define NCCL_PATCH 5
"""


def nccl_tree(tree: TreeHost, lib_version: str | None = "2.21.5") -> None:
    tree.nvml_answer = recorded_nvml()
    tree.env["NCCL_HOME"] = "/opt/nccl"
    tree.write("/opt/nccl/include/nccl.h", NCCL_H)
    if lib_version:
        tree.write(f"/opt/nccl/lib/libnccl.so.{lib_version}", "\x7fELF")
        tree.symlink("/opt/nccl/lib/libnccl.so.2", f"libnccl.so.{lib_version}")
        tree.symlink("/opt/nccl/lib/libnccl.so", "libnccl.so.2")


def test_nccl_home_header_and_library(tree: TreeHost) -> None:
    nccl_tree(tree)
    _report, f = doctor(tree)
    assert f["nccl.header"].facts["nccl.home"] == "/opt/nccl"
    assert f["nccl.header"].facts["nccl.version"] == "2.21.5"
    assert f["nccl.library"].status is Status.OK
    assert f["nccl.library"].facts["nccl.lib_version"] == "2.21.5"


def test_nccl_header_and_library_of_different_versions_warn(tree: TreeHost) -> None:
    nccl_tree(tree, lib_version="2.19.3")
    _, f = doctor(tree)
    assert f["nccl.library"].status is Status.WARN
    assert (
        "libnccl 2.19.3 in /opt/nccl/lib does not match nccl.h 2.21.5" in f["nccl.library"].summary
    )


def test_nccl_header_without_library_fails(tree: TreeHost) -> None:
    nccl_tree(tree, lib_version=None)
    report, f = doctor(tree)
    assert f["nccl.library"].status is Status.FAIL
    assert "nccl.library" in [b.id for b in report.blocking]


def wheel_proposed(finding: Finding) -> str:
    """The nvidia-nccl-cuXX wheel a finding's fixes install."""
    (wheel,) = {
        w
        for fix in finding.fixes
        for c in fix.commands
        for w in re.findall(r"nvidia-nccl-cu\d+", c)
    }
    return wheel


def test_a_cuda_13_driver_without_toolkit_gets_cu13_nccl_from_both_nccl_checks(
    tree: TreeHost,
) -> None:
    tree.env["HOME"] = "/root"
    tree.nvml_answer = recorded_nvml(cuda_driver_version="13.0")
    _, f = doctor(tree)  # no nccl.h: the header check proposes the wheel
    assert f["nccl.header"].status is Status.FAIL
    assert wheel_proposed(f["nccl.header"]) == "nvidia-nccl-cu13"
    tree.env["NCCL_HOME"] = "/opt/nccl"
    tree.write("/opt/nccl/include/nccl.h", NCCL_H)  # a header, no library: the library check
    _, f = doctor(TreeHost(tree.root, env=tree.env, nvml=tree.nvml_answer))
    assert f["nccl.library"].status is Status.FAIL
    assert wheel_proposed(f["nccl.library"]) == "nvidia-nccl-cu13"


def test_a_check_reading_a_fact_it_does_not_declare_is_an_error_in_tests(
    tree: TreeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    registry = dict(checks.REGISTRY)
    sloppy = Check(
        "sloppy",
        "Sloppy",
        Group.SYSTEM,
        lambda ctx: ctx.ok(str(ctx.fact("os.arch"))),
        ("gpu.nvidia",),
    )
    monkeypatch.setattr(checks, "REGISTRY", {**registry, "sloppy": sloppy})
    with pytest.raises(UndeclaredFact, match=r"sloppy reads os.arch \(learned by os"):
        doctor(tree)


# -- googletest ------------------------------------------------------------------------------


def test_gtest_sources_only_warns_with_a_cmake_build(tree: TreeHost) -> None:
    tree.write("/usr/src/googletest/CMakeLists.txt", "project(googletest-distribution)")
    _, f = doctor(tree)
    gtest = f["gtest"]
    assert gtest.status is Status.WARN and "/usr/src/googletest is not built" in gtest.summary
    for fix in gtest.fixes:  # a private build folder, never a fixed path under /tmp
        assert fix.commands[0] == 'build=$(mktemp -d "${TMPDIR:-/tmp}/wizard-googletest.XXXXXX")'
        assert fix.commands[1].startswith('cmake -S /usr/src/googletest -B "$build" ')
        assert "/tmp/wizard-googletest-build" not in " ".join(fix.commands)


def test_gtest_absent_proposes_the_distro_package(tree: TreeHost) -> None:
    _, f = doctor(tree)
    assert f["gtest"].status is Status.WARN
    assert f["gtest"].fixes[0].commands == ["apt-get update", "apt-get install -y libgtest-dev"]


def test_gtest_in_a_user_prefix(tree: TreeHost) -> None:
    tree.env["HOME"] = "/home/ada"
    tree.write("/home/ada/.local/include/gtest/gtest.h")
    tree.write("/home/ada/.local/lib/libgtest.a")
    _, f = doctor(tree)
    assert f["gtest"].status is Status.OK
    assert f["gtest"].facts["gtest.root"] == "/home/ada/.local"


# -- MPI -------------------------------------------------------------------------------------


def test_open_mpi_version_from_real_output() -> None:
    assert flavor(recorded_output("/usr/bin/mpirun --version")) == ("Open MPI", "4.1.6")


def test_no_mpirun_fails_with_the_distro_packages(tree: TreeHost) -> None:
    report, f = doctor(tree)
    assert f["mpi"].status is Status.FAIL
    assert f["mpi"].fixes[0].commands[-1] == "apt-get install -y openmpi-bin libopenmpi-dev"
    assert "mpi" in [b.id for b in report.blocking]


DATA = Path(__file__).parent / "data"


def debian_mpich(tree: TreeHost, bin_dir: str = "/usr/bin") -> None:
    """Debian 12's MPICH as libmpich-dev lays it out; its tools print what the real ones do."""
    tree.program(f"{bin_dir}/mpirun", (DATA / "mpich-debian12-mpirun-version.txt").read_text())
    tree.program(f"{bin_dir}/mpicc", (DATA / "mpich-debian12-mpicc-show.txt").read_text())
    tree.write("/usr/include/x86_64-linux-gnu/mpich/mpi.h", "/* MPICH 4.0.2 */")
    tree.write("/usr/lib/x86_64-linux-gnu/libmpich.so.12.2.2", "\x7fELF")
    tree.symlink("/usr/lib/x86_64-linux-gnu/libmpich.so", "libmpich.so.12.2.2")


def test_debian_mpich_is_a_working_mpi_with_its_own_folders(tree: TreeHost) -> None:
    debian_mpich(tree)
    _, f = doctor(tree)
    mpi = f["mpi"]
    assert mpi.status is Status.OK, mpi.summary
    assert mpi.facts["mpi.flavor"] == "MPICH" and mpi.facts["mpi.version"] == "4.0.2"
    assert mpi.facts["mpi.include"] == "/usr/include/x86_64-linux-gnu/mpich"
    assert mpi.facts["mpi.lib"] == "/usr/lib/x86_64-linux-gnu"
    assert mpi.facts["mpi.link"] == "-lmpich" and mpi.facts["mpi.home"] == "/usr"


def test_an_mpi_with_mpicc_beats_an_incomplete_one_first_on_path(tree: TreeHost) -> None:
    """MPICH's mpirun alone first on PATH, and the Open MPI the rootless fix installed: the
    check sees what the fix made, so its re-check can pass."""
    tree.env["HOME"] = "/home/ada"
    tree.program("/opt/mpich/bin/mpirun", (DATA / "mpich-debian12-mpirun-version.txt").read_text())
    tree.env["PATH"] = "/opt/mpich/bin:/usr/bin:/bin"
    prefix = "/home/ada/.local/openmpi"
    tree.program(f"{prefix}/bin/mpirun", recorded_output("/usr/bin/mpirun --version"))
    tree.program(f"{prefix}/bin/mpicc", f"{prefix}/include")
    tree.write(f"{prefix}/include/mpi.h", "/* Open MPI */")
    tree.write(f"{prefix}/lib/libmpi.so.40", "\x7fELF")
    tree.symlink(f"{prefix}/lib/libmpi.so", "libmpi.so.40")
    _, f = doctor(tree)
    mpi = f["mpi"]
    assert mpi.facts["mpi.mpirun"] == f"{prefix}/bin/mpirun" and mpi.facts["mpi.home"] == prefix
    assert "/opt/mpich/bin/mpirun has no mpicc beside it, so it was passed over" in mpi.details
    assert f"put {prefix}/bin first on PATH to use it in your shell too" in mpi.details


def test_the_flagcx_recipe_builds_against_debian_mpich_with_make_variables(
    tree: TreeHost, tmp_path: Path
) -> None:
    from wizard.engine.recipes import recipe as recipes
    from wizard.engine.recipes.run import recipe_facts, resolve

    debian_mpich(tree)
    report, _ = doctor(tree)
    flagcx = recipes.load("flagcx")
    answers = {"src": str(tmp_path), "layout": "v0.6"}
    values = resolve(flagcx, recipe_facts(report), answers, tmp_path)
    step = flagcx.steps[flagcx.index("perf-build")]
    env = {name: recipes.render(value, values, quote=False) for name, value in step.env.items()}
    assert env["MPI_INCLUDE_DIR"] == "/usr/include/x86_64-linux-gnu/mpich"
    assert env["MPI_LIBRARY_DIR"] == "/usr/lib/x86_64-linux-gnu"
    assert env["MPI_LINK_LIB"] == "-lmpich"
    assert "MPI_INCLUDE=$MPI_INCLUDE_DIR" in recipes.render(step.script(values), values, quote=True)
    # v0.7+'s test/make.inc takes MPI as compiler flags.
    current = recipes.render(step.script({**values, "layout": "v0.7+"}), values, quote=True)
    assert 'MPI_INCLUDE="-I${MPI_INCLUDE_DIR:-$MPI_HOME_DIR/include}"' in current
    assert 'MPI_LINK="-L${MPI_LIBRARY_DIR:-$MPI_HOME_DIR/lib} $MPI_LINK_LIB' in current


# -- RDMA, limits ----------------------------------------------------------------------------


def port(tree: TreeHost, device: str, number: int, state: str) -> None:
    base = f"/sys/class/infiniband/{device}/ports/{number}"
    tree.write(f"{base}/state", state + "\n")
    tree.write(f"{base}/link_layer", "InfiniBand\n")


def test_rdma_ports(tree: TreeHost) -> None:
    port(tree, "mlx5_0", 1, "4: ACTIVE")
    port(tree, "mlx5_1", 1, "1: DOWN")
    _, f = doctor(tree)
    assert f["rdma"].status is Status.OK
    assert f["rdma"].facts["rdma.hca"] == "mlx5_0"
    assert "mlx5_1 port 1: 1: DOWN (InfiniBand)" in f["rdma"].details


def test_rdma_with_no_active_port_warns(tree: TreeHost) -> None:
    port(tree, "mlx5_0", 1, "1: DOWN")
    _, f = doctor(tree)
    assert f["rdma"].status is Status.WARN


def test_an_rdma_device_without_ports_is_named_not_a_crash(tree: TreeHost) -> None:
    tree.mkdir("/sys/class/infiniband/mlx5_0")
    _, f = doctor(tree)
    assert f["rdma"].status is Status.WARN
    assert "mlx5_0: no ports (its driver is not bound, or it is resetting)" in f["rdma"].details


def test_parse_real_proc_limits() -> None:
    limits = parse_limits(Path("/proc/self/limits").read_text())
    assert set(limits) >= {"Max locked memory", "Max open files"}
    assert limits["Max open files"].isdigit() or limits["Max open files"] == "unlimited"


def test_small_shm_in_a_container_names_the_docker_flags(tree: TreeHost) -> None:
    tree.write("/.dockerenv")
    tree.write(
        "/proc/self/limits",
        "Limit  Soft Limit  Hard Limit  Units\n"
        "Max locked memory         65536                65536                bytes\n",
    )
    _, f = doctor(tree)  # /dev/shm does not exist in the tree: size 0
    limits = f["limits"]
    assert limits.status is Status.WARN
    assert limits.fixes[0].manual
    assert "--shm-size 64G --ulimit memlock=-1" in limits.fixes[0].commands[0]


# -- distros, vendors, the engine ------------------------------------------------------------


@pytest.mark.parametrize(
    ("distro", "repo", "first"),
    [
        (Distro("ubuntu", "22.04", ("debian",)), "ubuntu2204", "wget -q"),
        (Distro("debian", "12"), "debian12", "wget -q"),
        (Distro("rocky", "9.3", ("rhel", "centos", "fedora")), "rhel9", "sudo dnf config-manager"),
        (Distro("fedora", "41"), "fedora41", "sudo dnf config-manager"),
        (Distro("ubuntu", "24.04", ("debian",), arch="aarch64"), "ubuntu2404", "wget -q"),
    ],
)
def test_nvidia_repository_for_each_distro(distro: Distro, repo: str, first: str) -> None:
    commands = distro.nvidia_repo()
    assert commands and commands[0].startswith(first)
    arch = "sbsa" if distro.arch == "aarch64" else "x86_64"
    assert f"/compute/cuda/repos/{repo}/{arch}/" in commands[0]
    assert not any("apt-key" in c for c in commands)
    if distro.family == "debian":
        assert commands[1] == "sudo dpkg -i cuda-keyring_1.1-1_all.deb"


def test_unknown_distro_gets_no_made_up_commands() -> None:
    assert Distro("gentoo", "2.15").nvidia_repo() is None
    assert Distro("gentoo", "2.15").install({"debian": ["x"]}) is None


def test_metax_host_defaults_to_the_metax_target(tree: TreeHost) -> None:
    tree.program(
        "/usr/bin/mx-smi", (Path(__file__).parent / "data" / "mx-smi-8xc550.txt").read_text()
    )
    tree.write("/opt/maca/lib64/libmccl.so")
    report, f = doctor(tree)
    assert report.target.id == "flagcx-metax"
    assert f["gpu.others"].status is Status.OK and "MetaX" in f["gpu.others"].summary
    assert f["gpu.nvidia"].status is Status.SKIP
    assert f["cuda.toolkit"].status is Status.SKIP


def test_a_crashing_check_becomes_a_finding(
    tree: TreeHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken(ctx):  # type: ignore[no-untyped-def]
        raise KeyError("driver_version")

    monkeypatch.setitem(
        checks.REGISTRY, "gpu.nvidia", Check("gpu.nvidia", "NVIDIA GPUs", Group.ACCELERATOR, broken)
    )
    report, f = doctor(tree)
    crashed = f["gpu.nvidia"]
    assert crashed.status is Status.CRASH and report.crashed == [crashed]
    assert "the check crashed: KeyError" in crashed.summary
    assert 'raise KeyError("driver_version")' in (crashed.traceback or "")
    assert report.is_blocking(crashed)  # the target needs it, and nothing is known of it
    assert f["os"].status is Status.OK  # the others still ran
    assert len(report.findings) == len(checks.REGISTRY)

    verbose, short = io.StringIO(), io.StringIO()
    TextRenderer(verbose, verbose=True).render(report)
    TextRenderer(short).render(report)
    assert " ☠ NVIDIA GPUs" in short.getvalue() and "Traceback" not in short.getvalue()
    assert "1 check crashed (gpu.nvidia): a bug in the wizard" in short.getvalue()
    assert "1 crash" in short.getvalue()
    assert 'raise KeyError("driver_version")' in verbose.getvalue()
    (shown,) = [d for d in to_dict(report)["findings"] if d["id"] == "gpu.nvidia"]
    assert shown["status"] == "crash" and "KeyError" in shown["traceback"]
    others = [d for d in to_dict(report)["findings"] if d["id"] != "gpu.nvidia"]
    assert all(d["traceback"] is None for d in others)
    saved = write_snapshot(tree, tree.root / "bug.yaml", crashes={"gpu.nvidia": crashed.traceback})
    assert load_snapshot(saved).name  # still a snapshot the wizard replays
    assert "KeyError" in yaml.safe_load(saved.read_text())["crashes"]["gpu.nvidia"]


def test_every_check_has_its_group_and_its_module_a_place_in_the_order() -> None:
    """A check is shown where its module's place in checks.MODULES puts it: a module left
    out of MODULES would sort last, below checks of its group that read it."""
    listed = {m.__name__ for m in checks.MODULES}
    for entry in checks.REGISTRY.values():
        assert isinstance(entry.group, Group), entry.id
        assert entry.func.__module__ in listed, f"{entry.func.__module__} not in MODULES"
    shown = [c.id for c in ordered_checks()]
    assert sorted(shown) == sorted(checks.REGISTRY)
    groups = [checks.REGISTRY[i].group for i in shown]
    assert groups == sorted(groups, key=list(Group).index), "one block per group"
    # a check comes after the checks of its own group that it reads
    for entry in checks.REGISTRY.values():
        for read in entry.after:
            if checks.REGISTRY[read].group is entry.group:
                assert shown.index(read) < shown.index(entry.id), (read, entry.id)
