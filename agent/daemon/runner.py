"""`carbonscope run`: start the daemon's services, talk to systemd, stop cleanly on a signal."""

from __future__ import annotations

import gc
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Mapping
from types import FrameType

from carbonscope.config.loader import LoadedConfig
from carbonscope.daemon.exporters import EXPORTERS, connection_limits
from carbonscope.daemon.services import CallbackService, ServerService, Service, Services
from carbonscope.daemon.systemd import SystemdNotifier
from carbonscope.daemon.wiring import Agent, build_agent
from carbonscope.jobs.api import JobApiServer
from carbonscope.periodic import PeriodicThread
from carbonscope.sampling.publisher import SnapshotRelay
from carbonscope.sampling.schedule import SampleLoop, WatchdogPinger
from carbonscope.sensors.polled import PolledSensor

log = logging.getLogger(__name__)

# How long one thread may hold the interpreter while another waits (CPython's default: 5 ms).
# The sampler is pure Python for tens of ms on a busy node; at 1 ms a job-API request waits at
# most about a millisecond per hand-over instead of five (benchmarks/architecture.py).
SWITCH_INTERVAL_S = 0.001


class SamplerService:
    """The baseline sample, then one sample every interval on the monotonic clock
    (sampling/schedule.py); systemd's watchdog is pinged from the samples' own progress."""

    name = "sampler"

    def __init__(self, agent: Agent, interval_s: float, notifier: SystemdNotifier) -> None:
        self._monitor = agent.monitor
        watchdog_s = notifier.watchdog_s
        if watchdog_s is None:
            self._loop = SampleLoop(self._monitor.sample, interval_s)
        else:
            pinger = WatchdogPinger(notifier.notify, watchdog_s)
            self._loop = SampleLoop(self._monitor.sample, interval_s, pinger)

    def start(self) -> None:
        self._monitor.sample()  # the baseline: /metrics answers from the first second
        self._loop.start()

    def stop(self) -> None:
        self._loop.stop()


class FlushService:
    """Job totals and the intensity series to the ledger every ``jobs.flush`` (monotonic), and
    once more at stop, after the last sample: a crash loses at most one flush interval."""

    name = "ledger flusher"

    def __init__(
        self, flush: Callable[[], None], every_s: float, last: Callable[[], None] | None = None
    ) -> None:
        self._flush = last or flush  # ``last``: the flush at stop (it closes what is open)

        def step() -> float:
            flush()
            return every_s

        self._thread = PeriodicThread("ledger-flush", step, first_delay_s=every_s, retry_s=every_s)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._thread.stop(10.0)
        self._flush()


def daemon_services(loaded: LoadedConfig, agent: Agent, notifier: SystemdNotifier) -> list[Service]:
    """Every part of the daemon, in start order (stopped in reverse)."""
    config = loaded.config
    services: list[Service] = [
        CallbackService("job ledger", on_stop=agent.ledger.close),
        FlushService(agent.flush, config.jobs.flush, lambda: agent.flush(final=True)),
    ]
    for item in agent.sensors:
        if isinstance(item.sensor, PolledSensor) and item.used:
            poller = item.sensor
            services.append(CallbackService(f"{poller.name} poller", poller.start, poller.stop))
    if agent.feed is not None:  # fetches on its own thread: an outage never blocks sampling
        feed = agent.feed
        services.append(CallbackService("intensity feed", feed.start, feed.stop))
    for spec in EXPORTERS:
        if not spec.enabled(config):
            continue
        parts = spec.build(config)
        relay = SnapshotRelay(f"{spec.name}-publish", parts.publish)
        agent.monitor.subscribe(relay)
        services += [parts.service, CallbackService(f"{spec.name} relay", relay.start, relay.stop)]
    services.append(
        ServerService(
            "job API",
            lambda: JobApiServer(
                loaded.jobs_socket,
                agent.jobs,
                {
                    "code": agent.location.code,
                    "resolved_by": agent.location.resolved_by,
                    "detail": agent.location.detail,
                },
                {c.value: ratio for c, ratio in agent.monitor.model_uncertainty},
            ),
            connection_limits(config),
        )
    )
    services.append(SamplerService(agent, config.agent.interval, notifier))
    return services


def _log_sources(agent: Agent, loaded: LoadedConfig) -> None:
    config = loaded.config
    for item in agent.sensors:
        devices = ", ".join(f"{k.component}/{k.device}" for k in item.used) or "none"
        log.info("source %s: devices %s", item.sensor.name, devices)
        for line in item.discovery.details:
            log.info("source %s: %s", item.sensor.name, line)
        for status in item.discovery.statuses:
            log.info("source %s: %s (%s)", item.sensor.name, status.status, status.reason)
    location = agent.location
    if location.resolved_by == "default":  # most often a cloud VM on UTC: say how to fix it
        log.warning(
            "grid location %s (%s): emissions are weighed by the world average, which can be "
            'several times off; set carbon.location (e.g. "FR", "US-CA") or '
            "CARBONSCOPE_CARBON__LOCATION",
            location.code,
            location.detail,
        )
    else:
        log.info("grid location %s (%s)", location.code, location.detail)
    log.info(
        "grid intensity provider %s (refresh %gs, max age %gs)",
        agent.intensity.name,
        config.carbon.refresh,
        config.carbon.max_age,
    )
    log.info("job ledger %s; job API on %s", agent.ledger.path, loaded.jobs_socket)


def run_daemon(loaded: LoadedConfig, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    config = loaded.config
    sys.setswitchinterval(SWITCH_INTERVAL_S)
    notifier = SystemdNotifier(env)
    agent = build_agent(config, loaded.state_dir, env)
    _log_sources(agent, loaded)

    stop = threading.Event()

    def _on_signal(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s, stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    services = Services(daemon_services(loaded, agent, notifier))
    services.start()  # StartupError: what started is stopped again; the CLI prints one line
    # What start-up built lives as long as the daemon: out of the collector's sight, so that a
    # full collection walks the samples' garbage only (~9 ms less, once in a while, on a sample).
    gc.freeze()
    interval = config.agent.interval
    notifier.notify(
        "READY=1",
        f"STATUS=sampling every {interval:g}s, serving /metrics on {config.agent.listen}",
    )
    log.info("carbonscope ready: sampling every %gs, /metrics on %s", interval, config.agent.listen)
    stop.wait()

    notifier.notify("STOPPING=1")
    services.stop()
    snapshot = agent.monitor.snapshot
    log.info("stopped after %d samples", snapshot.samples_total if snapshot else 0)
    return 0
