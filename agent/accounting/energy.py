"""Pure, integer energy arithmetic. Microjoules (uJ), microwatts (uW), nanoseconds (ns).

Nothing here reads a clock or a file: the monitor passes readings and elapsed time in.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from carbonscope.sensors.base import CounterReading, PowerKind, PowerReading
from carbonscope.units import NS_PER_S


class CounterEvent(StrEnum):
    NONE = ""
    WRAP = "wrap"  # crossed max_energy_range_uj: counted across the wrap point
    RESET = "reset"  # a new trajectory confirmed by a second read: re-based, counted from there
    REJECTED = "rejected"  # implausible from the last good value: held, counting nothing yet
    INVALID = "invalid"  # outside [0, max_energy_range_uj]: an error reading, ignored


COUNTER_EVENTS = (
    CounterEvent.WRAP,
    CounterEvent.RESET,
    CounterEvent.REJECTED,
    CounterEvent.INVALID,
)


def plausible(delta_uj: int, elapsed_ns: int, max_plausible_uw: int) -> bool:
    """Energy a device can have used in ``elapsed_ns`` at no more than ``max_plausible_uw``."""
    return delta_uj >= 0 and delta_uj * NS_PER_S <= max_plausible_uw * max(elapsed_ns, 1)


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
    held: tuple[int, int] | None = None  # (value, ns) of a rejected read, until the next one
    covered_from_ns: int | None = None  # where the interval of the last delta began
    last_event: CounterEvent = CounterEvent.NONE
    events: dict[CounterEvent, int] = field(default_factory=dict)

    def is_repeat(self, reading: CounterReading | PowerReading) -> bool:
        """A polled source's reading seen again: it covers no new time and adds nothing."""
        at = reading.measured_at_ns
        return at is not None and self.last_read_ns is not None and at <= self.last_read_ns

    def add_counter(self, reading: CounterReading, now_ns: int, max_plausible_uw: int) -> int:
        """``now_ns``: the sample's time, used when the reading has no measurement time.

        The plausibility rule (docs/sensors.md): a value outside [0, max range] is an error
        reading (``invalid``). A value the last good one cannot plausibly reach (a jump
        implying more than ``max_plausible_uw``, or a drop that is no plausible wrap) is held
        (``rejected``) and counts nothing yet: if the next read continues from the last good
        value it was a glitch and costs nothing; if it continues from the held value, the
        counter really moved (a driver reload, a re-based firmware counter): ``reset``, and
        energy counts from the held value on.
        """
        if self.is_repeat(reading):
            return 0
        if reading.measured_at_ns is not None:
            now_ns = reading.measured_at_ns
        self.last_event = CounterEvent.NONE
        self.covered_from_ns = self.last_read_ns
        value, max_range = reading.energy_uj, reading.max_energy_range_uj
        if not 0 <= value <= max_range:
            self._event(CounterEvent.INVALID)
            return 0
        if self.last_counter_uj is None or self.last_read_ns is None:
            self.last_counter_uj, self.last_read_ns = value, now_ns
            return 0
        delta, event = counter_delta_uj(
            self.last_counter_uj, value, max_range, now_ns - self.last_read_ns, max_plausible_uw
        )
        if event is not CounterEvent.RESET and plausible(
            delta, now_ns - self.last_read_ns, max_plausible_uw
        ):
            self.held = None  # a glitch, if one was held, cost nothing
            if event is CounterEvent.WRAP:
                self._event(CounterEvent.WRAP)
            self.last_counter_uj, self.last_read_ns = value, now_ns
            self.total_uj += delta
            return delta
        held = self.held
        if (
            held is not None
            and value >= held[0]
            and plausible(value - held[0], now_ns - held[1], max_plausible_uw)
        ):
            self._event(CounterEvent.RESET)
            delta, self.covered_from_ns = value - held[0], held[1]
            self.held = None
            self.last_counter_uj, self.last_read_ns = value, now_ns
            self.total_uj += delta
            return delta
        self.held = (value, now_ns)
        self._event(CounterEvent.REJECTED)
        return 0

    def _event(self, event: CounterEvent) -> None:
        self.last_event = event
        self.events[event] = self.events.get(event, 0) + 1
        self.wraps += event is CounterEvent.WRAP
        self.resets += event is CounterEvent.RESET

    def add_power(self, reading: PowerReading, now_ns: int) -> int:
        """Integrated over the time since the previous reading's measurement."""
        if self.is_repeat(reading):
            return 0
        self.covered_from_ns = self.last_read_ns
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
