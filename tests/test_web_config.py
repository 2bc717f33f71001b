"""TLS and basic auth on /metrics (agent.web_config_file, exporter-toolkit's format): a real
Prometheus scraping through TLS with basic auth, wrong and missing credentials refused, a
client without the CA refused at the handshake, and bad files named at start-up."""

from __future__ import annotations

import base64
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import bcrypt
import pytest
import trustme

from carbonscope.exporters.prometheus.web_config import BasicAuth, WebConfigError, load_web_config
from tests.daemon import Daemon, free_port
from tests.fakes.powercap import two_socket_server
from tests.prometheus import PrometheusServer

PASSWORD = "correct horse battery staple"


def htpasswd_hash(password: str) -> str:
    """As `htpasswd -nBC 10` writes it: $2y$."""
    return bcrypt.hashpw(password.encode(), bcrypt.gensalt(10)).decode().replace("$2b$", "$2y$", 1)


def tls_files(directory: Path) -> trustme.CA:
    ca = trustme.CA()
    server = ca.issue_cert("127.0.0.1", "localhost")
    server.cert_chain_pems[0].write_to_path(str(directory / "tls.crt"))
    server.private_key_pem.write_to_path(str(directory / "tls.key"))
    ca.cert_pem.write_to_path(str(directory / "ca.crt"))
    return ca


