"""A worker with a web configuration, on the real broker, scraped by the real Prometheus (Debian's):
every endpoint, tpmon's and Faust's own, answers 401 without the right credentials and 200 with them,
over plain HTTP and over TLS with a certificate of a throwaway CA; Prometheus scrapes it with the
configuration scrape_job renders, and a job without the credentials finds it down."""

from __future__ import annotations

import base64
import json
import shutil
import ssl
import subprocess
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from monitor.catalog import load_catalog
from monitor.observe.prometheus import scrape_job
from tpmon.broker import free_port
from tpmon.report.workers import WorkerAccess

from ..certificates import bcrypt_hash, make_ca
from .conftest import ROOT, Namespace, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

USER, PASSWORD = "prometheus", "scrape-me-please"
# tpmon's pages, Faust's own (production ones; its tables' pages would show the journeys), a path that is none.
TOUCHPOINT = load_catalog(ROOT / "rules").ids[0]
PATHS = ["/metrics", "/touchpoints", "/ready", "/journeys/c-1", f"/stories/{TOUCHPOINT}", "/", "/router/",
         "/table/", "/table/journeys/", "/nowhere"]  # fmt: skip


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def ask(url: str, headers: dict[str, str], context: ssl.SSLContext | None) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10, context=context) as r:
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as error:
        return error.code, dict(error.headers)


def prometheus_up(root: Path, jobs: list[dict]) -> tuple[subprocess.Popen, int]:
    port = free_port()
    config = {"global": {"scrape_interval": "1s"}, "scrape_configs": jobs}
    with (root / "prometheus.yml").open("w") as stream:
        YAML().dump(config, stream)
    prometheus = shutil.which("prometheus")
    assert prometheus, "`make deps` installs Debian's prometheus"
    process = subprocess.Popen(
        [prometheus, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=(root / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
    )  # fmt: skip
    return process, port


def query(port: int, expr: str) -> dict[str, float]:
    """An instant query's values by job ({} while Prometheus does not answer)."""
    url = f"http://127.0.0.1:{port}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            body = json.loads(response.read())
    except (OSError, ValueError):
        return {}
    return {item["metric"]["job"]: float(item["value"][1]) for item in body["data"]["result"]}


@pytest.mark.parametrize("tls", [False, True], ids=["plain HTTP", "TLS"])
def test_a_protected_worker(namespace: Namespace, tmp_path: Path, tls: bool):
    folder = tmp_path / "web"
    ca = make_ca(folder)
    text = f"basic_auth_users:\n  {USER}: '{bcrypt_hash(PASSWORD)}'\n"
    if tls:
        issued = ca.issue("worker")
        text += f"tls_server_config:\n  cert_file: {issued.cert.name}\n  key_file: {issued.key.name}\n"
    (folder / "web.yml").write_text(text)
    worker = namespace.worker(wait=False, TPMON_WEB_CONFIG=str(folder / "web.yml"))
    scheme = "https" if tls else "http"
    base = f"{scheme}://127.0.0.1:{worker.port}"
    context = ssl.create_default_context(cafile=str(ca.cert)) if tls else None
    right = basic(USER, PASSWORD)

    def ready() -> bool:
        assert worker.process.poll() is None, worker.log.read_text()[-3000:]
        try:
            return ask(base + "/ready", right, context)[0] == 200
        except OSError:
            return False

    wait_until(ready, 90, "the worker to be ready")

    for path in PATHS:
        for said, headers in {"no credentials": {}, "a wrong password": basic(USER, "guess"),
                              "an unknown user": basic("mallory", PASSWORD)}.items():  # fmt: skip
            status, answered = ask(base + path, headers, context)
            assert status == 401, f"{path} with {said}: {status}"
            assert answered.get("WWW-Authenticate") == 'Basic realm="tpmon"', path
        status, _ = ask(base + path, right, context)
        # Faust's table pages are off: they would read the state tables' records.
        missing = ("/nowhere", "/journeys/c-1", "/table/", "/table/journeys/")
        assert status == (404 if path in missing else 200), f"{path}: {status}"

    if tls:  # a client that does not trust the test CA does not get in, credentials or not
        with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
            ask(base + "/metrics", right, ssl.create_default_context())

    # The review's client (tpmon report --worker) with the same credentials and CA.
    access = WorkerAccess(USER, PASSWORD, str(ca.cert) if tls else "")
    assert "stories" in access.json(f"{base}/stories/{TOUCHPOINT}")

    # Prometheus with the job scrape_job renders, and the same job without credentials.
    (folder / "password").write_text(PASSWORD + "\n")
    protected = scrape_job(
        [f"127.0.0.1:{worker.port}"],
        scheme=scheme,
        basic_auth={"username": USER, "password_file": str(folder / "password")},
        tls_config={"ca_file": str(ca.cert)} if tls else None,
    )
    anonymous = {**{k: v for k, v in protected.items() if k != "basic_auth"}, "job_name": "anonymous"}
    process, port = prometheus_up(tmp_path, [protected, anonymous])
    try:
        wait_until(lambda: len(query(port, "up")) == 2, 60, "Prometheus to scrape both jobs")
        assert query(port, "up") == {"tpmon": 1.0, "anonymous": 0.0}
        scraped = query(port, "scrape_samples_scraped")
        assert scraped["tpmon"] > 0 and scraped["anonymous"] == 0  # the worker's series, or nothing
    finally:
        process.terminate()
        process.wait(30)


def test_rendered_scrape_job_is_valid_for_promtool(tmp_path: Path):
    """The protected job as promtool reads it (its files must exist)."""
    (tmp_path / "password").write_text(PASSWORD)
    ca = make_ca(tmp_path)
    job = scrape_job(
        ["worker:6066"],
        scheme="https",
        basic_auth={"username": USER, "password_file": str(tmp_path / "password")},
        tls_config={"ca_file": str(ca.cert)},
    )
    with (tmp_path / "prometheus.yml").open("w") as stream:
        YAML().dump({"scrape_configs": [job]}, stream)
    checked = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
