"""Parsers: turn a step's output into results (a bandwidth table, test counts).

Each parser is fed the output a chunk of lines at a time while the step runs, so results of a
long run are there even when it is cancelled, nothing holds the whole output in memory, and a
flood of output is scanned by the regex engine rather than line by line in Python.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

from checks.deepspeed import DsReport, ds_report_details, ds_report_summary
from checks.text import plain


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


# v0.7+ prints a section per datatype and op ("-d all", "-o all"): "# datatype: float, op: sum"
_FLAGCX_SECTION = re.compile(r"^#\s*datatype:\s*(\w+),\s*op:\s*(\w+)", re.M)


class FlagcxPerf:
    """Rows of size_bytes, time_us, algbw_gbs and busbw_gbs, one per message size; where the
    test names its datatype and op (FlagCX v0.7+), each row carries them too."""

    def __init__(self) -> None:
        self.rows: list[dict[str, Any]] = []
        self.section: dict[str, str] = {}

    def feed(self, lines: list[str]) -> None:
        text = "\n".join(lines)
        if "Comm size" not in text and "datatype:" not in text:
            return
        text = plain(text)
        sections = [(m.start(), m.groups()) for m in _FLAGCX_SECTION.finditer(text)]
        for match in _FLAGCX.finditer(text):
            while sections and sections[0][0] < match.start():
                datatype, op = sections.pop(0)[1]
                self.section = {"datatype": datatype, "op": op}
            size, seconds, algbw, busbw = match.groups()
            self.rows.append(
                {
                    "size_bytes": int(size),
                    "time_us": float(seconds) * 1e6,
                    "algbw_gbs": float(algbw),
                    "busbw_gbs": float(busbw),
                    **self.section,
                }
            )
        if sections:  # a section begun at the end of this chunk: its rows come next
            datatype, op = sections[-1][1]
            self.section = {"datatype": datatype, "op": op}

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


# A recipe that runs several gtest programs in one step names each before it starts.
GTEST_PROGRAM = "==> gtest program: "
_GTEST_PROGRAM = re.compile("^" + re.escape(GTEST_PROGRAM) + r"(\S+)", re.M)


class Gtest:
    """googletest's summary. Under mpirun every rank runs the whole suite and prints its own
    summary, so counts are per rank (the fewest passed, the most failed), not a sum. Programs
    announced with GTEST_PROGRAM lines (FlagCX v0.7+ has one per component, with and without
    MPI) are counted each on its own, and the totals add them up."""

    def __init__(self) -> None:
        self.counts: dict[str, tuple[list[int], list[int]]] = {}
        self.program = ""

    def feed(self, lines: list[str]) -> None:
        text = "\n".join(lines)
        if "PASSED" not in text and "FAILED" not in text and GTEST_PROGRAM not in text:
            return
        text = plain(text)
        events = sorted(
            [(m.start(), "program", m.group(1)) for m in _GTEST_PROGRAM.finditer(text)]
            + [(m.start(), "passed", m.group(1)) for m in _GTEST_PASSED.finditer(text)]
            + [(m.start(), "failed", m.group(1)) for m in _GTEST_FAILED.finditer(text)]
        )
        for _, kind, value in events:
            if kind == "program":
                self.program = value
                self.counts.setdefault(value, ([], []))
            else:
                passed, failed = self.counts.setdefault(self.program, ([], []))
                (passed if kind == "passed" else failed).append(int(value))

    def results(self) -> dict[str, Any]:
        each = {
            name: {
                "passed": min(passed, default=0),
                "failed": max(failed, default=0),
                "ranks": max(len(passed), 1),
            }
            for name, (passed, failed) in self.counts.items()
        }
        if set(each) <= {""}:  # one program, not named
            return each.get("", {"passed": 0, "failed": 0, "ranks": 1})
        return {
            "passed": sum(c["passed"] for c in each.values()),
            "failed": sum(c["failed"] for c in each.values()),
            "ranks": max(c["ranks"] for c in each.values()),
            "programs": {name: c for name, c in each.items() if name},
        }


def gtest_summary(results: dict[str, Any]) -> str:
    """ "8 tests passed, 0 failed (on each of 4 ranks)" from Gtest's results."""
    text = f"{results['passed']} tests passed, {results['failed']} failed"
    programs = results.get("programs")
    if programs:
        return f"{text} in {len(programs)} programs: " + ", ".join(
            f"{name} {c['passed']}/{c['passed'] + c['failed']}" for name, c in programs.items()
        )
    ranks = results.get("ranks", 1)
    return text + (f" (on each of {ranks} ranks)" if ranks > 1 else "")


