"""Personal fields live, on the real broker and a real worker: a survey's comment (``personal: true`` in
the shipped catalog) carrying a distinctive value is judged with the rest, and under the default
``journeys: {personal: drop}`` the value appears in no log line (at debug level), no /stories, no
/metrics, no /journeys answer and no record of the journeys topic (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from monitor.events import format_timestamp

from .conftest import Namespace, wait_until

pytestmark = pytest.mark.integration

CANARY = "personal-canary@example.org"
CUSTOMERS = [f"c-canary-{number}" for number in range(3)]


def messages(now: int) -> list[tuple[str, bytes, bytes]]:
    """(source, key, message): per customer, a wrong bill (bill-correct is bad: a story) and an answer
    whose free-text comment holds the canary; two minutes old, past the lateness."""
    sent = []
    for number, customer in enumerate(CUSTOMERS):
        at = now - 120_000_000 + number * 1_000_000
        common = {"customer_id": customer}
        bill = {
            **common,
            "event_id": f"{customer}-bill",
            "type": "bill.issued",
            "occurred_at": format_timestamp(at),
            "bill_id": f"B-{customer}",
            "amount": 99.0,
            "expected_amount": 10.0,
        }
        answer = {
            **common,
            "event_id": f"{customer}-answer",
            "type": "survey.answered",
            "occurred_at": format_timestamp(at + 500_000),
            "survey_id": f"S-{customer}",
            "survey": "nps",
            "score": 1,
            "comment": f"Nobody got back to me. Write to me at {CANARY}.",
        }
        sent += [("bills", customer.encode(), orjson.dumps(bill)), ("surveys", customer.encode(), orjson.dumps(answer))]
    return sent


async def send(space: Namespace, items: list[tuple[str, bytes, bytes]]) -> None:
    topics = dict(zip(space.sources, space.topics, strict=True))
    producer = AIOKafkaProducer(bootstrap_servers=space.bootstrap)
    await producer.start()
    try:
        for source, key, value in items:
            await producer.send_and_wait(topics[source], value, key=key)
    finally:
        await producer.stop()


async def journey_records(space: Namespace, customers: list[str], timeout: float = 30) -> dict[bytes, bytes]:
    """The latest record of each customer on the journeys topic, once each holds its answer."""
    consumer = AIOKafkaConsumer(
        f"{space.name}-journeys", bootstrap_servers=space.bootstrap, auto_offset_reset="earliest"
    )
    await consumer.start()
    latest: dict[bytes, bytes] = {}
    seen: list[bytes] = []
    try:
        deadline = time.monotonic() + timeout
        wanted = {customer.encode() for customer in customers}
        while time.monotonic() < deadline:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                for message in batch:
                    seen.append(message.value or b"")
                    if message.key in wanted and message.value:
                        latest[message.key] = message.value
            if len(latest) == len(wanted) and all(b"-answer" in value for value in latest.values()):
                break
    finally:
        await consumer.stop()
    assert all(CANARY.encode() not in value for value in seen)
    return latest


def test_a_personal_value_reaches_no_log_story_metric_journey_or_journeys_record(namespace):
    worker = namespace.worker(TPMON_LOGLEVEL="debug")
    asyncio.run(send(namespace, messages(int(time.time() * 1_000_000))))

    def judged() -> bool:
        bad = worker.outcomes().get("bill-correct", (0, 0))[1]
        return bad >= len(CUSTOMERS)

    wait_until(judged, 30, "the wrong bills to be judged")
    journeys = {
        customer: wait_until(
            lambda customer=customer: (found := worker.get(f"/journeys/{customer}")) and b"-answer" in found and found,
            30,
            f"{customer}'s journey to hold the answer",
        )
        for customer in CUSTOMERS
    }
    for customer, journey in journeys.items():
        record = orjson.loads(journey)  # type: ignore[arg-type]
        (answer,) = [e for e in record["events"] if e["type"] == "survey.answered"]
        assert "comment" not in answer["fields"] and "comment" not in answer["raw"], customer
        assert answer["fields"]["survey_id"] == f"S-{customer}"  # the rest of the answer is kept
        assert CANARY.encode() not in journey, customer  # type: ignore[operator]
    stories = wait_until(
        lambda: (found := worker.get("/stories/bill-correct")) and b"c-canary" in found and found,
        30,
        "the stories of the wrong bills",
    )
    assert CANARY.encode() not in stories  # type: ignore[operator]
    metrics = worker.get("/metrics") or b""
    assert b"tpmon_touchpoint_outcomes_total" in metrics and CANARY.encode() not in metrics
    records = asyncio.run(journey_records(namespace, CUSTOMERS))
    assert set(records) == {customer.encode() for customer in CUSTOMERS}
    log = worker.log.read_bytes()
    assert b"DEBUG" in log  # (the log is at debug level: the most it ever says)
    assert CANARY.encode() not in log
    worker.stop()
    assert CANARY.encode() not in worker.log.read_bytes()  # nor on the way out


def test_kept_personal_fields_are_shown_to_the_personal_readers_only(namespace, tmp_path):
    """``journeys: {personal: keep}`` and a web configuration of two users, one of them a personal
    reader: /journeys shows the comment to that one only; the stories show it to nobody."""
    import base64
    import shutil
    import urllib.error
    import urllib.request

    from ..certificates import bcrypt_hash
    from .conftest import ROOT

    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    catalog = rules / "catalog.yaml"
    catalog.write_text(catalog.read_text() + "\njourneys:\n  personal: keep\n")
    users = {"alice": "reads-personal", "prometheus": "scrapes-only"}
    web = tmp_path / "web.yml"
    web.write_text(
        "basic_auth_users:\n" + "".join(f"  {user}: '{bcrypt_hash(password)}'\n" for user, password in users.items())
    )
    worker = namespace.worker(
        wait=False, TPMON_RULES=str(rules), TPMON_WEB_CONFIG=str(web), TPMON_PERSONAL_READERS="alice"
    )

    def get(path: str, user: str) -> tuple[int, bytes]:
        token = base64.b64encode(f"{user}:{users[user]}".encode()).decode()
        request = urllib.request.Request(
            f"http://127.0.0.1:{worker.port}{path}", headers={"Authorization": f"Basic {token}"}
        )
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                return response.status, response.read()
        except urllib.error.HTTPError as error:
            return error.code, b""
        except OSError:
            assert worker.process.poll() is None, worker.log.read_text()[-3000:]
            return 0, b""

    wait_until(lambda: get("/ready", "prometheus")[0] == 200, 90, "the worker to be ready")
    asyncio.run(send(namespace, messages(int(time.time() * 1_000_000))))
    customer = CUSTOMERS[0]
    kept = wait_until(
        lambda: (found := get(f"/journeys/{customer}", "alice")[1]) and b"-answer" in found and found,
        30,
        f"{customer}'s journey to hold the answer",
    )
    assert CANARY.encode() in kept  # type: ignore[operator]
    status, shown = get(f"/journeys/{customer}", "prometheus")
    assert status == 200 and b"-answer" in shown and CANARY.encode() not in shown
    for user in users:
        stories = wait_until(
            lambda user=user: (found := get("/stories/bill-correct", user)[1]) and b"c-canary" in found and found,
            30,
            "the stories of the wrong bills",
        )
        assert CANARY.encode() not in stories  # type: ignore[operator]
