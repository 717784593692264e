"""The Customer Room and on-call against real Prometheus and Alertmanager (Debian's packages): every
query of every dashboard and rule runs through Prometheus's API, and a billing outage pages billing."""

from __future__ import annotations

import json
import shutil
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from monitor.catalog import load_catalog
from monitor.durations import parse_duration
from monitor.observe.prometheus import scrape_job
from monitor.observe.windows import PROFILES
from monitor.review import review
from tpmon.broker import free_port
from tpmon.cli import main
from tpmon.report.prometheus import evidence

from .conftest import ROOT, Namespace, finished, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]


class Webhook:
    """An HTTP receiver for Alertmanager's webhooks, recording every alert delivered and when."""

    def __init__(self) -> None:
        self.alerts: list[tuple[float, str, dict]] = []
        received = self.alerts

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                for alert in body.get("alerts", []):
                    received.append((time.time(), self.path, alert))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def pages(self, owner: str | None = None) -> list[tuple[float, str, dict]]:
        return [
            a
            for a in self.alerts
            if a[2]["status"] == "firing"
            and a[2]["labels"].get("severity") == "page"
            and (owner is None or a[2]["labels"].get("owner") == owner)
        ]

    def close(self) -> None:
        self.server.shutdown()


class Stack:
    """Prometheus scraping the workers, with the test-profile rules, alerting through Alertmanager."""

    def __init__(self, root: Path, worker_ports: list[int], webhook: str) -> None:
        self.root = root
        CliRunner().invoke(
            main,
            [
                "rules",
                "render",
                "--out",
                str(root),
                "--profile",
                "test",
                "--webhook",
                webhook,
                "--rules",
                str(ROOT / "rules"),
            ],
        )
        self.am_port, self.prom_port = free_port(), free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(root / "recording.yml"), str(root / "touchpoints.yml")],
            "alerting": {"alertmanagers": [{"static_configs": [{"targets": [f"127.0.0.1:{self.am_port}"]}]}]},
            "scrape_configs": [scrape_job([f"127.0.0.1:{port}" for port in worker_ports])],
        }
        with (root / "prometheus.yml").open("w") as stream:
            YAML().dump(config, stream)
        alertmanager = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
        prometheus = shutil.which("prometheus")
        assert alertmanager and prometheus, "`make deps` installs Debian's prometheus and prometheus-alertmanager"
        self.processes = [
            subprocess.Popen(
                [alertmanager, f"--config.file={root / 'alertmanager.yml'}", f"--storage.path={root / 'am'}", f"--web.listen-address=127.0.0.1:{self.am_port}", "--cluster.listen-address="],
                stdout=(root / "alertmanager.log").open("wb"), stderr=subprocess.STDOUT,
            ),
            subprocess.Popen(
                [prometheus, f"--config.file={root / 'prometheus.yml'}", f"--storage.tsdb.path={root / 'tsdb'}", f"--web.listen-address=127.0.0.1:{self.prom_port}"],
                stdout=(root / "prometheus.log").open("wb"), stderr=subprocess.STDOUT,
            ),
        ]  # fmt: skip
        # Ready once it has scraped the worker: Prometheus hands its targets to the scrapers seconds after
        # it answers, and a counter's increase before its first scrape is not known to it.
        wait_until(lambda: self.query('up{job="tpmon"} == 1'), 60, "Prometheus to scrape the worker")

    def query(self, expr: str, at: float | None = None) -> list | None:
        """The result of an instant query (now, or at ``at``), or None when Prometheus refused it (or is
        not up)."""
        asked = {"query": expr} if at is None else {"query": expr, "time": f"{at:.3f}"}
        url = f"http://127.0.0.1:{self.prom_port}/api/v1/query?" + urllib.parse.urlencode(asked)
        try:
            with urllib.request.urlopen(url, timeout=5) as response:
                body = json.loads(response.read())
        except (OSError, ValueError):
            return None
        return body["data"]["result"] if body.get("status") == "success" else None

    def close(self) -> None:
        for process in self.processes:
            process.terminate()
            process.wait(30)


PAST_BILLS = 60


