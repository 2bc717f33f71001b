"""Configuration: schema, layered loading and duration parsing."""

from carbonscope.config.durations import format_duration, parse_duration
from carbonscope.config.loader import LoadedConfig, load_config
from carbonscope.config.schema import Config

__all__ = ["Config", "LoadedConfig", "format_duration", "load_config", "parse_duration"]
