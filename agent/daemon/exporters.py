"""Every exporter the daemon can run: one row each. A second exporter (OTLP, later) is one
package under exporters/ plus one row here; each gets its snapshots through its own relay
(carbonscope.sampling.publisher), so none can delay a sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from carbonscope.config.schema import Config, parse_listen
from carbonscope.daemon.limits import ConnectionLimits
from carbonscope.daemon.services import ServerService, Service
from carbonscope.errors import CarbonscopeError
from carbonscope.exporters.prometheus import MetricsServer
from carbonscope.snapshot import Snapshot


@dataclass(frozen=True)
class ExporterParts:
    service: Service  # started before the first sample, stopped after the last
    publish: Callable[[Snapshot], None]  # called on the exporter's relay thread


@dataclass(frozen=True)
class ExporterSpec:
    name: str
    enabled: Callable[[Config], bool]
    build: Callable[[Config], ExporterParts]


def connection_limits(config: Config) -> ConnectionLimits:
    return ConnectionLimits(config.agent.max_connections, config.agent.request_timeout)


def _listen(listen: str, interval_s: float) -> MetricsServer:
    try:
        return MetricsServer(*parse_listen(listen), interval_s=interval_s)
    except OSError as exc:
        raise CarbonscopeError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


def _prometheus(config: Config) -> ExporterParts:
    service = ServerService(
        "prometheus exporter",
        lambda: _listen(config.agent.listen, config.agent.interval),
        connection_limits(config),
    )

    def publish(snapshot: Snapshot) -> None:
        if isinstance(service.server, MetricsServer):
            service.server.publish(snapshot)

    return ExporterParts(service, publish)


EXPORTERS: tuple[ExporterSpec, ...] = (
    ExporterSpec("prometheus", lambda _config: True, _prometheus),
)