# steps/tools/ds_train.py: "step 100/300 loss 2.3456 samples/s 1234.5 tokens/s 98765.4" and
# "done: 300 steps in 12.3 s, 1234.5 samples/s, 98765.4 tokens/s, final loss 0.1234, bf16"
_TRAIN_STEP = re.compile(
    r"^.*?\bstep (\d+)/(\d+) loss (\S+) samples/s ([\d.]+) tokens/s ([\d.]+)", re.M
)
_TRAIN_DONE = re.compile(
    r"^.*?\bdone: (\d+) steps in ([\d.]+) s, ([\d.]+) samples/s, ([\d.]+) tokens/s, "
    r"final loss (\S+), (\w+)",
    re.M,
)


class Training:
    """A training run's progress (step, loss, throughput) and its final figures."""

    def __init__(self) -> None:
        self.progress: list[dict[str, float]] = []
        self.done: dict[str, Any] = {}

    def feed(self, lines: list[str]) -> None:
        text = "\n".join(lines)
        if "step" not in text and "done:" not in text:
            return
        text = plain(text)
        for step, _, loss, samples, tokens in _TRAIN_STEP.findall(text):
            self.progress.append(
                {
                    "step": int(step),
                    "loss": float(loss),
                    "samples_s": float(samples),
                    "tokens_s": float(tokens),
                }
            )
        if match := _TRAIN_DONE.search(text):
            steps, seconds, samples, tokens, loss, precision = match.groups()
            self.done = {
                "steps": int(steps),
                "seconds": float(seconds),
                "samples_s": float(samples),
                "tokens_s": float(tokens),
                "final_loss": float(loss),
                "precision": precision,
            }

    def results(self) -> dict[str, Any]:
        found: dict[str, Any] = {"progress": self.progress} if self.progress else {}
        if self.done:
            found["training"] = self.done
        return found


def training_summary(results: dict[str, Any]) -> str:
    done = results["training"]
    first = results.get("progress", [{}])[0].get("loss")
    fell = f" (from {first:.3f})" if first is not None else ""
    return (
        f"{done['steps']} steps in {done['seconds']:.1f} s: {done['samples_s']:.1f} samples/s, "
        f"{done['tokens_s']:.0f} tokens/s, final loss {done['final_loss']:.3f}{fell}, "
        f"{done['precision']}"
    )


# FlexFlow: "[Metrics] accuracy: 90.581665% (54349 / 60000) sparse_categorical_crossentropy:
# 0.337046" (PerfMetrics::print) and "epochs 1, ELAPSED TIME = 2.4817s, THROUGHPUT =
# 24176.97 samples/s" (examples/python/native/mnist_mlp.py).
_FF_METRICS = re.compile(r"\[Metrics\] accuracy: ([\d.]+)% \((\d+) / (\d+)\)")
_FF_TIME = re.compile(r"epochs (\d+), ELAPSED TIME = ([\d.]+)s, THROUGHPUT = ([\d.]+) samples/s")


