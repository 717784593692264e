"""The worker's web configuration (streams.webconfig) and the authentication it sets up (streams.webauth):
every problem of a file named with its line and field; the right password lets in, any other does not,
in the same time whatever the user name; a scrape does not cost a bcrypt each time."""

from __future__ import annotations

import asyncio
import base64
import re
import ssl
import urllib.request
from pathlib import Path

import aiohttp
import bcrypt
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from click.testing import CliRunner

from monitor.observe.prometheus import PARTITION_SERIES, scrape_job
from streams import webauth
from streams.settings import Settings
from streams.webauth import Authenticator, peer_client, web_server_options
from streams.webconfig import USER_KEY, WebConfigInvalid, is_loopback, load_web_config, web_user
from tpmon.cli import main
from tpmon.commands import report as report_command
from tpmon.commands import worker as worker_command

from .certificates import ThrowawayCA, bcrypt_hash, make_ca

# The web user is kept under a string key, which colleagues' code reads (aiohttp would rather have an AppKey).
pytestmark = pytest.mark.filterwarnings("ignore::aiohttp.web.NotAppKeyWarning")

PASSWORD = "correct horse battery staple"


@pytest.fixture(scope="module")
def ca(tmp_path_factory) -> ThrowawayCA:
    return make_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture(scope="module")
def folder(ca) -> Path:
    """A worker's certificate and key, and a CA for its clients, beside the configurations written."""
    issued = ca.issue("worker")
    other = make_ca(ca.folder / "other", "other-ca").issue("other")
    for name, path in {"worker.crt": issued.cert, "worker.key": issued.key, "other.key": other.key}.items():
        (ca.folder / name).write_bytes(path.read_bytes())
    (ca.folder / "clients-ca.crt").write_bytes(ca.cert.read_bytes())
    return ca.folder


HASH = bcrypt_hash(PASSWORD)
TLS = "tls_server_config:\n  cert_file: worker.crt\n  key_file: worker.key\n"
USERS = f"basic_auth_users:\n  prometheus: '{HASH}'\n"


def header(user: str, password: str) -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


def write(folder: Path, text: str, name: str = "web.yml") -> Path:
    path = folder / name
    path.write_text(text)
    return path


# (id, the file, the problems expected: "line: field: words of the message")
BAD = [
    ("malformed YAML", "basic_auth_users: [prometheus\n", ["2: (file): not valid YAML"]),
    ("not a mapping", "- prometheus\n", ["1: (file): must be a mapping"]),
    ("unknown key", TLS + "  certfile: worker.crt\n", ["4: tls_server_config.certfile: is not a known key"]),
    ("unknown top key", "basic_auth: {}\n", ["1: basic_auth: is not a known key"]),
    ("plain-text password", "basic_auth_users:\n  prometheus: hunter2\n", ["2: basic_auth_users.prometheus: is not a bcrypt hash"]),
    ("missing cert", "tls_server_config:\n  cert_file: missing.crt\n  key_file: worker.key\n", ["2: tls_server_config.cert_file: cannot read", "No such file"]),
    ("a folder for a key", "tls_server_config:\n  cert_file: worker.crt\n  key_file: .\n", ["3: tls_server_config.key_file: cannot read", "Is a directory"]),
    ("no key", "tls_server_config:\n  cert_file: worker.crt\n", ["1: tls_server_config.key_file: is required"]),
    ("key of another cert", "tls_server_config:\n  cert_file: worker.crt\n  key_file: other.key\n", ["2: tls_server_config.cert_file: the certificate and key do not load together"]),
    ("a key the exporters know, tpmon does not serve", TLS + "  cipher_suites: [TLS_AES_128_GCM_SHA256]\n", ["4: tls_server_config.cipher_suites: is part of the exporters' format but tpmon does not serve it"]),
    ("client certificates verified without a CA", TLS + "  client_auth_type: RequireAndVerifyClientCert\n", ["tls_server_config.client_ca_file: is required with client_auth_type RequireAndVerifyClientCert"]),
    ("a client CA that verifies nothing", TLS + "  client_ca_file: clients-ca.crt\n", ["4: tls_server_config.client_ca_file: is given, but client_auth_type NoClientCert"]),
    ("RequireAnyClientCert", TLS + "  client_auth_type: RequireAnyClientCert\n", ["4: tls_server_config.client_auth_type: RequireAnyClientCert requires a certificate without verifying"]),
    ("unknown client auth", TLS + "  client_auth_type: Maybe\n", ["4: tls_server_config.client_auth_type: 'Maybe' is not one of"]),
    ("unknown TLS version", TLS + "  min_version: TLS14\n", ["4: tls_server_config.min_version: 'TLS14' is not one of TLS10"]),
    ("versions the wrong way round", TLS + "  min_version: TLS13\n  max_version: TLS12\n", ["4: tls_server_config.min_version: TLS13 is above max_version TLS12"]),
    ("a header the exporters do not allow", "http_server_config:\n  headers:\n    X-Powered-By: tpmon\n", ["3: http_server_config.headers.X-Powered-By: is not a header the exporters allow"]),
    ("a header value they do not accept", "http_server_config:\n  headers:\n    X-Frame-Options: allow\n", ["3: http_server_config.headers.X-Frame-Options: 'allow' is not one of deny, sameorigin"]),
    ("users' hashes of different costs (who exists shows in how long a refusal takes)",
     TLS + "basic_auth_users:\n  alice: '$2b$10$" + "a" * 53 + "'\n  bob: '$2b$12$" + "b" * 53 + "'\n",
     ["4: basic_auth_users: the users' hashes have different bcrypt costs (10, 12)"]),
    ("several at once", "tls_server_config:\n  cert_file: missing.crt\n  key_file: worker.key\nbasic_auth_users:\n  a: hunter2\nrate_limit: {}\n",
     ["2: tls_server_config.cert_file: cannot read", "5: basic_auth_users.a: is not a bcrypt hash", "6: rate_limit: is part of the exporters' format"]),
]  # fmt: skip


