"""Parsers: turn a step's output into results (a bandwidth table, test counts).

Each parser is fed the output line by line while the step runs, so results of a long run are
there even when it is cancelled, and nothing holds the whole output in memory.
"""

from __future__ import annotations

import re
from typing import Any, Protocol

_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def plain(line: str) -> str:
    """The line without terminal colour codes (mpirun gives ranks a pty, so gtest colours)."""
    return _ANSI.sub("", line) if "\x1b" in line else line


class Parser(Protocol):
    def feed(self, line: str) -> None: ...

    def results(self) -> dict[str, Any]: ...


# FlagCX test/perf: "Comm size: 131072 bytes; Elapsed time: 0.000021 sec;
#                    Algo bandwidth: 6.2 GB/s; Bus bandwidth: 6.2 GB/s"
_FLAGCX = re.compile(
    r"Comm size:\s*(\d+)\s*bytes;\s*Elapsed time:\s*([\d.eE+-]+)\s*sec;\s*"
    r"Algo bandwidth:\s*([\d.eE+-]+)\s*GB/s;\s*Bus bandwidth:\s*([\d.eE+-]+)\s*GB/s"
)


class FlagcxPerf:
    """Rows of size_bytes, time_us, algbw_gbs and busbw_gbs, one per message size."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def feed(self, line: str) -> None:
        if "Comm size" not in line:
            return
        match = _FLAGCX.search(plain(line))
        if match:
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
    r"^\s*(\d+)\s+(\d+)\s+(\w+)\s+(\w+)\s+(-?\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s+(\S+)"
)


class NcclTestsPerf:
    """nccl-tests' out-of-place columns, in the same row shape as FlagCX's."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []

    def feed(self, line: str) -> None:
        if not line[:1].isspace() and not line[:1].isdigit():
            return
        match = _NCCL_TESTS.match(plain(line))
        if match:
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


_GTEST_PASSED = re.compile(r"^\[\s+PASSED\s+\]\s+(\d+) tests?")
_GTEST_FAILED = re.compile(r"^\[\s+FAILED\s+\]\s+(\d+) tests?, listed below")


class Gtest:
    def __init__(self) -> None:
        self.passed = self.failed = 0

    def feed(self, line: str) -> None:
        if "PASSED" not in line and "FAILED" not in line:
            return
        line = plain(line)
        if match := _GTEST_PASSED.match(line):
            self.passed += int(match.group(1))
        elif match := _GTEST_FAILED.match(line):
            self.failed += int(match.group(1))

    def results(self) -> dict[str, Any]:
        return {"passed": self.passed, "failed": self.failed}


PARSERS: dict[str, type[Parser]] = {
    "flagcx-perf": FlagcxPerf,
    "nccl-tests": NcclTestsPerf,
    "gtest": Gtest,
}
