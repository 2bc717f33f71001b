"""Reconciliation: a platform meter defines node energy; the part the components leave
unmeasured is exported and attributed by the measured shares, and every bucket still sums.

End to end on fake RAPL (150 W package + 50 W DRAM), a fake NVML GPU (300 W, all of it the
job's) and a fake ipmitool reading 620 W, polled every 10 s: node power 620 W, 120 W
unmeasured, node energy following DCMI exactly, and the job's 80 % of the measured energy
giving it exactly 80 % of the unmeasured part.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import pytest

from carbonscope.accounting.attribution import (
    IDLE,
    SYSTEM,
    Bucket,
    IdlePolicy,
    OverheadShares,
    Recipient,
)
from carbonscope.accounting.node import UNMEASURED
from carbonscope.accounting.reconcile import Reconciler
from carbonscope.exporters.prometheus.collector import render
from carbonscope.jobs.registry import JobsSettings
from carbonscope.jobs.validation import JobRequest
from carbonscope.sensors.base import Component, DeviceKey, SourceStatus
from carbonscope.sensors.ipmi import IpmiSensor
from carbonscope.sensors.nvml import NvmlSensor
from carbonscope.sensors.polled import PolledSensor
from carbonscope.snapshot import Snapshot
from tests.conftest import MonitorFactory, assert_promtool_clean
from tests.daemon import Daemon
from tests.fakes.clock import ManualClock
from tests.fakes.ipmitool import FakeIpmitool
from tests.fakes.nvml import FakeGpu, FakeNvml
from tests.fakes.powercap import FakePowercap
from tests.test_job_registry import USER, World, buckets

DCMI = DeviceKey(Component.PLATFORM, "dcmi", "ipmi")


def device(snap: Snapshot, key: DeviceKey) -> int:
    return next(d.energy_uj for d in snap.devices if d.key == key)


@pytest.fixture
def ipmitool(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeIpmitool:
    fake = FakeIpmitool(tmp_path)
    monkeypatch.setenv("PATH", fake.path_env())
    return fake


def test_a_dcmi_meter_defines_node_energy_and_a_job_carries_its_share_of_the_rest(
    tmp_path: Path,
    make_monitor: MonitorFactory,
    clock: ManualClock,
    fake_nvml: FakeNvml,
    ipmitool: FakeIpmitool,
) -> None:
    ipmitool.reads(620)
    fake_nvml.gpus = [FakeGpu(energy_mj=1_000_000)]
    fake_nvml.write()
    meter = PolledSensor(IpmiSensor(), period_s=10.0, clock_ns=clock)
    world = World(
        tmp_path,
        make_monitor,
        clock,
        JobsSettings(idle_policy=IdlePolicy.NONE),
        sensors=(NvmlSensor(), meter),
    )
    world.spawn(10)
    job = world.registry.register(USER, JobRequest("train", (), (10,)))
    fake_nvml.gpus[0].processes = [(10, 2 * 1024**3, 100)]
    fake_nvml.write()
    node_at_reading: dict[int, int] = {}
    snap = None
    for second in range(1, 61):
        fake_nvml.gpus[0].energy_mj += 300_000
        fake_nvml.write()
        world.run(10, 200)  # half of the 4 CPUs' 400 ticks: half of the package and DRAM
        poll = meter.poll_once if second % 10 == 0 else None
        snap = world.second(400, 0, 150_000_000, 50_000_000, before_sample=poll)
        if poll is not None:
            node_at_reading[second] = snap.node_energy_uj
    assert snap is not None

    # The meter from its first reading (t=10 s) to its last (t=60 s): 620 W x 50 s.
    assert device(snap, DCMI) == 31_000_000_000
    for second, node_uj in node_at_reading.items():  # node energy follows DCMI exactly
        assert node_uj - node_at_reading[10] == 620_000_000 * (second - 10)
    assert device(snap, UNMEASURED) == 120_000_000 * 50  # 620 W - (200 W + 300 W)
    assert snap.node_power_w == 620.0
    assert next(d.power_w for d in snap.devices if d.key == UNMEASURED) == 120.0
    assert snap.node_energy_meter == DCMI

    # Every component's buckets sum exactly to it; the unmeasured part by measured shares.
    got = buckets(snap)
    for component, energy_uj in (
        (Component.CPU, 60 * 150_000_000),
        (Component.DRAM, 60 * 50_000_000),
        (Component.GPU, 60 * 300_000_000),
        (Component.PLATFORM, 120_000_000 * 50),
    ):
        assert sum(got.get((component, bucket), 0) for bucket in Bucket) == energy_uj
    # the job: 100 + 300 of the 500 W measured (80 %), the rest of the node 100 W (20 %)
    totals = world.registry.get(job.job_id).totals
    assert totals.energy_of(Component.PLATFORM) == 6_000_000_000 * 8 // 10
    assert got[(Component.PLATFORM, Bucket.SYSTEM)] == 6_000_000_000 * 2 // 10
    assert totals.measured_uj == totals.energy_total_uj  # a meter's part is measured

    exposition = render(snap).decode()
    assert 'carbonscope_node_energy_meter_info{device="dcmi",source="ipmi"} 1.0' in exposition
    assert (
        'carbonscope_energy_joules_total{component="platform",device="unmeasured",'
        'source="reconciled"} 6000.0' in exposition
    )
    assert 'carbonscope_node_energy_source_info{device="unmeasured",source="reconciled"} 1.0' in (
        exposition
    )
    assert 'carbonscope_node_energy_source_info{device="dcmi",source="ipmi"}' not in exposition
    assert_promtool_clean(exposition.encode())

    # The meter goes silent (stale after 30 s): node power is the components' alone, and the
    # unmeasured part neither grows nor is invented for the gap.
    for _ in range(40):
        fake_nvml.gpus[0].energy_mj += 300_000
        fake_nvml.write()
        world.run(10, 200)
        snap = world.second(400, 0, 150_000_000, 50_000_000)
    (meter_status,) = [s for s in snap.statuses if s.source == "ipmi"]
    assert meter_status.status is SourceStatus.STALE
    assert snap.node_power_w == 500.0
    assert device(snap, UNMEASURED) == 120_000_000 * 50


def run(
    reconciler: Reconciler, seconds: int, components_w: int, meter: list[tuple[int, int]]
) -> int:
    """Components at ``components_w`` for ``seconds`` (one sample a second); ``meter``:
    (second, the meter's total µJ then) readings. Returns the unmeasured total."""
    readings = dict(meter)
    previous: tuple[int, int] | None = None  # (ns, total)
    for second in range(1, seconds + 1):
        now_ns = second * 1_000_000_000
        reconciler.components(now_ns, components_w * 1_000_000)
        if second in readings:
            total = readings[second]
            delta = total - previous[1] if previous else 0
            reconciler.meter_reading(total, delta, previous[0] if previous else None, now_ns)
            previous = (now_ns, total)
    return reconciler.unmeasured_uj


def test_a_quantised_energy_counter_is_never_a_false_alarm() -> None:
    """A BMC's kWh register moves in 3.6 kJ steps: some intervals show less than the
    components, the next more; the unmeasured part follows the counter within one step."""
    reconciler = Reconciler(DCMI, UNMEASURED)
    step_uj = 3_600_000_000
    true_uj = 0
    readings = []
    for second in range(10, 601, 10):
        true_uj = 620_000_000 * (second - 10)
        readings.append((second, true_uj // step_uj * step_uj))
    unmeasured = run(reconciler, 600, 500, readings)
    assert reconciler.status().status is SourceStatus.OK
    assert 120_000_000 * 590 - step_uj <= unmeasured <= 120_000_000 * 590


def test_a_meter_reading_less_than_its_components_is_flagged_and_logged_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    reconciler = Reconciler(DCMI, UNMEASURED)
    meter = [(s, 400_000_000 * (s - 10)) for s in range(10, 121, 10)]  # 400 W under 500 W
    with caplog.at_level(logging.ERROR):
        unmeasured = run(reconciler, 120, 500, meter)
    assert unmeasured == 0  # never negative
    status = reconciler.status()
    assert status.status is SourceStatus.ERROR
    assert "read" in status.reason and "less than the components" in status.reason
    assert len([r for r in caplog.records if "less than the components" in r.message]) == 1


def test_a_missed_meter_reading_starts_a_new_comparison() -> None:
    """After a gap (the meter stale, its baseline lost), the gap is not compared: no shortfall
    from the components' energy during it."""
    reconciler = Reconciler(DCMI, UNMEASURED)
    first = [(s, 600_000_000 * (s - 10)) for s in (10, 20, 30)]
    run(reconciler, 30, 500, first)
    assert reconciler.unmeasured_uj == 100_000_000 * 20
    for second in range(31, 61):
        reconciler.components(second * 1_000_000_000, 500_000_000)
    # a fresh baseline at 60 s (covered_from None), then a reading at 70 s
    base = 12_000_000_000
    reconciler.meter_reading(base, 0, None, 60_000_000_000)
    for second in range(61, 71):
        reconciler.components(second * 1_000_000_000, 500_000_000)
    reconciler.meter_reading(base + 6_000_000_000, 6_000_000_000, 60_000_000_000, 70_000_000_000)
    assert reconciler.unmeasured_uj == 100_000_000 * 30
    assert reconciler.status().status is SourceStatus.OK


@pytest.mark.e2e
def test_the_daemon_polls_dcmi_and_exports_the_reconciled_node(
    tmp_path: Path, ipmitool: FakeIpmitool
) -> None:
    """`carbonscope run` with rapl and ipmi (a fake ipmitool, polled every 300 ms): the meter's
    series, the unmeasured rest and which meter node energy follows, on /metrics; node energy
    is the components plus the unmeasured part, each joule once."""
    sysfs = tmp_path / "sys"
    package = FakePowercap(sysfs).add_zone((0,), "package-0")
    ipmitool.reads(450)
    config = tmp_path / "carbonscope.toml"
    config.write_text(
        '[agent]\ninterval = "100ms"\n[sensors]\nenable = ["rapl", "ipmi"]\n'
        f'[sensors.ipmi]\ncommand = "{ipmitool.path}"\ninterval = "300ms"\ntimeout = "2s"\n'
    )
    daemon = Daemon(["--config", str(config), "--sysfs-root", str(sysfs)], workdir=tmp_path)
    key = "carbonscope_energy_joules_total"
    unmeasured = (
        key,
        (("component", "platform"), ("device", "unmeasured"), ("source", "reconciled")),
    )
    dcmi = (key, (("component", "platform"), ("device", "dcmi"), ("source", "ipmi")))
    rapl = (key, (("component", "cpu"), ("device", "package-0"), ("source", "rapl")))
    try:
        daemon.wait_ready()
        for _ in range(20):  # 10 J every 100 ms: about 100 W of the meter's 450 W
            package.advance(10_000_000)
            time.sleep(0.1)
        samples = daemon.wait_for(lambda s: s.get(unmeasured, 0) > 100)
        meter_info = (
            "carbonscope_node_energy_meter_info",
            (("device", "dcmi"), ("source", "ipmi")),
        )
        assert samples[meter_info] == 1.0
        assert samples[dcmi] > 0
        node = samples[("carbonscope_node_energy_joules_total", ())]
        assert node == pytest.approx(samples[rapl] + samples[unmeasured], abs=1e-6)
        assert ipmitool.calls >= 3
        text = daemon.get()
        assert (
            'carbonscope_source_status{device="unmeasured",source="reconciled",status="ok"} 1'
            in text
        )
    finally:
        daemon.stop()


def test_the_measured_shares_keep_only_running_jobs() -> None:
    """Waiting for a silent meter, the shares of jobs that ended fold into system and idle:
    what is kept is bounded by the running jobs, and nothing is lost from the split."""
    shares = OverheadShares()
    key = DeviceKey(Component.CPU, "package-0", "rapl")
    for n in range(1000):
        job = f"j-{n}"
        split = {key: {Recipient.job(job): 3, Recipient.job(job, idle_share=True): 1, SYSTEM: 1}}
        shares.add(split, frozenset({Component.CPU}), frozenset({job}))
    assert len(shares._measured) <= 4  # the last job's two, system, idle
    parts = shares.split(5_000, frozenset())
    assert sum(parts.values()) == 5_000
    assert parts == {SYSTEM: 4_000, IDLE: 1_000}  # 3+1 active of 5 per job, 1 idle share