def past_bills(namespace: Namespace, count: int = PAST_BILLS, wrong: int = 0, seconds: float = 150) -> Path:
    """Right bills (``wrong`` of them wrong) of the last ``seconds``, from a minute and more ago: what the
    worker knew before the test began (a fresh worker's state warms up for its window, a minute in the
    test profile: docs/SEMANTICS.md, "Warming up")."""
    now = time.time()
    lines = []
    for n in range(count):
        at = now - seconds + n * (seconds - 65) / count
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at)) + f".{int(at % 1 * 1000):03d}Z"
        amount = 31.0 if n < wrong else 29.0
        lines.append(
            {"event_id": f"past-{namespace.name}-{n}", "type": "bill.issued", "customer_id": f"p-{n}",
             "occurred_at": stamp, "bill_id": f"pb-{n}", "amount": amount, "expected_amount": 29.0}
        )  # fmt: skip
    path = namespace.root / f"past-{len(list(namespace.root.glob('past-*')))}.jsonl"
    path.write_text("".join(json.dumps(line) + "\n" for line in lines))
    namespace.run("produce", str(path))
    return path


@pytest.fixture
def room(namespace: Namespace, tmp_path):  # type: ignore[no-untyped-def]
    webhook = Webhook()
    past_bills(namespace)
    # The test profile: the state windows of the catalog divided by 60, as the rules' (an hour a minute).
    worker = namespace.worker(TPMON_LATENESS="2s", TPMON_PROFILE="test")
    stack = Stack(tmp_path, [worker.port], webhook.url)
    yield namespace, worker, stack, webhook
    stack.close()
    webhook.close()


# Rules that name only the touchpoints broken now (and the vital few among them): empty when none is,
# as at the end of the test; that they name bill-correct while it is broken is asserted on their own.
BROKEN_ONLY = {
    "touchpoint:tpmon_touchpoint_broken_customers_impacted:sum",
    "touchpoint:tpmon_touchpoint_vital_few:customers_impacted",
}
ALERTS = {  # empty unless firing
    "TouchpointBurnRate",
    "TouchpointBroken",
    "TouchpointBadOutcomes",
    "TouchpointAtRisk",
    "TpmonInternalErrors",
    "TpmonWorkerDown",
    "TpmonForgetReaderDown",
    "TpmonConsumerLagGrowing",
    "TpmonRejectedSpike",
    "SourceSilent",
}


# The drilldown is asked about the incident's condition and about a deadline (its latency panel is for
# deadlines): each of its queries must answer for one of them.
DRILLED = ("bill-correct", "order-confirmed")


def expressions() -> list[tuple[str, list[str]]]:
    """(where, PromQL, and its alternatives) for every rule and every dashboard panel."""
    found = []
    yaml = YAML(typ="safe")
    for name in ("recording.yml", "touchpoints.yml"):
        for group in yaml.load((ROOT / "prometheus" / name).read_text())["groups"]:
            for rule in group["rules"]:
                found.append((f"{name}: {rule.get('record') or rule.get('alert')} ({group['name']})", [rule["expr"]]))
    for path in sorted((ROOT / "dashboards").glob("*.json")):
        for panel in json.loads(path.read_text())["panels"]:
            for target in panel.get("targets", []):
                exprs = [target["expr"].replace("$touchpoint", touchpoint) for touchpoint in DRILLED]
                found.append((f"{path.name}: {panel['title']}", sorted(set(exprs))))
    return found


