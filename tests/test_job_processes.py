"""Process membership and CPU time of tagged jobs, on process tables shaped like /proc."""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

from carbonscope.jobs.processes import JobProcesses, track
from carbonscope.procfs import (
    ProcStat,
    parse_pid_stat,
    read_pid_cgroups,
    read_pid_uid,
    read_process_tree,
)
from tests.fakes.procfs import FakeProcess, remove_process, write_process


def proc(pid: int, ppid: int, start: int = 100, own: int = 0, reaped: int = 0) -> ProcStat:
    return ProcStat(pid=pid, ppid=ppid, start_ticks=start, own_ticks=own, reaped_ticks=reaped)


def table(*stats: ProcStat) -> dict[int, ProcStat]:
    return {stat.pid: stat for stat in stats}


def test_pid_stat_parsing_survives_odd_command_names(tmp_path: Path) -> None:
    write_process(
        tmp_path,
        FakeProcess(
            pid=42,
            ppid=7,
            start_ticks=999,
            utime=5,
            stime=6,
            cutime=7,
            cstime=8,
            uid=1234,
            comm="evil) 1 2 (name",
            cgroup="0::/system.slice/x.service",
        ),
    )
    stat = parse_pid_stat((tmp_path / "42" / "stat").read_text())
    assert stat == ProcStat(pid=42, ppid=7, start_ticks=999, own_ticks=11, reaped_ticks=15)
    assert read_pid_uid(tmp_path, 42) == 1234
    assert read_pid_cgroups(tmp_path, 42) == {"": "/system.slice/x.service"}
    assert read_pid_uid(tmp_path, 43) is None


def test_descendants_join_and_their_time_is_counted() -> None:
    job = JobProcesses.register([proc(10, 1, own=50)])  # 50 ticks before registering: not ours
    first = track({"a": job}, table(proc(10, 1, own=60), proc(11, 10, start=500, own=5)), 400)
    assert sum(first.cpu_ticks["a"].values()) == 10 + 5  # root's growth + child born since
    assert first.owner_of_pid == {10: "a", 11: "a"}
    second = track({"a": job}, table(proc(10, 1, own=61), proc(11, 10, start=500, own=25)), 600)
    assert sum(second.cpu_ticks["a"].values()) == 1 + 20


def test_a_process_older_than_the_previous_sample_only_gets_a_baseline() -> None:
    job = JobProcesses.register([proc(10, 1)])
    # pid 11 started at tick 50, long before the previous sample (tick 400): re-parented in
    sample = track({"a": job}, table(proc(10, 1), proc(11, 10, start=50, own=1000)), 400)
    assert sum(sample.cpu_ticks["a"].values()) == 0


def test_reused_pid_is_never_counted() -> None:
    job = JobProcesses.register([proc(10, 1, start=100, own=5)])
    track({"a": job}, table(proc(10, 1, start=100, own=5)), 0)
    # pid 10 exits; another process gets pid 10 (different start time), parented elsewhere
    sample = track({"a": job}, table(proc(10, 1, start=900, own=300)), 800)
    assert sum(sample.cpu_ticks.get("a", {}).values()) == 0
    assert "a" not in sample.alive
    assert 10 not in sample.owner_of_pid


def test_exited_child_is_counted_once_through_its_parents_cutime() -> None:
    job = JobProcesses.register([proc(10, 1, own=0)])
    track({"a": job}, table(proc(10, 1), proc(11, 10, start=500, own=30)), 400)  # 30 counted
    # child ran 12 more ticks then exited; the parent reaped it: cutime += its final 42
    sample = track({"a": job}, table(proc(10, 1, own=1, reaped=42)), 600)
    assert sum(sample.cpu_ticks["a"].values()) == 1 + 12


def test_grandchild_reaped_through_an_exited_child_is_not_double_counted() -> None:
    job = JobProcesses.register([proc(10, 1)])
    track(
        {"a": job},
        table(proc(10, 1), proc(11, 10, start=500, own=10), proc(12, 11, start=501, own=20)),
        400,
    )
    # 12 exits (final 25) and is reaped by 11; 11 exits (own 15) and is reaped by 10
    sample = track({"a": job}, table(proc(10, 1, reaped=15 + 25)), 600)
    assert sum(sample.cpu_ticks["a"].values()) == (15 - 10) + (25 - 20)