@pytest.mark.parametrize(("text", "expected"), [case[1:] for case in BAD], ids=[case[0] for case in BAD])
def test_a_bad_file_is_refused_with_every_problem_named(folder, text, expected):
    path = write(folder, text)
    with pytest.raises(WebConfigInvalid) as raised:
        load_web_config(path)
    said = [str(problem) for problem in raised.value.problems]
    for words in expected:
        assert any(words in line and line.startswith(str(path)) for line in said), f"{words!r} not in {said}"
    assert len(said) == len([w for w in expected if not w.startswith(("No such", "Is a"))])


def test_a_password_written_in_clear_is_never_repeated(folder):
    with pytest.raises(WebConfigInvalid) as raised:
        load_web_config(write(folder, "basic_auth_users:\n  prometheus: hunter2-secret\n"))
    assert "hunter2-secret" not in str(raised.value)


def test_a_missing_file_is_named():
    with pytest.raises(WebConfigInvalid, match=re.escape("missing.yml: (file): cannot read the web configuration")):
        load_web_config("/nonexistent/missing.yml")


def test_a_good_file_with_paths_beside_it(folder):
    text = TLS + "  client_auth_type: VerifyClientCertIfGiven\n  client_ca_file: clients-ca.crt\n  min_version: TLS13\n"
    text += "http_server_config:\n  http2: false\n  headers:\n    X-Content-Type-Options: nosniff\n" + USERS
    config = load_web_config(write(folder, text))
    assert config.scheme == "https" and config.authenticates
    assert config.tls.cert_file == folder / "worker.crt" and config.tls.client_ca_file == folder / "clients-ca.crt"
    assert config.tls.server_context().verify_mode == ssl.CERT_OPTIONAL
    assert config.tls.server_context().minimum_version == ssl.TLSVersion.TLSv1_3
    assert config.users == {"prometheus": HASH.encode()}
    assert config.headers == {"X-Content-Type-Options": "nosniff"}
    assert [p.message for p in config.warnings] == ["bcrypt cost 04 is cheap to attack offline: use 10 or more"]


