"""cgroup trees shaped like the ones slurmstepd and the kubelet create (v1 and v2)."""

from __future__ import annotations

from pathlib import Path

POD_UID = "6f8c4b7e-1d2a-4c3b-9e8f-0a1b2c3d4e5f"


def cgroup_v2_root(sysfs: Path) -> Path:
    root = sysfs / "fs" / "cgroup"
    root.mkdir(parents=True, exist_ok=True)
    (root / "cgroup.controllers").write_text("cpuset cpu io memory hugetlb pids rdma misc\n")
    for other in ("user.slice", "init.scope", "system.slice/ssh.service"):
        (root / other).mkdir(parents=True, exist_ok=True)
    return root


def set_usage_v2(directory: Path, usage_usec: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cpu.stat").write_text(
        f"usage_usec {usage_usec}\nuser_usec {usage_usec // 2}\n"
        f"system_usec {usage_usec - usage_usec // 2}\nnr_periods 0\nnr_throttled 0\n"
        "throttled_usec 0\n"
    )
    (directory / "cgroup.procs").touch()


def set_usage_v1(directory: Path, usage_ns: int) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "cpuacct.usage").write_text(f"{usage_ns}\n")
    (directory / "tasks").touch()


def slurm_v2(sysfs: Path, job: int) -> Path:
    directory = cgroup_v2_root(sysfs) / "system.slice/slurmstepd.scope" / f"job_{job}"
    set_usage_v2(directory, 0)
    set_usage_v2(directory / "step_0/user/task_0", 0)
    return directory


def cgroup_v1_root(sysfs: Path) -> Path:
    root = sysfs / "fs" / "cgroup"
    (root / "cpu,cpuacct").mkdir(parents=True, exist_ok=True)
    (root / "memory").mkdir(exist_ok=True)
    (root / "cpu").symlink_to("cpu,cpuacct")
    (root / "cpuacct").symlink_to("cpu,cpuacct")
    return root


def slurm_v1(sysfs: Path, job: int, uid: int) -> Path:
    directory = cgroup_v1_root(sysfs) / "cpu,cpuacct/slurm" / f"uid_{uid}" / f"job_{job}"
    set_usage_v1(directory, 0)
    set_usage_v1(directory / "step_batch", 0)
    return directory


def pod_v2_systemd(sysfs: Path, qos: str = "burstable", uid: str = POD_UID) -> Path:
    escaped = uid.replace("-", "_")
    parent = cgroup_v2_root(sysfs) / "kubepods.slice"
    if qos != "guaranteed":
        parent = parent / f"kubepods-{qos}.slice"
        directory = parent / f"kubepods-{qos}-pod{escaped}.slice"
    else:
        directory = parent / f"kubepods-pod{escaped}.slice"
    set_usage_v2(directory, 0)
    set_usage_v2(directory / "cri-containerd-0123abcd.scope", 0)
    return directory


def pod_v1_cgroupfs(sysfs: Path, qos: str = "besteffort", uid: str = POD_UID) -> Path:
    root = sysfs / "fs" / "cgroup" / "cpu,cpuacct"
    if not root.exists():
        cgroup_v1_root(sysfs)
    parent = root / "kubepods" if qos == "guaranteed" else root / "kubepods" / qos
    directory = parent / f"pod{uid}"
    set_usage_v1(directory, 0)
    set_usage_v1(directory / "0123456789abcdef", 0)
    return directory
