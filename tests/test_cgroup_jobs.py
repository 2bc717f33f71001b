"""Slurm jobs and Kubernetes pods found from fake cgroup trees of both layouts."""

from __future__ import annotations

from pathlib import Path

from carbonscope.jobs.cgroups import discover_cgroup_jobs, job_of_cgroups, read_usage_us
from tests.fakes.cgroups import (
    POD_UID,
    pod_v1_cgroupfs,
    pod_v2_systemd,
    set_usage_v1,
    set_usage_v2,
    slurm_v1,
    slurm_v2,
)


def test_slurm_v2(tmp_path: Path) -> None:
    directory = slurm_v2(tmp_path, 4242)
    set_usage_v2(directory, 7_500_000)
    [job] = discover_cgroup_jobs(tmp_path / "fs/cgroup")
    assert (job.job_id, job.scheduler, job.uid) == ("slurm-4242", "slurm", None)
    assert job.hierarchy_path == "/system.slice/slurmstepd.scope/job_4242"
    assert dict(job.tags) == {"scheduler": "slurm", "slurm_job_id": "4242"}
    assert read_usage_us(job) == 7_500_000
    inside = {"": "/system.slice/slurmstepd.scope/job_4242/step_0/user/task_0"}
    assert job_of_cgroups([job], inside) is job
    assert job_of_cgroups([job], {"": "/system.slice/slurmstepd.scope/job_42420"}) is None


def test_slurm_v1_with_uid(tmp_path: Path) -> None:
    directory = slurm_v1(tmp_path, 17, uid=1001)
    set_usage_v1(directory, 3_000_000_000)
    [job] = discover_cgroup_jobs(tmp_path / "fs/cgroup")
    assert (job.job_id, job.uid, job.v2) == ("slurm-17", 1001, False)
    assert read_usage_us(job) == 3_000_000
    lines = {"memory": "/slurm/uid_1001/job_17", "cpu,cpuacct": "/slurm/uid_1001/job_17/step_0"}
    assert job_of_cgroups([job], lines) is job


def test_kubernetes_pods_systemd_driver_v2_all_qos_classes(tmp_path: Path) -> None:
    uids = {
        "burstable": POD_UID,
        "besteffort": "11111111-2222-3333-4444-555555555555",
        "guaranteed": "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    }
    for qos, uid in uids.items():
        pod_v2_systemd(tmp_path, qos, uid)
    jobs = discover_cgroup_jobs(tmp_path / "fs/cgroup")
    assert sorted(job.job_id for job in jobs) == sorted(f"k8s-{uid}" for uid in uids.values())
    burstable = next(job for job in jobs if job.job_id == f"k8s-{POD_UID}")
    assert burstable.scheduler == "kubernetes"
    assert burstable.name == f"pod-{POD_UID}"
    escaped = POD_UID.replace("-", "_")
    assert burstable.hierarchy_path == (
        f"/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod{escaped}.slice"
    )


def test_kubernetes_pods_cgroupfs_driver_v1(tmp_path: Path) -> None:
    directory = pod_v1_cgroupfs(tmp_path, "besteffort")
    set_usage_v1(directory, 2_000_000)
    pod_v1_cgroupfs(tmp_path, "guaranteed", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee")
    jobs = discover_cgroup_jobs(tmp_path / "fs/cgroup")
    assert [job.job_id for job in jobs] == [
        f"k8s-{POD_UID}",
        "k8s-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    ]
    assert read_usage_us(jobs[0]) == 2_000
    assert jobs[0].hierarchy_path == f"/kubepods/besteffort/pod{POD_UID}"


def test_no_cgroups_or_no_schedulers_means_no_jobs(tmp_path: Path) -> None:
    assert discover_cgroup_jobs(tmp_path / "fs/cgroup") == []
    slurm_v2(tmp_path, 1)
    (tmp_path / "fs/cgroup/system.slice/slurmstepd.scope/job_1").rename(
        tmp_path / "fs/cgroup/system.slice/job_1"
    )  # a job_ directory outside any slurm cgroup is not a Slurm job
    assert discover_cgroup_jobs(tmp_path / "fs/cgroup") == []