@pytest.mark.parametrize(
    ("text", "scheme", "authenticates", "warned"),
    [
        ("", "http", False, ""),
        (USERS, "http", True, "passwords cross the network in clear"),
        (TLS, "https", False, ""),
        (TLS + "  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: clients-ca.crt\n", "https", True, ""),
    ],
    ids=[
        "empty: nothing asked",
        "users without TLS: a warning",
        "TLS alone authenticates nobody",
        "client certificates",
    ],
)
def test_what_a_file_asks_of_clients(folder, text, scheme, authenticates, warned):
    config = load_web_config(write(folder, text))
    assert (config.scheme, config.authenticates) == (scheme, authenticates)
    assert all(warned in p.message for p in config.warnings if "cost" not in p.message)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("127.0.0.2", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("10.1.2.3", False), ("", False), ("worker-0", False)],
)  # fmt: skip
def test_loopback(host, loopback):
    assert is_loopback(host) is loopback


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def checked(monkeypatch) -> list[bytes]:
    """The hashes bcrypt checked a password against."""
    seen: list[bytes] = []
    real = bcrypt.checkpw

    def checkpw(password: bytes, hashed: bytes) -> bool:
        seen.append(hashed)
        return real(password, hashed)

    monkeypatch.setattr(webauth.bcrypt, "checkpw", checkpw)
    return seen


def user_of(authenticator: Authenticator, given: str | None) -> str | None:
    return asyncio.run(authenticator.user(given))


@pytest.mark.parametrize(
    ("given", "user", "bcrypt_checks"),
    [
        (header("prometheus", PASSWORD), "prometheus", 1),
        (header("prometheus", "wrong"), None, 1),
        (header("nobody", PASSWORD), None, 1),  # an unknown user costs a check too: against the decoy
        (header("prometheus", PASSWORD + "x" * 80), None, 1),  # beyond bcrypt's 72 bytes: refused, still checked
        (None, None, 0),
        ("Bearer abc", None, 0),
        ("Basic !!!", None, 0),
        ("Basic " + base64.b64encode(b"no colon").decode(), None, 0),
    ],
    ids=["right password", "wrong password", "unknown user", "too long", "no header", "not basic", "not base64", "no colon"],
)  # fmt: skip
def test_who_a_header_proves(checked, given, user, bcrypt_checks):
    assert user_of(Authenticator({"prometheus": HASH.encode()}), given) == user
    assert len(checked) == bcrypt_checks


def test_an_unknown_user_is_checked_against_a_decoy_of_the_same_cost(checked):
    authenticator = Authenticator({"prometheus": bcrypt_hash(PASSWORD, 5).encode()})
    assert user_of(authenticator, header("nobody", PASSWORD)) is None
    assert checked == [authenticator.decoy] and authenticator.decoy.startswith(b"$2b$05$")


def test_a_success_is_remembered_for_a_while_by_the_headers_digest_only(checked):
    clock = Clock()
    authenticator = Authenticator({"prometheus": HASH.encode()}, clock=clock, remember=300)
    right = header("prometheus", PASSWORD)
    for _ in range(3):  # a scrape every few seconds
        assert user_of(authenticator, right) == "prometheus"
        clock.now += 5
    assert len(checked) == 1
    key, (user, _) = next(iter(authenticator.remembered.items()))
    assert len(key) == 32 and PASSWORD.encode() not in key and user == "prometheus"
    clock.now += 300
    assert user_of(authenticator, right) == "prometheus" and len(checked) == 2  # checked again once forgotten


def test_a_failure_is_not_remembered(checked):
    authenticator = Authenticator({"prometheus": HASH.encode()})
    for _ in range(2):
        assert user_of(authenticator, header("prometheus", "wrong")) is None
    assert len(checked) == 2 and not authenticator.remembered


async def _serve(config, client_ssl=None, using=None, **asks: dict) -> list[tuple[int, dict, str]]:
    """Serve a page through the middlewares ``config`` sets up, and ask it as each of ``asks`` says (or
    its /metrics with the review's client, ``using``)."""
    options = web_server_options(config)

    async def page(request: web.Request) -> web.Response:
        return web.Response(text=f"hello {web_user(request)} {request.get(USER_KEY)}")

    app = web.Application(**options["web_application_options"])
    app.router.add_get("/metrics", page)
    server = TestServer(app)
    await server.start_server(ssl=options.get("web_ssl_context"))
    answers = []
    try:
        if using is not None:
            url = str(server.make_url("/metrics"))
            request = urllib.request.Request(url, headers=using.headers())
            body = await asyncio.to_thread(lambda: urllib.request.urlopen(request, context=using.context).read())
            return [(200, {}, body.decode())]
        session = peer_client(client_ssl)() if client_ssl is not None else aiohttp.ClientSession()
        async with session:
            for path, headers in asks.values():
                async with session.get(server.make_url(path), headers=headers) as response:
                    answers.append((response.status, dict(response.headers), await response.text()))
    finally:
        await server.close()
    return answers


