"""The carbonscope version: the one place it is written (pyproject.toml reads it from here,
through [tool.hatch.version]), so that knowing it costs no importlib.metadata (which loads
email, zipfile and shutil with lzma and bz2)."""

__version__ = "0.1.0"
