"""tpmon forget on the real broker, with real workers: the customer's journey is erased on every
worker, one of them restarted after the request, and nothing else changes (docs/SECURITY.md)."""

from __future__ import annotations

import asyncio
import base64
import signal
import time

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from monitor.events import format_timestamp
from streams.settings import Settings
from tpmon.broker import free_port

from ..certificates import bcrypt_hash
from .conftest import Namespace, Worker, wait_until

pytestmark = [pytest.mark.integration]

GONE, KEPT = "c-forget-me", "c-keep-me"


def events_now() -> bytes:
    """A wrong bill and an open order of the customer to forget, a right bill of another, just now."""
    now = round(time.time() * 1_000_000)

    def line(event_id: str, kind: str, customer: str, **fields: object) -> bytes:
        return orjson.dumps(
            {
                "event_id": event_id,
                "type": kind,
                "customer_id": customer,
                "occurred_at": format_timestamp(now),
                **fields,
            }
        )

    return (
        b"\n".join(
            [
                line("f1", "bill.issued", GONE, bill_id="b1", amount=12.0, expected_amount=10.0),
                line("f2", "order.placed", GONE, order_id="o1", amount=5, channel="web"),
                line("k1", "bill.issued", KEPT, bill_id="b2", amount=10.0, expected_amount=10.0),
            ]
        )
        + b"\n"
    )


def journey(worker: Worker, customer: str) -> int | None:
    """The status of /journeys/{customer} on the worker (None: no answer)."""
    import urllib.error
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/journeys/{customer}", timeout=3) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def post(worker: Worker, path: str, headers: dict[str, str] | None = None) -> int | None:
    import urllib.error
    import urllib.request

    headers = {"Content-Type": "application/json", **(headers or {})}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(f"http://127.0.0.1:{worker.port}{path}", b"{}", method="POST", headers=headers),
            timeout=3,
        ) as response:
            return response.status
    except urllib.error.HTTPError as error:
        return error.code
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return None


def counts(workers: list[Worker]) -> tuple[dict, dict]:
    """(good, bad) per touchpoint from /touchpoints and from /metrics, summed over the workers."""
    seen: dict[str, list[int]] = {}
    for worker in workers:
        view = orjson.loads(worker.get("/touchpoints") or b"{}")
        for touchpoint, row in view.get("touchpoints", {}).items():
            pair = seen.setdefault(touchpoint, [0, 0])
            pair[0] += row["good"]
            pair[1] += row["bad"]
    metrics: dict[str, list[int]] = {}
    for worker in workers:
        for touchpoint, (good, bad) in worker.outcomes().items():
            pair = metrics.setdefault(touchpoint, [0, 0])
            pair[0] += good
            pair[1] += bad
    return seen, metrics


