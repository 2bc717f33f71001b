"""Every exporter the daemon can run: one row each. A second exporter (OTLP, later) is one
package under exporters/ plus one row here; each gets its snapshots through its own relay
(carbonscope.sampling.publisher), so none can delay a sample."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from carbonscope.config.schema import Config, parse_listen
from carbonscope.daemon.limits import ConnectionLimits
from carbonscope.daemon.services import ServerService, Service
from carbonscope.errors import CarbonscopeError, ConfigError
from carbonscope.exporters.prometheus import MetricsServer
from carbonscope.snapshot import Snapshot

if TYPE_CHECKING:
    from carbonscope.exporters.prometheus.web_config import WebConfig


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


def web_config(path: Path | None) -> WebConfig | None:
    """TLS and basic auth for /metrics (agent.web_config_file); a bad file is a config error."""
    if path is None:
        return None
    from carbonscope.exporters.prometheus.web_config import (  # noqa: PLC0415 - yaml, bcrypt
        WebConfigError,
        load_web_config,
    )

    try:
        return load_web_config(path)
    except WebConfigError as exc:
        raise ConfigError(
            [f"agent.web_config_file: {problem}" for problem in exc.problems]
        ) from None


def _listen(listen: str, interval_s: float, web: WebConfig | None) -> MetricsServer:
    try:
        return MetricsServer(*parse_listen(listen), interval_s=interval_s, web=web)
    except OSError as exc:
        raise CarbonscopeError(f"cannot listen on {listen}: {exc.strerror or exc}") from None


def _prometheus(config: Config) -> ExporterParts:
    web = web_config(config.agent.web_config_file)
    service = ServerService(
        "prometheus exporter",
        lambda: _listen(config.agent.listen, config.agent.interval, web),
        connection_limits(config),
    )

    def publish(snapshot: Snapshot) -> None:
        if isinstance(service.server, MetricsServer):
            service.server.publish(snapshot)

    return ExporterParts(service, publish)


EXPORTERS: tuple[ExporterSpec, ...] = (
    ExporterSpec("prometheus", lambda _config: True, _prometheus),
)