class FlexFlow:
    """mnist_mlp's last accuracy and its time and throughput."""

    def __init__(self) -> None:
        self.found: dict[str, Any] = {}

    def feed(self, lines: list[str]) -> None:
        text = plain("\n".join(lines))
        for match in _FF_METRICS.finditer(text):  # the last one counts
            accuracy, correct, samples = match.groups()
            self.found.update(
                accuracy_pct=float(accuracy), correct=int(correct), samples=int(samples)
            )
        if match := _FF_TIME.search(text):
            epochs, seconds, throughput = match.groups()
            self.found.update(
                epochs=int(epochs), seconds=float(seconds), samples_s=float(throughput)
            )

    def results(self) -> dict[str, Any]:
        return {"flexflow": self.found} if self.found else {}


def flexflow_summary(results: dict[str, Any]) -> str:
    found = results["flexflow"]
    parts = []
    if "accuracy_pct" in found:
        correct = f"{found['correct']}/{found['samples']}"
        parts.append(f"accuracy {found['accuracy_pct']:.2f}% ({correct})")
    if "seconds" in found:
        parts.append(
            f"{found['epochs']} epoch(s) in {found['seconds']:.2f} s, "
            f"{found['samples_s']:.0f} samples/s"
        )
    return ", ".join(parts)


# Megatron's training_log (FlagScale trains with it): " [2026-11-28 04:00:01] iteration
# 1/ 10 | consumed samples: 2 | elapsed time per iteration (ms): 512.3 | ... | lm loss:
# 7.778E+00 |"
_MEGATRON = re.compile(
    r"iteration\s+(\d+)/\s*(\d+) \|.*?elapsed time per iteration \(ms\): ([\d.]+) \|"
    r"(?:.*?throughput per GPU \(TFLOP/s/GPU\): ([\d.]+) \|)?.*?lm loss: ([\d.eE+-]+) \|"
)


class Megatron:
    """Each logged iteration's loss and time, as Megatron prints them."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.total = 0

    def feed(self, lines: list[str]) -> None:
        for line in lines:
            if "iteration" not in line:
                continue
            match = _MEGATRON.search(plain(line))
            if match:
                step, total, ms, tflops, loss = match.groups()
                row = {"iteration": int(step), "ms": float(ms), "loss": float(loss)}
                if tflops:
                    row["tflops_per_gpu"] = float(tflops)
                self.rows.append(row)
                self.total = int(total)

    def results(self) -> dict[str, Any]:
        return {"iterations": self.rows, "train_iters": self.total} if self.rows else {}


def megatron_summary(results: dict[str, Any]) -> str:
    rows = results["iterations"]
    first, last = rows[0], rows[-1]
    return (
        f"iteration {last['iteration']}/{results['train_iters']}: lm loss {first['loss']:.3f} "
        f"-> {last['loss']:.3f}, {last['ms']:.1f} ms per iteration"
    )


# perftest (ib_write_bw, ib_send_bw, ... with --report_gbits): its banner (" Mtu : 4096[B]",
# " Link type : Ethernet", " GID index : 3", " Device : mlx5_0"), then under
# " #bytes #iterations BW peak[Gb/sec] BW average[Gb/sec] MsgRate[Mpps]" one row per size.
# The rdma-bw recipe measures each device pair in one step: it announces each with
# "==> perftest pair: mlx5_0:mlx5_1" (this host's device, the server's), then prints
# "[wizard] port rate: 100 Gb/s" to set the pair's result against, then perftest's output.
PERFTEST_PAIR = "==> perftest pair: "
_PERFTEST_PAIR = re.compile("^" + re.escape(PERFTEST_PAIR) + r"(.*?)[ \t]*$", re.M)
_PERFTEST_ROW = re.compile(r"^\s*(\d+)\s+(\d+)\s+([\d.]+)\s+([\d.]+)\s+([\d.]+)\s*$", re.M)
_PERFTEST_FIELD = re.compile(
    r"(Mtu|Link type|GID index|Device|Number of qps)\s*:\s*(\S+?)(?:\[B\])?(?:\s{2,}|\s*$)", re.M
)
_PERFTEST_TEST = re.compile(r"^\s*(\S.*? (?:BW|Bandwidth) Test)\s*$", re.M)
_PORT_RATE = re.compile(r"^\[wizard\] port rate: ([\d.]+) Gb/s", re.M)
# Below this share of the port's rate, the usual suspects are named.
PERFTEST_FAIR_SHARE = 0.8


class _PerftestRun:
    """One perftest run's bandwidth rows (Gb/s, as --report_gbits prints them) and banner."""

    def __init__(self) -> None:
        self.rows: list[dict[str, float]] = []
        self.banner: dict[str, Any] = {}
        self.unit_ok = True

    def feed(self, text: str) -> None:
        if "BW peak[MB/sec]" in text:
            self.unit_ok = False  # run without --report_gbits: MB/s, not what is set against
        for name, value in _PERFTEST_FIELD.findall(text):
            key = name.lower().replace(" ", "_")
            self.banner.setdefault(key, int(value) if value.isdigit() else value)
        if found := _PERFTEST_TEST.search(text):
            self.banner.setdefault("test", found.group(1))
        if found := _PORT_RATE.search(text):
            self.banner["port_rate_gbps"] = float(found.group(1))
        for size, iterations, peak, average, rate in _PERFTEST_ROW.findall(text):
            self.rows.append(
                {
                    "size_bytes": int(size),
                    "iterations": int(iterations),
                    "peak_gbps": float(peak),
                    "average_gbps": float(average),
                    "msg_rate_mpps": float(rate),
                }
            )

    def results(self) -> dict[str, Any] | None:
        return {**self.banner, "rows": self.rows} if self.rows and self.unit_ok else None


