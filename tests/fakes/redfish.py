"""A loopback HTTPS BMC speaking Redfish, in the shapes of the DMTF mockups (REFERENCE.md).

Models: ``power`` (``Chassis/1/Power`` with ``PowerControl[0].PowerConsumedWatts``),
``environment`` (``Chassis/1/EnvironmentMetrics`` with ``PowerWatts`` and, when set,
``EnergykWh``), ``sensors`` (``Chassis/1/Sensors/TotalPower`` and ``TotalEnergy``). Sessions
through ``SessionService/Sessions`` (``X-Auth-Token``); every other request needs a live token.
The certificate is issued by a throw-away CA (trustme); tests expire tokens, make the BMC
busy (503) or slow, and read the requests it got.
"""

from __future__ import annotations

import json
import secrets
import ssl
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import trustme

CHASSIS = "/redfish/v1/Chassis/1"


class FakeBmc:
    def __init__(self, directory: Path, model: str = "power") -> None:
        self.model = model
        self.username = "monitor"
        self.password = "pw-" + secrets.token_hex(8)
        self.watts = 412.0
        self.energy_kwh: float | None = None
        self.busy = False
        self.delay_s = 0.0
        self.tokens: set[str] = set()
        self.logins = 0
        self.requests: list[tuple[str, str, dict[str, str]]] = []  # method, path, headers
        self.ca = trustme.CA()
        self.ca_file = directory / "bmc-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        self.password_file = directory / "redfish.password"
        self.password_file.write_text(self.password + "\n")
        self.password_file.chmod(0o600)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.ca.issue_cert("127.0.0.1", "localhost").configure_cert(context)
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self._server.server_address[1]}"

    def expire_sessions(self) -> None:
        self.tokens.clear()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- the resources -----------------------------------------------------------------------

    def resource(self, path: str) -> Any:
        chassis: dict[str, Any] = {
            "@odata.id": CHASSIS,
            "Id": "1",
            "Name": "Computer System Chassis",
        }
        if self.model == "power":
            chassis["Power"] = {"@odata.id": f"{CHASSIS}/Power"}
        elif self.model == "environment":
            chassis["EnvironmentMetrics"] = {"@odata.id": f"{CHASSIS}/EnvironmentMetrics"}
            chassis["PowerSubsystem"] = {"@odata.id": f"{CHASSIS}/PowerSubsystem"}
        else:
            chassis["Sensors"] = {"@odata.id": f"{CHASSIS}/Sensors"}
        resources: dict[str, Any] = {
            "/redfish/v1/Chassis": {
                "Members": [{"@odata.id": CHASSIS}],
                "Members@odata.count": 1,
            },
            CHASSIS: chassis,
            f"{CHASSIS}/Power": {
                "PowerControl": [
                    {
                        "MemberId": "0",
                        "Name": "System Power Control",
                        "PowerConsumedWatts": self.watts,
                        "PowerMetrics": {"AverageConsumedWatts": self.watts},
                    }
                ]
            },
            f"{CHASSIS}/PowerSubsystem": {"PowerSupplies": {"@odata.id": f"{CHASSIS}/Ps"}},
            f"{CHASSIS}/EnvironmentMetrics": {
                "PowerWatts": {
                    "Reading": self.watts,
                    "DataSourceUri": f"{CHASSIS}/Sensors/TotalPower",
                },
                **(
                    {"EnergykWh": {"Reading": self.energy_kwh}}
                    if self.energy_kwh is not None
                    else {}
                ),
            },
            f"{CHASSIS}/Sensors": {
                "Members": [
                    {"@odata.id": f"{CHASSIS}/Sensors/TotalPower"},
                    *(
                        [{"@odata.id": f"{CHASSIS}/Sensors/TotalEnergy"}]
                        if self.energy_kwh is not None
                        else []
                    ),
                ]
            },
            f"{CHASSIS}/Sensors/TotalPower": {
                "Id": "TotalPower",
                "Reading": self.watts,
                "ReadingUnits": "W",
                "ReadingType": "Power",
            },
            f"{CHASSIS}/Sensors/TotalEnergy": {
                "Id": "TotalEnergy",
                "Reading": self.energy_kwh,
                "ReadingUnits": "kW.h",
                "ReadingType": "EnergykWh",
            },
        }
        return resources.get(path)

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        bmc = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(
                self, status: int, body: Any, headers: dict[str, str] | None = None
            ) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.end_headers()
                self.wfile.write(data)

            def _record(self) -> None:
                bmc.requests.append((self.command, self.path, dict(self.headers.items())))
                if bmc.delay_s:
                    time.sleep(bmc.delay_s)

            def do_POST(self) -> None:
                self._record()
                length = int(self.headers.get("Content-Length", "0"))
                body = json.loads(self.rfile.read(length) or b"{}")
                if self.path != "/redfish/v1/SessionService/Sessions":
                    self._answer(405, {"error": {"message": "method not allowed"}})
                    return
                if body.get("UserName") != bmc.username or body.get("Password") != bmc.password:
                    self._answer(401, {"error": {"message": "invalid credentials"}})
                    return
                token = secrets.token_hex(16)
                bmc.tokens.add(token)
                bmc.logins += 1
                location = f"/redfish/v1/SessionService/Sessions/{bmc.logins}"
                self._answer(
                    201,
                    {"@odata.id": location, "UserName": bmc.username},
                    {"X-Auth-Token": token, "Location": location},
                )

            def do_DELETE(self) -> None:
                self._record()
                token = self.headers.get("X-Auth-Token")
                if not self.path.startswith("/redfish/v1/SessionService/Sessions/") or (
                    token not in bmc.tokens
                ):
                    self._answer(401, {"error": {"message": "no valid session"}})
                    return
                bmc.tokens.discard(token)
                self._answer(200, {})

            def do_GET(self) -> None:
                self._record()
                if self.headers.get("X-Auth-Token") not in bmc.tokens:
                    self._answer(401, {"error": {"message": "no valid session"}})
                    return
                if bmc.busy:
                    self._answer(503, {"error": {"message": "service unavailable"}})
                    return
                document = bmc.resource(self.path)
                if document is None:
                    self._answer(404, {"error": {"message": "not found"}})
                    return
                self._answer(200, document)

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
