"""Builds the agent from a configuration: sensors, location, intensity, jobs and ledger."""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from carbonscope.accounting.attribution import IdlePolicy
from carbonscope.accounting.embodied import EmbodiedRate
from carbonscope.accounting.intensity_log import IntensityLog
from carbonscope.carbon.feed import IntensityFeed
from carbonscope.carbon.intensity import IntensityProvider
from carbonscope.carbon.location import ResolvedLocation, resolve_location
from carbonscope.carbon.providers.registry import build_intensity_provider
from carbonscope.config.schema import Config, JobsSection
from carbonscope.jobs.registry import JobRegistry
from carbonscope.jobs.settings import JobsSettings
from carbonscope.ledger import LEDGER_FILE_NAME, JobLedger
from carbonscope.ledger.history import NodeHistory
from carbonscope.sampling.monitor import CarbonSettings, Monitor
from carbonscope.sensors.base import SensorRoots
from carbonscope.sensors.catalogue import SourceContext, modelled_sources
from carbonscope.sensors.rapl import RaplSettings
from carbonscope.sensors.selection import SelectedSensor, select_sensors
from carbonscope.version import __version__


@dataclass(frozen=True)
class Agent:
    monitor: Monitor
    sensors: list[SelectedSensor]
    location: ResolvedLocation
    jobs: JobRegistry
    ledger: JobLedger
    intensity: IntensityProvider
    intensity_log: IntensityLog
    history: NodeHistory

    @property
    def feed(self) -> IntensityFeed | None:
        """The live intensity feed to start, or None with the static provider."""
        return self.intensity if isinstance(self.intensity, IntensityFeed) else None

    def flush(self, final: bool = False) -> None:
        """Job totals, the intensity series and the node history to the ledger (on the flush
        schedule; ``final``: at stop, after the last sample)."""
        self.jobs.flush()
        self.intensity_log.flush()
        self.history.flush(time.time(), final=final)


def jobs_settings(section: JobsSection, interval_s: float) -> JobsSettings:
    return JobsSettings(
        keep_finished_s=section.keep_finished,
        max_exported=section.max_exported,
        promoted_tags=tuple(section.promoted_tags),
        detect_cgroups=section.detect_cgroups,
        max_running_per_user=section.max_running_per_user,
        max_created_per_minute=section.max_created_per_minute,
        max_finished_per_user=section.max_finished_per_user,
        stop_wait_s=max(5.0, 3 * interval_s),
        idle_policy=IdlePolicy(section.idle_policy),
    )


def max_plausible_uw(config: Config) -> int:
    """The highest mean power a counter's wrapped delta may imply (sensors.rapl)."""
    rapl: RaplSettings = config.sensors.source_settings("rapl")
    return round(rapl.max_zone_watts * 1e6)


def build_agent(config: Config, state_dir: Path, env: Mapping[str, str] | None = None) -> Agent:
    env = os.environ if env is None else env
    roots = SensorRoots(sysfs=config.agent.sysfs_root, procfs=config.agent.procfs_root)
    sensors = select_sensors(config.sensors, SourceContext(roots))
    location = resolve_location(
        config.carbon.location,
        env,
        sysfs=config.agent.sysfs_root,
        metadata_url=config.carbon.cloud_metadata_url,
    )
    ledger = JobLedger(
        state_dir / LEDGER_FILE_NAME,
        history_hourly_after_s=config.agent.history_hourly_after,
        history_retention_s=config.agent.history_retention,
    )
    jobs = JobRegistry(jobs_settings(config.jobs, config.agent.interval), roots, ledger)
    intensity = build_intensity_provider(config.carbon, location)
    intensity_log = IntensityLog(ledger)
    monitor = Monitor(
        [(item.sensor, item.discovery) for item in sensors],
        intensity=intensity,
        carbon=CarbonSettings(config.carbon.pue, config.carbon.market_factor),
        interval_s=config.agent.interval,
        version=__version__,
        max_plausible_uw=max_plausible_uw(config),
        attributor=jobs,
        intensity_log=intensity_log,
        modelled_sources=modelled_sources(),
        ledger_writes=ledger.writes,
        embodied=EmbodiedRate.of(
            config.embodied.server_kgco2e, config.embodied.gpu_kgco2e, config.embodied.lifetime
        ),
    )
    history = NodeHistory(ledger)
    monitor.subscribe(history)  # differencing in memory on the sampler; writes on the flush
    return Agent(monitor, sensors, location, jobs, ledger, intensity, intensity_log, history)
