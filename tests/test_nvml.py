"""The NVML sensor through the real pynvml binding, against the fake libnvidia-ml.so.1."""

from __future__ import annotations

import ctypes.util
import importlib
import subprocess
import time
from collections import Counter
from pathlib import Path

import pytest

from carbonscope.exporters.prometheus import render
from carbonscope.sensors.base import Component, DeviceKey, SourceStatus
from carbonscope.sensors.bounded import DeadlineSensor
from carbonscope.sensors.nvml import FACTS_PERIOD_S, NvmlSensor
from tests.conftest import MonitorFactory, require_tool
from tests.daemon import Daemon
from tests.fakes.clock import ManualClock
from tests.fakes.nvml import (
    GPU_IS_LOST,
    HANG,
    NO_PERMISSION,
    NOT_SUPPORTED,
    FakeGpu,
    FakeNvml,
)
from tests.fakes.powercap import two_socket_server


def gpu_key(index: int) -> DeviceKey:
    return DeviceKey(Component.GPU, f"gpu{index}", "nvml")


def statuses(snapshot) -> dict[str, SourceStatus]:  # type: ignore[no-untyped-def]
    return {s.device: s.status for s in snapshot.statuses if s.source == "nvml"}


def energy(snapshot) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {d.key.device: d.energy_uj for d in snapshot.devices if d.key.source == "nvml"}


