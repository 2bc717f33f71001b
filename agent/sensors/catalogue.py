"""Every power source carbonscope knows: one row each. The one table config validation,
``sensors.enable``, selection (selection.py) and ``carbonscope probe`` read.

Adding a source is one new file (its reader, its settings class, its ``build``) plus one row
here; docs/architecture.md shows the recipe. A row with a ``period_s`` is polled: the reader
runs on its own thread with a hard timeout (polled.py) and the sampler reads its last reading
from memory, so a slow BMC never delays a sample. Its settings class derives from
``PolledSettings`` (interval, timeout, max_age).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from types import ModuleType
from typing import Any

from carbonscope.sensors import hwmon, ipmi, model, nvml, rapl, redfish
from carbonscope.sensors.base import (
    Component,
    Sensor,
    SensorRoots,
    SourceSettings,
    read_sysfs_text,
)
from carbonscope.sensors.bounded import DeadlineSensor, DeadlineSettings


class SourceRole(StrEnum):
    MEASURES = "measures"  # a sensor: its energy is measured
    MODELS = "models"  # an estimate, used only for components nothing measures


@dataclass(frozen=True)
class SourceContext:
    """What a source's ``build`` gets besides its settings (injectable for tests)."""

    roots: SensorRoots = field(default_factory=SensorRoots)
    opener: Callable[[Path], str] = read_sysfs_text
    load_nvml: Callable[[], ModuleType] = nvml.import_pynvml
    uncovered: frozenset[Component] = frozenset()  # for a model: the components to estimate


@dataclass(frozen=True)
class SourceSpec:
    name: str  # the `source` label, the `sensors.enable` name and the [sensors.<name>] section
    role: SourceRole
    components: frozenset[Component]  # what it may cover
    build: Callable[[SourceContext, Any], Sensor]  # (context, its settings) -> a reader
    settings: type[SourceSettings] = SourceSettings  # its config section
    period_s: float | None = None  # default polling period; None: read inside every sample
    auto: bool = True  # tried under sensors.enable = ["auto"]; False: only when listed
    # Its platform devices meter the whole server (wall or PSU): node energy follows them and
    # reconciliation exports what the components leave unmeasured (accounting/reconcile.py).
    platform_meter: bool = False


_CPU_LIKE = frozenset({Component.CPU, Component.DRAM})

SOURCES: tuple[SourceSpec, ...] = (
    SourceSpec(
        "rapl",
        SourceRole.MEASURES,
        _CPU_LIKE | {Component.PLATFORM},
        lambda ctx, _settings: rapl.RaplSensor(ctx.roots, ctx.opener),
        rapl.RaplSettings,
    ),
    SourceSpec(
        "nvml",
        SourceRole.MEASURES,
        frozenset({Component.GPU}),
        # NVML calls are driver ioctls that can hang (a GPU falling off the bus, an Xid): each
        # read waits at most [sensors.nvml] timeout, then the GPUs show `error` for a sample.
        lambda ctx, settings: DeadlineSensor(nvml.NvmlSensor(ctx.load_nvml), settings.timeout),
        DeadlineSettings,
    ),
    SourceSpec(
        "hwmon",
        SourceRole.MEASURES,
        frozenset({Component.CPU, Component.GPU, Component.PLATFORM}),
        lambda ctx, settings: hwmon.HwmonSensor(ctx.roots, settings, ctx.opener),
        hwmon.HwmonSettings,
        platform_meter=True,
    ),
    SourceSpec(
        "ipmi",
        SourceRole.MEASURES,
        frozenset({Component.PLATFORM}),
        lambda _ctx, settings: ipmi.IpmiSensor(settings),
        ipmi.IpmiSettings,
        period_s=10.0,
        auto=False,  # a BMC is asked only when the operator says so
        platform_meter=True,
    ),
    SourceSpec(
        "redfish",
        SourceRole.MEASURES,
        frozenset({Component.PLATFORM}),
        lambda _ctx, settings: redfish.RedfishSensor(settings),
        redfish.RedfishSettings,
        period_s=10.0,
        auto=False,
        platform_meter=True,
    ),
    SourceSpec(
        "model",
        SourceRole.MODELS,
        _CPU_LIKE,
        lambda ctx, settings: model.ModelSensor(ctx.roots, settings, ctx.uncovered, ctx.opener),
        model.ModelSettings,
    ),
)

# psys (rapl's platform domain) already contains the CPU packages and DRAM. A platform meter
# (platform_meter) contains everything: it is reconciled with the components, never summed.
CONTAINED_IN = {Component.PLATFORM: _CPU_LIKE}
CPU_LIKE = _CPU_LIKE


def spec_of(name: str) -> SourceSpec:
    for spec in SOURCES:
        if spec.name == name:
            return spec
    raise KeyError(name)


def source_names() -> tuple[str, ...]:
    return tuple(spec.name for spec in SOURCES)


def platform_meter_sources() -> tuple[str, ...]:
    """Sources whose platform devices meter the whole server, in order of preference: when
    several are found, the first defines node energy and the others are shown beside it."""
    return tuple(spec.name for spec in SOURCES if spec.platform_meter)


def modelled_sources() -> frozenset[str]:
    return frozenset(spec.name for spec in SOURCES if spec.role is SourceRole.MODELS)
