"""`wizard report` in each of its formats: text for the terminal, JSON for programs, markdown
that pastes into a GitHub issue, and one self-contained HTML file with the charts as inline SVG.

Every format shows the same things: the machine in one line, the runs, per collective each
source's figures (FlagCX, nccl-tests, torch) and FlagCX against NCCL where both measured it,
the figures that cannot be real (marked suspect, with the reason, and left out of the verdict),
what a comparison still needs, and training runs' loss and throughput.
"""

from __future__ import annotations

import html
import json
import math
import re
from typing import Any

import pygal

from wizard.engine.recipes.compare import CAUSES, CollectiveResults, PerfReport, TrainingSeries
from wizard.engine.recipes.parsers import size_text

_MACHINE = (
    ("gpus", "{}"),
    ("link", "{}"),
    ("driver", "driver {}"),
    ("cuda", "CUDA {}"),
    ("nccl", "NCCL {}"),
    ("flagcx_commit", "FlagCX {}"),
    ("mpi", "MPI {}"),
    ("hosts", "hosts {}"),
)


def machine_line(report: PerfReport) -> str:
    """GPUs, link, driver, CUDA, NCCL, FlagCX commit, MPI (and the hosts), as far as known."""
    machine = dict(report.machine)
    if report.peak_gbs and "link" in machine:
        machine["link"] += f" (peak {report.peak_gbs:g} GB/s per direction)"
    parts = [form.format(machine[key]) for key, form in _MACHINE if machine.get(key)]
    return "; ".join(parts) or "not recorded in these runs"


def runs_line(report: PerfReport) -> str:
    """Each run's id, and the hosts of a run across hosts."""
    named = [r.run_id + (f" (on {', '.join(r.hosts)})" if r.hosts else "") for r in report.runs]
    return ", ".join(named) or "none yet"


def verdict(report: PerfReport) -> str:
    """One sentence: the gap, no gap, or that nothing was compared yet."""
    gaps = report.gaps()
    if gaps:
        where = ", ".join(f"{name} {size_text(row.size_bytes)}" for name, row in gaps)
        return f"Gap: FlagCX is more than 10% below NCCL at {where}."
    if report.comparisons:
        return "No large gap: FlagCX is within 10% of NCCL from 16M up."
    return "Not compared yet: " + "; ".join(report.missing) + "."


def _figure(row: dict[str, Any] | None, metric: str) -> str:
    return "-" if row is None else f"{row[f'{metric}_gbs']:.2f}"


def grid(c: CollectiveResults) -> tuple[list[str], list[list[str]]]:
    """A collective's figures as a table: a column per source (and FlagCX/NCCL's ratio where
    compared); a suspect figure has "?" after it."""
    sizes = sorted({int(r["size_bytes"]) for s in c.series for r in s.rows})
    by_size = [{int(r["size_bytes"]): r for r in s.rows} for s in c.series]
    ratios = {r.size_bytes: r for r in c.comparison.rows} if c.comparison else {}
    header = ["size", *(s.source for s in c.series)] + (["FlagCX/NCCL"] if ratios else [])
    body = []
    for size in sizes:
        cells = [size_text(size)]
        for rows in by_size:
            row = rows.get(size)
            cells.append(_figure(row, c.metric) + (" ?" if row and row.get("suspect") else ""))
        if ratios:
            row = ratios.get(size)
            ratio = row.ratio if row else None
            cells.append("suspect" if row and row.suspect else f"{ratio:.3f}" if ratio else "-")
        body.append(cells)
    return header, body


def suspect_lines(report: PerfReport) -> list[str]:
    return [
        f"{name} {size_text(int(row['size_bytes']))}, {series.source} (run {series.run_id}): "
        f"{row['suspect']}; not used"
        for name, series, row in report.suspects()
    ]


def metric_title(c: CollectiveResults) -> str:
    if c.metric == "busbw":
        return f"{c.name}, bus bandwidth (GB/s)"
    return f"{c.name}, algorithm bandwidth (GB/s; one rank, where bus bandwidth is 0)"


# -- text ---------------------------------------------------------------------------------------


