"""The attribution arithmetic: exact integer splits and the documented weights."""

from __future__ import annotations

import random

import pytest

from carbonscope.accounting.attribution import (
    IDLE,
    SYSTEM,
    CpuActivity,
    Recipient,
    attribute_sample,
    cpu_weights,
    gpu_weights,
    split_exact,
)
from carbonscope.sensors.base import Component, DeviceKey, GpuDetails, GpuProcess

CPU = DeviceKey(Component.CPU, "package-0", "rapl")
GPU0 = DeviceKey(Component.GPU, "gpu0", "nvml")


def test_split_exact_sums_exactly_for_random_inputs() -> None:
    rng = random.Random(7)
    for _ in range(2000):
        total = rng.randrange(0, 10**12)
        weights = {i: rng.randrange(0, 10**9) for i in range(rng.randrange(1, 12))}
        if not any(weights.values()):
            continue
        parts = split_exact(total, weights)
        assert sum(parts.values()) == total
        weight_sum = sum(weights.values())
        for key, part in parts.items():  # each part within one µJ of its exact share
            assert abs(part - total * weights[key] / weight_sum) < 1 + 1e-6 * total


def test_split_exact_gives_leftover_units_to_largest_remainders() -> None:
    assert split_exact(10, {"a": 1, "b": 1, "c": 1}) == {"a": 4, "b": 3, "c": 3}
    assert split_exact(2, {"a": 1, "b": 2}) == {"a": 1, "b": 1}
    with pytest.raises(ValueError):
        split_exact(5, {"a": 0})


def test_cpu_weights_follow_the_documented_formula() -> None:
    # 60 % busy; job A used half of the busy time, job B a quarter.
    activity = CpuActivity(busy_us=600, idle_us=400, jobs_us={"a": 300, "b": 150})
    parts = split_exact(1_000_000, cpu_weights(activity))
    assert parts[IDLE] == 400_000
    assert parts[Recipient.job("a")] == 300_000
    assert parts[Recipient.job("b")] == 150_000
    assert parts[SYSTEM] == 150_000


def test_job_time_above_busy_time_shares_all_of_active_energy() -> None:
    activity = CpuActivity(busy_us=100, idle_us=100, jobs_us={"a": 150, "b": 50})
    parts = split_exact(1000, cpu_weights(activity))
    assert parts == {IDLE: 500, Recipient.job("a"): 375, Recipient.job("b"): 125}


def test_no_activity_data_is_all_system() -> None:
    assert cpu_weights(None) == {SYSTEM: 1}
    assert cpu_weights(CpuActivity(0, 0, {})) == {SYSTEM: 1}


def gpu(*processes: GpuProcess) -> GpuDetails:
    return GpuDetails("gpu0", "GPU-0", "H100", "counter", processes=processes)


def test_gpu_energy_follows_sm_share_and_owners() -> None:
    details = gpu(GpuProcess(10, None, 30), GpuProcess(11, None, 10), GpuProcess(12, None, 60))
    weights = gpu_weights(details, {10: "a", 11: "a"})
    assert split_exact(1000, weights) == {Recipient.job("a"): 400, SYSTEM: 600}


def test_gpu_equal_split_without_per_process_utilisation() -> None:
    details = gpu(GpuProcess(10, None, None), GpuProcess(11, None, 50))
    assert split_exact(1000, gpu_weights(details, {10: "a", 11: "b"})) == {
        Recipient.job("a"): 500,
        Recipient.job("b"): 500,
    }


def test_gpu_without_processes_is_idle_and_unknown_gpu_is_system() -> None:
    assert gpu_weights(gpu(), {}) == {IDLE: 1}
    assert gpu_weights(None, {}) == {SYSTEM: 1}


def test_attribute_sample_splits_every_device_exactly() -> None:
    activity = CpuActivity(busy_us=333, idle_us=667, jobs_us={"a": 111})
    details = gpu(GpuProcess(10, None, 7), GpuProcess(99, None, 5))
    result = attribute_sample({CPU: 123_456_789, GPU0: 98_765}, activity, [details], {10: "a"})
    assert sum(result[CPU].values()) == 123_456_789
    assert sum(result[GPU0].values()) == 98_765
    assert result[GPU0][Recipient.job("a")] == 98_765 * 7 // 12 + 1  # largest remainder
