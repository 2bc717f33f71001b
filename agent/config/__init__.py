"""Configuration: schema, layered loading and duration parsing."""

from carbonscope.config.loader import LoadedConfig, load_config
from carbonscope.config.schema import Config
from carbonscope.durations import format_duration, parse_duration

__all__ = ["Config", "LoadedConfig", "format_duration", "load_config", "parse_duration"]
