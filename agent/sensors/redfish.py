"""Redfish: the BMC's whole-server power over HTTPS (DMTF Redfish; REFERENCE.md).

Discovery walks ``/redfish/v1/Chassis`` and takes the first chassis with a reading, newest
model first: ``EnvironmentMetrics`` (``EnergykWh`` counter, else ``PowerWatts``), the
``Sensors`` collection (``TotalEnergy`` in kW.h, else ``TotalPower`` in W), then the older
``Power`` resource (``PowerControl[0].PowerConsumedWatts``). An energy counter is preferred: it
covers every joule between two polls, where a power reading is integrated.

One session per agent: ``POST /redfish/v1/SessionService/Sessions`` gives an ``X-Auth-Token``
that every request reuses; a 401 logs in again once (the BMC expired it). The password is read
from ``password_file`` at each login (rotation needs no restart) and, like the token, never
appears in a log line, a status or an export. TLS is verified by default, against
``ca_file`` or the system's CAs. Polled on its own thread (polled.py) with ``timeout`` per
request: a slow BMC never delays a sample.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BeforeValidator

from carbonscope.durations import Duration
from carbonscope.sensors.base import (
    PLATFORM_CEILING_UW,
    UNWRAPPED_RANGE_UJ,
    Component,
    CounterReading,
    DeviceKey,
    DeviceStatus,
    Discovery,
    PowerKind,
    PowerReading,
    SensorRead,
    SourceFailure,
    SourceStatus,
)
from carbonscope.sensors.polled import PolledSettings

log = logging.getLogger(__name__)

SOURCE = "redfish"
SESSIONS = "/redfish/v1/SessionService/Sessions"
UJ_PER_KWH = 3_600_000_000_000
MAX_BODY_BYTES = 1 << 20
POWER_CONTROL: tuple[str | int, ...] = ("PowerControl", 0, "PowerConsumedWatts")


def _https_url(value: str) -> str:
    value = value.strip().rstrip("/")
    if value and not value.startswith("https://"):
        raise ValueError(f"{value!r}: the BMC's base URL must be https:// (credentials travel)")
    return value


def _path_or_none(value: object) -> object:
    return None if value in ("", None) else value


class RedfishSettings(PolledSettings):
    """``[sensors.redfish]``"""

    url: Annotated[str, AfterValidator(_https_url)] = ""
    username: str = ""
    password_file: Annotated[Path | None, BeforeValidator(_path_or_none)] = None
    ca_file: Annotated[Path | None, BeforeValidator(_path_or_none)] = None
    verify_tls: bool = True
    interval: Duration | None = 10.0
    timeout: Duration | None = 5.0


@dataclass(frozen=True)
class Meter:
    """Where the reading is: a resource, the JSON path to it, and its unit."""

    url_path: str
    field: tuple[str | int, ...]  # e.g. ("EnergykWh", "Reading")
    is_energy: bool  # kWh counter; else watts


def _dig(document: Any, field: tuple[str | int, ...]) -> float | None:
    for part in field:
        if isinstance(part, int):
            if not isinstance(document, list) or len(document) <= part:
                return None
        elif not isinstance(document, Mapping):
            return None
        document = document[part] if isinstance(part, int) else document.get(part)
    if isinstance(document, bool) or not isinstance(document, int | float):
        return None
    return float(document)


def _link(document: Mapping[str, Any], name: str) -> str | None:
    value = document.get(name)
    if isinstance(value, Mapping) and isinstance(value.get("@odata.id"), str):
        return str(value["@odata.id"])
    return None


@dataclass(frozen=True)
class Answer:
    status_code: int
    token: str | None  # X-Auth-Token, on a login's answer
    location: str | None  # the session's own URL, on a login's answer
    body: bytes


class RedfishClient:
    """HTTPS to one BMC with a reused session; raises SourceFailure with a reason."""

    def __init__(self, settings: RedfishSettings) -> None:
        import requests  # noqa: PLC0415 - only when Redfish is configured

        self._requests = requests
        self._settings = settings
        self._session = requests.Session()
        # No proxies, CA bundle or .netrc from the environment: what the BMC is trusted with
        # and how it is reached is the config's alone (REQUESTS_CA_BUNDLE would replace ca_file).
        self._session.trust_env = False
        self._session.headers["Accept"] = "application/json"
        self._verify: bool | str = str(settings.ca_file) if settings.ca_file else system_cas()
        if not settings.verify_tls:
            log.warning("redfish: TLS verification is off (verify_tls = false): %s", settings.url)
            self._verify = False
        self._timeout_s = settings.timeout or 5.0
        self._token: str | None = None
        self._session_path: str | None = None  # to log out: BMCs allow a handful of sessions
        self._basic = False

    def _password(self) -> str:
        path = self._settings.password_file
        if path is None:
            raise SourceFailure(SourceStatus.ERROR, "no [sensors.redfish] password_file set")
        try:
            return path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            status = (
                SourceStatus.PERMISSION_DENIED
                if isinstance(exc, PermissionError)
                else SourceStatus.ERROR
            )
            raise SourceFailure(
                status, f"cannot read password_file {path}: {exc.strerror}"
            ) from exc

    def _send(self, method: str, path: str, **kwargs: Any) -> Answer:
        url = self._settings.url + path
        try:
            with self._session.request(
                method,
                url,
                timeout=self._timeout_s,
                allow_redirects=False,
                stream=True,
                verify=self._verify,
                **kwargs,
            ) as response:
                body = b""
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > MAX_BODY_BYTES:
                        raise SourceFailure(SourceStatus.ERROR, f"{path}: answer over 1 MiB")
                headers = response.headers
                return Answer(
                    response.status_code, headers.get("X-Auth-Token"), headers.get("Location"), body
                )
        except self._requests.exceptions.SSLError as exc:
            raise SourceFailure(
                SourceStatus.ERROR, f"TLS error talking to {url}: {_short(exc)}"
            ) from exc
        except self._requests.exceptions.Timeout as exc:
            raise SourceFailure(
                SourceStatus.ERROR, f"{url} gave no answer in {self._timeout_s:g}s"
            ) from exc
        except self._requests.exceptions.RequestException as exc:
            raise SourceFailure(SourceStatus.ERROR, f"cannot reach {url}: {_short(exc)}") from exc

    def login(self) -> None:
        self._session.headers.pop("X-Auth-Token", None)
        self._session.auth = None
        password = self._password()
        credentials = {"UserName": self._settings.username, "Password": password}
        response = self._send("POST", SESSIONS, json=credentials)
        if response.status_code in (404, 405, 501):  # no session service: HTTP basic per request
            self._session.auth = (self._settings.username, password)
            self._basic, self._token = True, None
            return
        if response.status_code in (401, 403):
            raise SourceFailure(
                SourceStatus.PERMISSION_DENIED,
                f"the BMC refused the login of {self._settings.username!r} "
                f"(HTTP {response.status_code})",
            )
        token = response.token
        if response.status_code not in (200, 201) or not token:
            raise SourceFailure(SourceStatus.ERROR, f"login answered HTTP {response.status_code}")
        self._token = token
        self._session.headers["X-Auth-Token"] = token
        location = response.location or ""
        if location.startswith(self._settings.url):
            location = location[len(self._settings.url) :]
        self._session_path = location if location.startswith("/redfish/") else None

    def logout(self) -> None:
        """End the session (at shutdown): a BMC keeps a handful, and a restarted agent's old
        one would hold a slot until it times out. Failures are only logged."""
        path, self._session_path = self._session_path, None
        if self._token is None or path is None:
            return
        try:
            self._send("DELETE", path)
        except SourceFailure as error:
            log.info("redfish: logging out failed: %s", error)
        self._token = None
        self._session.headers.pop("X-Auth-Token", None)

    def get(self, path: str) -> Any:
        if self._token is None and not self._basic:
            self.login()
        response = self._send("GET", path)
        if response.status_code == 401:  # the session expired or the BMC restarted
            self.login()
            response = self._send("GET", path)
            if response.status_code == 401:
                raise SourceFailure(SourceStatus.PERMISSION_DENIED, f"{path}: HTTP 401 after login")
        if response.status_code == 503:
            raise SourceFailure(SourceStatus.ERROR, f"{path}: the BMC is busy (HTTP 503)")
        if response.status_code != 200:
            raise SourceFailure(SourceStatus.ERROR, f"{path}: HTTP {response.status_code}")
        try:
            return json.loads(response.body)
        except ValueError as exc:
            raise SourceFailure(SourceStatus.ERROR, f"{path}: not JSON") from exc


def system_cas() -> bool | str:
    """The system's CA bundle (OpenSSL's default file), not the one requests ships."""
    import ssl  # noqa: PLC0415 - only with Redfish configured: a plain daemon loads no TLS

    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and Path(candidate).is_file():
            return candidate
    return paths.capath if paths.capath and Path(paths.capath).is_dir() else True


def _short(exc: Exception) -> str:
    """An exception's message without the request it came with (no headers, no body)."""
    text = str(exc.args[0]) if exc.args else type(exc).__name__
    return text[:300]


