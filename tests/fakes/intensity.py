"""An intensity provider whose value the test sets between samples."""

from __future__ import annotations

from agent.carbon.intensity import GridIntensity, IntensityValue


class SettableIntensity:
    name = "fake"

    def __init__(self, g_per_kwh: float, location: str = "FR") -> None:
        self.g_per_kwh = g_per_kwh
        self.location = location

    def current(self, now_unix_s: float) -> GridIntensity:
        return GridIntensity(
            IntensityValue(
                self.location, self.name, "average", self.g_per_kwh, 0.0, "config", "test"
            )
        )
