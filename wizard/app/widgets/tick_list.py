"""A SelectionList whose boxes differ without colour: ticked `▐X▌`, unticked `▐ ▌`."""

from __future__ import annotations

from rich.segment import Segment
from textual.strip import Strip
from textual.widgets import Checkbox, SelectionList
from textual.widgets.option_list import OptionDoesNotExist


class TickList(SelectionList[str]):
    """Textual draws the same X in every box and tells them apart by colour only, which a
    terminal without colour (NO_COLOR, a screen reader, a log) loses."""

    def render_line(self, y: int) -> Strip:
        strip = super().render_line(y)
        try:
            option = self.get_option_at_index(self.scroll_offset.y + y)
        except OptionDoesNotExist:
            return strip
        if option.value in self.selected:
            return strip
        segments = list(strip)
        for index, segment in enumerate(segments[:3]):  # the box: left, inner, right
            if segment.text == Checkbox.BUTTON_INNER:
                segments[index] = Segment(" " * len(segment.text), segment.style)
                break
        return Strip(segments, strip.cell_length)
