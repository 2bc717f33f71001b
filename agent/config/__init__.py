"""Configuration: schema, layered loading and duration parsing."""

from agent.config.durations import format_duration, parse_duration
from agent.config.loader import LoadedConfig, load_config
from agent.config.schema import Config

__all__ = ["Config", "LoadedConfig", "format_duration", "load_config", "parse_duration"]
