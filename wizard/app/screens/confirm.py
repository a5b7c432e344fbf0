"""Ask before changing anything: the exact commands, then yes or no."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Button, Static


class ConfirmScreen(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "Yes"),
        Binding("n,escape", "answer(False)", "No"),
    ]

    def __init__(
        self, question: str, body: Text, yes: str = "Yes, run them (y)", yes_key: str = ""
    ) -> None:
        """`yes_key`: one more key that answers yes (q, to a question that q asked)."""
        super().__init__()
        self.question = question
        self.body = body
        self.yes = yes
        self.yes_key = yes_key

    def compose(self) -> ComposeResult:
        # The question and the answers stay in view; only the commands between them scroll.
        with Vertical(id="dialog"):
            yield Static(Text(self.question, style="bold"), id="question")
            with VerticalScroll(id="confirm-body"):
                yield Static(self.body)
            with Horizontal():
                yield Button(self.yes, variant="warning", id="yes")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")

    def on_key(self, event: events.Key) -> None:
        if self.yes_key and event.key == self.yes_key:
            event.stop()
            self.dismiss(True)

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)