def test_a_billing_outage_pages_billing_and_every_query_answers(room):
    namespace, worker, stack, webhook = room
    started = time.time()
    simulator = namespace.start(
        "simulate",
        "--bootstrap",
        namespace.bootstrap,
        "--rate",
        "300",
        "--duration",
        "70s",
        "--scenario",
        "billing-outage",
        "--time-scale",
        "60",
        "--seed",
        "31",
        "--out",
        str(namespace.root / "sent.jsonl"),
    )
    onset = started + 10  # minute 10, at a time scale of 60

    def broken() -> bool:
        result = stack.query('touchpoint:tpmon_touchpoint_state:value{touchpoint="bill-correct"} == 1')
        return bool(result)

    wait_until(broken, 90, "bill-correct to turn broken in Prometheus", every=0.5)
    broken_at = time.time()
    # The wall's vital few (the same rule as monitor.state.vital_few, in PromQL) names it.
    wait_until(
        lambda: stack.query('touchpoint:tpmon_touchpoint_vital_few:customers_impacted{touchpoint="bill-correct"} > 0'),
        30,
        "the vital few to name bill-correct",
        every=0.5,
    )
    wait_until(lambda: webhook.pages("billing"), 60, "the page for billing", every=0.5)
    paged_at, path, alert = webhook.pages("billing")[0]
    print(
        f"\nbill-correct broken {broken_at - onset:.1f}s after the outage began; page delivered {paged_at - onset:.1f}s after"
    )
    assert (
        path == "/billing" and alert["labels"]["owner"] == "billing" and alert["labels"]["touchpoint"] == "bill-correct"
    )
    assert {"summary", "description", "dashboard"} <= set(alert["annotations"])
    # The drilldown's stories: the worker's latest customers hurt by bill-correct, each with its journey.
    stories = json.loads(worker.get("/stories/bill-correct") or b"{}")["stories"]
    assert stories and stories[0]["story"].endswith("=> bill-correct BAD"), stories
    assert json.loads(worker.get(stories[0]["journey"]) or b"{}")["customer_id"] == stories[0]["customer_id"]

    # Some customers whose bill was wrong leave now, and some with a wrong bill and some with a right one
    # answer a survey (a short run has few of either of its own), so that the churn, left after bad, the
    # lift and the voice of the customer have something to say.
    sent = [json.loads(line) for line in (namespace.root / "sent.jsonl").read_bytes().splitlines()]
    bills = [e for e in sent if e["type"] == "bill.issued"]
    wrong = sorted({e["customer_id"] for e in bills if e["amount"] != e["expected_amount"]})
    right = sorted({e["customer_id"] for e in bills} - set(wrong))
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
    said = [
        {"event_id": f"left-{c}", "type": "customer.left", "customer_id": c, "reason": "service"} for c in wrong[:20]
    ] + [
        {"event_id": f"nps-{c}", "type": "survey.answered", "customer_id": c, "survey_id": f"s-{c}",
         "survey": "nps", "score": score}
        for customers, score in ((wrong[:40], 3), (right[:40], 9))
        for c in customers
    ]  # fmt: skip
    (namespace.root / "said.jsonl").write_text("".join(json.dumps({**e, "occurred_at": stamp}) + "\n" for e in said))
    namespace.run("produce", str(namespace.root / "said.jsonl"))
    wait_until(
        lambda: stack.query('touchpoint:tpmon_touchpoint_churn_lift:ratio_increase1d{touchpoint="bill-correct"} > 1'),
        60,
        "those who left after a wrong bill to lift bill-correct's churn",
        every=0.5,
    )
    # Every rule and panel: Prometheus parses it, and (but for alerts that are not firing) it has data.
    time.sleep(5)
    silent = []
    # A touchpoint with no outcome in its window (a minute here) has no reliability there: its tile says "-".
    empty = {
        r["metric"]["touchpoint"] for r in stack.query("touchpoint:tpmon_touchpoint_window_decided:sum == 0") or []
    }
    for where, exprs in expressions():
        results = [stack.query(expr) for expr in exprs]
        assert None not in results, f"Prometheus refused {where}: {exprs}"
        windowed = all("window_" in expr and any(f'"{t}"' in expr for t in empty) for expr in exprs)
        name = where.split(": ")[1].split(" ")[0]
        alert = "alert" in where.split(":")[0] or name in ALERTS or name in BROKEN_ONLY
        if not any(results) and not alert and not windowed:
            silent.append(where)
    assert silent == [], f"no data for: {silent}"
    # The pipeline's alert fires on none here: what it reads is there, at zero for every stage.
    assert {r["metric"]["stage"] for r in stack.query("tpmon_internal_errors_total == 0")} >= {"decode", "judge"}
    # One page for the incident: the burn rate's or, when it burns too slowly for that, the broken state's.
    paging = stack.query('ALERTS{touchpoint="bill-correct",severity="page",alertstate="firing"}')
    assert len(paging) == 1, paging
    simulator.terminate()
    simulator.wait(30)

    # The review of what Prometheus recorded (tpmon report --prometheus: query_range over the recording
    # rules of the test profile, where a minute is a second): bill-correct broken from the outage's
    # onset, and its outcomes those the worker counted, once the window holding the last is whole.
    counted = worker.outcomes()["bill-correct"]
    counted = (counted[0] - PAST_BILLS, counted[1])  # (the past bills were counted before Prometheus began)
    time.sleep(5 + 2)  # the 5s window (5m in the test profile) with the last outcomes, and two evaluations
    url = f"http://127.0.0.1:{stack.prom_port}"
    since = parse_duration(f"{int(time.time() - started) + 5}s")
    catalog = load_catalog(ROOT / "rules")
    now = time.time_ns() // 1000
    found = evidence(catalog, url, since, parse_duration("10s"), PROFILES["test"], now, lambda text: None)
    judged = review(catalog, found).by_id["bill-correct"]
    assert judged.was_broken and judged.spells, judged
    longest = max(judged.spells, key=lambda spell: spell.length(found.end))
    assert onset - 5 <= longest.start / 1e6 <= onset + 20, (longest, onset)
    assert abs(judged.decided - sum(counted)) <= 0.1 * sum(counted), (judged.decided, counted)
    out = namespace.root / "review.html"
    done = namespace.run(
        "report", "--prometheus", url, "--since", f"{since // 1_000_000}s", "--period", "10s", "--profile", "test",
        "--worker", f"http://127.0.0.1:{worker.port}", "--out", str(out),
    )  # fmt: skip
    assert "bill-correct (billing" in done.stdout.decode().split("Broken in a period:")[1]
    page = out.read_text()
    assert 'id="bill-correct"' in page and f"Prometheus at {url}" in page
    told = page.split("<h2>Stories</h2>")[1]  # the worker's latest customer hurt by bill-correct, and its journey
    assert "· for bill-correct" in told and "bill-correct: bad</td>" in told, told[:2000]


