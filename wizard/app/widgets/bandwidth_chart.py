"""Bus bandwidth against message size, as horizontal bars (one per size)."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual.widget import Widget

from wizard.console import size_text


class BandwidthChart(Widget):
    DEFAULT_CSS = "BandwidthChart { height: auto; }"

    def __init__(self, rows: list[dict[str, Any]], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.rows = rows
        # One rank moves no data between GPUs (busbw 0): chart algorithm bandwidth then.
        self.metric = "busbw_gbs" if any(r["busbw_gbs"] > 0 for r in rows) else "algbw_gbs"

    def get_content_height(self, container: Any, viewport: Any, width: int) -> int:
        return len(self.rows) + 1

    def render(self) -> Text:
        label = "bus bandwidth" if self.metric == "busbw_gbs" else "algorithm bandwidth (1 rank)"
        peak = max((r[self.metric] for r in self.rows), default=0) or 1
        width = max(self.size.width - 20, 10)
        text = Text(f"{label}, GB/s\n", style="bold")
        for row in self.rows:
            value = row[self.metric]
            bar = "█" * max(int(value / peak * width), 1 if value else 0)
            text.append(f"{size_text(int(row['size_bytes'])):>6} ")
            text.append(bar, style="green")
            text.append(f" {value:.1f}\n")
        text.rstrip()
        return text
