"""jobs.idle_policy: how the idle part of CPU, DRAM and platform energy reaches jobs.

On fake RAPL, /proc, cgroups (a Slurm job with a cpuset) and a fake NVML, through the real
monitor and registry: the job's active and idle parts are exact, and every component's buckets
still sum exactly to its energy (docs/attribution.md has the formulas).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from carbonscope.accounting.attribution import (
    IDLE,
    Bucket,
    CpuActivity,
    IdlePolicy,
    Recipient,
    attribute_sample,
)
from carbonscope.exporters.prometheus.collector import render
from carbonscope.jobs.registry import JobsSettings
from carbonscope.jobs.run_command import summary_lines
from carbonscope.jobs.validation import JobRequest
from carbonscope.sensors.base import Component, DeviceKey, GpuDetails, GpuProcess
from carbonscope.sensors.nvml import NvmlSensor
from carbonscope.snapshot import Snapshot
from tests.conftest import MonitorFactory
from tests.fakes.cgroups import set_usage_v2, slurm_v2
from tests.fakes.clock import ManualClock
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.test_job_registry import USER, World, buckets

PACKAGE = DeviceKey(Component.CPU, "package-0", "rapl")


def sums_exactly(snapshot: Snapshot, component: Component, energy_uj: int) -> bool:
    got = buckets(snapshot)
    return sum(got.get((component, bucket), 0) for bucket in Bucket) == energy_uj


def large_node(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock, policy: IdlePolicy
) -> World:
    """64 CPUs: one second of all of them is 6,400 ticks."""
    return World(tmp_path, make_monitor, clock, JobsSettings(idle_policy=policy), threads=64)


@pytest.mark.parametrize(
    ("policy", "idle_share_uj"),
    [
        # idle energy 60 J: reserved gives the job what it held of the node, its 1 s of CPU
        # time of 64 (1/64: 0.9375 J); proportional all of it (the only job); none nothing.
        (IdlePolicy.RESERVED, 937_500),
        (IdlePolicy.PROPORTIONAL, 60_000_000),
        (IdlePolicy.NONE, 0),
    ],
)
def test_a_lone_single_threaded_job_on_a_large_node(
    tmp_path: Path,
    make_monitor: MonitorFactory,
    clock: ManualClock,
    policy: IdlePolicy,
    idle_share_uj: int,
) -> None:
    world = large_node(tmp_path, make_monitor, clock, policy)
    world.spawn(10)
    job = world.registry.register(USER, JobRequest("train", (), (10,)))
    world.second(0, 0, 0, 0)  # the baseline after registration
    world.run(10, 100)  # 1 s of one CPU
    snap = world.second(busy=400, idle=6000, package_uj=64_000_000, dram_uj=6_400_000)
    totals = world.registry.get(job.job_id).totals
    active_cpu, active_dram = 1_000_000, 100_000  # 100 of the 6,400 ticks
    assert totals.energy_of(Component.CPU) == active_cpu + idle_share_uj
    assert dict(totals.idle_uj).get(Component.CPU, 0) == idle_share_uj
    assert dict(totals.idle_uj).get(Component.DRAM, 0) == idle_share_uj // 10
    assert totals.energy_of(Component.DRAM) == active_dram + idle_share_uj // 10
    assert buckets(snap)[(Component.CPU, Bucket.IDLE)] == 60_000_000 - idle_share_uj
    assert buckets(snap)[(Component.CPU, Bucket.SYSTEM)] == 3_000_000  # 300 busy ticks, no job
    assert sums_exactly(snap, Component.CPU, 64_000_000)
    assert sums_exactly(snap, Component.DRAM, 6_400_000)
    exposition = render(snap).decode()
    answer = world.registry.get(job.job_id).to_json(0.0)
    summary = "\n".join(summary_lines(answer))
    idle_j = (idle_share_uj + idle_share_uj // 10) / 1e6
    if idle_share_uj:
        assert (
            f'carbonscope_job_idle_energy_joules_total{{component="cpu",job_id="{job.job_id}"}} '
            f"{idle_share_uj / 1e6!r}" in exposition
        )
        assert "idle share" in summary
    else:
        assert "idle share" not in summary
    assert answer["idle_energy_joules_total"] == pytest.approx(idle_j)
    # the API's total is active + idle share, as the ledger and the metrics have it
    active_j = (active_cpu + active_dram) / 1e6
    assert answer["energy_joules_total"] == pytest.approx(active_j + idle_j)


@pytest.mark.parametrize(
    ("policy", "slurm_idle_uj", "tagged_idle_uj"),
    [
        # idle 63.8 J; the Slurm job's cpuset holds 8 CPUs of 64: 7.975 J between it and the
        # tagged job nested in it, which holds its own 0.1 s of CPU time.
        (IdlePolicy.RESERVED, 7_875_312, 99_688),  # a tie of halves: the first id gets the 1
        # proportional: by CPU time, 100 ms each
        (IdlePolicy.PROPORTIONAL, 31_900_000, 31_900_000),
        (IdlePolicy.NONE, 0, 0),
    ],
)
def test_a_slurm_job_with_a_cpuset_carries_its_reservations_share_of_idle(
    tmp_path: Path,
    make_monitor: MonitorFactory,
    clock: ManualClock,
    policy: IdlePolicy,
    slurm_idle_uj: int,
    tagged_idle_uj: int,
) -> None:
    world = large_node(tmp_path, make_monitor, clock, policy)
    slurm = slurm_v2(world.sysfs, 77)
    (slurm / "cpuset.cpus.effective").write_text("0-3,8-11\n")  # 8 CPUs (the kernel's format)
    (slurm / "cpu.max").write_text("max 100000\n")  # no quota
    world.second(0, 0, 0, 0)  # the Slurm job is found and baselined
    world.spawn(10, cgroup="0::/system.slice/slurmstepd.scope/job_77/step_0/user/task_0")
    tagged = world.registry.register(USER, JobRequest("inner", (), (10,)))
    world.second(0, 0, 0, 0)
    world.run(10, 10)  # 100 ms by the tagged process, inside the Slurm job
    set_usage_v2(slurm, 200_000)  # the cgroup's 200 ms, the tagged 100 ms included
    snap = world.second(busy=20, idle=6380, package_uj=64_000_000, dram_uj=0)
    slurm_totals = world.registry.get("slurm-77").totals
    tagged_totals = world.registry.get(tagged.job_id).totals
    assert dict(slurm_totals.idle_uj).get(Component.CPU, 0) == slurm_idle_uj
    assert dict(tagged_totals.idle_uj).get(Component.CPU, 0) == tagged_idle_uj
    # active: 64 J x 20 / 6,400 = 200 mJ, 100 ms each
    assert slurm_totals.energy_of(Component.CPU) == 100_000 + slurm_idle_uj
    assert tagged_totals.energy_of(Component.CPU) == 100_000 + tagged_idle_uj
    assert buckets(snap)[(Component.CPU, Bucket.IDLE)] == (
        63_800_000 - slurm_idle_uj - tagged_idle_uj
    )
    assert sums_exactly(snap, Component.CPU, 64_000_000)


def test_a_cpu_quota_is_a_reservation_too(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    world = large_node(tmp_path, make_monitor, clock, IdlePolicy.RESERVED)
    slurm = slurm_v2(world.sysfs, 78)
    (slurm / "cpuset.cpus.effective").write_text("0-63\n")  # the whole node: no limit
    (slurm / "cpu.max").write_text("400000 100000\n")  # 4 CPUs' worth
    world.second(0, 0, 0, 0)
    set_usage_v2(slurm, 100_000)
    world.second(busy=10, idle=6390, package_uj=64_000_000, dram_uj=0)
    idle_uj = 64_000_000 * 6390 // 6400
    assert dict(world.registry.get("slurm-78").totals.idle_uj)[Component.CPU] == (idle_uj * 4 // 64)


def test_a_gpus_energy_goes_whole_to_the_jobs_on_it_and_an_unused_gpu_stays_idle(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock, fake_nvml: FakeNvml
) -> None:
    fake_nvml.gpus = [FakeGpu(energy_mj=1_000_000), FakeGpu(energy_mj=2_000_000)]
    fake_nvml.write()
    world = World(
        tmp_path,
        make_monitor,
        clock,
        JobsSettings(idle_policy=IdlePolicy.RESERVED),
        sensors=(NvmlSensor(),),
    )
    world.spawn(10)
    job = world.registry.register(USER, JobRequest("train", (), (10,)))
    fake_nvml.gpus[0].processes = [(10, 2 * 1024**3, 90)]
    fake_nvml.write()
    world.second(0, 0, 0, 0)
    fake_nvml.gpus[0].energy_mj += 300_000
    fake_nvml.gpus[1].energy_mj += 50_000
    fake_nvml.write()
    world.run(10, 50)
    snap = world.second(busy=100, idle=300, package_uj=40_000_000, dram_uj=0)
    totals = world.registry.get(job.job_id).totals
    assert totals.energy_of(Component.GPU) == 300_000_000  # all of gpu0, none of it idle share
    assert dict(totals.idle_uj).get(Component.GPU, 0) == 0
    assert buckets(snap)[(Component.GPU, Bucket.IDLE)] == 50_000_000  # gpu1, no process
    # CPU: active 40 J x 50 / 400 = 5 J; idle 30 J x 50 / 400 = 3.75 J (its use of 4 CPUs)
    assert totals.energy_of(Component.CPU) == 5_000_000 + 3_750_000
    assert sums_exactly(snap, Component.GPU, 350_000_000)


activities = st.builds(
    CpuActivity,
    busy_us=st.integers(0, 10**7),
    idle_us=st.integers(0, 10**7),
    jobs_us=st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 10**7), max_size=6),
    held_us=st.dictionaries(st.sampled_from("abcxyz"), st.integers(0, 10**8), max_size=4),
)


@given(
    activity=activities,
    energy_uj=st.integers(1, 10**12),
    gpu_energy_uj=st.integers(1, 10**12),
    policy=st.sampled_from(IdlePolicy),
)
def test_every_policy_splits_each_device_exactly(
    activity: CpuActivity, energy_uj: int, gpu_energy_uj: int, policy: IdlePolicy
) -> None:
    gpu_key = DeviceKey(Component.GPU, "gpu0", "nvml")
    gpu = GpuDetails(
        device="gpu0",
        uuid="GPU-0",
        model="test",
        energy_method="counter",
        processes=(GpuProcess(pid=10, used_memory_bytes=None, sm_utilization_pct=None),),
    )
    none = attribute_sample({PACKAGE: energy_uj}, activity, (), {}, IdlePolicy.NONE)[PACKAGE]
    split = attribute_sample(
        {PACKAGE: energy_uj, gpu_key: gpu_energy_uj}, activity, (gpu,), {10: "a"}, policy
    )
    parts = split[PACKAGE]
    assert sum(parts.values()) == energy_uj
    assert split[gpu_key] == {Recipient.job("a"): gpu_energy_uj}  # no policy touches a GPU
    idle_shares = {r.job_id: uj for r, uj in parts.items() if r.idle_share}
    # the idle shares come out of idle, and only out of idle
    assert sum(idle_shares.values()) + parts.get(IDLE, 0) == none.get(IDLE, 0)
    assert {r: uj for r, uj in parts.items() if not r.idle_share and r != IDLE} == {
        r: uj for r, uj in none.items() if r != IDLE
    }
    if policy is IdlePolicy.NONE:
        assert not idle_shares
    if policy is IdlePolicy.PROPORTIONAL and any(v > 0 for v in activity.jobs_us.values()):
        assert parts.get(IDLE, 0) == 0  # all of it among the running jobs
    if policy is IdlePolicy.RESERVED and activity.capacity_us:
        held = {j: activity.held_us.get(j, used) for j, used in activity.jobs_us.items()}
        held |= {j: us for j, us in activity.held_us.items() if j not in held}
        for job_id, share in idle_shares.items():  # at most its held share, plus rounding
            limit = none.get(IDLE, 0) * held[job_id] / max(sum(held.values()), 1)
            assert share <= limit + 1