def test_a_healthy_run_pages_nobody(room):
    namespace, worker, stack, webhook = room
    # Before anything is sent, the real Prometheus scrapes the worker but has no outcome to review; and a
    # worker's address is not a Prometheus's. Both are told, and no review is written.
    out = namespace.root / "nothing.html"
    for address, message in (
        (f"http://127.0.0.1:{stack.prom_port}", "has no tpmon outcomes from"),
        (f"http://127.0.0.1:{worker.port}", "has no /api/v1/query_range (HTTP 404): give the address of a Prometheus"),
    ):
        args = ["--prometheus", address, "--since", "20s", "--period", "10s", "--profile", "test", "--out", str(out)]
        done = CliRunner().invoke(main, ["report", *args])
        assert done.exit_code == 1 and message in done.stderr, done.output
        assert not out.exists()
    simulator = namespace.start(
        "simulate", "--bootstrap", namespace.bootstrap, "--rate", "300", "--duration", "45s", "--seed", "32"
    )
    finished(simulator, 120, "the simulator")
    wait_until(
        lambda: stack.query('touchpoint:tpmon_touchpoint_state:value{touchpoint="bill-correct"} > 1'),
        30,
        "bill-correct to have a state",
    )
    time.sleep(10)  # long enough for a page to be evaluated, grouped and sent
    assert webhook.pages() == []


def test_a_quiet_touchpoint_pages_on_its_bad_outcomes(room):
    """Six bills every 30 seconds (12 an hour of the test profile: under bill-correct's min_events of 20,
    so neither the hour's burn rate nor the state over its hour can page), half of them wrong:
    TouchpointBadOutcomes pages billing once the last day (24 minutes here) holds confident evidence.
    (The six hours' burn rate may page beside it once they hold 20: one incident for Alertmanager.)"""
    namespace, _, stack, webhook = room
    started = time.time()
    for batch in range(5):
        now = time.time()
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now)) + f".{int(now % 1 * 1000):03d}Z"
        lines = [
            {"event_id": f"q-{batch}-{n}", "type": "bill.issued", "customer_id": f"q-{batch}-{n}", "occurred_at": stamp,
             "bill_id": f"qb-{batch}-{n}", "amount": 31.0 if n % 2 else 29.0, "expected_amount": 29.0}
            for n in range(6)
        ]  # fmt: skip
        path = namespace.root / f"quiet-{batch}.jsonl"
        path.write_text("".join(json.dumps(line) + "\n" for line in lines))
        namespace.run("produce", str(path))
        if stack.query('ALERTS{alertname="TouchpointBadOutcomes",alertstate="firing"}'):
            break
        time.sleep(max(0.0, now + 30 - time.time()))
    wait_until(lambda: webhook.pages("billing"), 60, "TouchpointBadOutcomes to page billing", every=0.5)
    paged = {alert["labels"]["alertname"] for _, _, alert in webhook.pages("billing")}
    print(f"\npaged {webhook.pages('billing')[0][0] - started:.0f}s after the first wrong bills: {paged}")
    assert "TouchpointBadOutcomes" in paged and paged <= {"TouchpointBadOutcomes", "TouchpointBurnRate"}, paged
    hour = stack.query('sum(touchpoint:tpmon_touchpoint_decided:rate1h{touchpoint="bill-correct"}) * 60')
    assert hour and float(hour[0]["value"][1]) < 20, hour  # too few an hour for the burn rates' volume guard
