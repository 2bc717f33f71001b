"""Offline intensity from codecarbon's files, and the location guess from the time zone."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from carbonscope.carbon.intensity import StaticIntensityProvider
from carbonscope.carbon.location import (
    ResolvedLocation,
    guess_from_timezone,
    resolve_location,
    system_timezone,
)
from carbonscope.carbon.offline_data import (
    LBS_PER_MWH_TO_G_PER_KWH,
    OfflineIntensityData,
    codecarbon_data_dir,
)
from carbonscope.errors import LocationError

DATA = codecarbon_data_dir()


def country_value(iso3: str) -> float:
    mix = json.loads((DATA / "private_infra/global_energy_mix.json").read_text())
    return float(mix[iso3]["carbon_intensity"])


@pytest.mark.parametrize(
    ("code", "iso3"), [("FR", "FRA"), ("de", "DEU"), ("GB", "GBR"), ("USA", "USA")]
)
def test_countries_come_from_global_energy_mix(code: str, iso3: str) -> None:
    value = OfflineIntensityData().lookup(code)
    assert value.intensity_g_per_kwh == country_value(iso3)
    assert value.location == code.upper()[:2] if len(code) == 2 else value.location == "US"


def test_published_magnitudes() -> None:
    # REFERENCE.md: FRA 56.0, DEU 381.0, GBR 237.6, USA 369.5 (rounded)
    data = OfflineIntensityData()
    assert round(data.lookup("FR").intensity_g_per_kwh) == 56
    assert round(data.lookup("DE").intensity_g_per_kwh) == 381
    assert data.world_average.intensity_g_per_kwh == 475


def test_us_states_convert_lbs_per_mwh() -> None:
    [path] = sorted(DATA.glob("private_infra/*/usa_emissions.json"))[-1:]
    california = json.loads(path.read_text())["california"]["emissions"]
    value = OfflineIntensityData().lookup("US-CA")
    assert value.intensity_g_per_kwh == pytest.approx(california * LBS_PER_MWH_TO_G_PER_KWH)
    assert 100 < value.intensity_g_per_kwh < 400


@pytest.mark.faults
def test_a_value_in_the_packaged_data_that_is_no_intensity_is_no_figure(tmp_path: Path) -> None:
    """NaN, negative or text in codecarbon's files never becomes an emission factor."""
    data = tmp_path / "data"
    shutil.copytree(DATA / "private_infra", data / "private_infra")
    mix_path = data / "private_infra/global_energy_mix.json"
    mix = json.loads(mix_path.read_text())
    mix["FRA"]["carbon_intensity"] = float("nan")
    mix["DEU"]["carbon_intensity"] = -5
    mix_path.write_text(json.dumps(mix))  # json writes NaN as the literal NaN, as it reads it
    (usa_path,) = data.glob("private_infra/*/usa_emissions.json")
    usa = json.loads(usa_path.read_text())
    (california,) = [e for e in usa.values() if isinstance(e, dict) and e.get("regionCode") == "CA"]
    california["emissions"] = "n/a"
    usa_path.write_text(json.dumps(usa))
    offline = OfflineIntensityData(data)
    world = offline.world_average.intensity_g_per_kwh
    for code in ("FR", "DE", "US-CA"):
        found = offline.lookup(code)
        assert (found.intensity_g_per_kwh, found.dataset) == (world, "world average (no data)")
    assert offline.lookup("GB").intensity_g_per_kwh == country_value("GBR")
    source = data / "private_infra/carbon_intensity_per_source.json"
    per_source = json.loads(source.read_text())
    per_source["world_average"] = float("inf")
    source.write_text(json.dumps(per_source))
    with pytest.raises(LocationError, match="world_average is inf"):
        _ = OfflineIntensityData(data).world_average


@pytest.mark.parametrize("code", ["XX", "US-ZZ", "DE-BY", "Atlantis"])
def test_unknown_locations_are_errors_naming_the_accepted_forms(code: str) -> None:
    with pytest.raises(LocationError, match=r"unknown|no offline data") as error:
        OfflineIntensityData().normalise(code)
    assert "did you mean" not in str(error.value)  # nothing near enough to suggest


