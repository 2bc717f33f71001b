"""Prometheus exposition of carbonscope snapshots."""

from exporters.prometheus.collector import SnapshotCollector, render
from exporters.prometheus.server import MetricsServer

__all__ = ["MetricsServer", "SnapshotCollector", "render"]
