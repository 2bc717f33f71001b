"""Where the configured provider is chosen: ``build_intensity_provider``, the one place.

Each provider file only talks to its API and maps answers and errors (base.py); the feed
(agent/carbon/feed.py) does scheduling, retries and the fallback chain.
"""

from __future__ import annotations

from pathlib import Path

from carbonscope.carbon.feed import FeedSettings, IntensityFeed
from carbonscope.carbon.intensity import IntensityProvider, StaticIntensityProvider
from carbonscope.carbon.location import ResolvedLocation
from carbonscope.carbon.offline_data import OfflineIntensityData
from carbonscope.carbon.providers.base import GridSource, ProviderError
from carbonscope.config.schema import CarbonSection
from carbonscope.errors import ConfigError, LocationError


def _checked_secret(path: Path | None, key: str) -> Path:
    """Fail at start-up, naming the key, when a secret file cannot be read."""
    from carbonscope.carbon.providers.http import read_secret

    assert path is not None  # the schema requires it for this provider
    try:
        read_secret(path, key)
    except ProviderError as exc:
        raise ConfigError([str(exc)]) from None
    return path


def build_source(carbon: CarbonSection, location: ResolvedLocation) -> GridSource | None:
    """The configured live source, or None for ``static``.

    Provider modules are imported only when chosen: an agent on the static provider never
    loads requests and its TLS stack (about 5 MiB of resident memory).
    """
    timeout = carbon.timeout
    if carbon.provider == "file":
        from carbonscope.carbon.providers.file import IntensityFileSource

        assert carbon.file.path is not None  # the schema requires it
        return IntensityFileSource(carbon.file.path, location.code)
    if carbon.provider == "static":
        return None
    from carbonscope.carbon.providers.http import JsonHttp

    if carbon.provider == "electricitymaps":
        from carbonscope.carbon.providers.electricitymaps import ElectricityMapsSource

        section = carbon.electricitymaps
        return ElectricityMapsSource(
            JsonHttp(section.url, timeout),
            _checked_secret(section.token_file, "carbon.electricitymaps.token_file"),
            section.zone,
            section.emission_factor_type,
        )
    if carbon.provider == "watttime":
        from carbonscope.carbon.providers.watttime import WattTimeSource

        wt = carbon.watttime
        return WattTimeSource(
            JsonHttp(wt.url, timeout),
            wt.username,
            _checked_secret(wt.password_file, "carbon.watttime.password_file"),
            wt.region,
        )
    from carbonscope.carbon.providers.uk import UkCarbonIntensitySource

    return UkCarbonIntensitySource(
        JsonHttp(carbon.uk.url, timeout), carbon.uk.postcode, carbon.uk.region_id
    )


def fallback_location(
    carbon: CarbonSection, guessed: ResolvedLocation, data: OfflineIntensityData
) -> ResolvedLocation:
    """Where the static fallback looks: the configured location, else the provider's zone
    when the offline data knows it (Electricity Maps "DE", UK "GB"), else the guess."""
    if carbon.location or carbon.provider in ("static", "file", "watttime"):
        return guessed
    zone = "GB" if carbon.provider == "uk" else carbon.electricitymaps.zone.split("-")[0]
    try:
        code = data.normalise(zone)
    except LocationError:
        return guessed
    return ResolvedLocation(code, "provider", f"the {carbon.provider} zone {zone}")


def build_intensity_provider(carbon: CarbonSection, guessed: ResolvedLocation) -> IntensityProvider:
    """The static provider, or a live feed with the static value behind it."""
    data = OfflineIntensityData()
    location = fallback_location(carbon, guessed, data)
    static = StaticIntensityProvider(location, data)
    source = build_source(carbon, location)
    if source is None:
        return static
    return IntensityFeed(source, static, FeedSettings(carbon.refresh, carbon.max_age))
