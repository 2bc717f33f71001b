"""Prometheus exposition of carbonscope snapshots."""

from carbonscope.exporters.prometheus.collector import SnapshotCollector, render
from carbonscope.exporters.prometheus.server import MetricsServer

__all__ = ["MetricsServer", "SnapshotCollector", "render"]
