"""Which sources are used, from the catalogue and ``sensors.enable``.

Rule: measured sources are tried first, in catalogue order; a measured device is used only if
it reads at start-up, whenever a model may stand in for it. A CPU or DRAM device is taken from
the first source that measures that component (hwmon's amd_energy sockets repeat RAPL's
counters: never both). The model then covers the components (cpu, dram) that nothing
measures; psys (platform) covers both. A platform meter (a wall or PSU meter: hwmon's ACPI
power meter, IPMI, Redfish) covers no component: node energy follows it and reconciliation
shows what the components leave unmeasured. With ``["auto"]`` every measured source whose
row says ``auto`` is tried (not the BMCs) and the model is allowed; with a list, exactly those.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from carbonscope.sensors.base import Component, DeviceKey, Discovery, Sensor, SourceSettings
from carbonscope.sensors.base import SourceStatus as Status
from carbonscope.sensors.catalogue import (
    CONTAINED_IN,
    CPU_LIKE,
    SOURCES,
    SourceContext,
    SourceRole,
    SourceSpec,
)
from carbonscope.sensors.polled import PolledSensor

log = logging.getLogger(__name__)

AUTO = "auto"


class SourcesConfig(Protocol):
    """The ``[sensors]`` section as selection needs it (carbonscope.config.schema)."""

    @property
    def enable(self) -> list[str]: ...

    def source_settings(self, name: str) -> SourceSettings: ...


def _covered(
    devices: frozenset[DeviceKey] | set[DeviceKey], meters: frozenset[str]
) -> set[Component]:
    """Components measured by these devices (psys covers CPU and DRAM; a meter nothing)."""
    covered = {
        key.component
        for key in devices
        if not (key.component is Component.PLATFORM and key.source in meters)
    }
    for outer, inner in CONTAINED_IN.items():
        if outer in covered:
            covered |= inner
    return covered


def _not_measured_twice(found: Discovery, earlier: set[Component], by: str) -> Discovery:
    """Drop CPU and DRAM devices a source earlier in the catalogue already measures."""
    twice = [key for key in found.devices if key.component in CPU_LIKE and key.component in earlier]
    if not twice:
        return found
    reason = f"measured by {by}"
    return replace(
        found,
        devices=tuple(key for key in found.devices if key not in twice),
        details=(*found.details, f"{', '.join(k.device for k in twice)}: {reason}, not added"),
        skipped=(*found.skipped, (reason, len(twice))),
    )


@dataclass(frozen=True)
class SelectedSensor:
    spec: SourceSpec
    sensor: Sensor
    discovery: Discovery  # devices: those the accounting will use
    found: Discovery  # everything the source found, used or not (probe shows it all)
    wanted: bool = True  # named by sensors.enable (or tried by auto)

    @property
    def used(self) -> frozenset[DeviceKey]:
        return frozenset(self.discovery.devices)

    def why_unused(self, key: DeviceKey) -> str:
        """Why a device this source found is not accounted ("" when it is)."""
        if key in self.used:
            return ""
        if not self.wanted:
            hint = "; auto never asks a BMC" if not self.spec.auto else ""
            return f"not in sensors.enable{hint}"
        measured_by = [
            reason for reason, _n in self.discovery.skipped if reason.startswith("measured by")
        ]
        if measured_by and key.component in CPU_LIKE:
            return f"{measured_by[0]}: not added twice"
        if self.spec.role is SourceRole.MODELS:
            return "not needed: measured"
        return "did not read at start-up: the model stands in"


def _replaceable(model_allowed: bool) -> frozenset[Component]:
    """Components a model can stand in for (and the platform meters that contain them)."""
    if not model_allowed:
        return frozenset()
    modelled = {c for spec in SOURCES if spec.role is SourceRole.MODELS for c in spec.components}
    containers = {outer for outer, inner in CONTAINED_IN.items() if inner <= modelled}
    return frozenset(modelled | containers)


def _working(sensor: Sensor, found: Discovery, replaceable: frozenset[Component]) -> Discovery:
    """Drop replaceable devices that do not read now: the model stands in for them."""
    if not found.devices or not {key.component for key in found.devices} & replaceable:
        return found
    first = sensor.read()
    working = {reading.key for reading in first.readings}
    for status in first.statuses:
        if status.status is not Status.OK:
            log.warning(
                "%s %s unusable (%s): %s",
                status.source,
                status.device,
                status.status,
                status.reason,
            )
    kept = tuple(k for k in found.devices if k in working or k.component not in replaceable)
    return replace(found, devices=kept)


def _build(spec: SourceSpec, config: SourcesConfig, context: SourceContext) -> Sensor:
    sensor = spec.build(context, config.source_settings(spec.name))
    if spec.period_s is not None:
        return PolledSensor.from_settings(sensor, config.source_settings(spec.name), spec.period_s)
    return sensor


def select_sensors(
    config: SourcesConfig, context: SourceContext, everything: bool = False
) -> list[SelectedSensor]:
    """The sources ``carbonscope run`` uses, each discovered once.

    ``everything`` (for probe) also builds the sources that would not be used, with the model
    over all its components; their ``discovery`` then lists no used device.
    """
    auto = config.enable == [AUTO]
    wanted: Sequence[str] = [s.name for s in SOURCES if s.auto] if auto else config.enable
    model_allowed = any(s.role is SourceRole.MODELS and s.name in wanted for s in SOURCES)
    replaceable = _replaceable(model_allowed)
    meters = frozenset(s.name for s in SOURCES if s.platform_meter)
    selected: list[SelectedSensor] = []
    for spec in SOURCES:
        if spec.role is not SourceRole.MEASURES or not (spec.name in wanted or everything):
            continue
        sensor = _build(spec, config, context)
        found = sensor.discover()
        if spec.name in wanted:
            # no model stands in for a whole-server meter
            own = replaceable - {Component.PLATFORM} if spec.platform_meter else replaceable
            used = _working(sensor, found, own)
            earlier = {k for item in selected for k in item.used}
            if earlier:
                by = ", ".join(sorted({k.source for k in earlier if k.component in CPU_LIKE}))
                used = _not_measured_twice(used, _covered(earlier, meters), by or "psys")
        else:
            used = replace(found, devices=())
        selected.append(SelectedSensor(spec, sensor, used, found, spec.name in wanted))

    covered = _covered({key for item in selected for key in item.discovery.devices}, meters)
    for spec in SOURCES:
        if spec.role is not SourceRole.MODELS:
            continue
        missing = spec.components - covered
        use = spec.name in wanted and bool(missing)
        if not use and not everything:
            if spec.name in wanted:
                log.info("%s not needed: %s measured", spec.name, ", ".join(sorted(covered)))
            continue
        scope = spec.components if everything else frozenset(missing)
        sensor = _build(spec, config, replace(context, uncovered=scope))
        found = sensor.discover()
        devices = tuple(k for k in found.devices if use and k.component in missing)
        selected.append(
            SelectedSensor(
                spec, sensor, replace(found, devices=devices), found, spec.name in wanted
            )
        )
    return selected