def test_every_path_asks_for_credentials_and_tells_the_user_to_the_page(folder):
    config = load_web_config(write(folder, USERS + "http_server_config:\n  headers:\n    X-Frame-Options: deny\n"))
    asked = {
        "none": ("/metrics", {}),
        "wrong": ("/metrics", {"Authorization": header("prometheus", "wrong")}),
        "right": ("/metrics", {"Authorization": header("prometheus", PASSWORD)}),
        "unknown path": ("/nowhere", {}),
        "unknown path, right": ("/nowhere", {"Authorization": header("prometheus", PASSWORD)}),
    }
    none, wrong, right, nowhere, nowhere_right = asyncio.run(_serve(config, **asked))
    for status, headers, _ in (none, wrong, nowhere):
        assert status == 401 and headers["WWW-Authenticate"] == 'Basic realm="tpmon"'
    assert right[0] == 200 and right[2] == "hello prometheus prometheus"
    assert nowhere_right[0] == 404
    assert all(answer[1]["X-Frame-Options"] == "deny" for answer in (none, right, nowhere_right))


def test_web_user_without_authentication():
    assert web_user({}) is None and web_user(object()) is None


def test_tls_with_the_workers_ca_and_without(folder, ca):
    config = load_web_config(write(folder, TLS + USERS))
    right = {"right": ("/metrics", {"Authorization": header("prometheus", PASSWORD)})}
    [(status, _, text)] = asyncio.run(_serve(config, config.tls.peer_context(str(ca.cert)), **right))
    assert (status, text) == (200, "hello prometheus prometheus")
    with pytest.raises(aiohttp.ClientConnectorCertificateError):  # the system's CAs do not know the test CA
        asyncio.run(_serve(config, config.tls.peer_context(None), **right))


def test_client_certificates_verified(folder, ca):
    """RequireAndVerifyClientCert: a client without a certificate of the clients' CA is not served; with
    one it is, and so is the review's client (tpmon report --worker-cert-file)."""
    clients = make_ca(folder / "clients", "clients-ca")
    review = clients.issue("review", usage="clientAuth")
    text = TLS + f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {clients.cert}\n"
    config = load_web_config(write(folder, text))
    page = {"page": ("/metrics", {})}
    with_cert = config.tls.peer_context(str(ca.cert))
    with_cert.load_cert_chain(review.cert, review.key)
    [(status, _, text)] = asyncio.run(_serve(config, with_cert, **page))
    assert (status, text) == (200, "hello None None")  # no basic authentication: no web user
    without = ssl.create_default_context(cafile=str(ca.cert))
    with pytest.raises(aiohttp.ClientError):
        asyncio.run(_serve(config, without, **page))
    access = report_command.worker_access(None, None, ca.cert, review.cert, review.key)
    assert asyncio.run(_serve(config, without, using=access)) == [(200, {}, "hello None None")]


def test_no_configuration_sets_nothing():
    assert web_server_options(None) == {}


ADVERTISED = [
    ("a named host", {"TPMON_WEB_HOST": "10.0.0.5"}, "http", "http://10.0.0.5:6066"),
    ("every address: the machine's name", {"TPMON_WEB_HOST": "0.0.0.0"}, "https", "https://{fqdn}:6066"),
    ("an IPv6 address", {"TPMON_WEB_HOST": "fd00::5", "TPMON_WEB_PORT": "7000"}, "http", "http://[fd00::5]:7000"),
    (
        "given",
        {"TPMON_WEB_HOST": "0.0.0.0", "TPMON_WEB_URL": "https://w1.example:6066"},
        "https",
        "https://w1.example:6066",
    ),
]


@pytest.mark.parametrize(("env", "scheme", "url"), [case[1:] for case in ADVERTISED], ids=[c[0] for c in ADVERTISED])
def test_the_url_the_other_workers_forward_to(env, scheme, url):
    """Other workers forward /journeys of this one's customers there: never 0.0.0.0, which on another
    machine is that machine (the request came back to the worker that had no journey: 404)."""
    import socket

    assert Settings.load(env).advertised_url(scheme) == url.format(fqdn=socket.getfqdn())


