"""What every power source hands to the accounting layer."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

from pydantic import BaseModel, ConfigDict


class Component(StrEnum):
    CPU = "cpu"
    DRAM = "dram"
    GPU = "gpu"
    PLATFORM = "platform"


class SourceStatus(StrEnum):
    OK = "ok"
    PERMISSION_DENIED = "permission_denied"
    NOT_PRESENT = "not_present"
    UNSUPPORTED = "unsupported"
    ERROR = "error"
    STALE = "stale"


class PowerKind(StrEnum):
    INSTANT = "instant"  # a point reading: integrate with the trapezoid rule
    INTERVAL_MEAN = "interval_mean"  # mean over the time since the previous read: P x dt


@dataclass(frozen=True, order=True)
class DeviceKey:
    component: Component
    device: str
    source: str


@dataclass(frozen=True)
class CounterReading:
    """A cumulative energy counter that wraps to 0 after ``max_energy_range_uj``."""

    key: DeviceKey
    energy_uj: int
    max_energy_range_uj: int
    measured_at_ns: int | None = None  # monotonic ns when measured; None: during this sample
    max_plausible_uw: int | None = None  # the device's own power ceiling; None: the default


@dataclass(frozen=True)
class PowerReading:
    key: DeviceKey
    power_uw: int
    kind: PowerKind
    measured_at_ns: int | None = None  # monotonic ns when measured; None: during this sample


Reading = CounterReading | PowerReading

SOURCE_WIDE = "all"  # the device label of a status that concerns a whole source
# A 64-bit energy accumulator (hwmon, a BMC's kWh register): a drop is a reset, never a wrap.
UNWRAPPED_RANGE_UJ = 2**63 - 1
# A whole-server meter is refused above this mean power (a rack's worth): a misread.
PLATFORM_CEILING_UW = 100_000_000_000


@dataclass(frozen=True)
class DeviceStatus:
    source: str
    device: str
    status: SourceStatus
    reason: str = ""


class SourceFailure(Exception):
    """Why a source's read failed, as the status it reports (raised and caught inside a
    source: ``read`` still returns statuses, never raises)."""

    def __init__(self, status: SourceStatus, reason: str) -> None:
        super().__init__(reason)
        self.status = status

    def status_of(self, source: str, device: str = SOURCE_WIDE) -> DeviceStatus:
        return DeviceStatus(source, device, self.status, str(self))


@dataclass(frozen=True)
class GpuProcess:
    """A compute process on a GPU, for attribution (never exported per PID)."""

    pid: int
    used_memory_bytes: int | None
    sm_utilization_pct: int | None  # None when NVML has no per-process samples


@dataclass(frozen=True)
class GpuDetails:
    """What a GPU is and how busy it is, besides its energy."""

    device: str  # "gpu0"
    uuid: str
    model: str
    energy_method: str  # "counter" (NVML total energy) or "integrated" (power x time)
    power_limit_w: float | None = None
    utilization_ratio: float | None = None
    memory_used_bytes: int | None = None
    memory_total_bytes: int | None = None
    mig_instances: tuple[str, ...] = ()  # MIG device UUIDs when MIG is enabled
    processes: tuple[GpuProcess, ...] = ()


@dataclass(frozen=True)
class SensorRead:
    readings: tuple[Reading, ...] = ()
    statuses: tuple[DeviceStatus, ...] = ()
    gpus: tuple[GpuDetails, ...] = ()


@dataclass(frozen=True)
class SensorRoots:
    """Where the kernel's files are: injectable so tests and containers can point elsewhere."""

    sysfs: Path = Path("/sys")
    procfs: Path = Path("/proc")


@dataclass(frozen=True)
class Discovery:
    """What a source found at start-up: the devices it will report, and why others are absent."""

    devices: tuple[DeviceKey, ...] = ()
    statuses: tuple[DeviceStatus, ...] = ()
    details: tuple[str, ...] = field(default_factory=tuple)
    skipped: tuple[tuple[str, int], ...] = ()  # (reason, how many) of what it found and left out
    # a model's estimates: (component, relative half-width: 0.4 is ±40 %)
    uncertainty: tuple[tuple[Component, float], ...] = ()


class Sensor(Protocol):
    """A power source. ``read`` reports per-device failures as statuses and does not raise."""

    name: str

    def discover(self) -> Discovery: ...

    def read(self) -> SensorRead: ...


class SourceSettings(BaseModel):
    """A source's own config section, ``[sensors.<name>]`` (the catalogue names its class)."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def read_sysfs_text(path: Path) -> str:
    """The default opener: one small sysfs/procfs file as text."""
    with path.open(encoding="ascii", errors="replace") as handle:
        return handle.read()
