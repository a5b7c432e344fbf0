"""What every full screen of the app shares."""

from __future__ import annotations

from textual.screen import Screen, ScreenResultType

from wizard.app.app import WizardApp


class WizardScreen(Screen[ScreenResultType]):
    """Its type parameter is what it is dismissed with, which `app.open(..., done=)` hears
    (the fixes screen: whether a fix ran); the others are dismissed with nothing."""

    @property
    def wizard(self) -> WizardApp:
        """The app, typed: its session is what the screens share."""
        return self.app  # type: ignore[return-value]
