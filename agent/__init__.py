"""carbonscope: energy and carbon telemetry for Linux servers."""

from carbonscope.client import track_job  # standard library only: cheap for training scripts
from carbonscope.version import __version__

__all__ = ["__version__", "track_job"]
