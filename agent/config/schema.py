"""The configuration schema: every key, its type, default and bounds (docs/configuration.md)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    create_model,
    field_validator,
    model_validator,
)

from carbonscope.codecarbon_data import normalise_location
from carbonscope.durations import Duration, format_duration, parse_duration
from carbonscope.labels import TAG_KEY
from carbonscope.sensors.catalogue import SOURCES, source_names
from carbonscope.sensors.selection import AUTO


def _duration_between(low: str, high: str | None = None) -> AfterValidator:
    """A bound on a Duration, written as durations; messages use the same spelling."""
    low_s, high_s = parse_duration(low), None if high is None else parse_duration(high)

    def check(seconds: float) -> float:
        if high_s is None and seconds < low_s:
            raise ValueError(f"{format_duration(seconds)} is too short: at least {low}")
        if high_s is not None and not low_s <= seconds <= high_s:
            raise ValueError(
                f"{format_duration(seconds)} is out of range: must be between {low} and {high}"
            )
        return seconds

    return AfterValidator(check)


def parse_listen(value: str) -> tuple[str, int]:
    """HOST:PORT -> (host, port); an IPv6 host is written in brackets ("[::1]:9377")."""
    host, sep, port = value.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f'{value!r} is not HOST:PORT (e.g. "0.0.0.0:9377", "[::1]:9377")')
    if host.startswith("[") != host.endswith("]"):
        raise ValueError(f'{value!r}: an IPv6 host is written in brackets, e.g. "[::]:9377"')
    return host.strip("[]"), int(port)


def _checked_listen(value: str) -> str:
    parse_listen(value)
    return value


def _empty_as_none(value: object) -> object:
    return None if isinstance(value, str) and not value.strip() else value


def _comma_list(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class _Section(BaseModel):
    # Non-finite numbers (inf, nan, 1e400) would turn totals into NaN: rejected everywhere.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


class AgentSection(_Section):
    interval: Annotated[Duration, _duration_between("50ms", "60s")] = 1.0
    listen: Annotated[str, AfterValidator(_checked_listen)] = "0.0.0.0:9377"
    state_dir: Annotated[Path | None, BeforeValidator(_empty_as_none)] = None
    sysfs_root: Path = Path("/sys")
    procfs_root: Path = Path("/proc")
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # Both servers (/metrics and the job API): connections at once, and the deadline of one
    # request from accept to the last byte (docs/deploy.md: LimitNOFILE stays well above).
    max_connections: Annotated[int, Field(ge=1, le=4096)] = 64
    request_timeout: Annotated[Duration, _duration_between("100ms", "5m")] = 10.0
    # The node history in the ledger (carbonscope report): minute rows, hourly after
    # history_hourly_after, deleted after history_retention
    history_hourly_after: Annotated[Duration, _duration_between("1h", "3650d")] = 35 * 86400.0
    history_retention: Annotated[Duration, _duration_between("1d", "3650d")] = 400 * 86400.0
    # TLS and basic auth for /metrics: a web config file in exporter-toolkit's format
    web_config_file: Annotated[Path | None, BeforeValidator(_empty_as_none)] = None


def _source_name(name: str) -> str:
    if name != AUTO and name not in source_names():
        choices = ", ".join(repr(n) for n in (AUTO, *source_names()))
        raise ValueError(f"Input should be {choices} (got {name!r})")
    return name


class _SensorsBase(_Section):
    """``[sensors]``: ``enable`` plus one sub-section per catalogue source (added below)."""

    enable: Annotated[
        list[Annotated[str, AfterValidator(_source_name)]],
        BeforeValidator(_comma_list),
        Field(min_length=1),
    ] = [AUTO]

    @field_validator("enable")
    @classmethod
    def _known_and_available(cls, value: list[str]) -> list[str]:
        if AUTO in value and len(value) > 1:
            raise ValueError(f'"{AUTO}" cannot be combined with named sensors')
        return value

    def source_settings(self, name: str) -> Any:
        """The ``[sensors.<name>]`` section of a catalogue source."""
        return getattr(self, name)


# One sub-section per source of the catalogue, each its source's own settings class: a new
# source brings its section with its catalogue row.
_source_sections: dict[str, Any] = {spec.name: (spec.settings, spec.settings()) for spec in SOURCES}
if TYPE_CHECKING:
    SensorsSection = _SensorsBase
else:
    SensorsSection = create_model(
        "SensorsSection", __base__=_SensorsBase, __module__=__name__, **_source_sections
    )


def _http_url(value: str) -> str:
    if not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value.strip()):
        raise ValueError(f"{value!r} is not an http(s) base URL, e.g. https://api.example.com")
    return value.strip().rstrip("/")


HttpUrl = Annotated[str, AfterValidator(_http_url)]
OptionalPath = Annotated[Path | None, BeforeValidator(_empty_as_none)]
_UK_OUTWARD_CODE = re.compile(r"[A-Z]{1,2}[0-9][A-Z0-9]?")


class ElectricityMapsSection(_Section):
    url: HttpUrl = "https://api.electricitymaps.com"
    token_file: OptionalPath = None
    zone: str = ""
    emission_factor_type: Literal["lifecycle", "direct"] = "lifecycle"


class WattTimeSection(_Section):
    url: HttpUrl = "https://api.watttime.org"
    username: str = ""
    password_file: OptionalPath = None
    region: str = ""


def _uk_postcode(value: str) -> str:
    code = value.strip().upper()
    if code and not _UK_OUTWARD_CODE.fullmatch(code):
        raise ValueError(f'{value!r} is not the outward part of a UK postcode (e.g. "RG10")')
    return code


class UkSection(_Section):
    url: HttpUrl = "https://api.carbonintensity.org.uk"
    postcode: Annotated[str, AfterValidator(_uk_postcode)] = ""
    region_id: Annotated[
        Annotated[int, Field(ge=1, le=17)] | None, BeforeValidator(_empty_as_none)
    ] = None

    @model_validator(mode="after")
    def _one_region(self) -> UkSection:
        if self.postcode and self.region_id is not None:
            raise ValueError("set postcode or region_id, not both (neither = national)")
        return self


class FileSection(_Section):
    path: OptionalPath = None


# What each live provider cannot run without: (section, key) pairs.
_PROVIDER_REQUIRES = {
    "electricitymaps": ("token_file", "zone"),
    "watttime": ("username", "password_file", "region"),
    "file": ("path",),
}


class CarbonSection(_Section):
    location: str = ""
    cloud_metadata_url: str = ""  # "" = the detected cloud's own (http://169.254.169.254)
    provider: Literal["static", "electricitymaps", "watttime", "uk", "file"] = "static"
    pue: Annotated[float, Field(ge=1.0, le=5.0)] = 1.0
    # "" (the documented default) is None; the bound applies to a number only
    market_factor: Annotated[
        Annotated[float, Field(ge=0)] | None, BeforeValidator(_empty_as_none)
    ] = None
    refresh: Annotated[Duration, _duration_between("1s")] = 900.0
    max_age: Annotated[Duration, _duration_between("1s")] = 7200.0
    timeout: Annotated[Duration, _duration_between("100ms", "2m")] = 10.0
    electricitymaps: ElectricityMapsSection = ElectricityMapsSection()
    watttime: WattTimeSection = WattTimeSection()
    uk: UkSection = UkSection()
    file: FileSection = FileSection()

    @field_validator("cloud_metadata_url")
    @classmethod
    def _http_url(cls, value: str) -> str:
        if value.strip() and not re.match(r"^https?://[^/\s]+", value.strip()):
            raise ValueError(f"expected an http:// or https:// base URL, got {value!r}")
        return value.strip()

    @field_validator("location")
    @classmethod
    def _known_location(cls, value: str) -> str:
        return normalise_location(value) if value.strip() else ""

    @model_validator(mode="after")
    def _provider_configured(self) -> CarbonSection:
        section = getattr(self, self.provider, None)
        missing = [
            f"carbon.{self.provider}.{key}"
            for key in _PROVIDER_REQUIRES.get(self.provider, ())
            if not getattr(section, key)
        ]
        if missing:
            raise ValueError(
                f'provider "{self.provider}" needs {", ".join(missing)} '
                "(docs/carbon.md, live providers)"
            )
        return self


def _promotable_tags(keys: list[str]) -> list[str]:
    bad = [key for key in keys if not TAG_KEY.fullmatch(key)]
    if bad:
        raise ValueError(
            f"tag key(s) {', '.join(map(repr, bad))} cannot become labels: "
            "use [a-z][a-z0-9_]*, at most 63 characters"
        )
    if len(set(keys)) != len(keys):
        raise ValueError("a tag key is listed twice")
    return keys


class JobsSection(_Section):
    socket: Annotated[Path | None, BeforeValidator(_empty_as_none)] = None
    keep_finished: Annotated[Duration, Field(ge=0)] = 3600.0
    max_exported: Annotated[int, Field(ge=0, le=100_000)] = 200
    promoted_tags: Annotated[
        list[str], BeforeValidator(_comma_list), AfterValidator(_promotable_tags)
    ] = ["team", "project"]
    flush: Annotated[Duration, _duration_between("100ms", "5m")] = 30.0
    detect_cgroups: bool = True
    max_running_per_user: Annotated[int, Field(ge=1)] = 256
    max_created_per_minute: Annotated[int, Field(ge=1)] = 120
    max_finished_per_user: Annotated[int, Field(ge=0)] = 1000
    # How the idle part of CPU, DRAM and platform energy reaches jobs (docs/attribution.md)
    idle_policy: Literal["reserved", "proportional", "none"] = "reserved"


class EmbodiedSection(_Section):
    """``[embodied]``: the hardware's manufacturing footprint (Scope 3), amortised over its
    life; off while both footprints are 0 (docs/reports.md)."""

    server_kgco2e: Annotated[float, Field(ge=0)] = 0.0
    gpu_kgco2e: Annotated[float, Field(ge=0)] = 0.0  # per GPU
    lifetime: Annotated[Duration, _duration_between("1d", "50y")] = 4 * 365 * 86400.0


class Config(_Section):
    agent: AgentSection = AgentSection()
    sensors: SensorsSection = SensorsSection()
    carbon: CarbonSection = CarbonSection()
    embodied: EmbodiedSection = EmbodiedSection()
    jobs: JobsSection = JobsSection()
