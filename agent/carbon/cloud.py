"""Which cloud region the node runs in, and its grid location.

DMI (``<sysfs>/class/dmi/id``) tells whether this is an AWS, GCP or Azure instance; only then
is the cloud's instance metadata service asked for the region, once, at start-up, within one
deadline for the whole exchange (about a second): on anything else the link-local address may
drop packets, so a connect would hang. The region maps to a location through codecarbon's
``data/cloud/impact.csv`` (GCP) or ``data/cloud_regions.csv`` (AWS, Azure; sources in the
file). A region in neither table is not guessed. Standard library only: a static agent never
loads requests for this.
"""

from __future__ import annotations

import csv
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from carbonscope.codecarbon_data import codecarbon_data_dir, normalise_location

log = logging.getLogger(__name__)

METADATA_URL = "http://169.254.169.254"
METADATA_TIMEOUT_S = 1.0
AZURE_MARKER = "7783-7084-3265-9085-8269-3286-77"  # Azure's chassis asset tag
REGIONS_CSV = Path(__file__).with_name("data") / "cloud_regions.csv"
MAX_ANSWER_BYTES = 4096


@dataclass(frozen=True)
class CloudRegion:
    cloud: str  # "aws" | "gcp" | "azure"
    region: str  # "eu-west-3", "europe-west1", "westeurope"
    location: str | None  # "FR"; None: a region no table places


def _dmi(sysfs: Path, name: str) -> str:
    try:
        return (sysfs / "class/dmi/id" / name).read_text(errors="replace").strip()
    except OSError:
        return ""


def detect_cloud(sysfs: Path) -> str | None:
    """ "aws", "gcp" or "azure" from DMI (REFERENCE.md), None for anything else."""
    vendor, product = _dmi(sysfs, "sys_vendor"), _dmi(sysfs, "product_name")
    if vendor == "Amazon EC2" or (vendor == "Xen" and "amazon" in _dmi(sysfs, "bios_version")):
        return "aws"
    if vendor == "Google" and product == "Google Compute Engine":
        return "gcp"
    if vendor == "Microsoft Corporation" and _dmi(sysfs, "chassis_asset_tag") == AZURE_MARKER:
        return "azure"
    return None


class _Deadline:
    def __init__(self, seconds: float, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._until = clock() + seconds

    def left(self) -> float:
        left = self._until - self._clock()
        if left <= 0:
            raise TimeoutError("the metadata service did not answer in time")
        return left


def _ask(url: str, deadline: _Deadline, headers: dict[str, str], method: str = "GET") -> str:
    # Only on a cloud VM (its DMI names the vendor): urllib loads http.client and ssl (~5 MiB)
    import urllib.request  # noqa: PLC0415

    request = urllib.request.Request(url, method=method, headers=headers)
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never via a proxy
    with opener.open(request, timeout=deadline.left()) as answer:
        body: bytes = answer.read(MAX_ANSWER_BYTES + 1)
    if len(body) > MAX_ANSWER_BYTES:
        raise ValueError("answer too long for a region name")
    return body.decode("ascii", errors="replace").strip()


def _aws(base: str, deadline: _Deadline) -> str:
    ttl = {"X-aws-ec2-metadata-token-ttl-seconds": "60"}
    token = _ask(f"{base}/latest/api/token", deadline, ttl, "PUT")  # IMDSv2's session token
    region_url = f"{base}/latest/meta-data/placement/region"
    return _ask(region_url, deadline, {"X-aws-ec2-metadata-token": token})


def _gcp(base: str, deadline: _Deadline) -> str:
    zone_url = f"{base}/computeMetadata/v1/instance/zone"
    zone = _ask(zone_url, deadline, {"Metadata-Flavor": "Google"})
    return zone.rsplit("/", 1)[-1].rsplit("-", 1)[0]  # projects/1/zones/europe-west1-b


def _azure(base: str, deadline: _Deadline) -> str:
    url = f"{base}/metadata/instance/compute/location?api-version=2021-02-01&format=text"
    return _ask(url, deadline, {"Metadata": "true"})


_ASK_REGION = {"aws": _aws, "gcp": _gcp, "azure": _azure}


@lru_cache(maxsize=1)
def _region_table() -> dict[tuple[str, str], str]:
    rows = (line for line in REGIONS_CSV.read_text().splitlines() if not line.startswith("#"))
    return {(row["provider"], row["region"]): row["location"] for row in csv.DictReader(rows)}


def _gcp_location(region: str, data_dir: Path) -> str | None:
    """A GCP region's location from codecarbon's impact.csv (ISO3 country, US state name)."""
    try:
        text = (data_dir / "cloud/impact.csv").read_text(encoding="utf-8-sig")
    except OSError:
        return None
    for row in csv.DictReader(text.splitlines()):
        if row.get("provider") == "gcp" and row.get("region") == region:
            state, country = (row.get("state") or "").strip(), (row.get("countryIsoCode") or "")
            for candidate in (state if country == "USA" and state else None, country):
                if candidate:
                    try:
                        return normalise_location(candidate, data_dir)
                    except ValueError:
                        continue
    return None


def region_location(cloud: str, region: str, data_dir: Path | None = None) -> str | None:
    if cloud == "gcp":
        return _gcp_location(region, data_dir or codecarbon_data_dir())
    return _region_table().get((cloud, region))


def cloud_region(
    sysfs: Path, base_url: str = "", timeout_s: float = METADATA_TIMEOUT_S
) -> CloudRegion | None:
    """The cloud region of this node; None off a cloud or when its metadata service does not
    answer within ``timeout_s`` (logged, never raised)."""
    cloud = detect_cloud(sysfs)
    if cloud is None:
        return None
    base = (base_url or METADATA_URL).rstrip("/")
    try:
        region = _ASK_REGION[cloud](base, _Deadline(timeout_s))
    except (OSError, ValueError) as exc:  # urllib's URLError is an OSError
        log.warning("%s instance: no region from its metadata service at %s: %s", cloud, base, exc)
        return None
    if not region or not region.replace("-", "").isalnum():
        log.warning("%s instance: metadata service answered %r, not a region", cloud, region[:60])
        return None
    return CloudRegion(cloud, region, region_location(cloud, region))
