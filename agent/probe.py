"""`carbonscope probe`: every source looked for, found or not, why, and one reading each."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from carbonscope.accounting.node import UNMEASURED, NodeEnergyPlan
from carbonscope.carbon.feed import IntensityFeed
from carbonscope.carbon.intensity import FeedStatus, IntensityValue
from carbonscope.carbon.location import resolve_location
from carbonscope.carbon.providers.registry import build_intensity_provider
from carbonscope.config.schema import Config
from carbonscope.host import HostFacts, host_facts
from carbonscope.sampling.monitor import CarbonSettings, Monitor
from carbonscope.sensors.base import (
    DeviceKey,
    Discovery,
    GpuDetails,
    Sensor,
    SensorRoots,
    SourceStatus,
)
from carbonscope.sensors.catalogue import (
    SourceContext,
    modelled_sources,
    platform_meter_sources,
)
from carbonscope.sensors.polled import PolledSensor
from carbonscope.sensors.selection import select_sensors

PROBE_WINDOW_S = 0.5


@dataclass(frozen=True)
class ProbeRow:
    source: str
    component: str
    device: str
    status: str
    reason: str
    power_watts: float | None
    used: bool  # whether `carbonscope run` would account this device
    uncertainty_ratio: float | None = None  # a model's estimate: its relative half-width


@dataclass(frozen=True)
class ProbeResult:
    rows: list[ProbeRow]
    gpus: list[GpuDetails]
    details: dict[str, list[str]]
    intensity: IntensityValue  # the average value in force
    pue: float
    marginal: IntensityValue | None = None
    feed: FeedStatus | None = None  # the live provider after one fetch; None with "static"
    host: HostFacts | None = None
    # what defines node energy under `run`: the platform meter it follows, and the devices summed
    node_meter: DeviceKey | None = None
    node_devices: tuple[DeviceKey, ...] = ()

    @property
    def node_energy_text(self) -> str:
        summed = ", ".join(f"{k.source} {k.device}" for k in self.node_devices) or "nothing"
        if self.node_meter is not None:
            meter = f"{self.node_meter.source} {self.node_meter.device}"
            return (
                f"node energy follows the platform meter {meter}: {summed} "
                "(the unmeasured part is what the meter shows beyond the components)"
            )
        return f"node energy is the sum of {summed}"

    @property
    def any_working(self) -> bool:
        return any(row.status == SourceStatus.OK for row in self.rows)

    def to_json(self) -> dict[str, Any]:
        return {
            "sources": [asdict(row) for row in self.rows],
            "gpus": [asdict(gpu) for gpu in self.gpus],
            "details": self.details,
            "model_uncertainty": {
                row.component: row.uncertainty_ratio
                for row in self.rows
                if row.uncertainty_ratio is not None
            },
            "carbon": {
                **asdict(self.intensity),
                "pue": self.pue,
                "marginal": asdict(self.marginal) if self.marginal else None,
                "feed": _feed_json(self.feed),
            },
            "host": asdict(self.host) if self.host else None,
            "node_energy": {
                "meter": _key_json(self.node_meter),
                "devices": [_key_json(key) for key in self.node_devices],
            },
            "ok": self.any_working,
        }


def run_probe(
    config: Config, env: Mapping[str, str] | None = None, window_s: float = PROBE_WINDOW_S
) -> ProbeResult:
    env = os.environ if env is None else env
    roots = SensorRoots(config.agent.sysfs_root, config.agent.procfs_root)
    # Every source, used or not, discovered once; failing devices are shown, not dropped.
    selection = select_sensors(config.sensors, SourceContext(roots), everything=True)
    used = {key for item in selection for key in item.used}
    unused_reason = {key: item.why_unused(key) for item in selection for key in item.found.devices}
    plan = NodeEnergyPlan.for_devices(used, platform_meter_sources())
    sensors: list[tuple[Sensor, Discovery]] = [(item.sensor, item.found) for item in selection]
    location = resolve_location(
        config.carbon.location,
        env,
        sysfs=config.agent.sysfs_root,
        metadata_url=config.carbon.cloud_metadata_url,
    )
    provider = build_intensity_provider(config.carbon, location)
    if isinstance(provider, IntensityFeed):
        provider.refresh_once()  # one fetch, within carbon.timeout; its error is shown
    monitor = Monitor(
        sensors,
        intensity=provider,
        carbon=CarbonSettings(config.carbon.pue, config.carbon.market_factor),
        interval_s=window_s,
        version="probe",
        modelled_sources=modelled_sources(),
        meter_sources=(plan.meter.source,) if plan.meter is not None else (),
    )
    polled = [sensor for sensor, _found in sensors if isinstance(sensor, PolledSensor)]
    for sensor in polled:  # probe runs no poller threads: one bounded read each, twice
        sensor.poll_once()
    monitor.sample()
    time.sleep(window_s)
    for sensor in polled:
        sensor.poll_once()
    snapshot = monitor.sample()
    for sensor in polled:  # a BMC session is ended, not left to time out
        sensor.stop()

    statuses = {(s.source, s.device): s for s in snapshot.statuses}
    rows: list[ProbeRow] = []
    uncertainty = dict(snapshot.model_uncertainty)
    for device in snapshot.devices:
        status = statuses.get((device.key.source, device.key.device))
        rows.append(
            ProbeRow(
                source=device.key.source,
                component=device.key.component.value,
                device=device.key.device,
                status=status.status.value if status else SourceStatus.ERROR.value,
                reason=(status.reason if status else "no status reported")
                or unused_reason.get(device.key, ""),
                power_watts=device.power_w,
                used=device.key in used or (device.key == UNMEASURED and plan.meter is not None),
                uncertainty_ratio=(
                    uncertainty.get(device.key.component) if device.key.source == "model" else None
                ),
            )
        )
    seen = {(row.source, row.device) for row in rows}
    for status in snapshot.statuses:
        if (status.source, status.device) not in seen:
            rows.append(
                ProbeRow(
                    status.source,
                    "",
                    status.device,
                    status.status.value,
                    status.reason,
                    None,
                    False,
                )
            )
    details = {
        sensor.name: list(discovery.details) for sensor, discovery in sensors if discovery.details
    }
    return ProbeResult(
        rows,
        list(snapshot.gpus),
        details,
        snapshot.intensity,
        config.carbon.pue,
        snapshot.marginal_intensity,
        snapshot.feed,
        host_facts(config.agent.procfs_root),
        plan.meter,
        tuple(
            key
            for key in sorted(used | ({UNMEASURED} if plan.meter else set()))
            if plan.counts(key)
        ),
    )


def _key_json(key: DeviceKey | None) -> dict[str, str] | None:
    return None if key is None else {"source": key.source, "device": key.device}


def _feed_json(feed: FeedStatus | None) -> dict[str, Any] | None:
    if feed is None:
        return None
    return {
        "provider": feed.provider,
        "state": feed.state,
        "up": feed.up,
        "signal": feed.signal,
        "last_value": asdict(feed.last_value) if feed.last_value else None,
        "last_error": feed.last_error,
        "forecast_points": len(feed.forecast),
    }
