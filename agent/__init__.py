"""carbonscope agent: energy and carbon telemetry for Linux servers."""

from importlib.metadata import PackageNotFoundError, version

from carbonscope.client import track_job  # standard library only: cheap for training scripts

try:
    __version__ = version("carbonscope")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+unknown"

__all__ = ["__version__", "track_job"]
