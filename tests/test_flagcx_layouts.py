"""The flagcx recipe reads the checkout it is given: FlagCX v0.6 (tests/fixtures/flagcx-like)
and v0.7+ (tests/fixtures/flagcx-current), run end to end by real make, mpirun and gtest."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from checks.base import Status
from checks.flagcx import read_checkout
from tests.cli import run_wizard
from tests.treehost import TreeHost
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.engine.recipes.parsers import FlagcxPerf, Gtest
from wizard.host import LocalHost

FIXTURES = Path(__file__).parent / "fixtures"
CURRENT = FIXTURES / "flagcx-current"
V06 = FIXTURES / "flagcx-like"
SYSTEM_JSON = Path("/usr/include/nlohmann/json.hpp")  # nlohmann-json3-dev (.ci/run)


@pytest.fixture
def nccl(tmp_path: Path) -> Path:
    """A CCL_HOME whose include/nccl.h FlagCX's makefiles/nvidia.mk can read a version from."""
    home = tmp_path / "nccl"
    (home / "include").mkdir(parents=True)
    (home / "include" / "nccl.h").write_text("#define NCCL_MAJOR 2\n#define NCCL_MINOR 28\n")
    return home


def latest_run(env: dict[str, str]) -> dict:
    done = run_wizard(env, "status", "--json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def checkout(tmp_path: Path, fixture: Path = CURRENT, *, json_headers: bool = False) -> Path:
    src = tmp_path / "FlagCX"
    shutil.copytree(fixture, src)
    if json_headers:  # what `git submodule update --init third-party/json` would bring
        shutil.copytree(SYSTEM_JSON.parent, src / "third-party/json/single_include/nlohmann")
    return src


def git_repo(folder: Path) -> str:
    """The folder as a git repository with one commit tagged v0.13.0; its commit."""

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-C", str(folder), *args], capture_output=True, text=True, check=True
        ).stdout.strip()

    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "fixture")
    git("tag", "v0.13.0")
    return git("rev-parse", "--short=12", "HEAD")


# -- reading a checkout ---------------------------------------------------------------------


def test_each_layout_is_read_from_what_the_checkout_has(tmp_path: Path) -> None:
    current = read_checkout(LocalHost(), str(CURRENT))
    assert current["checkout.layout"] == "v0.7+"
    assert current["checkout.perf_bin"] == "./build/bin/perf_"
    assert current["checkout.perf_tests"] == ["allgather", "allreduce", "alltoall"]
    assert current["checkout.unit_tests"] == ["core", "service"]
    old = read_checkout(LocalHost(), str(V06))
    assert (old["checkout.layout"], old["checkout.perf_bin"]) == ("v0.6", "./test_")
    assert old["checkout.perf_tests"] == ["allreduce"] and old["checkout.unit_tests"] == ["main"]
    assert read_checkout(LocalHost(), str(tmp_path / "absent"))["checkout.exists"] is False


def test_json_headers_from_the_submodule_the_distro_or_nowhere(tmp_path: Path) -> None:
    tree = TreeHost(tmp_path / "root")  # a host answers from what it saw: one per look
    for name in ("Makefile", "test/perf/host_api/Makefile"):
        tree.write(f"/src/{name}", "all:\n")
    tree.write("/src/flagcx/core.cc", "")
    assert read_checkout(tree, "/src")["checkout.json"] == "missing"
    TreeHost(tree.root).write("/usr/include/nlohmann/json.hpp", "")
    found = read_checkout(TreeHost(tree.root), "/src")
    assert (found["checkout.json"], found["checkout.json_include"]) == ("system", "/usr/include")
    TreeHost(tree.root).write("/src/third-party/json/single_include/nlohmann/json.hpp", "")
    vendored = read_checkout(TreeHost(tree.root), "/src")
    assert (vendored["checkout.json"], vendored["checkout.json_include"]) == ("vendored", "")


# -- parsing --------------------------------------------------------------------------------


def test_perf_rows_carry_the_datatype_and_op_of_their_section() -> None:
    parser = FlagcxPerf()
    line = "Comm size: {} bytes; Elapsed time: 0.000010 sec; Algo bandwidth: 1.0 GB/s; Bus bandwidth: 1.0 GB/s"
    parser.feed(["#", "# datatype: float, op: sum", "#", line.format(131072)])
    parser.feed([line.format(262144), "#", "# datatype: half, op: max"])
    parser.feed(["#", line.format(131072)])
    rows = parser.results()["table"]
    assert [(r["size_bytes"], r["datatype"], r["op"]) for r in rows] == [
        (131072, "float", "sum"),
        (262144, "float", "sum"),
        (131072, "half", "max"),
    ]


