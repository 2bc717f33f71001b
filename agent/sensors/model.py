"""Modelled CPU and DRAM power for machines no sensor covers (most VMs and clouds).

CPU: P = TDP x f(u), u the busy fraction of all CPUs since the previous read (/proc/stat),
f piecewise linear through (0, 0.12), (0.10, 0.32), (0.50, 0.75), (1.00, 1.00): the curve
Teads derived from SPECpower results, capped at TDP (Cloud Carbon Footprint's model is a
different one, linear between min and max watts per vCPU).
TDP: config ``sensors.model.cpu_tdp_watts``; else on bare metal the CPU model's TDP from
codecarbon's table times the socket count; else (unknown CPU, or a VM, where the host's TDP
says nothing about our slice) ``cpu_watts_per_thread`` x threads.
DRAM: installed memory (MemTotal) x ``dram_watts_per_gb`` W/GiB, constant.
Each estimate carries its uncertainty (model_uncertainty.py), exported and shown as ±.
Everything is labelled ``source="model"``; docs/sensors.md explains the numbers.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from pydantic import BeforeValidator, Field

from carbonscope.procfs import CpuTimes, parse_proc_stat
from carbonscope.sensors.base import (
    Component,
    DeviceKey,
    DeviceStatus,
    Discovery,
    PowerKind,
    PowerReading,
    SensorRead,
    SensorRoots,
    SourceSettings,
    SourceStatus,
    read_sysfs_text,
)
from carbonscope.sensors.cpu_tdp import lookup_tdp
from carbonscope.sensors.model_uncertainty import (
    curve_cpu_uncertainty,
    dram_uncertainty,
    per_thread_cpu_uncertainty,
)

SOURCE = "model"
MODEL_DEVICE = "host"
CPU_KEY = DeviceKey(Component.CPU, MODEL_DEVICE, SOURCE)
DRAM_KEY = DeviceKey(Component.DRAM, MODEL_DEVICE, SOURCE)
CPU_CURVE: tuple[tuple[float, float], ...] = ((0.0, 0.12), (0.10, 0.32), (0.50, 0.75), (1.00, 1.00))
_GIB = 1024**3


def _empty_as_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


class ModelSettings(SourceSettings):
    """``[sensors.model]``: the power model used where nothing measures."""

    # "" (the documented default) is None: the constraint applies to a number only
    cpu_tdp_watts: Annotated[
        Annotated[float, Field(gt=0)] | None, BeforeValidator(_empty_as_none)
    ] = None
    cpu_watts_per_thread: Annotated[float, Field(gt=0)] = 4.0
    dram_watts_per_gb: Annotated[float, Field(ge=0)] = 0.375


def curve_fraction(utilisation: float) -> float:
    """Fraction of TDP drawn at a busy fraction in [0, 1], by linear interpolation."""
    u = min(max(utilisation, 0.0), 1.0)
    xs = [x for x, _ in CPU_CURVE]
    i = max(1, bisect.bisect_left(xs, u))
    (x0, y0), (x1, y1) = CPU_CURVE[i - 1], CPU_CURVE[i]
    return y0 + (y1 - y0) * (u - x0) / (x1 - x0)


@dataclass(frozen=True)
class HostFacts:
    cpu_model: str
    threads: int
    sockets: int
    virtualised: bool
    mem_total_bytes: int


def parse_host_facts(cpuinfo: str, meminfo: str, threads: int) -> HostFacts:
    model = ""
    sockets: set[str] = set()
    virtualised = False
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        key, value = key.strip(), value.strip()
        if key == "model name" and not model:
            model = value
        elif key == "physical id":
            sockets.add(value)
        elif key == "flags" and "hypervisor" in value.split():
            virtualised = True
    mem_kib = 0
    for line in meminfo.splitlines():
        if line.startswith("MemTotal:"):
            mem_kib = int(line.split()[1])
            break
    return HostFacts(model, threads, max(len(sockets), 1), virtualised, mem_kib * 1024)


@dataclass(frozen=True)
class CpuBudget:
    tdp_watts: float
    explanation: str
    uncertainty: float  # relative half-width (model_uncertainty.py)


def cpu_budget(facts: HostFacts, settings: ModelSettings) -> CpuBudget:
    curve = curve_cpu_uncertainty(CPU_CURVE[0][1])
    if settings.cpu_tdp_watts is not None:
        return CpuBudget(settings.cpu_tdp_watts, "TDP from sensors.model.cpu_tdp_watts", curve)
    per_thread = CpuBudget(
        settings.cpu_watts_per_thread * facts.threads,
        f"{settings.cpu_watts_per_thread:g} W/thread x {facts.threads} threads",
        per_thread_cpu_uncertainty(settings.cpu_watts_per_thread),
    )
    if facts.virtualised:
        return dataclasses.replace(
            per_thread, explanation=per_thread.explanation + " (virtual machine)"
        )
    match = lookup_tdp(facts.cpu_model) if facts.cpu_model else None
    if match is None:
        return dataclasses.replace(
            per_thread,
            explanation=per_thread.explanation + f" (CPU {facts.cpu_model!r} not in table)",
        )
    return CpuBudget(
        match.tdp_watts * facts.sockets,
        f"TDP {match.tdp_watts:g} W x {facts.sockets} socket(s), {match.model} in cpu_power.csv"
        + ("" if match.exact else " (closest match)"),
        curve,
    )


class ModelSensor:
    """Reports mean modelled power since its previous read (``PowerKind.INTERVAL_MEAN``)."""

    name = SOURCE

    def __init__(
        self,
        roots: SensorRoots,
        settings: ModelSettings,
        components: frozenset[Component] = frozenset({Component.CPU, Component.DRAM}),
        opener: Callable[[Path], str] = read_sysfs_text,
    ) -> None:
        self._procfs = roots.procfs
        self._settings = settings
        self._components = components
        self._open = opener
        self._previous: CpuTimes | None = None
        self._budget: CpuBudget | None = None
        self._dram_uw = 0

    def discover(self) -> Discovery:
        try:
            times, threads = parse_proc_stat(self._open(self._procfs / "stat"))
            facts = parse_host_facts(
                self._open(self._procfs / "cpuinfo"), self._open(self._procfs / "meminfo"), threads
            )
        except (OSError, ValueError) as exc:
            reason = f"cannot read {self._procfs}: {exc}"
            return Discovery(
                statuses=(DeviceStatus(SOURCE, MODEL_DEVICE, SourceStatus.ERROR, reason),)
            )
        self._previous = times
        self._budget = cpu_budget(facts, self._settings)
        gib = facts.mem_total_bytes / _GIB
        self._dram_uw = round(gib * self._settings.dram_watts_per_gb * 1e6)
        details = []
        devices = []
        uncertainty: list[tuple[Component, float]] = []
        if Component.CPU in self._components:
            devices.append(CPU_KEY)
            uncertainty.append((Component.CPU, self._budget.uncertainty))
            details.append(
                f"cpu: {self._budget.explanation}; curve {CPU_CURVE}; "
                f"±{self._budget.uncertainty:.0%}"
            )
        if Component.DRAM in self._components:
            devices.append(DRAM_KEY)
            dram = dram_uncertainty(self._settings.dram_watts_per_gb)
            uncertainty.append((Component.DRAM, dram))
            details.append(
                f"dram: {gib:.1f} GiB x {self._settings.dram_watts_per_gb:g} W/GiB; ±{dram:.0%}"
            )
        return Discovery(
            devices=tuple(devices), details=tuple(details), uncertainty=tuple(uncertainty)
        )

    def read(self) -> SensorRead:
        readings: list[PowerReading] = []
        statuses: list[DeviceStatus] = []
        if Component.CPU in self._components and self._budget is not None:
            try:
                times, _threads = parse_proc_stat(self._open(self._procfs / "stat"))
            except (OSError, ValueError) as exc:
                statuses.append(
                    DeviceStatus(SOURCE, MODEL_DEVICE, SourceStatus.ERROR, f"/proc/stat: {exc}")
                )
            else:
                previous = self._previous or CpuTimes(0, 0)
                d_total = times.total - previous.total
                utilisation = (times.busy - previous.busy) / d_total if d_total > 0 else 0.0
                self._previous = times
                watts = self._budget.tdp_watts * curve_fraction(utilisation)
                readings.append(PowerReading(CPU_KEY, round(watts * 1e6), PowerKind.INTERVAL_MEAN))
        if Component.DRAM in self._components:
            readings.append(PowerReading(DRAM_KEY, self._dram_uw, PowerKind.INTERVAL_MEAN))
        if readings:
            statuses.append(
                DeviceStatus(SOURCE, MODEL_DEVICE, SourceStatus.OK, "estimate, not a measurement")
            )
        return SensorRead(tuple(readings), tuple(statuses))