def basic(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def get(url: str, context: ssl.SSLContext, authorization: str | None = None) -> tuple[int, str]:
    request = urllib.request.Request(url)
    if authorization:
        request.add_header("Authorization", authorization)
    try:
        with urllib.request.urlopen(request, timeout=10, context=context) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


@pytest.mark.e2e
def test_prometheus_scrapes_through_tls_with_basic_auth(tmp_path: Path) -> None:
    tls_files(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(  # relative paths: relative to the web config file, as exporter-toolkit's
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n"
        f"basic_auth_users:\n  prometheus: {htpasswd_hash(PASSWORD)}\n"
    )
    two_socket_server(tmp_path / "sys", with_psys=False)
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    daemon = Daemon(
        ["--sysfs-root", str(tmp_path / "sys"), "--web-config-file", str(web)],
        tmp_path,
        env={"CARBONSCOPE_CONFIG": "", "CARBONSCOPE_SENSORS__ENABLE": "rapl"},
        tls=client,
    )
    prometheus = None
    try:
        daemon.wait_ready()  # /healthz: open without credentials, over TLS
        metrics = f"{daemon.url}/metrics"
        assert get(metrics, client)[0] == 401
        assert get(metrics, client, basic("prometheus", "wrong"))[0] == 401
        assert get(metrics, client, basic("nobody", PASSWORD))[0] == 401
        status, body = get(metrics, client, basic("prometheus", PASSWORD))
        assert status == 200 and "carbonscope_node_energy_joules_total" in body
        stranger = ssl.create_default_context()  # the system's CAs: not this agent's
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            get(metrics, stranger, basic("prometheus", PASSWORD))

        def job(name: str, auth: str) -> str:
            return (
                f"  - job_name: {name}\n    scheme: https\n"
                f"    tls_config:\n      ca_file: {tmp_path / 'ca.crt'}\n{auth}"
                f"    static_configs:\n      - targets: ['127.0.0.1:{daemon.port}']\n"
            )

        prometheus = PrometheusServer(
            tmp_path,
            "global:\n  scrape_interval: 1s\nscrape_configs:\n"
            + job(
                "right",
                f"    basic_auth:\n      username: prometheus\n      password: '{PASSWORD}'\n",
            )
            + job("wrong", "    basic_auth:\n      username: prometheus\n      password: nope\n")
            + job("none", ""),
        )
        up: dict[str, float] = {}
        deadline = time.monotonic() + 45
        while time.monotonic() < deadline:
            try:
                up = {s["metric"]["job"]: float(s["value"][1]) for s in prometheus.query("up")}
            except OSError:
                up = {}
            if len(up) == 3 and prometheus.query("carbonscope_build_info"):
                break
            time.sleep(0.5)
        assert up == {"right": 1.0, "wrong": 0.0, "none": 0.0}
        (stored,) = prometheus.query("carbonscope_build_info")
        assert stored["metric"]["job"] == "right"
        targets: Any = prometheus.targets()
        errors = {t["labels"]["job"]: t["lastError"] for t in targets}
        assert "401" in errors["wrong"] and "401" in errors["none"] and errors["right"] == ""
    finally:
        if prometheus is not None:
            prometheus.stop()
        assert daemon.stop() == 0, daemon.log_text()


def test_an_unknown_user_costs_a_bcrypt_check_like_a_wrong_password() -> None:
    """No timing difference to learn users from: every refusal runs bcrypt once; a right pair
    runs it once, then is remembered."""
    auth = BasicAuth({"prometheus": htpasswd_hash(PASSWORD).encode()})
    calls: list[bytes] = []
    real = auth._bcrypt.checkpw

    class Spy:
        @staticmethod
        def checkpw(password: bytes, hashed: bytes) -> bool:
            calls.append(hashed)
            return bool(real(password, hashed))

    auth._bcrypt = Spy  # type: ignore[assignment]
    assert not auth.allows(basic("nobody", PASSWORD))
    assert not auth.allows(basic("prometheus", "wrong"))
    assert len(calls) == 2 and calls[0] != calls[1]  # the dummy hash, then the user's
    assert auth.allows(basic("prometheus", PASSWORD))
    assert auth.allows(basic("prometheus", PASSWORD))
    assert len(calls) == 3  # remembered after the first success
    for header in (None, "Bearer x", "Basic !!!", basic("prometheus", "") + "=", "Basic"):
        assert not auth.allows(header)


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("tls_server_config:\n  cert_file: tls.crt\n", "cert_file and key_file are both needed"),
        ("tls_server_config:\n  cert_file: x.crt\n  key_file: x.key\n", "cannot load"),
        ("basic_auth_users:\n  prometheus: plaintext-password\n", "not a bcrypt hash"),
        ("http_server_config:\n  http2: false\n", "http_server_config: not supported"),
        (
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  client_auth_type: "
            "RequireAndVerifyClientCert\n",
            "client_ca_file: needed",
        ),
        (
            "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS9\n",
            "'TLS9' is no TLS version",
        ),
    ],
)
def test_a_bad_web_config_names_the_file_and_the_key(tmp_path: Path, text: str, says: str) -> None:
    tls_files(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text(text)
    with pytest.raises(WebConfigError) as caught:
        load_web_config(web)
    assert str(web) in str(caught.value) and says in str(caught.value)
    assert "plaintext-password" not in str(caught.value)


def test_the_daemon_refuses_to_start_on_a_bad_web_config(tmp_path: Path) -> None:
    web = tmp_path / "web.yml"
    web.write_text("basic_auth_users:\n  prometheus: hunter2\n")
    result = subprocess.run(
        [
            *(sys.executable, "-m", "carbonscope", "run", "--sysfs-root", str(tmp_path)),
            *("--web-config-file", str(web), "--listen", f"127.0.0.1:{free_port()}"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "CARBONSCOPE_CONFIG": "", "HOME": str(tmp_path)},
    )
    assert result.returncode == 2, result.stderr
    assert f"agent.web_config_file: {web}: basic_auth_users.prometheus: not a bcrypt hash" in (
        result.stderr
    )
    assert "hunter2" not in result.stderr


@pytest.mark.e2e
def test_clients_that_never_finish_a_handshake_cannot_lock_out_a_scrape(tmp_path: Path) -> None:
    """Twice the connection cap of sockets that connect and never send a TLS hello: each is
    accepted, none stalls the accept thread (the handshake runs on the connection's thread),
    and the idlest are cut so a real scrape still gets its answer."""
    tls_files(tmp_path)
    web = tmp_path / "web.yml"
    web.write_text("tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    client = ssl.create_default_context(cafile=str(tmp_path / "ca.crt"))
    daemon = Daemon(
        ["--sysfs-root", str(tmp_path), "--web-config-file", str(web)],
        tmp_path,
        env={"CARBONSCOPE_CONFIG": "", "CARBONSCOPE_AGENT__MAX_CONNECTIONS": "4"},
        tls=client,
    )
    idle: list[socket.socket] = []
    try:
        daemon.wait_ready()
        for _ in range(8):
            idle.append(socket.create_connection(("127.0.0.1", daemon.port), timeout=5))
        time.sleep(1.2)  # older than the gate's "fresh" grace: idle, so cut first
        status, body = get(f"{daemon.url}/metrics", client)
        assert status == 200 and "carbonscope_build_info" in body
    finally:
        for sock in idle:
            sock.close()
        assert daemon.stop() == 0, daemon.log_text()
