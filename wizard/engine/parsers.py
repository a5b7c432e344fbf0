"""Parsers: turn a step's output into results (a bandwidth table, test counts).

Each parser is fed the output a chunk of lines at a time while the step runs, so results of a
long run are there even when it is cancelled, nothing holds the whole output in memory, and a
flood of output is scanned by the regex engine rather than line by line in Python.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(line: str) -> str:
    """The line without terminal colour codes (mpirun gives ranks a pty, so gtest colours)."""
    return _ANSI.sub("", line) if "\x1b" in line else line


class Parser(Protocol):
    def feed(self, lines: list[str]) -> None: ...

    def results(self) -> dict[str, Any]: ...


# FlagCX test/perf: "Comm size: 131072 bytes; Elapsed time: 0.000021 sec;
#                    Algo bandwidth: 6.2 GB/s; Bus bandwidth: 6.2 GB/s"
_FLAGCX = re.compile(
    r"^.*?Comm size:\s*(\d+)\s*bytes;\s*Elapsed time:\s*([\d.eE+-]+)\s*sec;\s*"
    r"Algo bandwidth:\s*([\d.eE+-]+)\s*GB/s;\s*Bus bandwidth:\s*([\d.eE+-]+)\s*GB/s",
    re.M,
)


class FlagcxPerf:
    """Rows of size_bytes, time_us, algbw_gbs and busbw_gbs, one per message size."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def feed(self, lines: list[str]) -> None:
        text = "\n".join(lines)
        if "Comm size" not in text:
            return
        for match in _FLAGCX.finditer(plain(text)):
            size, seconds, algbw, busbw = match.groups()
            self.rows.append(
                {
                    "size_bytes": int(size),
                    "time_us": float(seconds) * 1e6,
                    "algbw_gbs": float(algbw),
                    "busbw_gbs": float(busbw),
                }
            )

    def results(self) -> dict[str, Any]:
        return {"table": self.rows} if self.rows else {}


# nccl-tests: "   131072   32768   float   sum   -1   25.31   5.18   5.18   0   24.90 ..."
_NCCL_TESTS = re.compile(
    r"^[ \t]*(\d+)[ \t]+(\d+)[ \t]+(\w+)[ \t]+(\w+)[ \t]+(-?\d+)[ \t]+([\d.]+)[ \t]+([\d.]+)"
    r"[ \t]+([\d.]+)[ \t]+(\S+)",
    re.M,
)


class NcclTestsPerf:
    """nccl-tests' out-of-place columns, in the same row shape as FlagCX's."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def feed(self, lines: list[str]) -> None:
        for match in _NCCL_TESTS.finditer(plain("\n".join(lines))):
            size, _, _, _, _, time_us, algbw, busbw, wrong = match.groups()
            row = {
                "size_bytes": int(size),
                "time_us": float(time_us),
                "algbw_gbs": float(algbw),
                "busbw_gbs": float(busbw),
            }
            if wrong not in ("0", "N/A"):
                row["wrong"] = float(wrong)
            self.rows.append(row)

    def results(self) -> dict[str, Any]:
        return {"table": self.rows} if self.rows else {}


_GTEST_PASSED = re.compile(r"^\[\s+PASSED\s+\]\s+(\d+) tests?", re.M)
_GTEST_FAILED = re.compile(r"^\[\s+FAILED\s+\]\s+(\d+) tests?, listed below", re.M)


class Gtest:
    """googletest's summary. Under mpirun every rank runs the whole suite and prints its own
    summary, so counts are per rank (the fewest passed, the most failed), not a sum."""

    def __init__(self) -> None:
        self.passed: list[int] = []
        self.failed: list[int] = []

    def feed(self, lines: list[str]) -> None:
        text = "\n".join(lines)
        if "PASSED" not in text and "FAILED" not in text:
            return
        text = plain(text)
        self.passed += [int(m.group(1)) for m in _GTEST_PASSED.finditer(text)]
        self.failed += [int(m.group(1)) for m in _GTEST_FAILED.finditer(text)]

    def results(self) -> dict[str, Any]:
        return {
            "passed": min(self.passed, default=0),
            "failed": max(self.failed, default=0),
            "ranks": max(len(self.passed), 1),
        }


def gtest_summary(results: dict[str, Any]) -> str:
    """ "8 tests passed, 0 failed (on each of 4 ranks)" from Gtest's results."""
    text = f"{results['passed']} tests passed, {results['failed']} failed"
    ranks = results.get("ranks", 1)
    return text + (f" (on each of {ranks} ranks)" if ranks > 1 else "")


PARSERS: dict[str, type[Parser]] = {
    "flagcx-perf": FlagcxPerf,
    "nccl-tests": NcclTestsPerf,
    "gtest": Gtest,
}