def tombstone(space: Namespace, customer: str) -> bool:
    """Whether the compacted journeys topic holds a record of the customer whose value is None."""

    async def read() -> bool:
        consumer = AIOKafkaConsumer(bootstrap_servers=space.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            topic = f"{space.name}-journeys"
            partitions = [TopicPartition(topic, p) for p in range(Settings().partitions)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found = False
            while True:
                positions = [await consumer.position(tp) for tp in partitions]
                if all(at >= ends[tp] for at, tp in zip(positions, partitions, strict=True)):
                    break
                for messages in (await consumer.getmany(timeout_ms=1000)).values():
                    found = found or any(m.key == customer.encode() and m.value is None for m in messages)
            return found
        finally:
            await consumer.stop()

    return asyncio.run(read())


def test_forget_erases_the_journey_on_every_worker_even_one_restarted_and_keeps_the_counts(namespace):
    port = free_port()
    first, second = namespace.worker(), namespace.worker(port=port)
    wait_until(
        lambda: all(
            len(orjson.loads(w.get("/ready") or b"{}").get("partitions", [4, 4, 4, 4])) < 4 for w in (first, second)
        ),
        60,
        "the partitions shared by both workers",
    )
    sent = namespace.root / "events.jsonl"
    sent.write_bytes(events_now())
    namespace.run("produce", str(sent))
    wait_until(
        lambda: all(journey(w, c) == 200 for w in (first, second) for c in (GONE, KEPT)), 60, "both journeys served"
    )
    wait_until(lambda: counts([first, second])[0].get("bill-correct") == [1, 1], 60, "the bills judged")
    before = wait_until(lambda: (c := counts([first, second]))[0] == c[1] and c, 30, "/metrics to show them")

    # The second stops; the request is made while it is away; it starts again after.
    assert second.stop(signal.SIGTERM) == 0
    recorded = namespace.run("forget", GONE, "--by", "dpo@example.com").stderr.decode()
    assert GONE in recorded and "recorded 1 request" in recorded
    started = time.monotonic()
    wait_until(lambda: journey(first, GONE) == 404, 60, "the journey erased on the first worker")
    second = namespace.worker(port=port)
    wait_until(
        lambda: all(journey(w, GONE) == 404 and journey(w, KEPT) == 200 for w in (first, second)),
        60,
        "the journey erased on both workers, the other kept",
    )
    print(f"\nerased on both within {time.monotonic() - started:.1f}s of the request")
    assert "forget: customer c-forget-me (asked by dpo@example.com" in first.log.read_text()
    # Counts stay (they name nobody): /touchpoints and /metrics alike, once both are whole again.
    wait_until(lambda: counts([first, second]) == before, 60, "the counts as they were")
    assert tombstone(namespace, GONE)

    # The web page asks for an authenticated user: a worker without web configuration has none.
    assert post(first, f"/forget/{KEPT}") == 403

    # The workers say what they held: the customer erased on one of them (live, or as it took the
    # partition), and a customer no worker holds: recorded all the same (exit 0), held nowhere.
    logs = (first.log.read_text() + second.log.read_text()).splitlines()
    assert any(f"forget: customer {GONE} " in line and "erased from partition" in line for line in logs)
    unknown = namespace.run("forget", "c-nobody-knows").stderr.decode()
    assert "recorded 1 request" in unknown and "held nothing here" in unknown
    wait_until(
        lambda: all(
            any("forget: customer c-nobody-knows (" in line and "held nothing here" in line for line in lines)
            for lines in (first.log.read_text().splitlines(), second.log.read_text().splitlines())
        ),
        30,
        "both workers to say they held nothing of the unknown customer",
    )


def test_an_authenticated_web_user_asks_a_worker_to_forget(namespace, tmp_path):
    """POST /forget/{customer_id} on a worker whose web port authenticates: the request of a user named
    in --forget-users is recorded with that user as who asked, and every worker applies it as one of
    `tpmon forget`'s; another user (the scraper) is refused, and so is a form (what another site's page
    could make a browser send)."""
    users = {"dpo": "erase-me", "prometheus": "scrape-only"}
    (tmp_path / "web.yml").write_text(
        "basic_auth_users:\n" + "".join(f"  {user}: '{bcrypt_hash(password)}'\n" for user, password in users.items())
    )
    worker = namespace.worker(wait=False, TPMON_WEB_CONFIG=str(tmp_path / "web.yml"), TPMON_FORGET_USERS="dpo")
    credentials = {"Authorization": "Basic " + base64.b64encode(b"dpo:erase-me").decode()}
    wait_until(lambda: post(worker, "/forget/c-by-the-web", credentials) == 202, 90, "the request to be taken")
    scraper = {"Authorization": "Basic " + base64.b64encode(b"prometheus:scrape-only").decode()}
    assert post(worker, "/forget/c-by-the-scraper", scraper) == 403
    form = {**credentials, "Content-Type": "application/x-www-form-urlencoded"}
    assert post(worker, "/forget/c-by-a-form", form) == 415
    wait_until(
        lambda: "forget: customer c-by-the-web (asked by dpo at" in worker.log.read_text(), 30, "the log to say so"
    )
    assert post(worker, "/forget/c-by-the-web") == 401  # no credentials: not even asked
    assert "c-by-the-scraper" not in worker.log.read_text() and "c-by-a-form" not in worker.log.read_text()


def test_forget_with_kafka_down_says_so_and_fails_within_seconds(namespace):
    started = time.monotonic()
    result = namespace.run("forget", "c-1", "--bootstrap", f"127.0.0.1:{free_port()}", expect=1)
    assert "cannot reach Kafka" in result.stderr.decode()
    assert time.monotonic() - started < 20
