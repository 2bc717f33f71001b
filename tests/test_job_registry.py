"""The job registry on fake procfs, powercap and cgroup trees, driven by the real monitor."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner

from carbonscope.accounting.attribution import Bucket, IdlePolicy
from carbonscope.cli import cli
from carbonscope.jobs.registry import Caller, JobRegistry, JobsSettings
from carbonscope.jobs.validation import JobRequest, JobRequestError
from carbonscope.ledger import JobLedger
from carbonscope.sensors.base import Component, Sensor, SensorRoots
from carbonscope.sensors.rapl import RaplSensor
from carbonscope.snapshot import Snapshot
from tests.conftest import MonitorFactory
from tests.fakes.cgroups import set_usage_v2, slurm_v2
from tests.fakes.clock import ManualClock
from tests.fakes.intensity import SettableIntensity
from tests.fakes.powercap import FakePowercap
from tests.fakes.procfs import (
    FakeProcess,
    FakeProcfs,
    make_procfs,
    remove_process,
    write_process,
    write_uptime,
)

USER = Caller(pid=4000, uid=1000, gid=1000)
OTHER = Caller(pid=4001, uid=1001, gid=1001)
ROOT = Caller(pid=1, uid=0, gid=0)


class World:
    """One node: a package and its DRAM, /proc, cgroups, a ledger, the registry, a monitor."""

    def __init__(
        self,
        tmp_path: Path,
        make_monitor: MonitorFactory,
        clock: ManualClock,
        settings: JobsSettings | None = None,
        children_lists: bool = True,
        threads: int = 4,
        sensors: tuple[Sensor, ...] = (),
    ) -> None:
        self.tmp_path = tmp_path
        self.children_lists = children_lists  # CONFIG_PROC_CHILDREN: task/*/children files
        self.sysfs = tmp_path / "sys"
        self.clock = clock
        self.tree = FakePowercap(self.sysfs)
        self.package = self.tree.add_zone((0,), "package-0")
        self.dram = self.tree.add_zone((0, 0), "dram")
        self.procfs: FakeProcfs = make_procfs(tmp_path / "proc", threads=threads)
        self.sensors = sensors  # besides RAPL (a fake NVML's)
        self.uptime_s = 1000.0
        write_uptime(self.procfs.root, self.uptime_s)
        self.processes: dict[int, FakeProcess] = {}
        # The active split (idle energy stays idle); the idle policies: test_idle_policy.py
        self.settings = settings or JobsSettings(idle_policy=IdlePolicy.NONE)
        self.make_monitor = make_monitor
        for pid in range(9000, 9040):  # the rest of the node: sshd, journald, ...
            write_process(self.procfs.root, FakeProcess(pid, 1, uid=0), children_lists)
        self.start()

    def start(self) -> None:
        roots = SensorRoots(sysfs=self.sysfs, procfs=self.procfs.root)
        self.ledger = JobLedger(self.tmp_path / "state" / "ledger.sqlite")
        self.registry = JobRegistry(
            self.settings,
            roots,
            self.ledger,
            clock_ticks_per_s=100,
            wall_clock_s=lambda: 1_700_000_000.0 + self.clock() / 1e9,
        )
        self.monitor = self.make_monitor(
            RaplSensor(roots),
            *self.sensors,
            intensity=SettableIntensity(200.0),
            attributor=self.registry,
        )
        self.monitor.sample()

    def spawn(self, pid: int, ppid: int = 1, uid: int = 1000, cgroup: str = "0::/") -> None:
        start = int(self.uptime_s * 100)
        self.processes[pid] = FakeProcess(pid, ppid, start_ticks=start, uid=uid, cgroup=cgroup)
        write_process(self.procfs.root, self.processes[pid], self.children_lists)

    def run(self, pid: int, ticks: int) -> None:
        self.processes[pid].utime += ticks
        write_process(self.procfs.root, self.processes[pid], self.children_lists)

    def exit(self, pid: int) -> None:
        del self.processes[pid]
        remove_process(self.procfs.root, pid)

    def second(
        self,
        busy: int,
        idle: int,
        package_uj: int,
        dram_uj: int,
        before_sample: Callable[[], None] | None = None,
    ) -> Snapshot:
        """One second of the node; ``before_sample`` runs once the clock has moved (a polled
        meter's reading measured at the sample's time)."""
        self.procfs.tick(busy, idle)
        self.uptime_s += 1
        write_uptime(self.procfs.root, self.uptime_s)
        self.package.advance(package_uj)
        self.dram.advance(dram_uj)
        self.clock.advance(1.0)
        if before_sample is not None:
            before_sample()
        return self.monitor.sample()


@pytest.fixture(params=[True, False], ids=["children-lists", "full-scan"])
def world(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock, request: pytest.FixtureRequest
) -> World:
    """Every scenario twice: attribution walking the jobs' trees through the kernel's children
    lists, and on a kernel without them (the whole process table every sample)."""
    return World(tmp_path, make_monitor, clock, children_lists=request.param)


def buckets(snapshot: Snapshot) -> dict[tuple[Component, Bucket], int]:
    assert snapshot.attribution is not None
    return {(b.component, b.bucket): b.energy_uj for b in snapshot.attribution.buckets}


def test_cpu_energy_follows_busy_fraction_and_cpu_time(world: World) -> None:
    world.spawn(10)
    job = world.registry.register(USER, JobRequest("train", (("team", "nlp"),), (10,)))
    world.second(0, 0, 0, 0)  # a baseline for /proc/stat deltas after registration
    world.run(10, 30)  # 30 of the 60 busy ticks (of 100) are the job's
    snap = world.second(busy=60, idle=40, package_uj=100_000_000, dram_uj=10_000_000)
    got = buckets(snap)
    assert got[(Component.CPU, Bucket.IDLE)] == 40_000_000
    assert got[(Component.CPU, Bucket.JOBS)] == 30_000_000
    assert got[(Component.CPU, Bucket.SYSTEM)] == 30_000_000
    assert got[(Component.DRAM, Bucket.JOBS)] == 3_000_000
    record = world.registry.get(job.job_id)
    assert record.totals.energy_of(Component.CPU) == 30_000_000
    assert record.totals.energy_of(Component.DRAM) == 3_000_000
    assert record.totals.measured_uj == 33_000_000 and record.totals.modelled_uj == 0
    # 33 J x PUE 1 x 200 g/kWh
    assert record.totals.emissions.location_g == pytest.approx(33 / 3.6e6 * 200, rel=1e-12)


def test_buckets_sum_exactly_to_every_component_over_many_samples(world: World) -> None:
    world.spawn(10)
    world.registry.register(USER, JobRequest("a", (), (10,)))
    world.spawn(20, uid=1001)
    world.registry.register(OTHER, JobRequest("b", (), (20,)))
    for step in range(1, 40):
        world.run(10, step % 7)
        world.run(20, (3 * step) % 5)
        snap = world.second(
            busy=9 + step % 4,
            idle=3 + step % 5,
            package_uj=12_345_677 * step,
            dram_uj=999_999 + step,
        )
    got = buckets(snap)
    energy = {device.key.component: device.energy_uj for device in snap.devices}
    for component in (Component.CPU, Component.DRAM):
        assert sum(uj for (c, _b), uj in got.items() if c is component) == energy[component]
    jobs_total = sum(
        world.registry.get(job.job_id).totals.energy_total_uj for job in world.registry.recent()
    )
    assert jobs_total == got[(Component.CPU, Bucket.JOBS)] + got[(Component.DRAM, Bucket.JOBS)]


def test_job_ends_when_its_processes_are_gone_and_stays_exported_for_the_window(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    world = World(tmp_path, make_monitor, clock, JobsSettings(keep_finished_s=10))
    world.spawn(10)
    job = world.registry.register(USER, JobRequest("short", (), (10,)))
    world.second(1, 1, 1000, 100)
    world.exit(10)
    snap = world.second(1, 1, 1000, 100)
    assert snap.attribution is not None
    [view] = snap.attribution.jobs
    assert (view.job_id, view.running) == (job.job_id, False)
    assert not world.registry.get(job.job_id).running
    assert world.registry.get(job.job_id).outcome == "processes gone"
    for _ in range(11):
        snap = world.second(1, 1, 1000, 100)
    world.registry.flush()
    snap = world.second(1, 1, 1000, 100)
    assert snap.attribution is not None and snap.attribution.jobs == ()
    assert world.ledger.get(job.job_id) is not None  # gone from metrics, kept in the ledger


def test_exported_jobs_are_capped_running_first_then_most_energy(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    world = World(tmp_path, make_monitor, clock, JobsSettings(max_exported=3))
    for pid in range(10, 15):
        world.spawn(pid)
    ids = [
        world.registry.register(USER, JobRequest(f"j{pid}", (), (pid,))).job_id
        for pid in range(10, 15)
    ]
    world.second(0, 0, 0, 0)
    for pid, ticks in zip(range(10, 15), (1, 5, 3, 2, 4), strict=True):
        world.run(pid, ticks)
    world.second(busy=15, idle=0, package_uj=15_000_000, dram_uj=0)
    for pid in (10, 11, 12, 13):
        world.exit(pid)
    snap = world.second(0, 1, 0, 0)
    assert snap.attribution is not None
    exported = [view.job_id for view in snap.attribution.jobs]
    assert exported == [ids[4], ids[1], ids[2]]  # running; then 5 ticks, 3 ticks of energy


def test_promoted_tags_become_info_labels(world: World) -> None:
    world.spawn(10)
    world.registry.register(
        USER, JobRequest("x", (("project", "llm"), ("team", "nlp"), ("run", "7")), (10,))
    )
    snap = world.second(1, 1, 1, 1)
    assert snap.attribution is not None
    labels = zip(snap.attribution.info_labels, snap.attribution.jobs[0].info_values, strict=True)
    assert tuple(labels) == (("tag_team", "nlp"), ("tag_project", "llm"))


def test_authorisation_by_peer_uid(world: World) -> None:
    world.spawn(10, uid=0)
    with pytest.raises(JobRequestError) as refused:
        world.registry.register(USER, JobRequest("steal", (), (10,)))
    assert refused.value.status == 403
    with pytest.raises(JobRequestError) as missing:
        world.registry.register(USER, JobRequest("ghost", (), (999,)))
    assert missing.value.status == 404
    root_job = world.registry.register(ROOT, JobRequest("root", (), (10,)))
    with pytest.raises(JobRequestError) as not_yours:
        world.registry.stop(USER, root_job.job_id)
    assert not_yours.value.status == 404  # as a GET of it: not there for this user
    assert world.registry.get(root_job.job_id).running


def test_restart_resumes_running_jobs_from_the_ledger_without_duplicates(world: World) -> None:
    world.spawn(10)
    job = world.registry.register(USER, JobRequest("long", (), (10,)))
    world.second(0, 0, 0, 0)
    world.run(10, 50)
    world.second(busy=50, idle=50, package_uj=10_000_000, dram_uj=0)
    world.registry.flush()
    before = world.registry.get(job.job_id)
    assert before.totals.energy_of(Component.CPU) == 5_000_000
    world.ledger.close()
    world.start()  # the daemon restarts: same state, new registry and monitor
    resumed = world.registry.get(job.job_id)
    assert resumed.totals.energy_uj == before.totals.energy_uj and resumed.running
    world.second(0, 0, 0, 0)
    world.run(10, 50)
    world.second(busy=100, idle=0, package_uj=10_000_000, dram_uj=0)
    after = world.registry.get(job.job_id)
    assert after.totals.energy_of(Component.CPU) == 5_000_000 + 5_000_000
    assert [r.job_id for r in world.registry.recent()] == [job.job_id]


def test_job_whose_processes_died_during_downtime_ends_at_its_last_write(world: World) -> None:
    world.spawn(10)
    job = world.registry.register(USER, JobRequest("lost", (), (10,)))
    world.second(1, 1, 1, 1)
    world.registry.flush()
    written = world.ledger.get(job.job_id)
    assert written is not None
    world.ledger.close()
    world.exit(10)
    world.start()
    world.second(1, 1, 1, 1)
    ended = world.registry.get(job.job_id)
    assert ended.ended_at == written.updated_at


def test_slurm_job_uses_cgroup_cpu_time_and_nested_tagged_job_is_not_double_counted(
    world: World,
) -> None:
    slurm = slurm_v2(world.sysfs, 77)
    world.second(0, 0, 0, 0)  # first scan: the Slurm job is found and baselined
    world.spawn(10, cgroup="0::/system.slice/slurmstepd.scope/job_77/step_0/user/task_0")
    tagged = world.registry.register(USER, JobRequest("inner", (), (10,)))
    world.second(0, 0, 0, 0)
    world.run(10, 20)  # 200 ms of CPU by the tagged process, inside the Slurm job
    set_usage_v2(slurm, 600_000)  # the cgroup saw 600 ms in all (the tagged 200 ms included)
    snap = world.second(busy=80, idle=20, package_uj=100_000_000, dram_uj=0)
    # active = 80 J over 800 ms busy: Slurm 600 - 200 ms, tagged 200 ms, the rest system
    assert world.registry.get("slurm-77").totals.energy_of(Component.CPU) == 40_000_000
    assert world.registry.get(tagged.job_id).totals.energy_of(Component.CPU) == 20_000_000
    assert buckets(snap)[(Component.CPU, Bucket.SYSTEM)] == 20_000_000
    # the cgroup disappears: the Slurm job ends
    for path in sorted(slurm.rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    slurm.rmdir()
    world.second(1, 1, 1, 1)
    assert not world.registry.get("slurm-77").running
    assert world.registry.get("slurm-77").outcome == "cgroup gone"


@pytest.mark.faults
def test_a_user_sees_only_their_own_jobs_and_root_sees_all(world: World) -> None:
    world.spawn(10, uid=1000)
    world.spawn(20, uid=1001)
    mine = world.registry.register(USER, JobRequest("mine", (), (10,)))
    theirs = world.registry.register(OTHER, JobRequest("theirs", (), (20,)))
    world.second(1, 1, 1000, 100)
    assert [r.name for r in world.registry.recent(caller=USER)] == ["mine"]
    assert {r.name for r in world.registry.recent(caller=ROOT)} == {"mine", "theirs"}
    assert world.registry.get(mine.job_id, USER).name == "mine"
    with pytest.raises(JobRequestError) as hidden:
        world.registry.get(theirs.job_id, USER)
    assert hidden.value.status == 404
    assert world.registry.get(theirs.job_id, ROOT).name == "theirs"
    world.registry.flush()
    assert [r.name for r in world.ledger.recent(10, uid=1001)] == ["theirs"]


@pytest.mark.faults
@pytest.mark.parametrize(("euid", "seen"), [(1000, ["mine"]), (0, ["theirs", "mine"])])
def test_reading_the_ledger_file_with_the_agent_down_shows_the_same_jobs(
    world: World, monkeypatch: pytest.MonkeyPatch, tmp_path: Path, euid: int, seen: list[str]
) -> None:
    world.spawn(10, uid=1000)
    world.spawn(20, uid=1001)
    mine = world.registry.register(USER, JobRequest("mine", (), (10,)))
    theirs = world.registry.register(OTHER, JobRequest("theirs", (), (20,)))
    world.registry.flush()
    monkeypatch.setattr("carbonscope.cli.os.geteuid", lambda: euid)
    args = ["--state-dir", str(world.ledger.path.parent), "--socket", str(tmp_path / "none")]
    listed = CliRunner().invoke(cli, ["jobs", "list", "--json", *args])
    assert listed.exit_code == 0, listed.output
    assert [job["name"] for job in json.loads(listed.stdout)] == seen
    shown = CliRunner().invoke(cli, ["jobs", "show", theirs.job_id, "--json", *args])
    assert (shown.exit_code == 0) is (euid == 0), shown.output
    own = CliRunner().invoke(cli, ["jobs", "show", mine.job_id, "--json", *args])
    assert own.exit_code == 0 and json.loads(own.stdout)["name"] == "mine", own.output


@pytest.mark.faults
def test_job_creation_is_rate_limited_per_user(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    now = [1000.0]
    world = World(tmp_path, make_monitor, clock, JobsSettings(max_created_per_minute=3))
    world.registry._creations._monotonic_s = lambda: now[0]  # the quota's clock
    world.spawn(10)
    world.spawn(20, uid=1001)
    for n in range(3):
        world.registry.register(USER, JobRequest(f"j{n}", (), (10,)))
    with pytest.raises(JobRequestError) as refused:
        world.registry.register(USER, JobRequest("j3", (), (10,)))
    assert refused.value.status == 429 and "in the last minute (at most 3)" in str(refused.value)
    world.registry.register(OTHER, JobRequest("other", (), (20,)))  # another user's own quota
    now[0] += 60.0
    world.registry.register(USER, JobRequest("j4", (), (10,)))


@pytest.mark.faults
def test_finished_jobs_in_memory_are_bounded_per_user_and_all_kept_in_the_ledger(
    tmp_path: Path, make_monitor: MonitorFactory, clock: ManualClock
) -> None:
    world = World(tmp_path, make_monitor, clock, JobsSettings(max_finished_per_user=2))
    ids = []
    for n in range(6):  # each job registered on a fresh process that then exits
        world.spawn(100 + n)
        ids.append(world.registry.register(USER, JobRequest(f"j{n}", (), (100 + n,))).job_id)
        world.second(1, 1, 1000, 100)
        world.exit(100 + n)
        world.second(1, 1, 1000, 100)
        world.registry.flush()
    snap = world.second(1, 1, 1000, 100)
    assert len(world.registry._jobs) == 2  # the two newest finished jobs only
    assert snap.attribution is not None
    assert {view.job_id for view in snap.attribution.jobs} == set(ids[-2:])
    assert {r.job_id for r in world.ledger.recent(100)} == set(ids)
    assert world.registry.get(ids[0]).name == "j0"  # from the ledger