def find_meter(client: RedfishClient) -> tuple[str, Meter]:
    """(chassis id, where its reading is) for the first chassis with one; what was looked at
    is in the failure's reason."""
    looked: list[str] = []
    chassis = client.get("/redfish/v1/Chassis")
    members = chassis.get("Members", []) if isinstance(chassis, Mapping) else []
    for member in members:
        path = member.get("@odata.id") if isinstance(member, Mapping) else None
        if not isinstance(path, str):
            continue
        document = client.get(path)
        chassis_id = str(document.get("Id") or path.rstrip("/").rsplit("/", 1)[-1])
        meter = _meter_of(client, document, looked)
        if meter is not None:
            return chassis_id, meter
    raise SourceFailure(
        SourceStatus.UNSUPPORTED,
        "no chassis reports power (looked at: " + (", ".join(looked) or "no chassis") + ")",
    )


def _meter_of(client: RedfishClient, chassis: Mapping[str, Any], looked: list[str]) -> Meter | None:
    """The newest model with a reading: EnvironmentMetrics, Sensors, then Power."""
    environment = _link(chassis, "EnvironmentMetrics")
    if environment:
        looked.append(environment)
        document = client.get(environment)
        energy: tuple[str | int, ...] = ("EnergykWh", "Reading")
        power_watts: tuple[str | int, ...] = ("PowerWatts", "Reading")
        for path, is_energy in ((energy, True), (power_watts, False)):
            if _dig(document, path) is not None:
                return Meter(environment, path, is_energy)
    sensors = _link(chassis, "Sensors")
    if sensors:
        looked.append(sensors)
        collection = client.get(sensors)
        names = {
            str(m.get("@odata.id", "")).rstrip("/").rsplit("/", 1)[-1]: str(m.get("@odata.id"))
            for m in collection.get("Members", [])
            if isinstance(m, Mapping)
        }
        for name, is_energy in (("TotalEnergy", True), ("TotalPower", False)):
            if name in names and _dig(client.get(names[name]), ("Reading",)) is not None:
                return Meter(names[name], ("Reading",), is_energy)
    power = _link(chassis, "Power")
    if power:
        looked.append(power)
        if _dig(client.get(power), POWER_CONTROL) is not None:
            return Meter(power, POWER_CONTROL, False)
    return None


