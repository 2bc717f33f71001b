"""Which processes belong to which tagged job, and how much CPU time they used per sample.

A job's processes are its registered PIDs and every descendant, found afresh each sample.
Membership is sticky: a member stays in its job until it exits, even when re-parented (a
daemonised worker still belongs to the job that started it). Processes are identified by
(pid, start time), so a reused PID is never counted. When jobs nest (``track_job`` inside
``carbonscope job run``), a process belongs to the most recently registered job claiming it.

CPU time of a member = utime + stime + cutime + cstime (its own and its reaped children's).
A member that exits between samples has its final CPU time added to its parent's cutime when
the parent reaps it; its last-seen total is subtracted then, so each tick counts once and the
CPU time of short-lived children (compilers, data-loader workers) is not lost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from carbonscope.procfs import ProcStat

Identity = tuple[int, int]  # (pid, start_ticks)


@dataclass(frozen=True)
class _Seen:
    ppid: int
    total_ticks: int


@dataclass
class JobProcesses:
    """The process side of one tagged job (mutated only by ProcessTracker, under its caller's
    lock)."""

    roots: set[Identity]
    members: dict[Identity, _Seen] = field(default_factory=dict)
    resume: bool = False  # after a restart: the next sample only takes baselines

    @classmethod
    def register(cls, roots: Iterable[ProcStat]) -> JobProcesses:
        """Roots baselined now: CPU time they used before registration is not the job's."""
        stats = list(roots)
        return cls(
            roots={stat.identity for stat in stats},
            members={
                stat.identity: _Seen(stat.ppid, stat.own_ticks + stat.reaped_ticks)
                for stat in stats
            },
        )

    @classmethod
    def resumed(cls, identities: Iterable[Identity]) -> JobProcesses:
        ids = set(identities)
        return cls(roots=ids, members={ident: _Seen(0, 0) for ident in ids}, resume=True)

    @property
    def identities(self) -> tuple[Identity, ...]:
        return tuple(sorted(self.members))


@dataclass(frozen=True)
class TrackedSample:
    cpu_ticks: Mapping[str, Mapping[int, int]]  # job_id -> pid -> CPU ticks this interval
    owner_of_pid: Mapping[int, str]  # every live member -> its job
    alive: frozenset[str]  # jobs with at least one live process


def track(
    jobs: Mapping[str, JobProcesses],
    table: Mapping[int, ProcStat],
    previous_sample_ticks: int | None,
) -> TrackedSample:
    """Advance every job by one sample. ``jobs`` is in registration order (oldest first).

    ``previous_sample_ticks`` is the boot-relative time of the previous sample: a newly found
    member that started after it is counted from zero; an older one (it existed before it
    joined) only gets a baseline. None (first sample) baselines every new member.
    """
    children: dict[int, list[int]] = {}
    for stat in table.values():
        children.setdefault(stat.ppid, []).append(stat.pid)

    def alive(identity: Identity) -> bool:
        stat = table.get(identity[0])
        return stat is not None and stat.start_ticks == identity[1]

    owner: dict[int, str] = {}
    for job_id, job in jobs.items():  # later registrations overwrite: innermost job wins
        stack = [pid for pid, start in (*job.roots, *job.members) if alive((pid, start))]
        seen: set[int] = set()
        while stack:
            pid = stack.pop()
            if pid in seen:
                continue
            seen.add(pid)
            owner[pid] = job_id
            stack.extend(children.get(pid, ()))

    members_of: dict[str, dict[Identity, ProcStat]] = {job_id: {} for job_id in jobs}
    for pid, owner_id in owner.items():
        members_of[owner_id][table[pid].identity] = table[pid]

    cpu: dict[str, dict[int, int]] = {}
    alive_jobs: set[str] = set()
    for job_id, job in jobs.items():
        current = members_of[job_id]
        per_pid: dict[int, int] = {}
        for identity, stat in current.items():
            total = stat.own_ticks + stat.reaped_ticks
            before = job.members.get(identity)
            if before is not None and not job.resume:
                used = max(0, total - before.total_ticks)
            elif (
                before is None
                and not job.resume
                and previous_sample_ticks is not None
                and (stat.start_ticks >= previous_sample_ticks)
            ):
                used = total  # born during this interval: all its time is this job's
            else:
                used = 0  # a baseline: time before it joined (or before a restart) is not ours
            if used:
                per_pid[stat.pid] = per_pid.get(stat.pid, 0) + used
        # An exited member's final time shows up in the cutime of the member that reaped it,
        # which already counted above: remove what was counted for it while it was alive.
        by_pid = {identity[0]: identity for identity in job.members}
        for identity, seen_last in job.members.items():
            if identity in current or alive(identity) or job.resume:
                continue  # still running (maybe moved to a nested job), or no history
            parent_pid, hops = seen_last.ppid, 0
            while hops < 64:
                parent = by_pid.get(parent_pid)
                if parent is None:
                    break  # reaped by a process outside the job: its last interval is lost
                if parent in current:
                    per_pid[parent[0]] = per_pid.get(parent[0], 0) - seen_last.total_ticks
                    break
                parent_pid, hops = job.members[parent].ppid, hops + 1
        job.members = {
            identity: _Seen(stat.ppid, stat.own_ticks + stat.reaped_ticks)
            for identity, stat in current.items()
        }
        job.resume = False
        if current:
            alive_jobs.add(job_id)
        cpu[job_id] = per_pid
    return TrackedSample(cpu, owner, frozenset(alive_jobs))
