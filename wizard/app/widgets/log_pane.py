"""A live log that keeps up with a flood: lines arrive from a worker thread into a buffer,
and the UI drains it a few times a second. The widget keeps the last lines only; the full
log is on disk."""

from __future__ import annotations

import re
import threading
from collections import deque

from textual import events
from textual.widgets import Log

from wizard.engine.recipes.parsers import plain

MAX_LINES = 5000
ERROR = re.compile(r"error|failed|fatal|undefined reference|not found|Traceback", re.I)


class LogPane(Log):
    DEFAULT_CSS = "LogPane { height: 1fr; border: round $primary-darken-2; }"

    def __init__(self, *, id: str | None = None, classes: str | None = None) -> None:
        super().__init__(max_lines=MAX_LINES, auto_scroll=True, id=id, classes=classes)
        self._pending: deque[str] = deque(maxlen=MAX_LINES)
        self._lock = threading.Lock()
        self.received = 0  # every line handed over, shown or dropped from the buffer
        self._search_from = 0

    def on_mount(self) -> None:
        self.set_interval(1 / 20, self._drain)

    def feed(self, lines: list[str]) -> None:
        """Called from any thread. Terminal colour codes are dropped: the widget shows text."""
        cleaned = [plain(line) for line in lines] if any("\x1b" in x for x in lines) else lines
        with self._lock:
            self._pending.extend(cleaned)
            self.received += len(lines)

    def _drain(self) -> None:
        with self._lock:
            if not self._pending:
                return
            lines = list(self._pending)
            self._pending.clear()
        self.write_lines(lines, scroll_end=False)
        self._keep_end()

    # Following the end is the user's choice (auto_scroll): scrolling up stops it, End and
    # f take it back. Textual's Log follows only while the view is exactly at the end, which
    # a pane that shrinks under it (the failure panel opening) ends for good.

    def _keep_end(self) -> None:
        if self.auto_scroll:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def on_resize(self) -> None:
        self.call_after_refresh(self._keep_end)

    def _on_mouse_scroll_up(self, event: events.MouseScrollUp) -> None:
        self.auto_scroll = False
        super()._on_mouse_scroll_up(event)

    def _on_mouse_scroll_down(self, event: events.MouseScrollDown) -> None:
        super()._on_mouse_scroll_down(event)
        if self.scroll_target_y >= self.max_scroll_y:
            self.auto_scroll = True

    def action_scroll_up(self) -> None:
        self.auto_scroll = False
        super().action_scroll_up()

    def action_page_up(self) -> None:
        self.auto_scroll = False
        super().action_page_up()

    def action_scroll_home(self) -> None:
        self.auto_scroll = False
        super().action_scroll_home()

    def action_scroll_end(self) -> None:
        self.auto_scroll = True
        self._keep_end()

    def toggle_follow(self) -> bool:
        self.auto_scroll = not self.auto_scroll
        if self.auto_scroll:
            self.scroll_end(animate=False)
        return self.auto_scroll

    def find(self, text: str) -> int | None:
        """Scroll to the next line containing `text` (case-insensitive); its index or None."""
        needle = text.lower()
        lines = self.lines
        for offset in range(len(lines)):
            index = (self._search_from + offset) % max(len(lines), 1)
            if needle in lines[index].lower():
                self._show(index)
                self._search_from = index + 1
                return index
        return None

    def first_error(self) -> int | None:
        for index, line in enumerate(self.lines):
            if ERROR.search(line):
                self._show(index)
                return index
        return None

    def _show(self, index: int) -> None:
        self.auto_scroll = False
        self.scroll_to(y=max(index - 2, 0), animate=False)
