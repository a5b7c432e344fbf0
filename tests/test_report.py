"""The FlagCX/NCCL comparison, on real output from the lent H100, and `wizard report`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wizard.engine.compare import compare
from wizard.engine.parsers import FlagcxPerf, NcclTestsPerf

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
        return subprocess.run(
            [sys.executable, "-m", "wizard", *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
            check=False,
        )

    missing = wizard("report")
    assert missing.returncode == 1 and "no flagcx run yet" in missing.stderr
    wizard(
        "run", str(recipe(tmp_path / "f.yaml", "flagcx", "allreduce", FLAGCX_LOG, "flagcx-perf"))
    )
    wizard(
        "run", str(recipe(tmp_path / "n.yaml", "nccl-tests", "all-reduce", NCCL_LOG, "nccl-tests"))
    )
    done = wizard("report")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "    256M    1460.09    1477.50   0.988" in done.stdout
    assert "No large gap" in done.stdout
    data = json.loads(wizard("report", "--json").stdout)
    assert data["metric"] == "algbw" and len(data["rows"]) == 16
