"""Pure, integer energy arithmetic. Microjoules (uJ), microwatts (uW), nanoseconds (ns).

Nothing here reads a clock or a file: the monitor passes readings and elapsed time in.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from carbonscope.sensors.base import CounterReading, PowerKind, PowerReading
from carbonscope.units import NS_PER_S


class CounterEvent(StrEnum):
    NONE = ""
    WRAP = "wrap"
    RESET = "reset"


def counter_delta_uj(
    previous_uj: int,
    current_uj: int,
    max_energy_range_uj: int,
    elapsed_ns: int,
    max_plausible_uw: int,
) -> tuple[int, CounterEvent]:
    """Energy between two reads of a wrapping counter.

    A drop is a wrap when the wrapped delta, (max_range - previous) + current + 1, implies a
    mean power no higher than ``max_plausible_uw``; otherwise the counter was reset (driver
    reload, CPU hotplug, firmware) and this interval counts nothing: never negative, no spike.
    """
    if current_uj >= previous_uj:
        return current_uj - previous_uj, CounterEvent.NONE
    wrapped = max_energy_range_uj - previous_uj + current_uj + 1
    if wrapped > 0 and wrapped * NS_PER_S <= max_plausible_uw * max(elapsed_ns, 1):
        return wrapped, CounterEvent.WRAP
    return 0, CounterEvent.RESET


@dataclass
class DeviceAccount:
    """Running total of one device: monotonic, integer, with the sub-uJ remainder carried."""

    total_uj: int = 0
    last_counter_uj: int | None = None
    last_power_uw: int | None = None
    last_read_ns: int | None = None
    residual_half_uw_ns: int = 0  # 2 x (power x time) not yet a whole microjoule: exact carry
    resets: int = 0
    wraps: int = 0

    def is_repeat(self, reading: CounterReading | PowerReading) -> bool:
        """A polled source's reading seen again: it covers no new time and adds nothing."""
        at = reading.measured_at_ns
        return at is not None and self.last_read_ns is not None and at <= self.last_read_ns

    def add_counter(self, reading: CounterReading, now_ns: int, max_plausible_uw: int) -> int:
        """``now_ns``: the sample's time, used when the reading has no measurement time."""
        if self.is_repeat(reading):
            return 0
        if reading.measured_at_ns is not None:
            now_ns = reading.measured_at_ns
        delta = 0
        if self.last_counter_uj is not None and self.last_read_ns is not None:
            delta, event = counter_delta_uj(
                self.last_counter_uj,
                reading.energy_uj,
                reading.max_energy_range_uj,
                now_ns - self.last_read_ns,
                max_plausible_uw,
            )
            self.wraps += event is CounterEvent.WRAP
            self.resets += event is CounterEvent.RESET
        self.last_counter_uj = reading.energy_uj
        self.last_read_ns = now_ns
        self.total_uj += delta
        return delta

    def add_power(self, reading: PowerReading, now_ns: int) -> int:
        """Integrated over the time since the previous reading's measurement."""
        if self.is_repeat(reading):
            return 0
        if reading.measured_at_ns is not None:
            now_ns = reading.measured_at_ns
        delta = 0
        if self.last_read_ns is not None:
            elapsed_ns = now_ns - self.last_read_ns
            if reading.kind is PowerKind.INSTANT and self.last_power_uw is not None:
                twice_uw_ns = (self.last_power_uw + reading.power_uw) * elapsed_ns  # trapezoid
            else:
                twice_uw_ns = 2 * reading.power_uw * elapsed_ns
            delta, self.residual_half_uw_ns = divmod(
                twice_uw_ns + self.residual_half_uw_ns, 2 * NS_PER_S
            )
        self.last_power_uw = reading.power_uw
        self.last_read_ns = now_ns
        self.total_uj += delta
        return delta

    def forget_baseline(self) -> None:
        """After a missed read, a power-only source cannot know the gap: restart integration."""
        self.last_power_uw = None
        self.last_read_ns = None
        self.residual_half_uw_ns = 0