class Perftest:
    """perftest's results per device pair, as `{"perftest": {"mlx5_0:mlx5_1": run}}`; output
    no PERFTEST_PAIR line announced (perftest run by hand) is keyed by its banner's device."""

    def __init__(self) -> None:
        self.runs: dict[str, _PerftestRun] = {}
        self.pair = ""

    def feed(self, lines: list[str]) -> None:
        pieces = _PERFTEST_PAIR.split(plain("\n".join(lines)))  # text, pair, text, pair, ...
        self.runs.setdefault(self.pair, _PerftestRun()).feed(pieces[0])
        for pair, text in zip(pieces[1::2], pieces[2::2], strict=True):
            self.pair = pair
            self.runs.setdefault(pair, _PerftestRun()).feed(text)

    def results(self) -> dict[str, Any]:
        found = {}
        for pair, run in self.runs.items():
            if (shown := run.results()) is not None:
                found[pair or str(shown.get("device", "?"))] = shown
        return {"perftest": found} if found else {}


def _best(run: dict[str, Any]) -> tuple[dict[str, float], float | None]:
    """A run's fastest row, and its share of the port's rate (None: the rate is unknown)."""
    best = max(run["rows"], key=lambda r: r["average_gbps"])
    rate = run.get("port_rate_gbps")
    return best, best["average_gbps"] / rate if rate else None


def perftest_pair_summary(pair: str, run: dict[str, Any]) -> str:
    """ "RDMA_Write BW Test on mlx5_0: 98.03 Gb/s (98% of the port's 100 Gb/s)", and below
    80% of the rate the usual suspects, with what this run showed of them."""
    here, _, there = pair.partition(":")
    where = here + (f" to the server's {there}" if there and there != here else "")
    best, share = _best(run)
    text = (
        f"{run.get('test', 'perftest')} on {where}: "
        f"{best['average_gbps']:.2f} Gb/s at {best['size_bytes']} B"
    )
    if share is None:
        return text + " (the port's rate is unknown: nothing to set it against)"
    text += f" ({share:.0%} of the port's {run['port_rate_gbps']:g} Gb/s)"
    if share >= PERFTEST_FAIR_SHARE:
        return text
    mtu = run.get("mtu", "?")
    suspects = [f"the MTU ({mtu} B here; RoCE wants 4096, so a netdev MTU over 4200)"]
    if run.get("link_type") == "Ethernet":
        suspects.append(f"the GID index ({run.get('gid_index', '?')} here: use a RoCE v2 one)")
    suspects += [
        "the NIC's PCIe link (`lspci -vv`: LnkSta width and speed below LnkCap)",
        "a NIC on another NUMA node than the cores the test ran on (`numactl -N <node>`)",
    ]
    return text + f"; below {PERFTEST_FAIR_SHARE:.0%}: check " + "; ".join(suspects)


