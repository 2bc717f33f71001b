"""Where the node is: from config, else the cloud region (carbon/cloud.py), else guessed
offline from the system time zone, else the world average.

The time-zone guess maps the zone name (TZ, /etc/timezone or the /etc/localtime link) to a country
through tzdata's zone1970.tab (first country of the row: the most populous), then zone.tab for
zones zone1970.tab only knows as links (Europe/Amsterdam). UTC or anything unknown gives the
world average. How the location was chosen is kept with it, for probe and metric labels.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from carbonscope.carbon.cloud import METADATA_TIMEOUT_S, cloud_region
from carbonscope.carbon.offline_data import WORLD

DEFAULT_ZONEINFO_DIR = Path("/usr/share/zoneinfo")
_UTC_NAMES = {"UTC", "UCT", "GMT", "Zulu", "Universal", "Greenwich"}


@dataclass(frozen=True)
class ResolvedLocation:
    code: str  # "FR", "US-CA", "WORLD"
    resolved_by: str  # "config" | "cloud" | "timezone" | "default"
    detail: str  # a sentence for probe and logs


def system_timezone(env: Mapping[str, str], etc_dir: Path = Path("/etc")) -> str | None:
    """The zone name the system runs in, or None when it cannot be told."""
    tz = env.get("TZ", "").lstrip(":").strip()
    if tz and not tz.startswith("/"):
        return tz
    timezone_file = etc_dir / "timezone"
    try:
        name = timezone_file.read_text(encoding="utf-8").strip()
    except OSError:
        name = ""
    if name:
        return name
    try:
        target = os.readlink(etc_dir / "localtime")
    except OSError:
        return None
    marker = "zoneinfo/"
    if marker in target:
        return target.split(marker, 1)[1]
    return None


def _country_from_tab(tab: Path, zone: str) -> str | None:
    try:
        lines = tab.read_text(encoding="utf-8").splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 3 and fields[2] == zone:
            return fields[0].split(",")[0]
    return None


def guess_from_timezone(
    zone: str | None, zoneinfo_dir: Path = DEFAULT_ZONEINFO_DIR
) -> ResolvedLocation:
    if not zone:
        return ResolvedLocation(WORLD, "default", "system time zone unknown: world average")
    base = zone.rsplit("/", 1)[-1]
    if zone.startswith("Etc/") or base in _UTC_NAMES:
        return ResolvedLocation(
            WORLD, "default", f"time zone {zone} names no country: world average"
        )
    for tab_name in ("zone1970.tab", "zone.tab"):
        country = _country_from_tab(zoneinfo_dir / tab_name, zone)
        if country:
            return ResolvedLocation(
                country, "timezone", f"time zone {zone} -> {country} ({tab_name})"
            )
    return ResolvedLocation(
        WORLD, "default", f"time zone {zone} not in tzdata tables: world average"
    )


def resolve_location(
    configured: str,
    env: Mapping[str, str],
    etc_dir: Path = Path("/etc"),
    zoneinfo_dir: Path = DEFAULT_ZONEINFO_DIR,
    sysfs: Path | None = None,
    metadata_url: str = "",
    metadata_timeout_s: float = METADATA_TIMEOUT_S,
) -> ResolvedLocation:
    """Config, then the cloud region (only when DMI names a cloud; one bounded attempt),
    then the time zone, then the world average."""
    if configured.strip():
        return ResolvedLocation(configured.strip().upper(), "config", "carbon.location in config")
    unplaced = ""
    if sysfs is not None:
        region = cloud_region(sysfs, metadata_url, metadata_timeout_s)
        if region is not None and region.location is not None:
            return ResolvedLocation(
                region.location,
                "cloud",
                f"{region.cloud} region {region.region} -> {region.location}",
            )
        if region is not None:
            unplaced = f"{region.cloud} region {region.region} is in no region table; "
    guessed = guess_from_timezone(system_timezone(env, etc_dir), zoneinfo_dir)
    if unplaced:
        return ResolvedLocation(guessed.code, guessed.resolved_by, unplaced + guessed.detail)
    return guessed