def test_energy_counter_in_mj_becomes_exact_joules(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    fake_nvml.gpus = [
        FakeGpu(energy_mj=5_000_000),
        FakeGpu(energy_mj=7_000_000, mig=True, mig_count=2),
    ]
    fake_nvml.write()
    monitor = make_monitor(NvmlSensor())
    monitor.sample()
    fake_nvml.gpus[0].energy_mj += 300_001
    fake_nvml.gpus[1].energy_mj += 150_002
    fake_nvml.write()
    clock.advance(1.0)
    snapshot = monitor.sample()
    assert energy(snapshot) == {"gpu0": 300_001_000, "gpu1": 150_002_000}
    assert snapshot.node_energy_uj == 450_003_000
    [gpu0, gpu1] = snapshot.gpus
    assert (gpu0.energy_method, gpu0.model) == ("counter", "NVIDIA H100 80GB HBM3")
    assert gpu0.mig_instances == ()
    assert len(gpu1.mig_instances) == 2  # listed, while energy stays whole-GPU
    assert gpu1.utilization_ratio is None  # utilisation is not reported in MIG mode


def test_without_energy_counter_power_is_integrated_within_1_percent(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    fake_nvml.gpus = [
        FakeGpu(power_mw=312_500, errors={"nvmlDeviceGetTotalEnergyConsumption": NOT_SUPPORTED})
    ]
    fake_nvml.write()
    monitor = make_monitor(NvmlSensor())
    monitor.sample()
    for _ in range(20):
        clock.advance(0.5)
        snapshot = monitor.sample()
    true_uj = 312_500 * 1000 * 10  # 312.5 W for 10 s
    assert energy(snapshot)["gpu0"] == pytest.approx(true_uj, rel=0.01)
    assert snapshot.gpus[0].energy_method == "integrated"


@pytest.mark.faults
def test_gpu_lost_mid_run_goes_error_others_count_and_it_comes_back(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    fake_nvml.gpus = [FakeGpu(energy_mj=1000) for _ in range(3)]
    fake_nvml.write()
    monitor = make_monitor(NvmlSensor())
    monitor.sample()

    def step(lost: bool) -> object:
        for gpu in fake_nvml.gpus:
            gpu.energy_mj += 100_000
        fake_nvml.gpus[1].errors = {"*": GPU_IS_LOST} if lost else {}
        fake_nvml.write()
        clock.advance(1.0)
        return monitor.sample()

    lost = step(lost=True)
    assert statuses(lost) == {
        "gpu0": SourceStatus.OK,
        "gpu1": SourceStatus.ERROR,
        "gpu2": SourceStatus.OK,
    }
    assert energy(lost) == {"gpu0": 100_000_000, "gpu1": 0, "gpu2": 100_000_000}
    back = step(lost=False)
    assert statuses(back)["gpu1"] is SourceStatus.OK
    # the counter kept running while the GPU was unreachable: nothing lost once it is back
    assert energy(back) == {"gpu0": 200_000_000, "gpu1": 200_000_000, "gpu2": 200_000_000}


@pytest.mark.faults
def test_a_hung_nvml_call_costs_a_status_never_a_sample_nor_a_joule(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    fake_nvml.gpus = [FakeGpu(energy_mj=1000) for _ in range(2)]
    fake_nvml.write()
    monitor = make_monitor(DeadlineSensor(NvmlSensor(), timeout_s=0.2))
    monitor.sample()

    def add_energy(hang: bool) -> None:
        for gpu in fake_nvml.gpus:
            gpu.energy_mj += 100_000
        fake_nvml.gpus[1].errors = {"nvmlDeviceGetTotalEnergyConsumption": HANG} if hang else {}
        fake_nvml.write()
        clock.advance(1.0)

    try:
        add_energy(hang=True)
        started = time.monotonic()
        hung = monitor.sample()
        # Without the deadline this sample would wait for as long as the driver hangs.
        assert time.monotonic() - started < 5.0
        assert statuses(hung) == {"gpu0": SourceStatus.ERROR, "gpu1": SourceStatus.ERROR}
        (reason,) = {s.reason for s in hung.statuses if s.source == "nvml"}
        assert reason.startswith("read timed out after 0.2s")
        still = monitor.sample()  # the call is still hanging: no second call is started
        assert all("still running" in s.reason for s in still.statuses if s.source == "nvml")
        assert energy(still) == {"gpu0": 0, "gpu1": 0}
    finally:
        add_energy(hang=False)  # the driver answers again: the hung call returns
    deadline = time.monotonic() + 10
    while statuses(back := monitor.sample()) != {"gpu0": SourceStatus.OK, "gpu1": SourceStatus.OK}:
        assert time.monotonic() < deadline, back.statuses
        time.sleep(0.02)
    # Both counters ran on while NVML hung: the first good read counts the whole gap, once.
    assert energy(back) == {"gpu0": 200_000_000, "gpu1": 200_000_000}
    assert back.node_energy_uj == 400_000_000


def test_a_hung_nvml_init_is_an_error_status_and_the_agent_carries_on(
    fake_nvml: FakeNvml,
) -> None:
    fake_nvml.library_errors = {"nvmlInitWithFlags": HANG}
    fake_nvml.write()
    sensor = DeadlineSensor(NvmlSensor(), timeout_s=0.1, discovery_timeout_s=0.3)
    try:
        found = sensor.discover()
    finally:
        fake_nvml.library_errors = {}
        fake_nvml.write()
    assert not found.devices
    assert [(s.device, s.status) for s in found.statuses] == [("all", SourceStatus.ERROR)]
    assert found.statuses[0].reason == "discovery timed out after 0.3s"


class CountingBinding:
    """The real pynvml module, counting the NVML functions called through it."""

    def __init__(self) -> None:
        self._module = importlib.import_module("pynvml")
        self.calls: Counter[str] = Counter()

    def __getattr__(self, name: str) -> object:
        value = getattr(self._module, name)
        if name.startswith("nvml") and callable(value):

            def counted(*args: object) -> object:
                self.calls[name] += 1
                return value(*args)

            return counted
        return value


def test_gpu_facts_are_read_on_a_slow_period_and_measurements_every_sample(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    fake_nvml.gpus = [FakeGpu(energy_mj=1000, limit_mw=400_000) for _ in range(2)]
    fake_nvml.write()
    binding = CountingBinding()
    monitor = make_monitor(NvmlSensor(lambda: binding, clock_s=lambda: clock() / 1e9))  # type: ignore[arg-type,return-value]
    for _ in range(10):
        monitor.sample()
        clock.advance(1.0)
    per_sample = {"nvmlDeviceGetUtilizationRates", "nvmlDeviceGetMemoryInfo"}
    per_sample |= {"nvmlDeviceGetComputeRunningProcesses"}
    assert all(binding.calls[name] == 2 * 10 for name in per_sample), binding.calls
    # every sample, plus once per GPU at discovery (does it have the counter?)
    assert binding.calls["nvmlDeviceGetTotalEnergyConsumption"] == 2 * 10 + 2
    assert binding.calls["nvmlDeviceGetEnforcedPowerLimit"] == 2  # once per GPU in 10 s
    assert binding.calls["nvmlDeviceGetMigMode"] == 2
    fake_nvml.gpus[0].limit_mw = 300_000  # an operator lowers the limit (nvidia-smi -pl)
    fake_nvml.write()
    assert monitor.sample().gpus[0].power_limit_w == 400.0  # not yet re-read
    clock.advance(FACTS_PERIOD_S)
    assert monitor.sample().gpus[0].power_limit_w == 300.0
    assert binding.calls["nvmlDeviceGetEnforcedPowerLimit"] == 4


def test_not_supported_utilisation_leaves_everything_else(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    fake_nvml.gpus = [
        FakeGpu(
            energy_mj=0,
            limit_mw=400_000,
            mem_used=2**30,
            processes=[(4242, 2**28, 70), (4343, 2**20, 30)],
            errors={"nvmlDeviceGetUtilizationRates": NOT_SUPPORTED},
        )
    ]
    fake_nvml.write()
    monitor = make_monitor(NvmlSensor())
    monitor.sample()
    fake_nvml.gpus[0].energy_mj = 50_000
    fake_nvml.write()
    clock.advance(1.0)
    snapshot = monitor.sample()
    [gpu] = snapshot.gpus
    assert statuses(snapshot) == {"gpu0": SourceStatus.OK}
    assert energy(snapshot) == {"gpu0": 50_000_000}
    assert gpu.utilization_ratio is None
    assert gpu.power_limit_w == 400.0
    assert gpu.memory_used_bytes == 2**30
    assert [(p.pid, p.sm_utilization_pct) for p in gpu.processes] == [(4242, 70), (4343, 30)]


def test_no_permission_and_driver_reload(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    fake_nvml.gpus = [FakeGpu(energy_mj=9_000_000), FakeGpu(energy_mj=1000)]
    fake_nvml.write()
    monitor = make_monitor(NvmlSensor())
    monitor.sample()
    fake_nvml.gpus[0].energy_mj = 2_000  # driver reload: the counter restarts
    fake_nvml.gpus[1].errors = {"nvmlDeviceGetTotalEnergyConsumption": NO_PERMISSION}
    fake_nvml.write()
    clock.advance(1.0)
    snapshot = monitor.sample()
    assert energy(snapshot)["gpu0"] == 0  # a reset counts nothing, never negative
    # the drop is held until the next read tells a glitch from a reset, and the status says so
    assert statuses(snapshot) == {
        "gpu0": SourceStatus.ERROR,
        "gpu1": SourceStatus.PERMISSION_DENIED,
    }
    fake_nvml.gpus[0].energy_mj = 12_000  # the new trajectory continues: a reset, confirmed
    fake_nvml.write()
    clock.advance(1.0)
    confirmed = monitor.sample()
    assert energy(confirmed)["gpu0"] == 10_000_000  # counted from the held value on
    assert statuses(confirmed)["gpu0"] is SourceStatus.OK


def test_gpu_metrics_pass_promtool(
    fake_nvml: FakeNvml, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    promtool = require_tool("promtool")
    fake_nvml.gpus = [
        FakeGpu(energy_mj=1, mig=True, mig_count=1),
        FakeGpu(energy_mj=1, util_gpu=55),
    ]
    fake_nvml.write()
    monitor = make_monitor(NvmlSensor())
    monitor.sample()
    clock.advance(1.0)
    exposition = render(monitor.sample())
    text = exposition.decode()
    assert 'carbonscope_gpu_utilization_ratio{device="gpu1"} 0.55' in text
    assert 'energy_method="counter"' in text
    result = subprocess.run(
        [promtool, "check", "metrics"], input=exposition, capture_output=True, timeout=30
    )
    assert result.returncode == 0, result.stdout.decode() + result.stderr.decode()


def test_binding_missing_is_not_present() -> None:
    def missing() -> object:
        raise ImportError("No module named 'pynvml'")

    discovery = NvmlSensor(missing).discover()  # type: ignore[arg-type]
    assert discovery.devices == ()
    assert discovery.statuses[0].status is SourceStatus.NOT_PRESENT


@pytest.mark.e2e
def test_daemon_without_the_library_is_up_and_says_not_present(tmp_path: Path) -> None:
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("this host has a real NVIDIA driver: the library cannot be made to be missing")
    sysfs = tmp_path / "sys"
    two_socket_server(sysfs)
    daemon = Daemon(
        ["--sysfs-root", str(sysfs), "--interval", "100ms"],
        env={"CARBONSCOPE_CONFIG": "", "LD_LIBRARY_PATH": str(tmp_path)},
        workdir=tmp_path,
    )
    try:
        daemon.wait_ready()
        samples = daemon.samples_after(1)
        key = (
            "carbonscope_source_status",
            (("device", "all"), ("source", "nvml"), ("status", "not_present")),
        )
        assert samples[key] == 1
        # the daemon carries on: RAPL is read and accounted alongside the absent NVML
        assert samples[("carbonscope_source_up", (("device", "psys"), ("source", "rapl")))] == 1
        assert ("carbonscope_node_energy_joules_total", ()) in samples
    finally:
        assert daemon.stop() == 0, daemon.log_text()


@pytest.mark.e2e
def test_daemon_with_eight_gpus_exports_exact_increments(
    nvml_library: Path, tmp_path: Path
) -> None:
    fake = FakeNvml(
        nvml_library, tmp_path / "nvml.state", gpus=[FakeGpu(energy_mj=10**6 * i) for i in range(8)]
    )
    fake.write()
    sysfs = tmp_path / "sys"
    tree = two_socket_server(sysfs, with_psys=False)
    daemon = Daemon(
        ["--sysfs-root", str(sysfs), "--interval", "100ms"],
        env={"CARBONSCOPE_CONFIG": "", "CARBONSCOPE_SENSORS__ENABLE": "rapl,nvml", **fake.env},
        workdir=tmp_path,
    )
    try:
        daemon.wait_ready()
        before = daemon.samples_after(1)
        for i, gpu in enumerate(fake.gpus):
            gpu.energy_mj += 1000 * (i + 1) + 7
        fake.write()
        tree.zones["intel-rapl:0"].advance(42_000_000)
        time.sleep(0.2)
        after = daemon.samples_after(2)
        gpu_series = sorted(
            (dict(labels)["device"], value - before[(name, labels)])
            for (name, labels), value in after.items()
            if name == "carbonscope_energy_joules_total" and dict(labels)["component"] == "gpu"
        )
        assert len(gpu_series) == 8
        for device, gained in gpu_series:
            i = int(device.removeprefix("gpu"))
            assert gained == pytest.approx((1000 * (i + 1) + 7) / 1000, abs=1e-9)
        node = ("carbonscope_node_energy_joules_total", ())
        gpu_joules = sum((1000 * (i + 1) + 7) / 1000 for i in range(8))
        assert after[node] - before[node] == pytest.approx(42.0 + gpu_joules, abs=1e-9)
        info = [labels for (name, labels) in after if name == "carbonscope_gpu_info"]
        assert len(info) == 8
    finally:
        assert daemon.stop() == 0, daemon.log_text()
