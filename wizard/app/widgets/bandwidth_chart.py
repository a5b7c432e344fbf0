"""Charts for the results screen, drawn by textual-plotext: bandwidth against message size
(log scale, one line per source, the link's peak as a line) and a training run's loss or
throughput over its steps."""

from __future__ import annotations

import math

from rich.console import RenderableType
from textual_plotext import PlotextPlot

from wizard.engine.recipes.compare import CollectiveResults, TrainingSeries
from wizard.engine.recipes.parsers import size_text

LABEL_EVERY = 3  # 128K, 1M, 8M, 64M, 512M, 4G: readable at 80 columns


class _Chart(PlotextPlot):
    """A plot drawn anew at every render, so what shows depends only on the data and the
    size (plotext keeps state from one size to the next otherwise)."""

    def draw(self) -> None:
        raise NotImplementedError

    def render(self) -> RenderableType:
        self.plt.clear_figure()
        self.draw()
        return super().render()


class BandwidthChart(_Chart):
    """One collective: busbw with 2+ ranks, algbw with one, each source a line (suspect
    figures left out), the x axis log2 of the size labelled as 128K ... 4G."""

    def __init__(
        self, results: CollectiveResults, peak_gbs: float | None, *, id: str | None = None
    ) -> None:
        super().__init__(id=id)
        self.results, self.peak_gbs = results, peak_gbs

    def lines(self) -> dict[str, list[tuple[float, float]]]:
        """Each source's (log2 size, GB/s) points, as plotted."""
        key = f"{self.results.metric}_gbs"
        return {
            s.source: [
                (math.log2(r["size_bytes"]), r[key])
                for r in s.rows
                if r["size_bytes"] > 0 and not r.get("suspect")
            ]
            for s in self.results.series
        }

    def draw(self) -> None:
        plt = self.plt
        metric = "bus bandwidth" if self.results.metric == "busbw" else "algbw (one rank)"
        drawn = bool(self.peak_gbs) and self.results.metric == "busbw"
        peak = f" (red: the link's peak, {self.peak_gbs:g})" if drawn else ""
        plt.title(f"{self.results.name}: {metric}, GB/s{peak}")
        sizes = sorted({int(r["size_bytes"]) for s in self.results.series for r in s.rows})
        for source, points in self.lines().items():
            if points:
                plt.plot([x for x, _ in points], [y for _, y in points], label=source)
        if drawn:
            plt.hline(self.peak_gbs, "red")
        ticks = [s for i, s in enumerate(sizes) if i % LABEL_EVERY == 0 or s == sizes[-1]]
        plt.xticks([math.log2(s) for s in ticks], [size_text(s) for s in ticks])


class TrainingChart(_Chart):
    """A training run's loss, or its throughput, over the logged steps."""

    def __init__(self, series: TrainingSeries, what: str, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.series, self.what = series, what  # "loss" or "throughput"

    def points(self) -> list[tuple[float, float]]:
        return [(p["step"], p[self.what]) for p in self.series.points]

    def draw(self) -> None:
        unit = "loss" if self.what == "loss" else self.series.unit
        self.plt.title(f"{self.series.step}: {unit} by step")
        points = self.points()
        self.plt.plot([x for x, _ in points], [y for _, y in points], label=unit)