def test_gtest_programs_are_counted_each_and_summed() -> None:
    parser = Gtest()
    parser.feed(["==> gtest program: core_unit_tests", "[  PASSED  ] 2 tests."])
    parser.feed(
        ["==> gtest program: core_mpi_tests", "[  PASSED  ] 1 test.", "[  PASSED  ] 1 test."]
    )
    parser.feed(["[  FAILED  ] 1 test, listed below:"])
    assert parser.results() == {
        "passed": 3,
        "failed": 1,
        "ranks": 2,
        "programs": {
            "core_unit_tests": {"passed": 2, "failed": 0, "ranks": 1},
            "core_mpi_tests": {"passed": 1, "failed": 1, "ranks": 2},
        },
    }


# -- real runs ------------------------------------------------------------------------------


@pytest.mark.integration
def test_current_layout_runs_every_collective_it_has(env: dict, tmp_path: Path, nccl: Path) -> None:
    src = checkout(tmp_path, json_headers=True)
    plan = run_wizard(env, "steps", "flagcx", "--set", f"src={src}", "--set", "collectives=all")
    assert (
        "./build/bin/perf_allgather" in plan.stdout and "./build/bin/perf_alltoall" in plan.stdout
    )
    assert "reducescatter is not in collectives (allgather, allreduce, alltoall)" in plan.stdout
    done = run_wizard(
        env,
        "run",
        "flagcx",
        "--force",
        "--yes",
        *("--set", f"src={src}", "--set", "gpus=2", "--set", "collectives=all"),
        *("--set", "perf_args=-b 128K -e 512K -f 2", "--set", f"ccl_home={nccl}"),
        *("--set", "datatype=all"),
        timeout=300,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    steps = latest_run(env)["steps"]
    ran = [s for s, v in steps.items() if v["status"] == "done"]
    assert ran == [
        "json", "build", "perf-build", "allreduce", "allgather", "alltoall",
        "unittest-build", "unittest",
    ]  # fmt: skip
    # -d all: a section per datatype (the fixture has float, double, int32), rows in each.
    rows = steps["allreduce"]["results"]["table"]
    assert sorted({r["datatype"] for r in rows}) == ["double", "float", "int32"]
    assert [r["size_bytes"] for r in rows if r["datatype"] == "float"] == [131072, 262144, 524288]
    assert all(r["busbw_gbs"] > 0 for r in rows)
    assert "datatype/op      size" in done.stdout and "double/sum       128K" in done.stdout
    assert steps["unittest"]["results"]["programs"] == {
        "core_unit_tests": {"passed": 2, "failed": 0, "ranks": 1},
        "service_unit_tests": {"passed": 1, "failed": 0, "ranks": 1},
        "core_mpi_tests": {"passed": 1, "failed": 0, "ranks": 2},
    }
    # The homes reached every make: no test build fell back to test/make.inc's CCL_HOME.
    perf_log = Path(steps["perf-build"]["log"]).read_text()
    assert "NCCL header not found" not in perf_log, perf_log
    assert "NCCL header not found" not in Path(steps["unittest-build"]["log"]).read_text()
    assert (
        f"flagcx build: nvidia /usr/local/cuda {nccl}"
        in Path(steps["allreduce"]["log"]).read_text()
    )
    assert "third-party/json is there" in Path(steps["json"]["log"]).read_text()
    assert "JSON_INCLUDE_DIR=" not in Path(steps["build"]["log"]).read_text()


@pytest.mark.integration
def test_a_missing_json_submodule_uses_the_distros_headers(env: dict, tmp_path: Path) -> None:
    src = checkout(tmp_path)  # no third-party/json, as a clone without --recurse-submodules
    done = run_wizard(
        env, "run", "flagcx", "--force", "--yes", "--set", f"src={src}", "--set", "gtest_lib=",
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    steps = latest_run(env)["steps"]
    assert "using the distro's headers in /usr/include" in Path(steps["json"]["log"]).read_text()
    assert steps["build"]["status"] == "done" and steps["allreduce"]["status"] == "done"


def test_no_json_anywhere_names_the_commands_that_bring_it(env: dict, tmp_path: Path) -> None:
    src = checkout(tmp_path)
    # As on a machine without nlohmann-json3-dev (this one has it, so the fact is given).
    done = run_wizard(
        env, "run", "flagcx", "--force", "--yes", "--set", f"src={src}", "--set", "json=missing",
    )  # fmt: skip
    assert done.returncode == 1
    assert f"git -C {src} submodule update --init --depth 1 third-party/json" in done.stdout
    assert "sudo apt-get install -y nlohmann-json3-dev" in done.stdout
    assert latest_run(env)["steps"]["build"]["status"] == "pending"


@pytest.mark.integration
def test_asking_for_a_perf_test_the_checkout_lacks_says_what_it_has(
    env: dict, tmp_path: Path
) -> None:
    src = checkout(tmp_path, json_headers=True)
    done = run_wizard(
        env, "run", "flagcx", "--force", "--yes", "--set", f"src={src}",
        "--set", "collectives=reducescatter", "--set", "gtest_lib=", timeout=300,
    )  # fmt: skip
    assert done.returncode == 1
    assert (
        "This checkout has no perf test reducescatter (no test/perf/host_api/"
        "test_reducescatter.cpp); it has: allgather allreduce alltoall"
    ) in done.stdout
    assert latest_run(env)["steps"]["reducescatter"]["status"] == "failed"


def test_a_layout_the_recipe_does_not_know_says_what_the_checkout_has(
    env: dict, tmp_path: Path
) -> None:
    src = tmp_path / "FlagCX"
    (src / "flagcx").mkdir(parents=True)
    (src / "Makefile").write_text("all:\n\tmkdir -p build/lib && touch build/lib/libflagcx.so\n")
    (src / "tests" / "bench").mkdir(parents=True)  # upstream moved its tests again
    (src / "test" / "unittest").mkdir(parents=True)
    (src / "test" / "unittest" / "README").write_text("")
    done = run_wizard(env, "run", "flagcx", "--force", "--yes", "--set", f"src={src}")
    assert done.returncode == 1
    text = " ".join(done.stdout.split())
    assert "This FlagCX checkout has neither layout the recipe knows" in text
    assert "It has: test/unittest: README" in text


@pytest.mark.integration
def test_a_clone_made_by_the_run_is_read_before_the_steps_after_it(
    env: dict, tmp_path: Path
) -> None:
    upstream = checkout(tmp_path / "upstream", json_headers=True)
    commit = git_repo(upstream)
    src = tmp_path / "clone"
    done = run_wizard(
        env, "run", "flagcx", "--force", "--yes", "--set", f"src={src}",
        "--set", f"repo={upstream}", "--set", "ref=v0.13.0", "--set", "gtest_lib=",
        timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    run = latest_run(env)
    assert run["steps"]["allreduce"]["status"] == "done"
    assert "./build/bin/perf_allreduce" in run["steps"]["allreduce"]["command"]
    saved = yaml.safe_load(Path(run["path"]).read_text())
    assert saved["params"]["layout"] == "v0.7+"
    assert saved["params"]["flagcx_commit"] == commit


@pytest.mark.integration
def test_v06_layout_still_runs_as_before(env: dict, tmp_path: Path) -> None:
    src = checkout(tmp_path, V06)
    done = run_wizard(
        env, "run", "flagcx", "--force", "--yes", "--set", f"src={src}", "--set", "gpus=2",
        "--set", "perf_args=-b 128K -e 256K -f 2", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    steps = latest_run(env)["steps"]
    assert steps["json"] == {**steps["json"], "status": "skipped", "reason": "json is not set"}
    assert "./test_allreduce" in steps["allreduce"]["command"]
    assert steps["unittest"]["results"] == {"passed": 2, "failed": 0, "ranks": 2}


def test_the_doctor_names_a_current_checkout_without_json_and_the_fixes(tree: TreeHost) -> None:
    for name in ("Makefile", "test/perf/host_api/Makefile", "flagcx/core.cc"):
        tree.write(f"/root/FlagCX/{name}", "")
    tree.env["HOME"] = "/root"
    report = run_doctor(tree)
    finding = next(f for f in report.findings if f.id == "flagcx")
    assert finding.status is Status.WARN
    assert "layout v0.7+" in finding.summary and "third-party/json" in finding.summary
    commands = [c for fix in finding.fixes for c in fix.commands]
    assert "apt-get install -y nlohmann-json3-dev" in commands  # Ubuntu, as root
    assert "git -C /root/FlagCX submodule update --init --depth 1 third-party/json" in commands


def test_the_torch_plugin_is_built_the_way_each_layout_builds_it(env: dict, tmp_path: Path) -> None:
    for fixture, expected in (
        (CURRENT, "-m pip install . -v --no-build-isolation --no-index --no-deps"),
        (V06, "cd plugin/torch && "),
    ):
        src = checkout(tmp_path / fixture.name, fixture)
        plan = run_wizard(
            env, "steps", "flagcx", "--set", f"src={src}", "--set", "torch=2.11.0",
            "--set", "pip_args=--no-index --no-deps",
        )  # fmt: skip
        assert expected in plan.stdout, plan.stdout
        assert "import flagcx, torch" in plan.stdout


def test_before_a_clone_the_plan_says_the_layout_comes_from_the_checkout(
    env: dict, tmp_path: Path
) -> None:
    plan = run_wizard(env, "steps", "flagcx", "--set", f"src={tmp_path / 'not-yet'}")
    assert "1. run  source" in plan.stdout
    assert "picks its command by layout, which has no value yet" in plan.stdout


DATA = Path(__file__).parent / "data"


def test_real_v013_perf_output_with_every_datatype_and_op() -> None:
    """perf_allreduce -d all -o all on one H200: 40 sections of 3 sizes each."""
    parser = FlagcxPerf()
    lines = (DATA / "flagcx-v0.13-h200-allreduce-dall.log").read_text().splitlines()
    for start in range(0, len(lines), 7):  # chunks that cut sections apart, as a pipe does
        parser.feed(lines[start : start + 7])
    rows = parser.results()["table"]
    assert len(rows) == 120
    sections = list(dict.fromkeys((r["datatype"], r["op"]) for r in rows))
    assert len(sections) == 40 and sections[0] == ("int8", "sum")
    assert all(
        [r["size_bytes"] for r in rows if (r["datatype"], r["op"]) == s]
        == [1 << 20, 1 << 22, 1 << 24]
        for s in sections
    )


def test_real_v013_unit_tests_counted_per_program() -> None:
    """The v0.7+ unit tests on one H200 (one rank): symmem's window tests fail there."""
    parser = Gtest()
    parser.feed((DATA / "flagcx-v0.13-h200-unittest.log").read_text().splitlines())
    results = parser.results()
    assert (results["passed"], results["failed"]) == (199, 4)
    assert results["programs"]["core_unit_tests"] == {"passed": 86, "failed": 0, "ranks": 1}
    assert results["programs"]["symmem_mpi_tests"] == {"passed": 10, "failed": 4, "ranks": 1}
    assert len(results["programs"]) == 12


def test_another_vendors_sdk_home_reaches_the_flagcx_build(tmp_path: Path) -> None:
    from wizard.engine.recipes import recipe
    from wizard.engine.recipes.run import recipe_facts, resolve

    class Target:
        vendor = __import__("checks.vendors", fromlist=["VENDORS"]).VENDORS["kunlunxin"]

    class FakeReport:  # what recipe_facts reads of a doctor report
        target = Target
        facts = staticmethod(
            lambda: {"accel.device_home": "/opt/xre", "nccl.home": "/usr", "mpi.home": "/m"}
        )

    values = resolve(recipe.load("flagcx"), recipe_facts(FakeReport), {}, tmp_path)  # type: ignore[arg-type]
    assert (values["make_flag"], values["device_home"], values["ccl_home"]) == (
        "USE_KUNLUNXIN",
        "/opt/xre",
        "",
    )


@pytest.mark.integration
def test_split_hosts_gives_each_group_of_ranks_its_host_id_and_gpus(
    env: dict, tmp_path: Path
) -> None:
    """--set split_hosts=2, as FlagCX's CI runs two logical hosts on one machine."""
    src = checkout(tmp_path, json_headers=True)
    done = run_wizard(
        {**env, "CUDA_VISIBLE_DEVICES": "4,5,6,7"},
        "run", "flagcx", "--force", "--yes", "--set", f"src={src}", "--set", "gpus=4",
        "--set", "split_hosts=2", "--set", "gtest_lib=", "--set", "perf_args=-b 128K -e 128K",
        "--set", "mpi_flags=--allow-run-as-root --oversubscribe", timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "rank 0 host node0 devices 4,5" in done.stdout
    assert "rank 1 host node0 devices 4,5" in done.stdout
    assert "rank 2 host node1 devices 6,7" in done.stdout
    assert "rank 3 host node1 devices 6,7" in done.stdout
    uneven = run_wizard(
        env, "run", "flagcx", "--force", "--yes", "--set", f"src={src}", "--set", "gpus=3",
        "--set", "split_hosts=2", "--set", "gtest_lib=",
        "--set", "mpi_flags=--allow-run-as-root --oversubscribe", timeout=300,
    )  # fmt: skip
    assert uneven.returncode == 1
    assert "split_hosts=2 does not divide the 3 ranks into equal hosts" in uneven.stdout