@pytest.mark.parametrize(
    ("written", "code"),
    [
        ("UK", "GB"),
        ("uk", "GB"),
        ("Great Britain", "GB"),
        ("France", "FR"),
        ("germany", "DE"),
        ("EL", "GR"),
        ("California", "US-CA"),
        ("new york", "US-NY"),
        ("FRA", "FR"),
    ],
)
def test_locations_by_name_and_common_alias(written: str, code: str) -> None:
    assert OfflineIntensityData().normalise(written) == code


@pytest.mark.parametrize(
    ("written", "suggestion"), [("Frnace", "France"), ("Californa", "California")]
)
def test_a_near_miss_gets_a_did_you_mean(written: str, suggestion: str) -> None:
    with pytest.raises(LocationError, match=f'did you mean "{suggestion}"'):
        OfflineIntensityData().normalise(written)


@pytest.fixture
def zoneinfo(tmp_path: Path) -> Path:
    """tzdata's tables, a few real rows in the real format."""
    directory = tmp_path / "zoneinfo"
    directory.mkdir()
    (directory / "zone1970.tab").write_text(
        "# tzdb timezone descriptions\n"
        "BE,LU,NL\t+5050+00420\tEurope/Brussels\n"
        "DE,DK,NO,SE,SJ\t+5230+01322\tEurope/Berlin\tmost of Germany\n"
        "FR,MC\t+4852+00220\tEurope/Paris\n"
        "US\t+340308-1181434\tAmerica/Los_Angeles\tPacific\n"
    )
    (directory / "zone.tab").write_text(
        "# tzdb timezone descriptions\nNL\t+5222+00454\tEurope/Amsterdam\n"
    )
    return directory


@pytest.mark.parametrize(
    ("zone", "code", "how"),
    [
        ("Europe/Paris", "FR", "timezone"),
        ("Europe/Berlin", "DE", "timezone"),
        ("Europe/Amsterdam", "NL", "timezone"),  # a link in zone1970.tab: found in zone.tab
        ("Etc/UTC", "WORLD", "default"),
        ("UTC", "WORLD", "default"),
        ("Mars/Olympus_Mons", "WORLD", "default"),
        (None, "WORLD", "default"),
    ],
)
def test_timezone_guess(zoneinfo: Path, zone: str | None, code: str, how: str) -> None:
    resolved = guess_from_timezone(zone, zoneinfo)
    assert (resolved.code, resolved.resolved_by) == (code, how)


def test_system_timezone_sources(tmp_path: Path) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    assert system_timezone({}, etc) is None
    os.symlink("/usr/share/zoneinfo/Europe/Paris", etc / "localtime")
    assert system_timezone({}, etc) == "Europe/Paris"
    (etc / "timezone").write_text("Europe/Berlin\n")
    assert system_timezone({}, etc) == "Europe/Berlin"
    assert system_timezone({"TZ": ":America/Los_Angeles"}, etc) == "America/Los_Angeles"


def test_configured_location_wins_and_says_so(zoneinfo: Path) -> None:
    resolved = resolve_location("fr", {"TZ": "Europe/Berlin"}, zoneinfo_dir=zoneinfo)
    assert (resolved.code, resolved.resolved_by) == ("FR", "config")
    guessed = resolve_location("", {"TZ": "Europe/Berlin"}, zoneinfo_dir=zoneinfo)
    assert (guessed.code, guessed.resolved_by) == ("DE", "timezone")


def test_static_provider_labels_its_value() -> None:
    provider = StaticIntensityProvider(
        ResolvedLocation("DE", "timezone", "time zone Europe/Berlin -> DE")
    )
    value = provider.current(0.0).average
    assert (value.location, value.provider, value.signal) == ("DE", "static", "average")
    assert value.g_per_kwh == country_value("DEU")
    assert "Europe/Berlin" in value.detail


def test_each_static_factor_says_its_method_and_year_as_its_source_states_them() -> None:
    data = OfflineIntensityData()
    california = data.lookup("US-CA")
    assert (california.emission_factor_type, california.year) == ("direct", 2023)  # eGRID2023
    france = data.lookup("FR")
    mix = json.loads((DATA / "private_infra/global_energy_mix.json").read_text())
    assert (france.emission_factor_type, france.year) == ("unspecified", mix["FRA"]["year"])
    world = data.lookup("WORLD")
    assert (world.emission_factor_type, world.year) == ("unspecified", 2019)
    provider = StaticIntensityProvider(ResolvedLocation("US-CA", "config", ""))
    assert provider.current(0.0).average.emission_factor_type == "direct"
