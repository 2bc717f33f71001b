"""Builds the monitor from a configuration: sensors, location, intensity provider."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass

from agent import __version__
from agent.accounting.monitor import CarbonSettings, Monitor
from agent.carbon.intensity import StaticIntensityProvider
from agent.carbon.location import ResolvedLocation, resolve_location
from agent.config.schema import Config
from agent.sensors.base import SensorRoots
from agent.sensors.registry import SelectedSensor, select_sensors


@dataclass(frozen=True)
class Agent:
    monitor: Monitor
    sensors: list[SelectedSensor]
    location: ResolvedLocation


def build_agent(config: Config, env: Mapping[str, str] | None = None) -> Agent:
    env = os.environ if env is None else env
    roots = SensorRoots(sysfs=config.agent.sysfs_root, procfs=config.agent.procfs_root)
    sensors = select_sensors(config.sensors, roots)
    location = resolve_location(config.carbon.location, env)
    monitor = Monitor(
        [(item.sensor, item.discovery) for item in sensors],
        intensity=StaticIntensityProvider(location),
        carbon=CarbonSettings(config.carbon.pue, config.carbon.market_factor),
        interval_s=config.agent.interval,
        version=__version__,
        max_plausible_uw=round(config.sensors.rapl.max_zone_watts * 1e6),
    )
    return Agent(monitor, sensors, location)
