"""A cloud instance: DMI files as the kernel exposes them, and a loopback metadata service
speaking AWS IMDSv2, GCP's and Azure's formats (REFERENCE.md), with scripted failures."""

from __future__ import annotations

import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import urlsplit

DMI = {
    "aws": {"sys_vendor": "Amazon EC2", "product_name": "m6i.large"},
    "gcp": {"sys_vendor": "Google", "product_name": "Google Compute Engine"},
    "azure": {
        "sys_vendor": "Microsoft Corporation",
        "product_name": "Virtual Machine",
        "chassis_asset_tag": "7783-7084-3265-9085-8269-3286-77",
    },
    "bare metal": {"sys_vendor": "Dell Inc.", "product_name": "PowerEdge R750"},
}


def write_dmi(sysfs: Path, machine: str) -> None:
    directory = sysfs / "class/dmi/id"
    directory.mkdir(parents=True, exist_ok=True)
    for name, value in DMI[machine].items():
        (directory / name).write_text(value + "\n")


class MetadataService:
    """Answers like the three clouds' services; ``region`` is what it reports."""

    def __init__(self, region: str = "eu-west-3") -> None:
        self.region = region
        self.token = "AQAEA-fake-imds-token"
        self.status = 200  # anything else: every answer has this status
        self.delay_s = 0.0  # sleep before answering (a service that hangs)
        self.requests: list[tuple[str, str, dict[str, str]]] = []
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._server.block_on_close = False  # a test's hanging answer must not hold its end
        serve = self._server.serve_forever
        threading.Thread(target=serve, kwargs={"poll_interval": 0.02}, daemon=True).start()

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def answer(self, method: str, path: str, headers: dict[str, str]) -> tuple[int, str]:
        if self.status != 200:
            return self.status, "error"
        if method == "PUT" and path == "/latest/api/token":
            if "x-aws-ec2-metadata-token-ttl-seconds" not in headers:
                return 400, "missing ttl"
            return 200, self.token
        if path == "/latest/meta-data/placement/region":
            if headers.get("x-aws-ec2-metadata-token") != self.token:
                return 401, "IMDSv2 token required"
            return 200, self.region
        if path == "/computeMetadata/v1/instance/zone":
            if headers.get("metadata-flavor") != "Google":
                return 403, "Missing Metadata-Flavor:Google header"
            return 200, f"projects/123456789/zones/{self.region}-b"
        if path == "/metadata/instance/compute/location":
            if headers.get("metadata") != "true":
                return 400, "Required metadata header not specified"
            return 200, self.region
        return 404, "not found"

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        service = self

        class Handler(BaseHTTPRequestHandler):
            def _serve(self) -> None:
                path = urlsplit(self.path).path
                headers = {k.lower(): v for k, v in self.headers.items()}
                service.requests.append((self.command, path, headers))
                time.sleep(service.delay_s)
                status, body = service.answer(self.command, path, headers)
                payload = body.encode()
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", "text/plain")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_PUT = _serve

            def log_message(self, format: str, *args: object) -> None:
                pass

        return Handler
