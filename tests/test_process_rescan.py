"""The paced rescan of the whole process table, and the member it exists to find: a child the
kernel's children list missed (proc(5): the list is reliable only while children are stopped)."""

from __future__ import annotations

from pathlib import Path

from carbonscope.jobs.activity import FULL_SCAN_EVERY_S, ActivityMeter, MeasurePlan
from carbonscope.jobs.processes import JobProcesses
from carbonscope.jobs.rescan import PacedRescan
from carbonscope.procfs import read_pid_stat, read_process_table
from carbonscope.sensors.base import SensorRoots
from tests.fakes.procfs import FakeProcess, write_process


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_every_process_is_read_once_a_period_a_slice_at_a_time(tmp_path: Path) -> None:
    for pid in range(100, 220):
        write_process(tmp_path, FakeProcess(pid=pid))
    clock = Clock()
    rescan = PacedRescan(tmp_path, 60.0, 32, clock)
    assert rescan.machine_processes is None  # not counted yet
    assert rescan.next_slice() == {}  # the first call starts the clock: nothing is due yet

    def samples(count: int) -> tuple[list[int], list[int]]:
        read: list[int] = []
        sizes = []
        for _ in range(count):
            clock.now += 1.0
            got = rescan.next_slice()
            sizes.append(len(got))
            read.extend(got)
        return read, sizes

    # The machine's size unknown, the first pass goes at the budget's pace: 32, 32, 32, then
    # the last 24 and the first 8 of the next pass.
    first, sizes = samples(4)
    assert sizes == [32, 32, 32, 32] and set(first) == set(range(100, 220))
    assert rescan.machine_processes == 120
    read, sizes = samples(60)  # now 120 processes in 60 s: 2 a second
    assert set(sizes) == {2}  # the same few every sample, never a burst
    assert sorted(read) == list(range(100, 220))  # each process once in the period
    # Born meanwhile: in the next pass that starts after it (a pass already under way may miss
    # it: /proc keeps its place by PID, tmpfs here by its own order).
    write_process(tmp_path, FakeProcess(pid=500))
    read, _ = samples(2 * 61)
    assert 500 in read
    assert rescan.machine_processes == 121


def test_on_a_big_machine_a_pass_takes_longer_and_a_sample_costs_the_same(
    tmp_path: Path,
) -> None:
    for pid in range(100, 220):
        write_process(tmp_path, FakeProcess(pid=pid))
    clock = Clock()
    rescan = PacedRescan(tmp_path, 10.0, 3, clock)  # 12 a second would be due: 3 at most
    rescan.read_whole(read_process_table(tmp_path))
    read: list[int] = []
    for _ in range(40):
        clock.now += 1.0
        got = rescan.next_slice()
        assert len(got) == 3
        read.extend(got)
    assert sorted(read) == list(range(100, 220))


def test_the_whole_table_read_at_once_is_the_periods_rescan(tmp_path: Path) -> None:
    for pid in range(100, 130):
        write_process(tmp_path, FakeProcess(pid=pid))
    clock = Clock()
    rescan = PacedRescan(tmp_path, 60.0, 32, clock)
    rescan.read_whole(read_process_table(tmp_path))
    assert rescan.machine_processes == 30
    clock.now += 2.0
    assert len(rescan.next_slice()) == 1


def test_without_a_procfs_there_is_nothing_to_rescan() -> None:
    clock = Clock()
    rescan = PacedRescan(Path("/nonexistent-procfs"), 60.0, 32, clock)
    rescan.next_slice()
    clock.now += 600.0
    assert rescan.next_slice() == {}
    assert rescan.machine_processes == 0


def test_a_child_the_children_list_missed_joins_its_job_within_the_period(
    tmp_path: Path,
) -> None:
    for pid in range(100, 400):  # the rest of the machine
        write_process(tmp_path, FakeProcess(pid=pid))
    write_process(tmp_path, FakeProcess(pid=10, uid=1000))
    write_process(tmp_path, FakeProcess(pid=11, ppid=10, start_ticks=150))
    (tmp_path / "10" / "task" / "10" / "children").write_text("")  # the race: 11 not listed
    clock = Clock()
    meter = ActivityMeter(
        SensorRoots(sysfs=tmp_path / "sys", procfs=tmp_path),
        detect_cgroups=False,
        clock_ticks_per_s=100,
        monotonic_s=clock,
    )
    root = read_pid_stat(tmp_path, 10)
    assert root is not None
    job = JobProcesses.register([root])
    plan = MeasurePlan(tagged=(("job-a", job),), known=frozenset({"job-a"}))
    owners = []
    for _ in range(int(FULL_SCAN_EVERY_S) + 1):
        owners.append(dict(meter.measure(plan, (), clock.now).owner_of_pid))
        clock.now += 1.0
    assert owners[0] == {10: "job-a"}  # the walk alone cannot see 11
    assert owners[-1] == {10: "job-a", 11: "job-a"}  # the rescan found it; it stays a member
    found_at = next(index for index, owner in enumerate(owners) if 11 in owner)
    assert all(11 in owner for owner in owners[found_at:])