def test_nested_jobs_innermost_wins_and_nothing_is_counted_twice() -> None:
    outer = JobProcesses.register([proc(10, 1)])
    inner = JobProcesses.register([proc(11, 10)])
    stats = table(proc(10, 1, own=3), proc(11, 10, own=40), proc(12, 11, start=500, own=7))
    sample = track({"outer": outer, "inner": inner}, stats, 400)
    assert sample.owner_of_pid == {10: "outer", 11: "inner", 12: "inner"}
    assert sum(sample.cpu_ticks["outer"].values()) == 3
    assert sum(sample.cpu_ticks["inner"].values()) == 40 + 7


def test_orphaned_member_stays_in_its_job() -> None:
    job = JobProcesses.register([proc(10, 1)])
    track({"a": job}, table(proc(10, 1), proc(11, 10, start=500)), 400)
    sample = track({"a": job}, table(proc(11, 1, start=500, own=9)), 600)  # parent gone
    assert sample.owner_of_pid == {11: "a"}
    assert sum(sample.cpu_ticks["a"].values()) == 9
    assert "a" in sample.alive


def test_resumed_job_only_takes_baselines_at_first() -> None:
    job = JobProcesses.resumed([(10, 100)])
    first = track({"a": job}, table(proc(10, 1, own=5000), proc(11, 10, start=900, own=70)), 800)
    assert sum(first.cpu_ticks["a"].values()) == 0
    second = track({"a": job}, table(proc(10, 1, own=5004), proc(11, 10, start=900, own=71)), 900)
    assert sum(second.cpu_ticks["a"].values()) == 5


def test_a_job_tree_is_read_from_its_members_not_from_every_process(tmp_path: Path) -> None:
    for pid in range(100, 400):  # the rest of the machine
        write_process(tmp_path, FakeProcess(pid=pid, ppid=1))
    write_process(tmp_path, FakeProcess(pid=12, ppid=10))  # written before its parent
    for pid, ppid in ((10, 1), (11, 10), (13, 11), (14, 13)):
        write_process(tmp_path, FakeProcess(pid=pid, ppid=ppid))
    tree = read_process_tree(tmp_path, [10])
    assert tree is not None and set(tree) == {10, 11, 12, 13, 14}
    assert tree[14].ppid == 13
    write_process(tmp_path, FakeProcess(pid=14, ppid=1))  # its parent died: re-parented to init
    remove_process(tmp_path, 12)
    assert set(read_process_tree(tmp_path, [10]) or {}) == {10, 11, 13}
    assert set(read_process_tree(tmp_path, [10, 14, 999]) or {}) == {10, 11, 13, 14}


def test_without_children_lists_the_tree_read_says_so(tmp_path: Path) -> None:
    write_process(tmp_path, FakeProcess(pid=10, ppid=1), children_files=False)
    (tmp_path / "10" / "task" / "10").mkdir(parents=True)  # threads listed, no children file
    assert read_process_tree(tmp_path, [10]) is None


def test_the_real_kernel_lists_children_and_grandchildren() -> None:
    """This machine's /proc: a shell child and its sleeping child are found from our pid."""
    shell = subprocess.Popen(["sh", "-c", "sleep 30 & echo $!; wait"], stdout=subprocess.PIPE)
    assert shell.stdout is not None
    sleeper = int(shell.stdout.readline())
    try:
        tree = read_process_tree(Path("/proc"), [os.getpid()])
        assert tree is not None, "this kernel has no /proc/PID/task/*/children"
        assert {os.getpid(), shell.pid, sleeper} <= set(tree)
        assert tree[sleeper].ppid == shell.pid
        assert 1 not in tree
    finally:
        os.kill(sleeper, signal.SIGKILL)
        shell.kill()
        shell.wait()
        shell.stdout.close()
