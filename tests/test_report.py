"""The FlagCX/NCCL comparison, on real output from the lent H100, and `wizard report`."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.cli import run_wizard
from tests.perf_runs import FOUR, TORCH, record_four_gpu_runs
from wizard.engine.recipes import perf_report
from wizard.engine.recipes import state as st
from wizard.engine.recipes.compare import compare, gather
from wizard.engine.recipes.parsers import FlagcxPerf, NcclTestsPerf
from wizard.engine.recipes.plausible import memory_gbs, suspect

DATA = Path(__file__).parent / "data"
FLAGCX_LOG = DATA / "flagcx-h100-allreduce.log"
NCCL_LOG = DATA / "nccl-tests-h100-all-reduce.log"


def parsed(parser_type: type, path: Path) -> list[dict]:
    parser = parser_type()
    parser.feed(path.read_text().splitlines())
    return parser.results()["table"]


def test_nccl_tests_parser_on_real_output() -> None:
    rows = parsed(NcclTestsPerf, NCCL_LOG)
    assert len(rows) == 16 and rows[0]["size_bytes"] == 131072 and rows[-1]["size_bytes"] == 4 << 30
    assert rows[0] == {"size_bytes": 131072, "time_us": 9.95, "algbw_gbs": 13.17, "busbw_gbs": 0.0}
    assert rows[-1]["algbw_gbs"] == pytest.approx(1512.5)


def test_flagcx_parser_on_real_output() -> None:
    rows = parsed(FlagcxPerf, FLAGCX_LOG)
    assert [r["size_bytes"] for r in rows] == [131072 << i for i in range(16)]
    assert rows[-1]["algbw_gbs"] == pytest.approx(1512.198, rel=1e-4)


def test_one_rank_compares_algorithm_bandwidth() -> None:
    result = compare(parsed(FlagcxPerf, FLAGCX_LOG), parsed(NcclTestsPerf, NCCL_LOG))
    assert result.metric == "algbw"  # busbw is 0 with one rank
    assert len(result.rows) == 16
    assert result.ratio_at(256 << 20) == pytest.approx(1460.09 / 1477.5, rel=1e-3)
    assert result.gaps() == []


def test_a_large_gap_is_flagged() -> None:
    flagcx = [{"size_bytes": 256 << 20, "time_us": 1.0, "algbw_gbs": 100.0, "busbw_gbs": 150.0}]
    nccl = [{"size_bytes": 256 << 20, "time_us": 1.0, "algbw_gbs": 200.0, "busbw_gbs": 300.0}]
    result = compare(flagcx, nccl)
    assert result.metric == "busbw" and [r.size_bytes for r in result.gaps()] == [256 << 20]


def recipe(path: Path, recipe_id: str, step: str, log: Path, parser: str) -> Path:
    path.write_text(
        f"id: {recipe_id}\ntitle: replay\nsteps:\n  - id: {step}\n"
        f"    run: cat {log}\n    parse: {parser}\n"
    )
    return path


def test_wizard_report_end_to_end(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}

    def wizard(*args: str) -> subprocess.CompletedProcess[str]:
        return run_wizard(env, *args)

    nothing = wizard("report")  # no run yet is not a failure: it says what to run
    assert nothing.returncode == 0, nothing.stdout + nothing.stderr
    assert "Nothing to report yet: no run with results yet: `wizard run flagcx`" in nothing.stdout
    assert json.loads(wizard("report", "--json").stdout)["runs"] == []
    empty = wizard("report", "--format", "markdown")
    assert empty.returncode == 0 and "**Runs:** none yet" in empty.stdout
    wizard(
        "run", str(recipe(tmp_path / "f.yaml", "flagcx", "allreduce", FLAGCX_LOG, "flagcx-perf"))
    )
    alone = wizard("report")  # FlagCX's table is shown, and what a comparison needs
    assert alone.returncode == 0, alone.stdout + alone.stderr
    assert "allreduce, algorithm bandwidth (GB/s; one rank" in alone.stdout
    assert "  256M   1460.09" in alone.stdout
    assert "Not compared yet: NCCL's figures: run `wizard run nccl-tests`" in alone.stdout
    (only,) = json.loads(wizard("report", "--json").stdout)["results"]
    assert [s["source"] for s in only["series"]] == ["FlagCX"] and only["comparison"] is None
    wizard(
        "run", str(recipe(tmp_path / "n.yaml", "nccl-tests", "all-reduce", NCCL_LOG, "nccl-tests"))
    )
    done = wizard("report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "    256M    1460.09    1477.50   0.988" in done.stdout
    assert "No large gap" in done.stdout
    data = json.loads(wizard("report", "--json").stdout)
    (allreduce,) = data["collectives"]
    assert allreduce["collective"] == "allreduce" and allreduce["metric"] == "algbw"
    assert len(allreduce["rows"]) == 16 and allreduce["rows"][0]["flagcx_of_peak"] is None


@pytest.mark.parametrize("collective", list(FOUR))
def test_four_ranks_compare_bus_bandwidth_against_the_link_peak(collective: str) -> None:
    flagcx_log, nccl_log = FOUR[collective]
    ours, theirs = parsed(FlagcxPerf, DATA / flagcx_log), parsed(NcclTestsPerf, DATA / nccl_log)
    result = compare(ours, theirs, collective=collective, peak_gbs=450.0)
    assert result.metric == "busbw" and len(result.rows) == 16
    assert result.gaps() == []  # the ratio never falls under 0.9 from 16M up
    big = next(r for r in result.rows if r.size_bytes == 4 << 30)
    assert 0.75 < result.of_peak(big.flagcx) < 0.85  # about 80% of 450 GB/s, as measured
    assert result.to_dict()["rows"][-1]["nccl_of_peak"] == pytest.approx(big.nccl / 450.0)


def test_wizard_report_puts_three_collectives_side_by_side(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
    record_four_gpu_runs(tmp_path, env)
    done = run_wizard(env, "report")
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "Links: NVLink 4.0 ×18, peak 450 GB/s per direction" in out
    for name in FOUR:
        assert f"{name}, bus bandwidth (GB/s)" in out
    # allreduce at 4G: FlagCX 362.57, NCCL 362.49 GB/s, each 81% of 450
    assert "      4G     362.57     362.49   1.000          81%        81%" in out
    data = json.loads(run_wizard(env, "report", "--json").stdout)
    assert [c["collective"] for c in data["collectives"]] == list(FOUR)
    assert data["link_peak_gbs"] == 450.0 and data["missing"] == []


@pytest.mark.parametrize("log", sorted(TORCH.values()))
def test_the_torch_sweep_prints_what_the_nccl_tests_parser_reads(log: str) -> None:
    rows = parsed(NcclTestsPerf, DATA / log)
    assert [r["size_bytes"] for r in rows] == [131072 << i for i in range(16)]
    assert all(r["busbw_gbs"] > 0 and "wrong" not in r for r in rows)  # every answer right


def test_wizard_report_adds_torch_as_a_third_column(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
    record_four_gpu_runs(tmp_path, env, torch=True)
    done = run_wizard(env, "report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "torch: torch.distributed's figures from run torch-nccl-" in done.stdout
    # allreduce at 4G: FlagCX and NCCL as before, torch's 362.66 GB/s beside them
    assert "      4G     362.57     362.49   1.000          81%        81%    362.66" in done.stdout
    data = json.loads(run_wizard(env, "report", "--json").stdout)
    assert data["torch_run"].startswith("torch-nccl-")
    assert data["collectives"][0]["rows"][-1]["torch_gbs"] == 362.66


def saved_run(recipe_id: str, tables: dict[str, list[dict]], **params: str) -> None:
    run = st.new_run(recipe_id, recipe_id, list(tables), {})
    run.params = dict(params)
    for step_id, rows in tables.items():
        run.step(step_id).status = st.DONE
        run.step(step_id).results = {"table": rows}
    run.save()


def test_figures_the_hardware_cannot_move_are_suspect_and_left_out_of_the_verdict(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An in-place all-reduce on one rank does no work: torch reported 160,750 GB/s at 4G on
    an H100 (issue 21). Such a figure, and a busbw above the link's peak, is marked suspect
    with the reason and never makes (or hides) a FlagCX/NCCL gap."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    four = 4 << 30
    flagcx = parsed(FlagcxPerf, DATA / "flagcx-4xh100-allreduce.log")
    nccl = parsed(NcclTestsPerf, DATA / "nccl-tests-4xh100-all-reduce.log")
    # NCCL's 4G figure doubled: above the 450 GB/s peak, so a gap of FlagCX's would show
    nccl = [{**r, "busbw_gbs": r["busbw_gbs"] * 2} if r["size_bytes"] == four else r for r in nccl]
    peak = {"link": "NVLink 4.0 ×18", "link_peak_gbs": "450.0", "gpus": "4"}
    saved_run("flagcx", {"allreduce": flagcx}, gpu_model="NVIDIA H100 80GB HBM3", **peak)
    saved_run("nccl-tests", {"all-reduce": nccl}, **peak)
    torch = [{"size_bytes": four, "time_us": 26.72, "algbw_gbs": 160750.0, "busbw_gbs": 0.0}]
    saved_run("torch-nccl", {"all-reduce": torch})
    report = gather()
    (allreduce,) = report.collectives
    nccl_4g = next(r for r in allreduce.series[1].rows if r["size_bytes"] == four)
    assert nccl_4g["suspect"] == "busbw 724.98 GB/s is above the link's peak (450 GB/s)"
    torch_4g = allreduce.series[2].rows[0]
    assert torch_4g["suspect"] == (
        "algbw 160750 GB/s is above the H100's memory bandwidth (3350 GB/s)"
    )
    row = allreduce.comparison.rows[-1]
    assert row.ratio is None and row.torch is None and len(row.suspect) == 2
    assert report.gaps() == []  # the doubled NCCL figure would be a gap of 50%
    assert "4G, nccl-tests (run nccl-tests-" in perf_report.render(report, "text")
    assert "suspect" in perf_report.render(report, "markdown")


def test_a_time_below_a_kernel_launch_is_suspect() -> None:
    row = {"size_bytes": 131072, "time_us": 0.0, "algbw_gbs": 0.0, "busbw_gbs": 0.0}
    reason = suspect(row, link_peak=None, memory=memory_gbs(""))
    assert reason == "time 0 us is below a kernel launch (1 us)"


def readme_schema() -> dict:
    """The JSON Schema README.md documents for `wizard report --format json`."""
    readme = (Path(__file__).parent.parent / "README.md").read_text()
    section = readme.split("#### Formats, and the JSON report's schema", 1)[1]
    return json.loads(section.split("```json\n", 1)[1].split("\n```", 1)[0])


def four_gpu_report(tmp_path: Path, form: str, *extra: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
    record_four_gpu_runs(tmp_path, env, torch=True)
    return run_wizard(env, "report", "--format", form, *extra)


def test_the_json_report_is_what_the_readme_schema_says(tmp_path: Path) -> None:
    import jsonschema

    done = four_gpu_report(tmp_path, "json")
    data = json.loads(done.stdout)  # nothing but the JSON on stdout
    jsonschema.validate(data, readme_schema())
    assert data["schema"] == 1 and [c["collective"] for c in data["results"]] == list(FOUR)
    assert [s["source"] for s in data["results"][0]["series"]] == ["FlagCX", "nccl-tests", "torch"]
    flagcx_run = next(r["run_id"] for r in data["runs"] if r["recipe"] == "flagcx")
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state")}
    chosen = json.loads(run_wizard(env, "report", "--json", "--run", flagcx_run).stdout)
    assert [r["run_id"] for r in chosen["runs"]] == [flagcx_run]  # only the run asked for
    assert chosen["collectives"] == [] and chosen["missing"][0].startswith("NCCL's figures")
    empty = run_wizard({**os.environ, "XDG_STATE_HOME": str(tmp_path / "none")}, "report", "--json")
    jsonschema.validate(json.loads(empty.stdout), readme_schema())


def test_the_markdown_report_renders_as_tables(tmp_path: Path) -> None:
    from markdown_it import MarkdownIt

    done = four_gpu_report(tmp_path, "markdown")
    assert done.returncode == 0, done.stderr
    tokens = MarkdownIt("commonmark").enable("table").parse(done.stdout)
    tables, cells, inside = [], [], False
    for token in tokens:
        if token.type in ("table_open", "table_close"):
            inside = token.type == "table_open"
            tables += [[]] if inside else []
        elif token.type == "tr_close":
            tables[-1].append(cells)
            cells = []
        elif token.type == "inline" and inside:
            cells.append(token.content)
    assert len(tables) == 3  # one per collective, each a real table after rendering
    assert tables[0][0] == ["size", "FlagCX", "nccl-tests", "torch", "FlagCX/NCCL"]
    assert tables[0][-1] == ["4G", "362.57", "362.49", "362.66", "1.000"]
    assert len(tables[0]) == 17
    html = MarkdownIt("commonmark").enable("table").render(done.stdout)
    assert "<strong>Machine:</strong> NVLink 4.0 ×18 (peak 450 GB/s per direction)" in html


def test_the_html_report_opens_in_a_headless_browser_with_a_chart_per_collective(
    tmp_path: Path,
) -> None:
    browser = shutil.which("chromium")
    if browser is None:
        pytest.fail("chromium is missing: .ci/run installs Debian's chromium package")
    page = tmp_path / "report.html"
    done = four_gpu_report(tmp_path, "html", "-o", str(page))
    assert done.returncode == 0 and f"Wrote the html report to {page}" in done.stdout
    body = page.read_text()
    # nothing runs and nothing is fetched: no script, no link or source or url() on the web
    assert "<script" not in body
    assert not re.search(r"""(src|href)\s*=\s*["']?https?:|url\(\s*["']?https?:""", body)
    dom = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    ).stdout
    assert dom.count("<svg") == 3  # the browser parsed one inline SVG chart per collective
    assert dom.count("<table>") == 3 and "362.66" in dom


