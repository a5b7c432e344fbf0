"""What every full screen of the app shares."""

from __future__ import annotations

from textual.screen import Screen

from wizard.app.app import WizardApp


class WizardScreen(Screen[None]):
    @property
    def wizard(self) -> WizardApp:
        """The app, typed: its session is what the screens share."""
        return self.app  # type: ignore[return-value]
