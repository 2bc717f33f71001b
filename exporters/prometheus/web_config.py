"""TLS and basic auth for /metrics, from a web config file in the format of Prometheus's
exporter-toolkit (the file node_exporter takes as ``--web.config.file``), so operators reuse
what they already run:

    tls_server_config:
      cert_file: tls.crt          # relative paths are relative to this file
      key_file: tls.key
      client_ca_file: ca.crt      # optional: clients must present a certificate it signed
      client_auth_type: RequireAndVerifyClientCert
      min_version: TLS12
    basic_auth_users:
      prometheus: $2y$10$...      # bcrypt (htpasswd -nBC 10 prometheus)

Either part may be absent. Passwords are checked with bcrypt, whose comparison does not leak
where a guess goes wrong; an unknown user costs one bcrypt check against a dummy hash, so a
wrong user and a wrong password take the same time. A right pair is remembered (its SHA-256,
at most ``CACHE_SIZE``), so a scrape every 15 s costs one bcrypt check, not one per scrape.
``yaml`` and ``bcrypt`` load only when a web config is given.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import ssl
import threading
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CACHE_SIZE = 64
TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_ca_file",
    "client_auth_type",
    "min_version",
    "max_version",
}
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}


class WebConfigError(Exception):
    """One line per problem: "<file>: <key>: <reason>"."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class WebConfig:
    tls: ssl.SSLContext | None = None
    auth: BasicAuth | None = None  # with basic_auth_users


def load_web_config(path: Path) -> WebConfig:
    import yaml  # noqa: PLC0415 - only with a web config

    problems: list[str] = []
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except OSError as exc:
        raise WebConfigError([f"{path}: cannot read it: {exc.strerror or exc}"]) from None
    except yaml.YAMLError as exc:
        raise WebConfigError([f"{path}: not YAML: {exc}"]) from None
    if not isinstance(document, dict):
        raise WebConfigError([f"{path}: expected a mapping at the top"])
    for key in document:
        if key not in ("tls_server_config", "basic_auth_users"):
            problems.append(
                f"{path}: {key}: not supported by carbonscope "
                "(tls_server_config and basic_auth_users are)"
            )
    tls = None
    if document.get("tls_server_config") is not None:
        tls = _tls_context(path, document["tls_server_config"], problems)
    users = _users(path, document.get("basic_auth_users") or {}, problems)
    if problems:
        raise WebConfigError(problems)
    return WebConfig(tls, BasicAuth(users) if users else None)


def _tls_context(path: Path, section: Any, problems: list[str]) -> ssl.SSLContext | None:
    where = f"{path}: tls_server_config"
    if not isinstance(section, dict):
        problems.append(f"{where}: expected a mapping")
        return None
    for key in section:
        if key not in TLS_KEYS:
            problems.append(f"{where}.{key}: not supported by carbonscope")
    base = path.parent

    def file_of(key: str) -> Path | None:
        value = section.get(key)
        return None if not value else (base / str(value))

    cert, key_file, client_ca = file_of("cert_file"), file_of("key_file"), file_of("client_ca_file")
    if cert is None or key_file is None:
        problems.append(f"{where}: cert_file and key_file are both needed")
        return None
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        context.minimum_version = VERSIONS[str(section.get("min_version") or "TLS12")]
        if section.get("max_version"):
            context.maximum_version = VERSIONS[str(section["max_version"])]
    except KeyError as exc:
        problems.append(f"{where}: {exc.args[0]!r} is no TLS version ({', '.join(VERSIONS)})")
    try:
        context.load_cert_chain(cert, key_file)
    except (OSError, ssl.SSLError) as exc:
        problems.append(f"{where}.cert_file/key_file: cannot load {cert}, {key_file}: {exc}")
    auth_type = section.get("client_auth_type") or (
        "RequireAndVerifyClientCert" if client_ca else "NoClientCert"
    )
    if auth_type not in CLIENT_AUTH:
        problems.append(
            f"{where}.client_auth_type: {auth_type!r} not supported "
            f"(one of {', '.join(CLIENT_AUTH)})"
        )
    else:
        context.verify_mode = CLIENT_AUTH[auth_type]
        if context.verify_mode is not ssl.CERT_NONE:
            if client_ca is None:
                problems.append(f"{where}.client_ca_file: needed with {auth_type}")
            else:
                try:
                    context.load_verify_locations(client_ca)
                except (OSError, ssl.SSLError) as exc:
                    problems.append(f"{where}.client_ca_file: cannot load {client_ca}: {exc}")
    return context


def _users(path: Path, section: Any, problems: list[str]) -> dict[str, bytes]:
    if not isinstance(section, dict):
        problems.append(f"{path}: basic_auth_users: expected a mapping of user: bcrypt hash")
        return {}
    users = {}
    for user, hashed in section.items():
        text = str(hashed or "")
        if not text.startswith(("$2a$", "$2b$", "$2y$")):
            # never echo the value: it may be a password pasted by mistake
            problems.append(f"{path}: basic_auth_users.{user}: not a bcrypt hash ($2y$...)")
            continue
        users[str(user)] = text.encode("ascii", errors="replace")
    return users


class BasicAuth:
    """Checks ``Authorization: Basic`` against the users' bcrypt hashes, in constant time."""

    def __init__(self, users: Mapping[str, bytes]) -> None:
        import bcrypt  # noqa: PLC0415 - only with basic_auth_users

        self._bcrypt = bcrypt
        self._users = dict(users)
        cost = next(iter(self._users.values())).split(b"$")[2]  # the rounds of the first hash
        rounds = int(cost) if cost.isdigit() else 10
        self._dummy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds))
        self._known: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def allows(self, header: str | None) -> bool:
        if not header or header[:6].lower() != "basic ":
            return False
        try:
            user, colon, password = (
                base64.b64decode(header[6:].strip(), validate=True).decode("utf-8").partition(":")
            )
        except (binascii.Error, UnicodeDecodeError):
            return False
        if not colon:
            return False
        hashed = self._users.get(user)
        digest = hashlib.sha256(f"{user}\0{password}".encode()).digest()
        with self._lock:
            remembered = any(hmac.compare_digest(digest, known) for known in self._known)
        if remembered and hashed is not None:
            return True
        try:
            ok = self._bcrypt.checkpw(password.encode(), hashed or self._dummy) and bool(hashed)
        except ValueError:  # a malformed stored hash: never a match
            ok = False
        if ok:
            with self._lock:
                self._known[digest] = None
                while len(self._known) > CACHE_SIZE:
                    self._known.popitem(last=False)
        return ok
