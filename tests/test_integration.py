"""The doctor on this real machine: the paths it finds must build and run real programs.

.ci/run installs Open MPI and libgtest-dev; these tests compile against exactly what the
doctor reported and run the results (mpirun with 2 ranks, a gtest binary).
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from tests.treehost import run_ok
from wizard.engine.doctor.diagnosis import run_doctor
from wizard.host import LocalHost

pytestmark = pytest.mark.integration

MPI_HELLO = r"""
#include <mpi.h>
#include <stdio.h>
int main(int argc, char **argv) {
    int rank, size, sum, one = 1;
    MPI_Init(&argc, &argv);
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    MPI_Allreduce(&one, &sum, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    printf("rank %d of %d sum %d\n", rank, size, sum);
    MPI_Finalize();
    return 0;
}
"""

GTEST_PROGRAM = r"""
#include <gtest/gtest.h>
TEST(Wizard, Adds) { EXPECT_EQ(2 + 2, 4); }
"""


@pytest.fixture(scope="module")
def facts() -> dict:
    report = run_doctor(LocalHost())
    return {f.id: f for f in report.findings}


def test_found_mpi_home_compiles_and_runs_with_two_ranks(facts: dict, tmp_path: Path) -> None:
    mpi = facts["mpi"]
    assert mpi.status.value == "ok", mpi.summary
    home = mpi.facts["mpi.home"]
    (tmp_path / "hello.c").write_text(MPI_HELLO)
    # Exactly what FlagCX's test/perf Makefile does with MPI_HOME.
    run_ok(
        ["gcc", "hello.c", "-o", "hello", f"-I{home}/include", f"-L{home}/lib", "-lmpi"], tmp_path
    )
    flags = shlex.split(mpi.facts["mpi.run_flags"])
    done = run_ok(
        ["mpirun", *flags, "--oversubscribe", "-np", "2", "./hello"],
        tmp_path,
        LD_LIBRARY_PATH=f"{home}/lib",
    )
    lines = sorted(done.split("\n"))
    assert "rank 0 of 2 sum 2" in lines and "rank 1 of 2 sum 2" in lines


def test_found_googletest_builds_and_runs_a_test(facts: dict, tmp_path: Path) -> None:
    gtest = facts["gtest"]
    assert gtest.status.value == "ok", gtest.summary
    (tmp_path / "t.cc").write_text(GTEST_PROGRAM)
    run_ok(
        [
            "g++",
            "t.cc",
            "-o",
            "t",
            f"-I{gtest.facts['gtest.include']}",
            f"-L{gtest.facts['gtest.lib']}",
            "-lgtest",
            "-lgtest_main",
            "-pthread",
        ],
        tmp_path,
    )
    done = run_ok(["./t"], tmp_path)
    assert "[  PASSED  ] 1 test." in done