class RedfishSensor:
    """The BMC's chassis power (or energy counter) as one platform device."""

    name = SOURCE

    def __init__(self, settings: RedfishSettings, client: RedfishClient | None = None) -> None:
        self._settings = settings
        self._client = client
        self._meter: Meter | None = None
        self._key: DeviceKey | None = None

    def close(self) -> None:
        if self._client is not None:
            self._client.logout()

    def discover(self) -> Discovery:
        if not self._settings.url:
            reason = "no [sensors.redfish] url configured"
            return Discovery(
                statuses=(DeviceStatus(SOURCE, "all", SourceStatus.NOT_PRESENT, reason),)
            )
        try:
            if self._client is None:
                self._client = RedfishClient(self._settings)
            chassis_id, meter = find_meter(self._client)
        except SourceFailure as error:
            return Discovery(statuses=(error.status_of(SOURCE),))
        self._meter = meter
        self._key = DeviceKey(Component.PLATFORM, f"chassis-{chassis_id}", SOURCE)
        what = "energy counter (kWh)" if meter.is_energy else "power (W)"
        field = ".".join(str(part) for part in meter.field)
        return Discovery(devices=(self._key,), details=(f"{meter.url_path} {field}: {what}",))

    def read(self) -> SensorRead:
        meter, key, client = self._meter, self._key, self._client
        if meter is None or key is None or client is None:
            return SensorRead()
        try:
            value = _dig(client.get(meter.url_path), meter.field)
        except SourceFailure as error:
            return SensorRead(statuses=(error.status_of(SOURCE, key.device),))
        if value is None or value < 0:
            missing = SourceFailure(SourceStatus.ERROR, f"{meter.url_path}: no reading")
            return SensorRead(statuses=(missing.status_of(SOURCE, key.device),))
        reading: CounterReading | PowerReading
        if meter.is_energy:
            reading = CounterReading(
                key, round(value * UJ_PER_KWH), UNWRAPPED_RANGE_UJ, None, PLATFORM_CEILING_UW
            )
        else:
            reading = PowerReading(key, round(value * 1_000_000), PowerKind.INSTANT)
        return SensorRead((reading,), (DeviceStatus(SOURCE, key.device, SourceStatus.OK),))
