"""`make soak`: the real daemon for SOAK_MINUTES (30) at a 100 ms interval, a job started and
stopped every second and a scraper at 10 Hz. Prints RSS and open fds every minute; fails when
RSS grows by more than 5 MB after the first 5 minutes, or fds grow at all after them."""

from __future__ import annotations

import os
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.measure import memory_mib
from carbonscope.client import JobClient, JobClientError
from tests.daemon import Daemon
from tests.fakes.powercap import two_socket_server

WARM_UP_MIN = 5
RSS_GROWTH_MIB = 5.0


def fds(pid: int) -> int:
    """Open fds, the least of five looks 50 ms apart: a scrape or job request in flight at the
    instant of one look holds a socket for a moment, which is no leak."""
    counts = []
    for _ in range(5):
        counts.append(len(os.listdir(f"/proc/{pid}/fd")))
        time.sleep(0.05)
    return min(counts)


def main() -> int:
    minutes = int(os.environ.get("SOAK_MINUTES", "30"))
    with tempfile.TemporaryDirectory() as tmp:
        sysfs = Path(tmp) / "sys"
        tree = two_socket_server(sysfs, with_psys=False)
        config = Path(tmp) / "carbonscope.toml"
        config.write_text('[agent]\ninterval = "100ms"\n[jobs]\nflush = "5s"\n')
        daemon = Daemon(["--config", str(config), "--sysfs-root", str(sysfs)], Path(tmp))
        stop = threading.Event()
        counts = {"scrapes": 0, "jobs": 0, "errors": 0}

        def scrape() -> None:
            while not stop.wait(0.1):
                try:
                    urllib.request.urlopen(daemon.url + "/metrics", timeout=5).read()
                    counts["scrapes"] += 1
                except OSError:
                    if not stop.is_set():  # a request cut by the soak's own shutdown is not one
                        counts["errors"] += 1

        def jobs() -> None:
            client = JobClient(daemon.socket, timeout_s=10)
            while not stop.is_set():
                try:
                    job = client.start("soak", pids=[os.getpid()])
                    stop.wait(0.5)
                    client.stop(job["job_id"])
                    counts["jobs"] += 1
                except JobClientError:
                    if not stop.is_set():
                        counts["errors"] += 1
                stop.wait(0.5)

        def energy() -> None:
            while not stop.wait(0.1):
                for zone in tree.zones.values():
                    zone.advance(5_000_000)  # 50 W per zone

        workers: list[threading.Thread] = []
        try:
            daemon.wait_ready()
            workers = [threading.Thread(target=f, daemon=True) for f in (scrape, jobs, energy)]
            for worker in workers:
                worker.start()
            pid = daemon.process.pid
            rows = []
            print("minute  rss_mib  fds  scrapes  jobs  errors", flush=True)
            for minute in range(minutes + 1):
                if minute:
                    time.sleep(60)
                rows.append((minute, memory_mib(pid)[0], fds(pid)))
                print(
                    f"{minute:6d}  {rows[-1][1]:7.1f}  {rows[-1][2]:3d}  {counts['scrapes']:7d}  "
                    f"{counts['jobs']:4d}  {counts['errors']:6d}",
                    flush=True,
                )
        finally:
            stop.set()
            for worker in workers:
                worker.join(15)
            code = daemon.stop()
    after = [row for row in rows if row[0] >= WARM_UP_MIN]
    if len(after) < 2:
        print(f"PASS? too short to judge: run at least {WARM_UP_MIN + 1} minutes")
        return 0
    growth = max(r[1] for r in after) - after[0][1]
    fd_growth = max(r[2] for r in after) - after[0][2]
    verdict = growth <= RSS_GROWTH_MIB and fd_growth <= 0 and code == 0 and not counts["errors"]
    print(
        f"{'PASS' if verdict else 'FAIL'}: RSS +{growth:.1f} MiB after minute {WARM_UP_MIN} "
        f"(limit {RSS_GROWTH_MIB}), fds +{fd_growth}, errors {counts['errors']}, exit {code}"
    )
    return 0 if verdict else 1


if __name__ == "__main__":
    sys.exit(main())