def test_the_machine_line_and_each_host_of_a_run_across_hosts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The 4x H100's facts (snapshots/4xh100-nvlink.yaml) and the FlagCX commit the run kept;
    a run across two hosts names both."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    facts = {
        "gpus": "4",
        "gpu_model": "NVIDIA H100 80GB HBM3",
        "link": "NVLink 4.0 ×18",
        "link_peak_gbs": "450.0",
        "driver": "580.159.04",
        "cuda_version": "13.0",
        "nccl_version": "2.28.3",
        "mpi_version": "Open MPI 4.1.6",
        "flagcx_commit": "cbf2f48",
    }
    flagcx = parsed(FlagcxPerf, DATA / "flagcx-4xh100-allreduce.log")
    saved_run("flagcx", {"allreduce": flagcx}, **facts)
    run = st.load(st.latest_for("flagcx"))
    run.cluster = {"hosts": [{"host": "gpu1", "slots": 4}, {"host": "gpu2", "slots": 4}]}
    run.save()
    report = gather()
    line = perf_report.machine_line(report)
    assert line == (
        "4x NVIDIA H100 80GB HBM3; NVLink 4.0 ×18 (peak 450 GB/s per direction); "
        "driver 580.159.04; CUDA 13.0; NCCL 2.28.3; FlagCX cbf2f48; MPI Open MPI 4.1.6; "
        "hosts gpu1, gpu2"
    )
    markdown = perf_report.render(report, "markdown")
    assert f"**Machine:** {line}" in markdown
    assert f"**Runs:** {run.run_id} (on gpu1, gpu2)" in markdown
    assert report.to_dict()["runs"][0]["hosts"] == ["gpu1", "gpu2"]


