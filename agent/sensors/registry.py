"""The one place that knows every power source and decides which ones are used.

Rule (``sensors.enable``): measured sources are tried first; a measured device is used only if
it reads at start-up, whenever the model may stand in for it. The model then covers the
components (cpu, dram) that nothing measures; psys (platform) covers both. With ``["auto"]``
every available source is tried and the model is allowed; with an explicit list, exactly those.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

from carbonscope.config.schema import SensorsSection
from carbonscope.sensors.base import (
    Component,
    Discovery,
    Sensor,
    SensorRoots,
    SourceStatus,
    read_sysfs_text,
)
from carbonscope.sensors.model import ModelSensor
from carbonscope.sensors.nvml import NvmlSensor, import_pynvml
from carbonscope.sensors.rapl import RaplSensor

log = logging.getLogger(__name__)

MEASURED_SOURCES = ("rapl", "nvml")
MODELLED_COMPONENTS = frozenset({Component.CPU, Component.DRAM})
# Devices the model can stand in for: dropped from accounting when they fail at start-up.
# A GPU never is: one that fails at start stays, shows its status, and is read once it works.
REPLACEABLE_COMPONENTS = MODELLED_COMPONENTS | {Component.PLATFORM}


@dataclass(frozen=True)
class SelectedSensor:
    sensor: Sensor
    discovery: Discovery  # devices: those the accounting will use


def _measured(sensor: Sensor, discovery: Discovery, keep_failing: bool) -> Discovery:
    """Restrict a discovery to the devices that read now, unless failing ones must stay."""
    if keep_failing or not discovery.devices:
        return discovery
    first = sensor.read()
    working = {reading.key for reading in first.readings}
    failing = [s for s in first.statuses if s.status is not SourceStatus.OK]
    for status in failing:
        log.warning(
            "%s %s unusable (%s): %s", status.source, status.device, status.status, status.reason
        )
    return Discovery(
        devices=tuple(
            key
            for key in discovery.devices
            if key in working or key.component not in REPLACEABLE_COMPONENTS
        ),
        statuses=discovery.statuses,
        details=discovery.details,
    )


def every_source(
    settings: SensorsSection,
    roots: SensorRoots,
    opener: Callable[[Path], str] = read_sysfs_text,
    load_nvml: Callable[[], ModuleType] = import_pynvml,
) -> list[Sensor]:
    """One of each source carbonscope knows, for `probe` to look at whether used or not."""
    return [
        RaplSensor(roots, opener),
        NvmlSensor(load_nvml),
        ModelSensor(roots, settings.model, opener=opener),
    ]


def select_sensors(
    settings: SensorsSection,
    roots: SensorRoots,
    opener: Callable[[Path], str] = read_sysfs_text,
    load_nvml: Callable[[], ModuleType] = import_pynvml,
) -> list[SelectedSensor]:
    auto = settings.enable == ["auto"]
    wanted = set(MEASURED_SOURCES) | {"model"} if auto else set(settings.enable)
    model_allowed = "model" in wanted
    selected: list[SelectedSensor] = []
    if "rapl" in wanted:
        rapl = RaplSensor(roots, opener)
        selected.append(
            SelectedSensor(rapl, _measured(rapl, rapl.discover(), keep_failing=not model_allowed))
        )
    if "nvml" in wanted:
        nvml = NvmlSensor(load_nvml)
        selected.append(SelectedSensor(nvml, nvml.discover()))

    covered = {key.component for item in selected for key in item.discovery.devices}
    if Component.PLATFORM in covered:
        covered |= MODELLED_COMPONENTS
    missing = MODELLED_COMPONENTS - covered
    if model_allowed and missing:
        model = ModelSensor(roots, settings.model, frozenset(missing), opener)
        selected.append(SelectedSensor(model, model.discover()))
    elif model_allowed:
        log.info("model not needed: %s measured", ", ".join(sorted(covered)))
    return selected
