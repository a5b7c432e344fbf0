"""DeepSpeed: ds_report read into a finding, and the training run's figures.

CI has no torch (PyPI's Linux torch is the CUDA build, gigabytes), so DeepSpeed cannot be
installed here: a stand-in `deepspeed` package on PYTHONPATH prints the ds_report recorded
on the 2x H200 machine (tests/data/ds_report-2xh200.txt), unchanged or cut short. The
recipe itself ran there for real (README)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from tests.cli import run_wizard
from wizard.engine.recipes.parsers import DsReport, Training, ds_report_summary, training_summary

DATA = Path(__file__).resolve().parent / "data"
REPORT = DATA / "ds_report-2xh200.txt"


def test_ds_report_is_read_into_ops_warnings_and_info() -> None:
    parser = DsReport()
    parser.feed(REPORT.read_text().splitlines())
    found = parser.results()
    assert len(found["ops"]) == 23 and found["ninja"] is True
    assert found["ops"]["fused_adam"] == {"installed": False, "compatible": True}
    assert found["ops"]["async_io"] == {"installed": False, "compatible": False}
    assert found["info"]["torch version"] == "2.11.0+cu130"
    assert found["info"]["deepspeed wheel compiled w."] == "torch 2.11, cuda 13.0"
    assert any(w.startswith("async_io requires the dev libaio") for w in found["warnings"])
    assert ds_report_summary(found) == (
        "20 of 23 DeepSpeed ops can be built here (0 prebuilt); ninja found"
    )


def test_training_progress_and_figures() -> None:
    parser = Training()
    parser.feed((DATA / "ds-train-2xh200.log").read_text().splitlines())
    found = parser.results()
    assert [row["step"] for row in found["progress"]] == [50, 100, 150, 200, 250, 300]
    assert found["training"]["steps"] == 300 and found["training"]["precision"] == "bf16"
    assert found["progress"][-1]["loss"] < found["progress"][0]["loss"]
    assert training_summary(found).startswith("300 steps in ")


def stand_in(tmp_path: Path, report: str, code: int = 0) -> dict[str, str]:
    """A `deepspeed` 0.19.8 whose env_report prints `report` and exits with `code`."""
    site = tmp_path / "site"
    info = site / "deepspeed-0.19.8.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: deepspeed\nVersion: 0.19.8\n")
    (site / "deepspeed").mkdir()
    (site / "deepspeed" / "__init__.py").write_text("")
    (tmp_path / "report.txt").write_text(report)
    (site / "deepspeed" / "env_report.py").write_text(
        "import sys\n"
        f"sys.stdout.write(open({str(tmp_path / 'report.txt')!r}).read())\n"
        f"sys.exit({code})\n"
    )
    return {**os.environ, "PYTHONPATH": str(site), "NO_COLOR": "1"}


def deepspeed_finding(env: dict[str, str], *args: str) -> dict:
    done = run_wizard(env, "doctor", "--json", *args)
    return next(f for f in json.loads(done.stdout)["findings"] if f["id"] == "deepspeed")


def test_the_recorded_ds_report_as_a_finding(tmp_path: Path) -> None:
    env = stand_in(tmp_path, REPORT.read_text())
    quick = deepspeed_finding(env)
    assert quick["status"] == "ok" and quick["facts"] == {"deepspeed.version": "0.19.8"}
    deep = deepspeed_finding(env, "--deep")
    assert deep["status"] == "warn"
    assert "3 op(s) cannot be built (async_io, evoformer_attn, gds)" in deep["summary"]
    assert "async_io cannot be built here: requires the dev libaio .so object and headers" in (
        " ".join(deep["details"])
    )
    assert "evoformer_attn cannot be built here: CUTLASS not found" in deep["details"]
    assert deep["facts"]["deepspeed.built_with"] == "torch 2.11, cuda 13.0"
    titles = [f["title"] for f in deep["fixes"]]
    assert titles[0].startswith("Install libaio's development files")
    assert deep["fixes"][0]["commands"][-1].endswith("libaio-dev")  # Debian here
    assert "Install CUTLASS from PyPI (evoformer_attn)" in titles


def test_deepspeed_built_for_another_torch_is_named(tmp_path: Path) -> None:
    """The compiled-with line as the issue's user saw it ("torch 2.1, cuda 12.1") against
    the recorded torch 2.11 / CUDA 13.0."""
    text = REPORT.read_text().replace("torch 2.11, cuda 13.0", "torch 2.1, cuda 12.1")
    deep = deepspeed_finding(stand_in(tmp_path, text), "--deep")
    assert "built with torch 2.1, but torch is 2.11.0 now" in deep["summary"]
    assert any("--force-reinstall" in c for f in deep["fixes"] for c in f["commands"])


@pytest.mark.parametrize("cut", [0, 12])
def test_a_broken_ds_report_is_a_warning_not_a_traceback(tmp_path: Path, cut: int) -> None:
    """ds_report that dies (nothing printed, or after its first lines) with a traceback."""
    head = "".join(REPORT.read_text().splitlines(keepends=True)[:cut])
    text = head + "Traceback (most recent call last):\nImportError: libcudart.so.12: cannot open\n"
    deep = deepspeed_finding(stand_in(tmp_path, text, code=1), "--deep")
    assert deep["status"] == "warn"
    assert deep["summary"] == "0.19.8; ds_report failed: ImportError: libcudart.so.12: cannot open"
