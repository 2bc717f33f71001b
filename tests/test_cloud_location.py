"""The grid location of a cloud VM: DMI says which cloud, its metadata service the region,
one bounded attempt at start-up, and never a request off a cloud."""

from __future__ import annotations

import csv
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from carbonscope.carbon.cloud import REGIONS_CSV, cloud_region, region_location
from carbonscope.carbon.location import resolve_location
from carbonscope.codecarbon_data import normalise_location
from tests.daemon import Daemon
from tests.fakes.cloud import MetadataService, write_dmi

UTC = {"TZ": "UTC"}
PARIS = {"TZ": "Europe/Paris"}


@pytest.fixture
def metadata() -> Iterator[MetadataService]:
    service = MetadataService()
    yield service
    service.close()


@pytest.mark.parametrize(
    ("cloud", "region", "location"),
    [
        ("aws", "eu-west-3", "FR"),
        ("aws", "us-east-1", "US-VA"),
        ("gcp", "europe-west1", "BE"),
        ("gcp", "us-central1", "US-IA"),
        ("azure", "westeurope", "NL"),
        ("azure", "eastus", "US-VA"),
    ],
)
def test_each_cloud_names_its_region_and_the_region_its_grid(
    tmp_path: Path, metadata: MetadataService, cloud: str, region: str, location: str
) -> None:
    write_dmi(tmp_path, cloud)
    metadata.region = region
    resolved = resolve_location("", UTC, sysfs=tmp_path, metadata_url=metadata.url)
    assert (resolved.code, resolved.resolved_by) == (location, "cloud")
    assert resolved.detail == f"{cloud} region {region} -> {location}"


def test_aws_asks_for_an_imdsv2_token_first(tmp_path: Path, metadata: MetadataService) -> None:
    write_dmi(tmp_path, "aws")
    cloud_region(tmp_path, metadata.url)
    (put, get) = metadata.requests
    assert put[:2] == ("PUT", "/latest/api/token")
    assert get[2]["x-aws-ec2-metadata-token"] == metadata.token


def test_off_a_cloud_no_metadata_request_is_made(tmp_path: Path, metadata: MetadataService) -> None:
    write_dmi(tmp_path, "bare metal")
    resolved = resolve_location("", PARIS, sysfs=tmp_path, metadata_url=metadata.url)
    assert (resolved.code, resolved.resolved_by) == ("FR", "timezone")
    resolve_location("", PARIS, sysfs=tmp_path / "no-dmi-at-all", metadata_url=metadata.url)
    assert metadata.requests == []


@pytest.mark.parametrize("failure", ["404", "hang", "garbage", "unknown region"])
def test_a_failing_metadata_service_falls_back_to_the_time_zone_within_the_timeout(
    tmp_path: Path, metadata: MetadataService, failure: str
) -> None:
    write_dmi(tmp_path, "azure")
    if failure == "404":
        metadata.status = 404
    elif failure == "hang":
        metadata.delay_s = 5.0
    elif failure == "garbage":
        metadata.region = "<html>oops</html>"
    else:
        metadata.region = "atlantis-central"
    started = time.monotonic()
    resolved = resolve_location(
        "", PARIS, sysfs=tmp_path, metadata_url=metadata.url, metadata_timeout_s=0.5
    )
    assert time.monotonic() - started < 1.5  # never the 5 s the service takes
    assert (resolved.code, resolved.resolved_by) == ("FR", "timezone")
    if failure == "unknown region":
        assert resolved.detail.startswith("azure region atlantis-central is in no region table")


def test_configured_location_wins_and_asks_nothing(
    tmp_path: Path, metadata: MetadataService
) -> None:
    write_dmi(tmp_path, "gcp")
    resolved = resolve_location("DE", UTC, sysfs=tmp_path, metadata_url=metadata.url)
    assert (resolved.code, resolved.resolved_by) == ("DE", "config")
    assert metadata.requests == []


def test_every_row_of_the_region_table_is_a_location_the_offline_data_knows() -> None:
    rows = [line for line in REGIONS_CSV.read_text().splitlines() if not line.startswith("#")]
    table = list(csv.DictReader(rows))
    assert len(table) > 60
    for row in table:
        assert normalise_location(row["location"]) == row["location"], row
        assert region_location(row["provider"], row["region"]) == row["location"]
    assert {row["provider"] for row in table} == {"aws", "azure"}


@pytest.mark.e2e
def test_the_daemon_on_a_cloud_vm_labels_its_location_from_the_region(
    tmp_path: Path, metadata: MetadataService
) -> None:
    write_dmi(tmp_path, "aws")
    config = tmp_path / "carbonscope.toml"
    config.write_text(f'[carbon]\ncloud_metadata_url = "{metadata.url}"\n')
    daemon = Daemon(["--config", str(config), "--sysfs-root", str(tmp_path)], tmp_path, env=UTC)
    try:
        daemon.wait_ready()
        scrape = daemon.scrape()
    finally:
        assert daemon.stop() == 0
    labels = (("location", "FR"), ("resolved_by", "cloud"))
    assert scrape[("carbonscope_grid_location_info", labels)] == 1
    assert "INFO carbonscope.daemon.runner: grid location FR (aws region eu-west-3 -> FR)" in (
        daemon.log_text()
    )
