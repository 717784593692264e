"""The worker's web configuration: the file format of Prometheus's exporters (the exporter-toolkit's
``web-config.yml``), read once at start into a checked model (docs/SECURITY.md).

    tls_server_config:
      cert_file: worker.crt            # relative paths are read from the file's folder, as exporters do
      key_file: worker.key
      client_auth_type: RequireAndVerifyClientCert   # optional, with client_ca_file
      client_ca_file: clients-ca.crt
      min_version: TLS12
    http_server_config:
      headers: {Strict-Transport-Security: max-age=31536000}
    basic_auth_users:
      prometheus: $2b$10$...           # bcrypt hashes, never passwords

Every problem names the file, the line and the field, and all of them are reported at once. The keys
the exporters know that tpmon does not serve (inline certificates, cipher suites, ...) are errors, not
ignored: a security setting silently dropped would promise what the worker does not do. Authentication
on the web port is ``streams.webauth``; what it proves is read with ``web_user``.
"""

from __future__ import annotations

import ipaddress
import re
import ssl
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from monitor.catalog.errors import ERROR, WARNING, Problem

USER_KEY = "tpmon.user"  # where the authentication middleware leaves the web user in the request
REALM = "tpmon"

CLIENT_AUTH_TYPES = {
    "NoClientCert": ssl.CERT_NONE,
    # Asked for but neither verified nor used by the exporters: it grants nothing, so none is asked.
    "RequestClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
# Python's ssl module cannot require a certificate without verifying it.
UNSERVED_CLIENT_AUTH = {
    "RequireAnyClientCert": "requires a certificate without verifying it, which Python's ssl module cannot "
    "do; use RequireAndVerifyClientCert with client_ca_file",
}
TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# The response headers the exporters allow, with the values they accept (None: any).
HEADERS: dict[str, tuple[str, ...] | None] = {
    "Content-Security-Policy": None,
    "X-Frame-Options": ("deny", "sameorigin"),
    "X-Content-Type-Options": ("nosniff",),
    "X-XSS-Protection": None,
    "Strict-Transport-Security": None,
}
TOP_KEYS = ("tls_server_config", "http_server_config", "basic_auth_users")
TLS_KEYS = ("cert_file", "key_file", "client_auth_type", "client_ca_file", "min_version", "max_version")
HTTP_KEYS = ("http2", "headers")
# Known to the exporters' format, not served by tpmon.
UNSERVED = {
    (): ("rate_limit",),
    ("tls_server_config",): (
        "cert",
        "key",
        "client_ca",
        "client_allowed_sans",
        "cipher_suites",
        "prefer_server_cipher_suites",
        "curve_preferences",
    ),
}
BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
WEAK_COST = 10  # below it, a hash is cheap to attack offline


class WebConfigInvalid(Exception):
    """The web configuration has errors; carries every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        errors = [p for p in problems if p.severity == ERROR]
        super().__init__(f"the web configuration has {len(errors)} error(s):\n" + "\n".join(map(str, errors)))


@dataclass(frozen=True)
class TLSServerConfig:
    cert_file: Path
    key_file: Path
    client_auth_type: str = "NoClientCert"
    client_ca_file: Path | None = None
    min_version: str = "TLS12"
    max_version: str = "TLS13"

    def server_context(self) -> ssl.SSLContext:
        """The worker's TLS: its certificate, the versions allowed, the clients' certificates asked for."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.minimum_version = TLS_VERSIONS[self.min_version]
        context.maximum_version = TLS_VERSIONS[self.max_version]
        context.load_cert_chain(self.cert_file, self.key_file)
        context.verify_mode = CLIENT_AUTH_TYPES[self.client_auth_type]
        if self.client_ca_file is not None and context.verify_mode != ssl.CERT_NONE:
            context.load_verify_locations(self.client_ca_file)
        return context

    def peer_context(self, ca_file: str | None) -> ssl.SSLContext:
        """How this worker calls another (Faust forwards /journeys to the worker owning the customer):
        verifying it against ``ca_file`` (else the system's CAs), presenting its own certificate when
        the workers ask for their clients'."""
        context = ssl.create_default_context(cafile=ca_file or None)
        context.minimum_version = TLS_VERSIONS[self.min_version]
        if self.client_auth_type != "NoClientCert":
            context.load_cert_chain(self.cert_file, self.key_file)
        return context


@dataclass(frozen=True)
class WebConfig:
    file: str
    tls: TLSServerConfig | None = None
    users: Mapping[str, bytes] = field(default_factory=dict)  # user -> bcrypt hash
    headers: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[Problem, ...] = ()

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    @property
    def authenticates(self) -> bool:
        """Whether a client must prove who it is: a password, or a certificate the worker verifies."""
        return bool(self.users) or (self.tls is not None and self.tls.client_auth_type == "RequireAndVerifyClientCert")


def web_user(request: object) -> str | None:
    """The user the request authenticated as (basic authentication); None without a web configuration
    or without users in it."""
    try:
        return request.get(USER_KEY)  # type: ignore[attr-defined]
    except AttributeError:
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` is a loopback address (or localhost): what only this machine can reach."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def load_web_config(path: str | Path) -> WebConfig:
    """Read and check a web configuration; raises WebConfigInvalid with every problem."""
    reader = _Reader(Path(path))
    config = reader.read()
    if config is None or any(p.severity == ERROR for p in reader.problems):
        raise WebConfigInvalid(sorted(reader.problems))
    return config


class _Reader:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.file = str(path)
        self.problems: list[Problem] = []
        self.lines: dict[tuple[str, ...], int] = {}

    def add(self, where: tuple[str, ...], message: str, severity: str = ERROR) -> None:
        line = next((self.lines[where[:end]] for end in range(len(where), -1, -1) if where[:end] in self.lines), 0)
        self.problems.append(Problem(self.file, line, ".".join(where) or "(file)", message, severity))

    def read(self) -> WebConfig | None:
        try:
            text = self.path.read_text()
        except OSError as error:
            self.add((), f"cannot read the web configuration: {error.strerror or error}")
            return None
        try:
            document = YAML(typ="rt").load(text)
        except YAMLError as error:
            mark = getattr(error, "problem_mark", None)
            line = mark.line + 1 if mark is not None else 0
            self.problems.append(Problem(self.file, line, "(file)", f"not valid YAML: {_first_line(error)}"))
            return None
        if document is None:
            return WebConfig(self.file)  # empty: no TLS, no users (as the exporters read it)
        if not isinstance(document, CommentedMap):
            self.lines[()] = 1
            self.add((), "must be a mapping of tls_server_config, http_server_config, basic_auth_users")
            return None
        top = self.section(document, ())
        self.keys(top, (), TOP_KEYS)
        tls = self.tls(self.section(top.get("tls_server_config"), ("tls_server_config",)))
        headers = self.http(self.section(top.get("http_server_config"), ("http_server_config",)))
        users = self.users(self.section(top.get("basic_auth_users"), ("basic_auth_users",)))
        if users and tls is None:
            self.add(
                ("basic_auth_users",),
                "passwords cross the network in clear without tls_server_config: use it beyond this machine",
                WARNING,
            )
        warnings = tuple(p for p in self.problems if p.severity == WARNING)
        return WebConfig(self.file, tls, users, headers, warnings)

    def section(self, node: object, where: tuple[str, ...]) -> dict:
        """A mapping's keys and values (recording their lines); {} if absent, an error if not a mapping."""
        if node is None:
            return {}
        if not isinstance(node, CommentedMap):
            self.add(where, "must be a mapping")
            return {}
        self.lines.setdefault(where, node.lc.line + 1)
        for key in node:
            self.lines[(*where, str(key))] = node.lc.key(key)[0] + 1
        return {str(key): value for key, value in node.items()}

    def keys(self, section: dict, where: tuple[str, ...], known: tuple[str, ...]) -> None:
        for key in section:
            if key in UNSERVED.get(where, ()):
                self.add((*where, key), "is part of the exporters' format but tpmon does not serve it; remove it")
            elif key not in known:
                self.add((*where, key), f"is not a known key (known: {', '.join(known)})")

    def text(self, section: dict, where: tuple[str, ...]) -> str | None:
        value = section.get(where[-1])
        if value is None:
            return None
        if not isinstance(value, str) or not value.strip():
            self.add(where, "must be a non-empty string")
            return None
        return value

    def readable(self, section: dict, where: tuple[str, ...]) -> Path | None:
        name = self.text(section, where)
        if name is None:
            return None
        path = Path(name) if Path(name).is_absolute() else self.path.parent / name
        try:
            with path.open("rb"):
                pass
        except OSError as error:
            self.add(where, f"cannot read {path}: {error.strerror or error}")
            return None
        return path

    def tls(self, section: dict) -> TLSServerConfig | None:
        where = ("tls_server_config",)
        if not section:
            return None
        before = len(self.problems)
        self.keys(section, where, TLS_KEYS)
        for required in ("cert_file", "key_file"):
            if section.get(required) is None:
                self.add((*where, required), "is required with tls_server_config")
        cert, key = self.readable(section, (*where, "cert_file")), self.readable(section, (*where, "key_file"))
        client_ca = self.readable(section, (*where, "client_ca_file"))
        auth = self.text(section, (*where, "client_auth_type")) or "NoClientCert"
        if auth in UNSERVED_CLIENT_AUTH:
            self.add((*where, "client_auth_type"), f"{auth} {UNSERVED_CLIENT_AUTH[auth]}")
        elif auth not in CLIENT_AUTH_TYPES:
            known = ", ".join([*CLIENT_AUTH_TYPES, *UNSERVED_CLIENT_AUTH])
            self.add((*where, "client_auth_type"), f"{auth!r} is not one of {known}")
        elif CLIENT_AUTH_TYPES[auth] != ssl.CERT_NONE and section.get("client_ca_file") is None:
            self.add((*where, "client_ca_file"), f"is required with client_auth_type {auth}: the CA that verifies them")
        elif section.get("client_ca_file") is not None and CLIENT_AUTH_TYPES[auth] == ssl.CERT_NONE:
            self.add((*where, "client_ca_file"), f"is given, but client_auth_type {auth} verifies no certificate")
        versions = []
        for name, default in (("min_version", "TLS12"), ("max_version", "TLS13")):
            version = self.text(section, (*where, name)) or default
            if version not in TLS_VERSIONS:
                self.add((*where, name), f"{version!r} is not one of {', '.join(TLS_VERSIONS)}")
                version = default
            versions.append(version)
        if TLS_VERSIONS[versions[0]] > TLS_VERSIONS[versions[1]]:
            self.add((*where, "min_version"), f"{versions[0]} is above max_version {versions[1]}")
        if cert is None or key is None or any(p.severity == ERROR for p in self.problems[before:]):
            return None
        config = TLSServerConfig(cert, key, auth, client_ca, versions[0], versions[1])
        try:
            config.server_context()
        except ssl.SSLError as error:
            self.add((*where, "cert_file"), f"the certificate and key do not load together: {error.reason or error}")
        except OSError as error:  # a file that is not PEM, or a CA file that is not one
            self.add((*where, "cert_file"), f"cannot be used: {error.strerror or error}")
        return config

    def http(self, section: dict) -> dict[str, str]:
        where = ("http_server_config",)
        self.keys(section, where, HTTP_KEYS)
        if "http2" in section and not isinstance(section["http2"], bool):
            self.add((*where, "http2"), "must be true or false")
        headers: dict[str, str] = {}
        for name, value in self.section(section.get("headers"), (*where, "headers")).items():
            at = (*where, "headers", name)
            if name not in HEADERS:
                self.add(at, f"is not a header the exporters allow (allowed: {', '.join(HEADERS)})")
            elif not isinstance(value, str):
                self.add(at, "must be a string")
            elif HEADERS[name] is not None and value.lower() not in HEADERS[name]:  # type: ignore[operator]
                self.add(at, f"{value!r} is not one of {', '.join(HEADERS[name])}")  # type: ignore[arg-type]
            elif value:
                headers[name] = value
        return headers

    def users(self, section: dict) -> dict[str, bytes]:
        users: dict[str, bytes] = {}
        for name, hashed in section.items():
            at = ("basic_auth_users", name)
            # Never repeat the value: it may be a password written where its hash belongs.
            match = BCRYPT.match(hashed) if isinstance(hashed, str) else None
            if match is None:
                self.add(
                    at,
                    "is not a bcrypt hash ($2b$10$ and 53 characters; a password written in clear?): make one "
                    "with `htpasswd -nBC 10 '' | tr -d ':\\n'`",
                )
            elif not 4 <= int(match.group(1)) <= 31:
                self.add(at, f"bcrypt cost {match.group(1)} is not between 4 and 31")
            else:
                if int(match.group(1)) < WEAK_COST:
                    self.add(
                        at, f"bcrypt cost {match.group(1)} is cheap to attack offline: use {WEAK_COST} or more", WARNING
                    )
                users[name] = hashed.encode()
        costs = sorted({int(BCRYPT.match(hashed.decode()).group(1)) for hashed in users.values()})  # type: ignore[union-attr]
        if len(costs) > 1:
            # A wrong password takes as long as its user's cost (an unknown user's, the decoy's): with
            # different costs, how long a refusal takes tells which users exist.
            self.add(
                ("basic_auth_users",),
                f"the users' hashes have different bcrypt costs ({', '.join(map(str, costs))}): a refusal would "
                "take longer for some users than for others, telling who exists; make them all with one cost",
            )
        return users


def _first_line(error: Exception) -> str:
    problem = getattr(error, "problem", None)
    return str(problem or error).strip().splitlines()[0]
