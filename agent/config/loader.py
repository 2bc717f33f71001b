"""Layered configuration: defaults < TOML file < CARBONSCOPE_<SECTION>__<KEY> env < flags.

Each value remembers where it came from, so a validation error names the file, environment
variable or flag to fix, with the dotted key and the reason, one line per problem.
"""

from __future__ import annotations

import difflib
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from carbonscope.config.schema import Config
from carbonscope.errors import ConfigError
from carbonscope.paths import default_jobs_socket, default_state_dir

ENV_PREFIX = "CARBONSCOPE_"
SYSTEM_CONFIG_PATH = Path("/etc/carbonscope/carbonscope.toml")


@dataclass(frozen=True)
class LoadedConfig:
    config: Config
    path: Path | None  # the file read, None for built-in defaults
    state_dir: Path
    jobs_socket: Path
    warnings: tuple[str, ...] = ()  # e.g. CARBONSCOPE_* variables that set nothing


# CARBONSCOPE_* variables that are not config keys.
NON_CONFIG_VARIABLES = frozenset({"CARBONSCOPE_CONFIG", "CARBONSCOPE_SOCKET"})


def _key_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    paths = []
    for name, field in model.model_fields.items():
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            paths += _key_paths(annotation, (*prefix, name))
        else:
            paths.append((*prefix, name))
    return paths


def unused_variable_warnings(env: Mapping[str, str]) -> list[str]:
    """CARBONSCOPE_* variables that look like config but match no key, with a did-you-mean
    (an unknown key spelled with ``__`` is a validation error instead)."""
    spellings = {
        ENV_PREFIX + "__".join(part.upper() for part in path): path for path in _key_paths(Config)
    }
    single = {name.replace("__", "_"): name for name in spellings}
    warnings = []
    for name in sorted(env):
        if not name.startswith(ENV_PREFIX) or name in NON_CONFIG_VARIABLES or "__" in name:
            continue
        suggestion = single.get(name) or next(
            iter(difflib.get_close_matches(name, list(spellings), n=1, cutoff=0.8)), None
        )
        hint = f" (did you mean {suggestion}?)" if suggestion else ""
        warnings.append(
            f"environment {name}: not a config variable, ignored{hint}; config variables are "
            "CARBONSCOPE_<SECTION>__<KEY>"
        )
    return warnings


