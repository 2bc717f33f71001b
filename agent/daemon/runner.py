"""`carbonscope run`: sample on a fixed schedule, serve /metrics, talk to systemd, stop cleanly."""

from __future__ import annotations

import logging
import os
import signal
import threading
from collections.abc import Callable, Mapping
from types import FrameType

from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.interval import IntervalTrigger

from carbonscope.config.loader import LoadedConfig
from carbonscope.config.schema import parse_listen
from carbonscope.daemon.systemd import SystemdNotifier
from carbonscope.daemon.wiring import build_agent
from carbonscope.errors import CarbonscopeError
from carbonscope.exporters.prometheus import MetricsServer
from carbonscope.jobs.api import JobApiServer

log = logging.getLogger(__name__)


def run_daemon(loaded: LoadedConfig, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    config = loaded.config
    notifier = SystemdNotifier(env)
    agent = build_agent(config, loaded.state_dir, env)
    monitor = agent.monitor
    for item in agent.sensors:
        devices = ", ".join(f"{k.component}/{k.device}" for k in item.used) or "none"
        log.info("source %s: devices %s", item.sensor.name, devices)
        for line in item.discovery.details:
            log.info("source %s: %s", item.sensor.name, line)
        for status in item.discovery.statuses:
            log.info("source %s: %s (%s)", item.sensor.name, status.status, status.reason)
    log.info("grid location %s (%s)", agent.location.code, agent.location.detail)
    log.info(
        "grid intensity provider %s (refresh %gs, max age %gs)",
        agent.intensity.name,
        config.carbon.refresh,
        config.carbon.max_age,
    )
    log.info("job ledger %s; job API on %s", agent.ledger.path, loaded.jobs_socket)

    try:
        server = MetricsServer(*parse_listen(config.agent.listen))
    except OSError as exc:
        raise CarbonscopeError(
            f"cannot listen on {config.agent.listen}: {exc.strerror or exc}"
        ) from None
    try:
        job_api = JobApiServer(loaded.jobs_socket, agent.jobs)
    except CarbonscopeError:
        server.stop()
        raise
    monitor.subscribe(server.publish)
    if agent.feed is not None:  # fetches on its own thread: an outage never blocks sampling
        agent.feed.start()
    monitor.sample()  # the baseline: /metrics answers from the first second
    server.start()
    job_api.start()

    interval = config.agent.interval
    scheduler = BackgroundScheduler(
        timezone="UTC",
        executors={"default": ThreadPoolExecutor(max_workers=2)},
        job_defaults={
            "coalesce": True,
            "max_instances": 1,
            "misfire_grace_time": max(1, int(interval)),
        },
    )
    # IntervalTrigger fires at start + n x interval: late runs do not shift later ones (no drift).
    scheduler.add_job(monitor.sample, IntervalTrigger(seconds=interval), id="sample", name="sample")
    # Job totals and the intensity series reach the ledger every jobs.flush (and at start, stop
    # and shutdown): a crash loses at most one flush interval of either.
    scheduler.add_job(
        agent.flush, IntervalTrigger(seconds=config.jobs.flush), id="flush", name="flush"
    )
    watchdog_s = notifier.watchdog_s
    if watchdog_s is not None:
        scheduler.add_job(
            _watchdog_ping,
            IntervalTrigger(seconds=watchdog_s / 2),
            args=(notifier, monitor.last_sample_age_s, watchdog_s),
            id="watchdog",
            name="watchdog",
        )
    scheduler.start()

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    host, port = server.address
    notifier.notify(
        "READY=1", f"STATUS=sampling every {interval:g}s, serving http://{host}:{port}/metrics"
    )
    log.info("carbonscope ready: sampling every %gs, /metrics on %s:%d", interval, host, port)
    stop.wait()

    notifier.notify("STOPPING=1")
    scheduler.shutdown(wait=True)
    if agent.feed is not None:
        agent.feed.stop()
    job_api.stop()
    agent.flush()
    agent.ledger.close()
    server.stop()
    log.info("stopped after %d samples", monitor.snapshot.samples_total if monitor.snapshot else 0)
    return 0


def _watchdog_ping(
    notifier: SystemdNotifier, sample_age_s: Callable[[], float | None], watchdog_s: float
) -> None:
    """Ping only while sampling is alive, so systemd restarts a wedged agent."""
    age = sample_age_s()
    if age is not None and age < watchdog_s:
        notifier.notify("WATCHDOG=1")
    else:
        log.error("sampling stalled (last sample %ss ago): withholding the watchdog ping", age)
