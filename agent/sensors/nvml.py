"""NVIDIA GPUs through NVML, using the official binding (nvidia-ml-py, module ``pynvml``).

The binding is imported and NVML initialised lazily, at discovery: a machine without the
library or the driver reports ``not_present`` with the reason and the agent carries on.
Energy comes from ``nvmlDeviceGetTotalEnergyConsumption`` (mJ since driver load, Volta+);
a GPU without it falls back to integrating ``nvmlDeviceGetPowerUsage`` (mW), and says so
(``energy_method="integrated"``). NVML errors map to statuses per GPU and per function:
NOT_SUPPORTED drops that one reading, GPU_IS_LOST marks the GPU ``error`` and it is looked
for again on each later sample. Power and energy are per physical GPU, never per MIG instance.
Energy, utilisation, memory use and processes are read every sample; the power limit and the
MIG layout every FACTS_PERIOD_S and whenever a GPU comes back.
The catalogue wraps this reader in a DeadlineSensor (bounded.py): a call that hangs in the
driver costs a status, never a sample.
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

from carbonscope.sensors.base import (
    SOURCE_WIDE,
    Component,
    CounterReading,
    DeviceKey,
    DeviceStatus,
    Discovery,
    GpuDetails,
    GpuProcess,
    PowerKind,
    PowerReading,
    Reading,
    SensorRead,
    SourceStatus,
)

log = logging.getLogger(__name__)

SOURCE = "nvml"
# NVML's energy counter is an unsigned 64-bit count of mJ: it never wraps in practice, so any
# drop is a reset (driver reload) and the accounting counts nothing for that interval.
GPU_ENERGY_RANGE_UJ = (2**64 - 1) * 1000

# Facts that change only when an operator changes them (the enforced power limit, the MIG
# layout) are re-read this often, and whenever the GPU comes back; energy, utilisation, memory
# use and processes are read every sample.
FACTS_PERIOD_S = 60.0

# nvml.h return codes
NOT_SUPPORTED, NO_PERMISSION, NOT_FOUND = 3, 4, 6
DRIVER_NOT_LOADED, LIBRARY_NOT_FOUND, FUNCTION_NOT_FOUND, GPU_IS_LOST = 9, 12, 13, 15
_STATUS_OF_CODE = {
    NOT_SUPPORTED: SourceStatus.UNSUPPORTED,
    FUNCTION_NOT_FOUND: SourceStatus.UNSUPPORTED,
    NO_PERMISSION: SourceStatus.PERMISSION_DENIED,
    DRIVER_NOT_LOADED: SourceStatus.NOT_PRESENT,
    LIBRARY_NOT_FOUND: SourceStatus.NOT_PRESENT,
}
_NOT_PRESENT_REASON = {
    LIBRARY_NOT_FOUND: "no NVIDIA driver: libnvidia-ml.so.1 not found",
    DRIVER_NOT_LOADED: "NVIDIA driver not loaded",
}


def import_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


def _code(exc: BaseException) -> int:
    value = getattr(exc, "value", None)
    return value if isinstance(value, int) else 999


def _text(value: object) -> str:
    return value.decode(errors="replace") if isinstance(value, bytes) else str(value)


@dataclass
class _Gpu:
    index: int
    key: DeviceKey
    handle: Any = None
    uuid: str = ""
    model: str = ""
    energy_method: str = "counter"
    last_process_sample_us: int = 0
    sm_utilization: dict[int, int] = field(default_factory=dict)
    facts_read_at: float | None = None  # monotonic s; None: read them at the next sample
    power_limit_w: float | None = None
    mig_instances: tuple[str, ...] = ()


class NvmlSensor:
    name = SOURCE

    def __init__(
        self,
        load_binding: Callable[[], ModuleType] = import_pynvml,
        clock_s: Callable[[], float] = time.monotonic,
    ) -> None:
        self._load_binding = load_binding
        self._clock_s = clock_s
        self._nvml: Any = None
        self._gpus: list[_Gpu] = []

    # -- discovery -----------------------------------------------------------------------
    def discover(self) -> Discovery:
        try:
            nvml = self._load_binding()
        except ImportError as exc:
            return self._absent(SourceStatus.NOT_PRESENT, f"nvidia-ml-py not installed ({exc})")
        try:
            nvml.nvmlInit()
            count = int(nvml.nvmlDeviceGetCount())
            driver = _text(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError as exc:
            code = _code(exc)
            status = _STATUS_OF_CODE.get(code, SourceStatus.ERROR)
            return self._absent(status, _NOT_PRESENT_REASON.get(code, f"nvmlInit failed: {exc}"))
        self._nvml = nvml
        if count == 0:
            return self._absent(SourceStatus.NOT_PRESENT, "NVML found no GPU")
        self._gpus = [_Gpu(i, DeviceKey(Component.GPU, f"gpu{i}", SOURCE)) for i in range(count)]
        details = [f"driver {driver}"]
        for gpu in self._gpus:
            try:
                self._attach(gpu)
            except nvml.NVMLError as exc:
                details.append(f"{gpu.key.device}: not readable at start ({exc}); will retry")
                continue
            details.append(f"{gpu.key.device}: {gpu.model} {gpu.uuid}, energy {gpu.energy_method}")
        return Discovery(devices=tuple(g.key for g in self._gpus), details=tuple(details))

    @staticmethod
    def _absent(status: SourceStatus, reason: str) -> Discovery:
        return Discovery(statuses=(DeviceStatus(SOURCE, SOURCE_WIDE, status, reason),))

    def _attach(self, gpu: _Gpu) -> None:
        """Get the GPU's handle, identity and energy method; raises NVMLError."""
        nvml = self._nvml
        handle = nvml.nvmlDeviceGetHandleByIndex(gpu.index)
        uuid = _text(nvml.nvmlDeviceGetUUID(handle))
        if gpu.uuid and uuid != gpu.uuid:
            log.warning(
                "%s is now %s (was %s): counting it as the same slot",
                gpu.key.device,
                uuid,
                gpu.uuid,
            )
        gpu.uuid, gpu.model = uuid, _text(nvml.nvmlDeviceGetName(handle))
        gpu.facts_read_at = None
        try:
            nvml.nvmlDeviceGetTotalEnergyConsumption(handle)
            gpu.energy_method = "counter"
        except nvml.NVMLError as exc:
            if _code(exc) not in (NOT_SUPPORTED, FUNCTION_NOT_FOUND):
                raise
            gpu.energy_method = "integrated"
        gpu.handle = handle

    # -- sampling ------------------------------------------------------------------------
    def read(self) -> SensorRead:
        readings: list[Reading] = []
        statuses: list[DeviceStatus] = []
        details: list[GpuDetails] = []
        for gpu in self._gpus:
            reading, status = self._read_energy(gpu)
            statuses.append(status)
            if reading is None:
                continue
            readings.append(reading)
            details.append(self._details(gpu))
        return SensorRead(tuple(readings), tuple(statuses), tuple(details))

    def _status(self, gpu: _Gpu, status: SourceStatus, reason: str = "") -> DeviceStatus:
        return DeviceStatus(SOURCE, gpu.key.device, status, reason)

    def _read_energy(self, gpu: _Gpu) -> tuple[Reading | None, DeviceStatus]:
        nvml = self._nvml
        try:
            if gpu.handle is None:
                self._attach(gpu)
                log.info("%s is back (%s)", gpu.key.device, gpu.uuid)
            if gpu.energy_method == "counter":
                energy_mj = int(nvml.nvmlDeviceGetTotalEnergyConsumption(gpu.handle))
                reading: Reading = CounterReading(gpu.key, energy_mj * 1000, GPU_ENERGY_RANGE_UJ)
            else:
                power_mw = int(nvml.nvmlDeviceGetPowerUsage(gpu.handle))
                reading = PowerReading(gpu.key, power_mw * 1000, PowerKind.INSTANT)
        except nvml.NVMLError as exc:
            code = _code(exc)
            if code == GPU_IS_LOST or gpu.handle is None:
                gpu.handle = None
                return None, self._status(gpu, SourceStatus.ERROR, f"GPU unreachable: {exc}")
            return None, self._status(gpu, _STATUS_OF_CODE.get(code, SourceStatus.ERROR), str(exc))
        return reading, self._status(gpu, SourceStatus.OK)

    def _optional(self, call: Callable[[], Any]) -> Any:
        """A secondary reading: None when this GPU or driver does not offer it."""
        try:
            return call()
        except self._nvml.NVMLError as exc:
            log.debug("optional NVML call failed: %s", exc)
            return None

    def _details(self, gpu: _Gpu) -> GpuDetails:
        nvml, handle = self._nvml, gpu.handle
        now = self._clock_s()
        if gpu.facts_read_at is None or now - gpu.facts_read_at >= FACTS_PERIOD_S:
            limit_mw = self._optional(lambda: nvml.nvmlDeviceGetEnforcedPowerLimit(handle))
            gpu.power_limit_w = limit_mw / 1000 if limit_mw is not None else None
            gpu.mig_instances = self._mig_instances(handle)
            gpu.facts_read_at = now
        utilization = self._optional(lambda: nvml.nvmlDeviceGetUtilizationRates(handle))
        memory = self._optional(lambda: nvml.nvmlDeviceGetMemoryInfo(handle))
        return GpuDetails(
            device=gpu.key.device,
            uuid=gpu.uuid,
            model=gpu.model,
            energy_method=gpu.energy_method,
            power_limit_w=gpu.power_limit_w,
            utilization_ratio=utilization.gpu / 100 if utilization is not None else None,
            memory_used_bytes=int(memory.used) if memory is not None else None,
            memory_total_bytes=int(memory.total) if memory is not None else None,
            mig_instances=gpu.mig_instances,
            processes=self._processes(gpu),
        )

    def _mig_instances(self, handle: Any) -> tuple[str, ...]:
        nvml = self._nvml
        mode = self._optional(lambda: nvml.nvmlDeviceGetMigMode(handle))
        if not mode or mode[0] != 1:
            return ()
        uuids = []
        for index in range(
            self._optional(lambda: nvml.nvmlDeviceGetMaxMigDeviceCount(handle)) or 0
        ):
            try:
                mig = nvml.nvmlDeviceGetMigDeviceHandleByIndex(handle, index)
                uuids.append(_text(nvml.nvmlDeviceGetUUID(mig)))
            except nvml.NVMLError as exc:
                if _code(exc) != NOT_FOUND:
                    log.debug("MIG device %d: %s", index, exc)
        return tuple(uuids)

    def _processes(self, gpu: _Gpu) -> tuple[GpuProcess, ...]:
        nvml = self._nvml
        running = (
            self._optional(lambda: nvml.nvmlDeviceGetComputeRunningProcesses(gpu.handle)) or []
        )
        try:
            samples = nvml.nvmlDeviceGetProcessUtilization(gpu.handle, gpu.last_process_sample_us)
        except nvml.NVMLError as exc:
            if _code(exc) != NOT_FOUND:  # NOT_FOUND: no new samples since the last call
                gpu.sm_utilization.clear()
            samples = []
        for sample in samples:
            gpu.sm_utilization[int(sample.pid)] = int(sample.smUtil)
            gpu.last_process_sample_us = max(gpu.last_process_sample_us, int(sample.timeStamp))
        pids = {int(p.pid) for p in running}
        gpu.sm_utilization = {pid: sm for pid, sm in gpu.sm_utilization.items() if pid in pids}
        return tuple(
            GpuProcess(int(p.pid), p.usedGpuMemory, gpu.sm_utilization.get(int(p.pid)))
            for p in running
        )