def test_insecure_web_from_the_environment():
    assert Settings.load({"TPMON_INSECURE_WEB": "1"}).insecure_web is True
    assert Settings.load({}).insecure_web is False
    with pytest.raises(ValueError, match="TPMON_INSECURE_WEB must be 1 or 0"):
        Settings.load({"TPMON_INSECURE_WEB": "maybe"})


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["--web-host", "0.0.0.0"], "the web port on 0.0.0.0 would serve customers' journeys to anyone: without a web"),
        (["--web-host", "0.0.0.0", "--web-config", "{tls}"], "authenticates nobody"),
        (["--web-config", "{bad}"], "basic_auth_users.prometheus: is not a bcrypt hash"),
    ],
    ids=["beyond loopback without a configuration", "with one that authenticates nobody", "a bad configuration"],
)
def test_the_worker_refuses_to_start(folder, monkeypatch, args, said):
    for name in ("TPMON_WEB_HOST", "TPMON_WEB_CONFIG", "TPMON_INSECURE_WEB"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(worker_command, "_event_loop", lambda: None)  # uvloop stays out of this process
    files = {"tls": write(folder, TLS, "tls.yml"), "bad": write(folder, "basic_auth_users: {prometheus: x}\n", "b.yml")}
    result = CliRunner().invoke(main, ["worker", *(arg.format(**files) for arg in args)])
    assert result.exit_code == 2, result.output
    assert said in " ".join(result.output.split())


def test_the_scrape_job_of_a_protected_worker():
    plain = scrape_job(["w:6066"])
    assert plain == {
        "job_name": "tpmon",
        "static_configs": [{"targets": ["w:6066"]}],
        "metric_relabel_configs": PARTITION_SERIES,
    }
    protected = scrape_job(
        ["w:6066"],
        scheme="https",
        basic_auth={"username": "prometheus", "password_file": "/etc/prometheus/tpmon.password"},
        tls_config={"ca_file": "/etc/prometheus/tpmon-ca.crt"},
    )
    assert protected == {
        **plain,
        "scheme": "https",
        "basic_auth": {"username": "prometheus", "password_file": "/etc/prometheus/tpmon.password"},
        "tls_config": {"ca_file": "/etc/prometheus/tpmon-ca.crt"},
    }


@pytest.mark.parametrize(
    ("args", "env", "said"),
    [
        (["--worker-user", "alice"], {}, "--worker-user alice: give the password in TPMON_WORKER_PASSWORD"),
        ([], {"TPMON_WORKER_PASSWORD": "secret"}, "a worker password without --worker-user"),
        (["--worker-password-file", "/nonexistent/password", "--worker-user", "a"], {}, "No such file"),
        (["--worker-ca-file", "/nonexistent/ca.crt"], {}, "--worker-ca-file /nonexistent/ca.crt: no such file"),
    ],
    ids=["a user without a password", "a password without a user", "a password file missing", "a CA file missing"],
)
def test_report_worker_credentials_are_checked_first(monkeypatch, args, env, said):
    for name in ("TPMON_WORKER_USER", "TPMON_WORKER_PASSWORD", "TPMON_WORKER_PASSWORD_FILE", "TPMON_WORKER_CA_FILE"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    prometheus = ["--prometheus", "http://127.0.0.1:9", "--worker", "http://127.0.0.1:6066"]
    result = CliRunner().invoke(main, ["report", "--out", "/nonexistent/review.html", *prometheus, *args])
    assert result.exit_code == 2 and said in " ".join(result.output.split()), result.output


def test_report_worker_access_sends_basic_credentials(tmp_path):
    (tmp_path / "password").write_text(PASSWORD + "\n")
    access = report_command.worker_access("prometheus", tmp_path / "password", None)
    assert access.headers() == {"Authorization": header("prometheus", PASSWORD)}
    assert report_command.worker_access(None, None, None).headers() == {}


def test_the_example_in_the_docs_is_a_good_file(folder):
    """docs/SECURITY.md's example web configuration, beside a certificate and its key."""
    from .conftest import ROOT

    section = (ROOT / "docs" / "SECURITY.md").read_text().split("## The worker's web port")[1]
    example = section.split("```yaml\n")[1].split("```")[0]
    config = load_web_config(write(folder, example, "docs-example.yml"))
    assert config.scheme == "https" and config.authenticates and not config.warnings