def _pairs(results: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The results per device pair; a run saved before there were pairs held one run's
    banner and rows, keyed by nothing: it is the pair of the device its banner names."""
    runs: dict[str, Any] = results["perftest"]
    if "rows" in runs:
        return {str(runs.get("device", "?")): runs}
    return runs


def perftest_summary(results: dict[str, Any]) -> str:
    """One pair's summary; for several, each pair's Gb/s and share (perftest_details has
    each pair's whole summary)."""
    runs = _pairs(results)
    if len(runs) == 1:
        return perftest_pair_summary(*next(iter(runs.items())))
    parts = []
    for pair, run in runs.items():
        best, share = _best(run)
        said = "rate unknown" if share is None else f"{share:.0%} of {run['port_rate_gbps']:g} Gb/s"
        low = share is not None and share < PERFTEST_FAIR_SHARE
        parts.append(
            f"{pair} {best['average_gbps']:.2f} Gb/s ({said}"
            + (f": below {PERFTEST_FAIR_SHARE:.0%})" if low else ")")
        )
    test = next(iter(runs.values())).get("test", "perftest")
    return f"{test} on {len(runs)} device pairs: " + ", ".join(parts)


def perftest_details(results: dict[str, Any]) -> list[str]:
    runs = _pairs(results)
    return [perftest_pair_summary(p, r) for p, r in runs.items()] if len(runs) > 1 else []


PARSERS: dict[str, type[Parser]] = {
    "flagcx-perf": FlagcxPerf,
    "nccl-tests": NcclTestsPerf,
    "gtest": Gtest,
    "ds-report": DsReport,
    "training": Training,
    "flexflow": FlexFlow,
    "megatron": Megatron,
    "perftest": Perftest,
}


# -- describing results: one line each (and the bandwidth table's rows) for every front end --


def size_text(size: int) -> str:
    """ "128K", "4G": a message size as the perf tests' `-b` and `-e` take it."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale}{unit}"
    return f"{size}B"


BANDWIDTH_COLUMNS = ("size", "time (us)", "algbw (GB/s)", "busbw (GB/s)")


def bandwidth_cells(row: dict[str, Any]) -> list[str]:
    """One row of a bandwidth table (FlagcxPerf's, NcclTestsPerf's), under BANDWIDTH_COLUMNS."""
    return [
        size_text(int(row["size_bytes"])),
        f"{row['time_us']:.2f}",
        f"{row['algbw_gbs']:.2f}",
        f"{row['busbw_gbs']:.2f}",
    ]


@dataclass(frozen=True)
class Summary:
    """What a step's results say, as a front end shows them under the step's id."""

    line: str
    details: list[str] = field(default_factory=list)


# Each parser's results, told apart by the key only that parser writes.
Results = dict[str, Any]
_SUMMARIES: list[tuple[str, Callable[[Results], str], Callable[[Results], list[str]] | None]] = [
    ("passed", gtest_summary, None),
    ("training", training_summary, None),
    ("ops", ds_report_summary, ds_report_details),
    ("flexflow", flexflow_summary, None),
    ("iterations", megatron_summary, None),
    ("perftest", perftest_summary, perftest_details),
]


def summary(results: dict[str, Any]) -> Summary | None:
    """The one-line summary of any parser's results; None for a bandwidth table (its rows
    are shown, by bandwidth_cells) or no results."""
    for key, line, details in _SUMMARIES:
        if key in results:
            return Summary(line(results), details(results) if details else [])
    return None
