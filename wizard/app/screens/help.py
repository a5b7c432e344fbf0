"""Help: the keys of every screen."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Static

HELP = """\
Keys (also shown in the footer; ctrl+p opens the command palette)

Anywhere     ?  this help      q  quit (a running step is stopped; its state is saved)
Start        ctrl+n  check this machine      ctrl+r  resume the saved run
Checks       arrows  select a check to see its details, facts and fixes
             f  fixes   n  build and test   r  check again   escape  back
Fixes        space  tick a fix   a  apply the ticked fixes (asks first)   escape  back
Steps        c  cancel the running step    r  retry/resume    s  skip the failed step
             h  run from the highlighted step    f  follow the log on/off
             /  search the log    e  jump to the first error    n  results
Results      escape  back to the steps

Every step's state is saved as it runs: after a failure, Ctrl-C or a reboot, start the
wizard again and choose Resume, or run `wizard resume`. Full logs stay on disk.

Press escape or ? to close."""


class HelpScreen(ModalScreen[None]):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape,question_mark", "dismiss", "Close")]

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="dialog"):
            yield Static(Text(HELP))
