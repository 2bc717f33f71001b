"""Reconciliation: a platform meter (wall or PSU) against the components it contains.

The components (packages or psys, DRAM, GPUs) are read every sample; the meter is polled
(IPMI, Redfish: every 10 s) and each of its readings covers the interval since its previous
one. Comparing per-sample deltas would swing between negative and a ten-fold spike, so the
comparison is of cumulative energy at the meter's own measurement times:

    unmeasured(t) = unmeasured(a) + [M(t) - M(a)] - [C(t) - C(a)]

from the anchor a (the start of the meter's current run of readings) to the meter's latest
reading t, where M is the meter's energy and C the components' cumulative energy, interpolated
linearly between the samples around t (integers, floored). The unmeasured counter takes every
rise of that target and never falls: node energy = C + unmeasured, so between two meter
readings it advances with the components, and at every reading it equals the meter's energy
since the anchor plus what came before it. A run ends (and a new anchor is taken) when the
meter misses a reading or its counter is re-based: the gap is not compared.

A target below the counter is a shortfall: the meter read less than the components inside it.
A quantised counter (a BMC's kWh register) is briefly short by up to one step; a shortfall
larger than the largest step the meter has taken in this run is a misconfigured source (a meter
of one PSU of two, a component source over-reading): the status says so, it is logged once,
and the components stand (node energy never drops below what was measured).
"""

from __future__ import annotations

import logging
from bisect import bisect_left
from collections import deque
from dataclasses import dataclass

from carbonscope.sensors.base import DeviceKey, DeviceStatus, SourceStatus
from carbonscope.units import NS_PER_S

log = logging.getLogger(__name__)

HISTORY_SAMPLES = 4096  # component totals kept for interpolation (over an hour at 1 s)
SHORTFALL_FLOOR_UJ = 1_000_000  # a shortfall under 1 J is never a misconfiguration


@dataclass(frozen=True)
class _Anchor:
    meter_uj: int
    components_uj: int
    unmeasured_uj: int


class Reconciler:
    """Tracks one platform meter against the components' total, on the monitor's clock."""

    def __init__(self, meter: DeviceKey, unmeasured: DeviceKey) -> None:
        self.meter = meter
        self.unmeasured = unmeasured
        self.unmeasured_uj = 0
        self.power_w: float | None = None  # mean unmeasured power over the meter's last interval
        self._components_uj = 0
        self._times: deque[int] = deque(maxlen=HISTORY_SAMPLES)
        self._totals: deque[int] = deque(maxlen=HISTORY_SAMPLES)
        self._anchor: _Anchor | None = None
        self._last_meter_ns: int | None = None
        self._largest_step_uj = 0
        self._shortfall_uj = 0
        self._logged_shortfall = False

    def components(self, now_ns: int, delta_uj: int) -> None:
        """The components' energy of the sample that ended at ``now_ns``."""
        self._components_uj += delta_uj
        if self._times and now_ns <= self._times[-1]:
            self._totals[-1] = self._components_uj
            return
        self._times.append(now_ns)
        self._totals.append(self._components_uj)

    def components_at(self, at_ns: int) -> int:
        """The components' cumulative energy at ``at_ns``, interpolated between samples."""
        times, totals = self._times, self._totals
        if not times:
            return self._components_uj
        index = bisect_left(times, at_ns)
        if index == 0:
            return totals[0]
        if index >= len(times):
            return totals[-1]
        t0, t1, c0, c1 = times[index - 1], times[index], totals[index - 1], totals[index]
        return c0 + (c1 - c0) * (at_ns - t0) // (t1 - t0)

    def meter_reading(
        self, meter_total_uj: int, delta_uj: int, covered_from_ns: int | None, measured_ns: int
    ) -> int:
        """A new meter reading (its account's total, the energy it added over
        [covered_from_ns, measured_ns]); returns what the unmeasured counter gains."""
        if (
            self._anchor is None
            or covered_from_ns is None
            or covered_from_ns != self._last_meter_ns
        ):
            start_ns = covered_from_ns if covered_from_ns is not None else measured_ns
            counted = delta_uj if covered_from_ns is not None else 0
            self._anchor = _Anchor(
                meter_total_uj - counted, self.components_at(start_ns), self.unmeasured_uj
            )
            self._largest_step_uj = 0
            self._last_meter_ns = start_ns
        previous_ns = self._last_meter_ns
        self._last_meter_ns = measured_ns
        self._largest_step_uj = max(self._largest_step_uj, delta_uj)
        anchor = self._anchor
        target = (
            anchor.unmeasured_uj
            + (meter_total_uj - anchor.meter_uj)
            - (self.components_at(measured_ns) - anchor.components_uj)
        )
        gained = max(0, target - self.unmeasured_uj)
        self._shortfall_uj = max(0, self.unmeasured_uj - target)
        self.unmeasured_uj += gained
        if previous_ns is not None and measured_ns > previous_ns:
            self.power_w = gained * NS_PER_S / (measured_ns - previous_ns) / 1e6
        if self.misconfigured and not self._logged_shortfall:
            log.error("%s", self._shortfall_reason())
            self._logged_shortfall = True
        return gained

    @property
    def misconfigured(self) -> bool:
        return self._shortfall_uj > max(SHORTFALL_FLOOR_UJ, self._largest_step_uj)

    def _shortfall_reason(self) -> str:
        meter = f"{self.meter.source} {self.meter.device}"
        return (
            f"the platform meter {meter} read {self._shortfall_uj / 1e6:.1f} J less than the "
            "components it contains: it does not meter the whole server (one PSU of several?) "
            "or a component source over-reads; nothing is counted as unmeasured until it "
            "catches up"
        )

    def status(self) -> DeviceStatus:
        key = self.unmeasured
        if self.misconfigured:
            return DeviceStatus(
                key.source, key.device, SourceStatus.ERROR, self._shortfall_reason()
            )
        if self._anchor is None:
            reason = f"waiting for a reading of {self.meter.source} {self.meter.device}"
            return DeviceStatus(key.source, key.device, SourceStatus.STALE, reason)
        return DeviceStatus(key.source, key.device, SourceStatus.OK)