def text(report: PerfReport) -> list[str]:
    lines = [f"Machine: {machine_line(report)}", f"Runs: {runs_line(report)}"]
    for c in report.comparisons:
        lines.append(
            f"{c.collective}: FlagCX run {c.flagcx_run} against nccl-tests run {c.nccl_run}"
        )
    if report.torch_run:
        lines.append(f"torch: torch.distributed's figures from run {report.torch_run}")
    if report.peak_gbs:
        lines.append(f"Links: {report.link}, peak {report.peak_gbs:g} GB/s per direction")
    else:
        lines.append("Links: peak unknown (the doctor read no NVLink or PCIe speed)")
    for c in report.collectives:
        lines += ["", metric_title(c)]
        lines += _compared(c) if c.comparison else _aligned_grid(*grid(c))
    lines.append("")
    lines += [f"Suspect: {line}." for line in suspect_lines(report)]
    lines += [
        f"Training: {t.run_id} {t.step}: {t.summary or training_text(t)}" for t in report.training
    ]
    if report.comparisons:  # otherwise the verdict says what is missing
        lines += [f"Not compared: {note}." for note in report.missing]
    lines.append(verdict(report))
    if report.gaps():
        lines += ["Likely causes:", *(f"  - {cause}" for cause in CAUSES)]
    return lines


_COMPARED = ("size", "FlagCX", "NCCL", "ratio", "FlagCX/peak", "NCCL/peak", "torch")
_WIDTHS = (8, 10, 10, 7, 12, 10, 9)


def _compared(c: CollectiveResults) -> list[str]:
    """FlagCX beside NCCL, each against the link's peak, and torch's figures when there are."""
    comparison = c.comparison
    if comparison is None:
        return []
    torch = any(s.source.startswith("torch") for s in c.series)
    rows = [_COMPARED if torch else _COMPARED[:-1]]
    rows += [
        [size_text(r.size_bytes), *comparison.figures(r, torch=torch)] for r in comparison.rows
    ]
    return [" ".join(f"{cell:>{w}}" for cell, w in zip(row, _WIDTHS, strict=False)) for row in rows]


def _aligned_grid(header: list[str], body: list[list[str]]) -> list[str]:
    widths = [max(len(row[i]) for row in [header, *body]) + 2 for i in range(len(header))]
    return [
        " ".join(f"{cell:>{w}}" for cell, w in zip(row, widths, strict=True))
        for row in [header, *body]
    ]


def training_text(t: TrainingSeries) -> str:
    first, last = t.points[0], t.points[-1]
    return f"loss {first['loss']:.4g} -> {last['loss']:.4g} over {len(t.points)} logged steps"


# -- json ---------------------------------------------------------------------------------------


def to_json(report: PerfReport) -> str:
    return json.dumps(report.to_dict(), indent=2)


# -- markdown -----------------------------------------------------------------------------------


def markdown(report: PerfReport) -> str:
    out = [
        "## FlagCX and NCCL bandwidth",
        "",
        f"**Machine:** {machine_line(report)}",
        "",
        f"**Runs:** {runs_line(report)}",
    ]
    for c in report.collectives:
        header, body = grid(c)
        out += ["", f"### {metric_title(c)}", "", _md_row(header)]
        out.append("|" + "|".join("---:" for _ in header) + "|")
        out += [_md_row(row) for row in body]
    if report.suspects():
        out += ["", "**Suspect** (marked ?, not used for the verdict):", ""]
        out += [f"- {line}" for line in suspect_lines(report)]
    for t in report.training:
        out += ["", f"### Training: {t.run_id} {t.step}", "", t.summary or training_text(t), ""]
        out += [_md_row(["step", "loss", t.unit]), "|---:|---:|---:|"]
        out += [
            _md_row([str(p["step"]), f"{p['loss']:.4g}", f"{p['throughput']:.1f}"])
            for p in t.points
        ]
    out += ["", f"**{verdict(report)}**", ""]
    return "\n".join(out)


def _md_row(cells: list[str]) -> str:
    return "| " + " | ".join(cell.replace("|", "\\|") for cell in cells) + " |"


# -- html ---------------------------------------------------------------------------------------

_STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 72em; }
table { border-collapse: collapse; margin: 1em 0; }
th, td { border: 1px solid #ccc; padding: 0.2em 0.6em; text-align: right; }
.suspect { color: #b00; }
"""


def bandwidth_svg(report: PerfReport, c: CollectiveResults) -> str:
    """A line chart of the collective's bandwidth against message size: log2 x axis labelled
    128K ... 4G, a line per source (suspect figures left out), the link's peak as a line."""
    chart = _chart(f"{c.name}: {c.metric} (GB/s) by message size")
    sizes = sorted({int(r["size_bytes"]) for s in c.series for r in s.rows})
    chart.x_labels = [math.log2(s) for s in sizes]
    chart.x_value_formatter = lambda x: size_text(round(2**x))
    for s in c.series:
        points = [
            (math.log2(r["size_bytes"]), r[f"{c.metric}_gbs"])
            for r in s.rows
            if not r.get("suspect") and r["size_bytes"] > 0
        ]
        chart.add(s.source, points)
    if report.peak_gbs and c.metric == "busbw" and sizes:
        ends = (math.log2(sizes[0]), math.log2(sizes[-1]))
        chart.add(
            "link peak", [(x, report.peak_gbs) for x in ends], stroke_style={"dasharray": "6"}
        )
    return _svg(chart)


def training_svg(t: TrainingSeries, what: str) -> str:
    chart = _chart(f"{t.run_id} {t.step}: {what} by step")
    key = "loss" if what == "loss" else "throughput"
    chart.add(what, [(p["step"], p[key]) for p in t.points])
    return _svg(chart)


_SCRIPT = re.compile(r"<script\b.*?</script>", re.S)


def _svg(chart: pygal.XY) -> str:
    """The chart's SVG without pygal's script: it only configures pygal.js's tooltips, which
    are loaded from the web, and a shared report has nothing that runs."""
    return _SCRIPT.sub("", chart.render(is_unicode=True))


def _chart(title: str) -> pygal.XY:
    # js=[]: pygal links its tooltip script from the web by default; the file stays offline.
    return pygal.XY(
        title=title,
        js=[],
        disable_xml_declaration=True,
        width=800,
        height=400,
        show_dots=True,
        dots_size=2,
    )


def to_html(report: PerfReport) -> str:
    e = html.escape
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>FlagCX and NCCL bandwidth</title>",
        f"<style>{_STYLE}</style></head><body>",
        "<h1>FlagCX and NCCL bandwidth</h1>",
        f"<p><b>Machine:</b> {e(machine_line(report))}</p>",
        f"<p><b>Runs:</b> {e(runs_line(report))}</p>",
        f"<p><b>{e(verdict(report))}</b></p>",
    ]
    for c in report.collectives:
        header, body = grid(c)
        out += [f"<h2>{e(metric_title(c))}</h2>", bandwidth_svg(report, c), "<table>"]
        out.append("<tr>" + "".join(f"<th>{e(h)}</th>" for h in header) + "</tr>")
        for row in body:
            cells = "".join(
                f'<td class="suspect">{e(cell)}</td>'
                if cell.endswith("?") or cell == "suspect"
                else f"<td>{e(cell)}</td>"
                for cell in row
            )
            out.append(f"<tr>{cells}</tr>")
        out.append("</table>")
    if report.suspects():
        out.append("<h2>Suspect figures (marked ?, not used for the verdict)</h2><ul>")
        out += [f'<li class="suspect">{e(line)}</li>' for line in suspect_lines(report)]
        out.append("</ul>")
    for t in report.training:
        out += [
            f"<h2>Training: {e(t.run_id)} {e(t.step)}</h2>",
            f"<p>{e(t.summary or training_text(t))}</p>",
        ]
        out += [training_svg(t, "loss"), training_svg(t, t.unit)]
    out.append("</body></html>")
    return "\n".join(out) + "\n"


def render(report: PerfReport, form: str) -> str:
    """The report as text, json, markdown or html."""
    if form == "json":
        return to_json(report) + "\n"
    if form == "markdown":
        return markdown(report)
    if form == "html":
        return to_html(report)
    return "\n".join(text(report)) + "\n"