def find_config_file(
    explicit: Path | None, env: Mapping[str, str], system_path: Path
) -> Path | None:
    if explicit is not None:
        return explicit
    if env.get("CARBONSCOPE_CONFIG"):
        return Path(env["CARBONSCOPE_CONFIG"])
    return system_path if system_path.exists() else None


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError([f"{path}: file not found"]) from None
    except PermissionError:
        raise ConfigError([f"{path}: permission denied"]) from None
    except IsADirectoryError:
        raise ConfigError([f"{path}: is a directory, not a TOML file"]) from None
    except OSError as exc:
        raise ConfigError([f"{path}: cannot read: {exc.strerror or exc}"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: invalid TOML: {exc}"]) from None
    except UnicodeDecodeError:
        raise ConfigError([f"{path}: invalid TOML: not UTF-8 text"]) from None


def _env_value(raw: str) -> Any:
    """A TOML literal when it is one (1.2, true, ["a"]), else the plain string."""
    try:
        return tomllib.loads(f"v = {raw}")["v"]
    except tomllib.TOMLDecodeError:
        return raw


OriginOf = Callable[[tuple[str, ...]], str | None]


def _env_layer(env: Mapping[str, str]) -> tuple[dict[str, Any], OriginOf]:
    layer: dict[str, Any] = {}
    names: dict[tuple[str, ...], str] = {}
    for name, raw in env.items():
        if not name.startswith(ENV_PREFIX) or "__" not in name:
            continue
        path = tuple(part.lower() for part in name[len(ENV_PREFIX) :].split("__"))
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = _env_value(raw)
        names[path] = name
    return layer, lambda path: f"environment {names[path]}" if path in names else None


def _flags_layer(flags: Mapping[str, Any]) -> tuple[dict[str, Any], OriginOf]:
    layer: dict[str, Any] = {}
    for dotted, value in flags.items():
        if value is None:
            continue
        section, key = dotted.split(".", 1)
        layer.setdefault(section, {})[key] = value
    return layer, lambda path: f"flag --{path[1].replace('_', '-')}" if len(path) == 2 else None


def _constant_origin(origin: str) -> OriginOf:
    """Every value of a file comes from that file."""
    return lambda _path: origin


def _merge(
    base: dict[str, Any],
    layer: Mapping[str, Any],
    origin_of: OriginOf,
    origins: dict[tuple[str, ...], str],
    prefix: tuple[str, ...] = (),
) -> None:
    """Lay ``layer`` over ``base``, recording where each value (and table) came from."""
    for key, value in layer.items():
        path = (*prefix, key)
        origin = origin_of(path)
        if origin is not None:
            origins[path] = origin
        if isinstance(value, Mapping):
            if not isinstance(base.get(key), dict):
                base[key] = {}
            _merge(base[key], value, origin_of, origins, path)
        else:
            base[key] = value


def _model_at(loc: tuple[str | int, ...]) -> type[BaseModel] | None:
    model: type[BaseModel] = Config
    for part in loc:
        field = model.model_fields.get(str(part))
        annotation = field.annotation if field else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            return None
        model = annotation
    return model


def _describe(error: Mapping[str, Any]) -> str:
    loc = tuple(str(part) for part in error["loc"])
    if error["type"] == "extra_forbidden":
        parent = _model_at(loc[:-1])
        known = list(parent.model_fields) if parent else []
        close = difflib.get_close_matches(loc[-1], known, n=1, cutoff=0.6)
        hint = f' (did you mean "{close[0]}"?)' if close else f" (known keys: {', '.join(known)})"
        return f"unknown key{hint}"
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] not in ("value_error", "assertion_error") and "input" in error:
        message += f" (got {error['input']!r})"
    return message


def _origin_of(loc: tuple[str, ...], origins: Mapping[tuple[str, ...], str]) -> str:
    for end in range(len(loc), 0, -1):
        if loc[:end] in origins:
            return origins[loc[:end]]
    # An unknown section or table: name whatever set something beneath it.
    below = sorted(origin for path, origin in origins.items() if path[: len(loc)] == loc)
    return ", ".join(dict.fromkeys(below)) or "defaults"


def load_config(
    explicit_path: Path | None = None,
    env: Mapping[str, str] | None = None,
    flags: Mapping[str, Any] | None = None,
    system_path: Path = SYSTEM_CONFIG_PATH,
    euid: int | None = None,
) -> LoadedConfig:
    """Build the effective configuration, or raise ConfigError listing every problem."""
    env = os.environ if env is None else env
    euid = os.geteuid() if euid is None else euid
    path = find_config_file(explicit_path, env, system_path)

    layers: list[tuple[Mapping[str, Any], OriginOf]] = []
    if path is not None:
        layers.append((_read_toml(path), _constant_origin(str(path))))
    layers += [_env_layer(env), _flags_layer(flags or {})]
    merged: dict[str, Any] = {}
    origins: dict[tuple[str, ...], str] = {}
    for layer, origin_of in layers:  # defaults < file < environment < flags
        _merge(merged, layer, origin_of, origins)

    try:
        config = Config.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(str(part) for part in error["loc"])
            problems.append(f"{_origin_of(loc, origins)}: {'.'.join(loc)}: {_describe(error)}")
        raise ConfigError(problems) from None

    state_dir = config.agent.state_dir or default_state_dir(env, euid)
    jobs_socket = (
        Path(env["CARBONSCOPE_SOCKET"])
        if env.get("CARBONSCOPE_SOCKET")
        else config.jobs.socket or default_jobs_socket(env, euid, state_dir)
    )
    return LoadedConfig(
        config=config,
        path=path,
        state_dir=state_dir,
        jobs_socket=jobs_socket,
        warnings=tuple(unused_variable_warnings(env)),
    )