def test_a_run_that_is_not_saved_is_a_usage_error(tmp_path: Path) -> None:
    env = {**os.environ, "XDG_STATE_HOME": str(tmp_path / "state"), "NO_COLOR": "1"}
    done = run_wizard(env, "report", "--run", "flagcx-20260101-000000")
    assert done.returncode == 2 and done.stdout == ""
    assert (
        "no saved run flagcx-20260101-000000: `wizard status` lists the saved runs" in done.stderr
    )


def test_a_training_run_is_charted_in_the_html_and_tabled_in_the_markdown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DeepSpeed training step as it ran on the 2x H200: loss and samples/s by step."""
    from wizard.engine.recipes.parsers import Training

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    parser = Training()
    parser.feed((DATA / "ds-train-2xh200.log").read_text().splitlines())
    run = st.new_run("deepspeed", "deepspeed", ["train"], {})
    run.step("train").status, run.step("train").results = st.DONE, parser.results()
    run.save()
    report = gather()
    (train,) = report.training
    assert train.unit == "samples/s" and [p["loss"] for p in train.points][-1] == 0.0031
    page = perf_report.render(report, "html")
    assert page.count("<svg") == 2  # loss, and throughput
    assert "train: loss by step" in page and "train: samples/s by step" in page
    markdown = perf_report.render(report, "markdown")
    assert "| step | loss | samples/s |" in markdown
    assert "Not compared yet: FlagCX and NCCL: run `wizard run flagcx`" in markdown


def test_every_collective_a_perf_step_measured_is_reported_in_a_fixed_order(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The flagcx recipe may measure any of FlagCX's collectives (a step per collective,
    named after it); nccl-tests names its steps with dashes. Rows here are the data model's
    shape, not tool output."""
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    row = {"size_bytes": 1 << 20, "time_us": 20.0, "algbw_gbs": 50.0, "busbw_gbs": 40.0}
    saved_run("flagcx", {name: [row] for name in ("sendrecv", "broadcast", "alltoall")})
    saved_run("nccl-tests", {"alltoall": [row], "send-recv": [row]})
    report = gather()
    assert [c.name for c in report.collectives] == ["alltoall", "broadcast", "sendrecv"]
    assert [c.collective for c in report.comparisons] == ["alltoall", "sendrecv"]
    assert report.missing == ["broadcast: the nccl-tests run has no broadcast results"]
