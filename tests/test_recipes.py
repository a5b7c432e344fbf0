"""Recipe files: the shipped ones load, bad ones are reported with file, line and reason."""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest

from wizard.engine.recipes import recipe
from wizard.engine.recipes.parsers import FlagcxPerf, Gtest, NcclTestsPerf, gtest_summary
from wizard.engine.recipes.run import ParamError, mpi_forward_flags, plan, resolve
from wizard.paths import recipe_ids

FIXTURES = Path(__file__).parent / "fixtures"


@pytest.mark.parametrize("name", recipe_ids())
def test_shipped_recipes_load(name: str) -> None:
    loaded = recipe.load(name)
    assert loaded.id == name and loaded.steps


GOOD = """\
id: demo
title: Demo
params:
  src: {kind: path, default: /tmp}
steps:
  - id: one
    run: echo {{ src }}
"""


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("id: x\nsteps: [\n", 3, "invalid YAML"),
        (
            GOOD.replace("title: Demo", "titel: Demo"),
            2,
            "unknown key 'titel' in the recipe (did you mean 'title'?)",
        ),
        (
            GOOD.replace("    run: echo {{ src }}", "    command: echo"),
            7,
            "unknown key 'command' in a step",
        ),
        (
            GOOD.replace("    run: echo {{ src }}", "    title: no run"),
            6,
            "step 'one': 'run' must be a command or a list of commands",
        ),
        (
            GOOD.replace("{{ src }}", "{{ scr }}"),
            6,
            "uses {{ scr }}, which is not a parameter (did you mean 'src'?)",
        ),
        (GOOD + "    parse: bandwidth\n", 8, "unknown parser 'bandwidth'"),
        (GOOD + "    parse: []\n", 8, "unknown parser []"),  # found by hypothesis
        (GOOD + "  - id: one\n    run: true\n", 8, "step id 'one' is used twice"),
        (
            GOOD + "  - id: two\n    run: echo 2\n    needs: [three]\n",
            10,
            "needs 'three', which is not an earlier step",
        ),
        (GOOD + "    timeout: -5\n", 8, "'timeout' must be a positive number"),
        (GOOD + "    done_if: {newer: x}\n", 8, "'newer' needs 'than'"),
        (GOOD.replace("kind: path", "kind: file"), 4, "kind must be one of"),
        ("- just\n- a list\n", None, "a recipe is a mapping"),
        (GOOD + "    when: one in nothing\n", 8, "'when' must name a parameter (or ITEM in PARAM)"),
        (GOOD + "    by: layout\n", 8, "step 'one': 'by' must name a parameter"),
        (
            GOOD.replace("steps:", "  layout: ''\nsteps:") + "    by: layout\n",
            8,
            "with 'by', 'run' maps each value of 'layout' to a command",
        ),
        (GOOD + "  - id: two\n    run: x\n    each: []\n", 10, "'each' must be a non-empty list"),
        (GOOD + "  - id: two\n    run: x\n    each: [A b]\n", 10, "'A b' is not a word"),
        (GOOD + "checkout: {reader: svn, path: x}\n", 8, "unknown checkout reader 'svn'"),
        (GOOD + "checkout: {reader: flagcx, path: '{{ dir }}'}\n", 8, "uses {{ dir }}"),
        (
            GOOD.replace("steps:", "  many: {kind: args, all: nothing}\nsteps:"),
            5,
            "'all' names another parameter",
        ),
    ],
)
def test_bad_recipes_name_file_line_and_reason(
    tmp_path: Path, text: str, line: int | None, message: str
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(recipe.RecipeError) as err:
        recipe.load(str(path))
    where = f"{path}:{line}: " if line else f"{path}: "
    assert str(err.value).startswith(where), str(err.value)
    assert message in str(err.value)


def test_unknown_recipe_lists_the_available_ones() -> None:
    with pytest.raises(
        recipe.RecipeError, match=r"no recipe named 'flagx' \(did you mean 'flagcx'"
    ):
        recipe.load("flagx")


def test_values_are_shell_quoted_so_answers_cannot_inject_commands() -> None:
    evil = "/tmp/my dir; touch /tmp/pwned"
    text = recipe.render(
        "make SRC={{ src }} {{ args }}", {"src": evil, "args": ["-j", "a b"]}, quote=True
    )
    assert shlex.split(text) == ["make", f"SRC={evil}", "-j", "a b"]


def test_parameters_come_from_set_then_facts_then_defaults(tmp_path: Path) -> None:
    flagcx = recipe.load("flagcx")
    facts = {
        "mpi.home": "/opt/mpi",
        "gpu.count": 8,
        "target.ccl_home": "/usr",  # recipe_facts: the NCCL the doctor found, for NVIDIA
        "mpi.run_flags": "--allow-run-as-root --mca btl ^openib",
        "mpi.flavor": "Open MPI",
    }
    values = resolve(flagcx, facts, {"gpus": "2", "src": "~/src/FlagCX"}, tmp_path)
    assert values["gpus"] == 2  # --set beats the fact
    assert values["mpi_home"] == "/opt/mpi" and values["ccl_home"] == "/usr"
    assert values["src"] == str(Path("~/src/FlagCX").expanduser())
    assert values["mpi_flags"] == ["--allow-run-as-root", "--mca", "btl", "^openib"]
    assert values["perf_args"] == ["-b", "128K", "-e", "4G", "-f", "2", "-p", "1"]


def test_a_parameter_without_value_says_how_to_set_it(tmp_path: Path) -> None:
    with pytest.raises(ParamError, match=r"'mpi_home' has no value .*--set mpi_home=VALUE"):
        resolve(recipe.load("flagcx"), {}, {}, tmp_path)
    with pytest.raises(ParamError, match="has no parameter bogus"):
        resolve(recipe.load("flagcx"), {}, {"bogus": "1"}, tmp_path)
    with pytest.raises(ParamError, match="'gpus' must be a whole number"):
        resolve(recipe.load("flagcx"), {"mpi.home": "/x"}, {"gpus": "many"}, tmp_path)


def test_mpirun_forwards_the_safety_variables() -> None:
    env = {"NCCL_NVLS_ENABLE": "0", "FLAGCX_DEBUG": "INFO", "HOME": "/root", "HF_TOKEN": "x"}
    assert mpi_forward_flags("Open MPI", env) == ["-x", "FLAGCX_DEBUG", "-x", "NCCL_NVLS_ENABLE"]
    assert mpi_forward_flags("MPICH", env) == ["-genvlist", "FLAGCX_DEBUG,NCCL_NVLS_ENABLE"]


# Lines copied from the real test_allreduce run on the lent H100 (one rank) and the fixture.
FLAGCX_LINES = """\
I am 0 of 1
Comm size: 131072 bytes; Elapsed time: 0.000008 sec; Algo bandwidth: 17.020563 GB/s; Bus bandwidth: 0.000000 GB/s
recvbuff = 0.000000 1.000000 2.000000 3.000000 4.000000 5.000000 6.000000 7.000000 8.000000 9.000000
Comm size: 1073741824 bytes; Elapsed time: 0.000717 sec; Algo bandwidth: 1497.142150 GB/s; Bus bandwidth: 0.000000 GB/s
"""


def test_flagcx_perf_parser() -> None:
    parser = FlagcxPerf()
    parser.feed(FLAGCX_LINES.splitlines()[:2])
    parser.feed(FLAGCX_LINES.splitlines()[2:])
    rows = parser.results()["table"]
    assert [r["size_bytes"] for r in rows] == [131072, 1073741824]
    assert rows[1]["algbw_gbs"] == pytest.approx(1497.14215)
    assert rows[1]["time_us"] == pytest.approx(717.0)


def test_gtest_parser_reads_coloured_output() -> None:
    parser = Gtest()
    parser.feed(["\x1b[0;32m[  PASSED  ] \x1b[m8 tests.", "[  FAILED  ] 2 tests, listed below:"])
    assert parser.results() == {"passed": 8, "failed": 2, "ranks": 1}


def test_gtest_parser_counts_per_rank_on_real_four_rank_output() -> None:
    parser = Gtest()
    log = Path(__file__).parent / "data" / "flagcx-4xh100-unittest.log"
    parser.feed(log.read_text().splitlines())
    assert parser.results() == {"passed": 8, "failed": 0, "ranks": 4}
    assert gtest_summary(parser.results()) == "8 tests passed, 0 failed (on each of 4 ranks)"


def test_nccl_tests_parser_ignores_headers() -> None:
    parser = NcclTestsPerf()
    parser.feed(
        [
            "#       size         count      type   redop    root     time   algbw   busbw",
            "# Avg bus bandwidth    : 0",
        ]
    )
    assert parser.results() == {}


def test_flagcx_requires_what_the_doctors_target_requires() -> None:
    from wizard.engine.doctor.diagnosis import run_doctor
    from wizard.engine.recipes.run import failing_requirements
    from wizard.host import load_snapshot

    snapshots = Path(__file__).resolve().parent.parent / "snapshots"
    flagcx = recipe.load("flagcx")
    ci = run_doctor(load_snapshot(snapshots / "ci-debian12.yaml"))
    assert [f.id for f in failing_requirements(flagcx, ci)] == ["gpu.nvidia", "nccl.header"]
    metax = run_doctor(load_snapshot(snapshots / "h100-ubuntu2404.yaml"), "flagcx-metax")
    assert [f.id for f in failing_requirements(flagcx, metax)] == ["gpu.others"]


EACH = """\
id: each
title: Each
params:
  picked: {kind: args, default: b, all: known}
  known: {kind: args, default: "a b c"}
  layout: {default: new}
steps:
  - each: [a, b, d]
    id: "test-{{ item }}"
    title: "Test {{ item }}"
    when: "{{ item }} in picked"
    by: layout
    run:
      old: ./old_{{ item }}
      new: ./new_{{ item }} {{ picked }}
"""


def test_each_by_and_all_make_one_step_per_item_with_the_layouts_command(
    tmp_path: Path,
) -> None:
    path = tmp_path / "each.yaml"
    path.write_text(EACH)
    loaded = recipe.load(str(path))
    assert [s.id for s in loaded.steps] == ["test-a", "test-b", "test-d"]
    assert loaded.steps[0].title == "Test a" and loaded.steps[0].when_item == "a"
    values = resolve(loaded, {}, {}, tmp_path)
    planned = plan(loaded, values, None)
    assert [(p.step.id, p.action) for p in planned] == [
        ("test-a", "skip"), ("test-b", "run"), ("test-d", "skip"),
    ]  # fmt: skip
    assert planned[0].reason == "a is not in picked (b)"
    assert loaded.steps[1].script(values) == "./new_b {{ picked }}"
    every = resolve(loaded, {}, {"picked": "all,d"}, tmp_path)
    assert every["picked"] == ["d", "a", "b"]  # all: the known list (c has no step), and d
    with pytest.raises(ParamError, match=r"picked: no step runs e; the recipe has a, b, d"):
        resolve(loaded, {}, {"picked": "e"}, tmp_path)
    assert [p.action for p in plan(loaded, every, None)] == ["run", "run", "run"]
    with pytest.raises(
        recipe.NoCommand, match=r"no command for layout=other \(it has commands for old, new\)"
    ):
        loaded.steps[0].script({"layout": "other"})
