"""No input can stop the live pipeline or move its clock (docs/EVENTS.md), on a real Kafka broker."""

from __future__ import annotations

import asyncio
import signal
import sys
import time
from collections import Counter
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from monitor.events import format_timestamp

from .conftest import ROOT, Namespace, Worker, wait_committed, wait_until
from .test_live_pipeline import deadline_catalog, place_an_order_now

pytestmark = [pytest.mark.integration, pytest.mark.slow]

POISONED = [sys.executable, str(Path(__file__).with_name("poisoned_worker.py"))]
BIG = 8 * 1024 * 1024


def order(event_id: str, at: str | None = None, customer: str = "c-hostile", **fields: object) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "order.placed",
            "customer_id": customer,
            "occurred_at": at or format_timestamp(time.time_ns() // 1000),
            "order_id": f"o-{event_id}",
            "amount": 5,
            "channel": "web",
            **fields,
        }
    )


def an_event(event_id: str, event_type: str, **fields: object) -> bytes:
    now = format_timestamp(time.time_ns() // 1000)
    return orjson.dumps(
        {"event_id": event_id, "type": event_type, "customer_id": "c-hostile", "occurred_at": now, **fields}
    )


def nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def hostile() -> list[tuple[int, bytes | None, str | None]]:
    """(source topic, message value, the reason it is rejected for; None: accepted)."""
    tomorrow = format_timestamp(time.time_ns() // 1000 + 86_400_000_000)
    return [
        (0, order("h1", "9999-12-31T23:59:59-01:00"), "bad_timestamp"),  # past year 9999 in UTC
        (0, order("h2", "0001-01-01T00:00:00+01:00"), "bad_timestamp"),  # before year 1 in UTC
        (0, order("h3", "9999-12-31T23:59:59Z"), "future_timestamp"),  # would move the clock to 9999
        (1, order("h4", tomorrow), "future_timestamp"),  # a clock wrong by a day
        (1, b"[" * 20_000 + b"]" * 20_000, "malformed_json"),  # nested 20,000 levels
        (1, an_event("h5", "customer.joined", extra=nested(50)), None),  # nested, not too deep: an event
        (1, order("h6")[:-1] + b',"extra":' + b"[" * 100 + b"]" * 100 + b"}", "malformed_json"),  # 101 levels
        (2, b'{"event_id": "\xff\xfe"}', "not_utf8"),
        (2, b"", "malformed_json"),  # empty
        (2, None, "malformed_json"),  # no value at all (a tombstone)
        (2, b"[1, 2]", "not_object"),
        (2, b'"an event"', "not_object"),
        (3, order("h7", padding="x" * 2_000_000), "too_large"),  # 2 MB
        (3, an_event("h8", "loyalty.points.added"), None),  # a type of no declaration: accepted as "other"
        (3, an_event("h9", "order.placed"), "missing_field"),
        (3, order("h10", amount="lots"), "wrong_type"),
        (3, order("h11", "2026-11-22T10:00:00"), "bad_timestamp"),  # no offset
        (0, b'{"event_id": "h12", "type": ', "malformed_json"),  # cut short
        (0, order("h13")[:-1] + b',"n":NaN}', "malformed_json"),
        (0, order("h14")[:-1] + b',"n":1e400}', "malformed_json"),  # beyond a double
        (0, order("h15")[:-1] + b',"s":"\\ud800"}', "malformed_json"),  # a lone surrogate
        (0, an_event("h16", "order.cancelled", order_id="o", by=[]), "wrong_type"),  # once made the decoder raise
    ]


async def send(space: Namespace, messages: list[tuple[int, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=space.bootstrap, max_request_size=BIG)
    await producer.start()
    try:
        for topic, value in messages:
            await producer.send_and_wait(space.topics[topic], value, key=b"c-hostile")
    finally:
        await producer.stop()


async def dead_letters(space: Namespace, count: int, timeout: float = 60) -> list:
    consumer = AIOKafkaConsumer(
        space.dead_letters,
        bootstrap_servers=space.bootstrap,
        auto_offset_reset="earliest",
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await consumer.start()
    received: list = []
    try:
        deadline = time.monotonic() + timeout
        while len(received) < count and time.monotonic() < deadline:
            for messages in (await consumer.getmany(timeout_ms=500)).values():
                received.extend(messages)
        # Anything more than expected would be a message kept twice: look a moment longer.
        for messages in (await consumer.getmany(timeout_ms=1500)).values():
            received.extend(messages)
    finally:
        await consumer.stop()
    return received


def by_name(worker: Worker, metric: str, label: str) -> dict[str, float]:
    """The metric's non-zero values summed by one label."""
    totals: Counter[str] = Counter()
    for (name, labels), value in worker.metrics().items():
        if name == metric and value:
            totals[dict(labels)[label]] += value
    return dict(totals)


def test_hostile_messages_are_kept_whole_and_the_next_event_is_judged_on_time(namespace, tmp_path):
    worker = namespace.worker(TPMON_RULES=str(deadline_catalog(tmp_path, "quick-confirm", "2s")))
    messages = hostile()
    assert len(messages) >= 15
    sent_at = time.time_ns() // 1000
    asyncio.run(send(namespace, [(topic, value) for topic, value, _ in messages]))
    expected = [(namespace.sources[topic], value, reason) for topic, value, reason in messages if reason]
    kept = asyncio.run(dead_letters(namespace, len(expected)))
    got = [(dict(m.headers)["source"].decode(), m.value, dict(m.headers)["reason"].decode()) for m in kept]
    assert Counter(got) == Counter(expected)  # each kept once, whole, with its source and reason
    assert worker.process.poll() is None
    wait_until(
        lambda: by_name(worker, "tpmon_events_rejected_total", "reason") == Counter(r for _, _, r in expected),
        30,
        "every reject counted by reason",
    )
    assert by_name(worker, "tpmon_events_total", "type") == {"customer.joined": 1, "other": 1}
    assert by_name(worker, "tpmon_internal_errors_total", "stage") == {}
    # A replay of the same messages, at the clock of their sending, refuses the same for the same reasons.
    lines = tmp_path / "hostile.jsonl"
    lines.write_bytes(b"".join(value + b"\n" for _, value, _ in messages if value))  # (a file has no tombstone)
    replayed = tmp_path / "rejects.jsonl"
    # (Most of these lines are refused: replay says so and exits 3, its rejects written all the same.)
    namespace.run("replay", str(lines), "--now", format_timestamp(sent_at), "--rejects", str(replayed), expect=3)
    in_replay = Counter(orjson.loads(r)["reason"] for r in replayed.read_bytes().splitlines())
    assert in_replay == Counter(r for _, v, r in expected if v)  # an empty line is no line to refuse

    # The clock did not move: the next order is decided when it is due, not before and not late.
    placed_at = place_an_order_now(namespace)
    due = placed_at + 2 + 1  # due time plus lateness
    wait_until(lambda: worker.outcomes().get("quick-confirm") == (0, 1), 30, "the missed deadline", every=0.05)
    decided = time.time()
    print(f"decided {decided - due:+.2f}s after due + lateness")
    assert -0.5 <= decided - due <= 1.0
    assert worker.process.poll() is None


def test_a_message_that_makes_processing_raise_is_kept_as_internal_error_and_never_crash_loops(namespace, tmp_path):
    poisoned = namespace.worker(command=POISONED)
    poison = order("poison-1", customer="c-poison")
    asyncio.run(send(namespace, [(0, order("good-1")), (0, poison), (0, order("good-2"))]))
    (kept,) = asyncio.run(dead_letters(namespace, 1))
    headers = {name: value.decode() for name, value in kept.headers}
    assert kept.value == poison
    assert (headers["reason"], headers["stage"], headers["source"]) == ("internal_error", "judge", namespace.sources[0])
    assert "a test-only rule error on poison-1" in headers["detail"]
    wait_until(lambda: by_name(poisoned, "tpmon_events_total", "type") == {"order.placed": 2}, 30, "the good events")
    assert by_name(poisoned, "tpmon_internal_errors_total", "stage") == {"judge": 1}
    assert by_name(poisoned, "tpmon_events_rejected_total", "reason") == {"internal_error": 1}
    log = poisoned.log.read_text()
    assert log.count("Traceback") == 1 and "a test-only rule error on poison-1" in log

    # Restarted, still with the bug: the message is not read again (it was committed once kept).
    topics = [*namespace.topics, f"{namespace.name}-events"]
    wait_committed(namespace.bootstrap, namespace.name, topics, 30)
    assert poisoned.stop(signal.SIGTERM) == 0
    again = namespace.worker(command=POISONED)
    asyncio.run(send(namespace, [(0, order("good-3"))]))  # counted once the restarted worker is under way
    # (the counters continue where they were: 2 before the restart)
    wait_until(lambda: by_name(again, "tpmon_events_total", "type") == {"order.placed": 3}, 60, "the next event")
    assert len(asyncio.run(dead_letters(namespace, 2, timeout=3))) == 1
    assert again.process.poll() is None
    assert again.stop(signal.SIGTERM) == 0

    # The bug fixed (a plain worker), the kept message is read back and sent again: judged this time.
    fixed = namespace.worker()
    out = tmp_path / "fixed.jsonl"
    read = namespace.run("rejects", "--reason", "internal_error", "--raw", "--out", str(out))
    assert out.read_bytes() == poison + b"\n" and b"1 of the 1 messages" in read.stderr
    namespace.run("produce", str(out))
    wait_until(lambda: fixed.get("/journeys/c-poison") is not None, 30, "the fixed message judged")
    journey = orjson.loads(fixed.get("/journeys/c-poison"))  # type: ignore[arg-type]
    assert [e["event_id"] for e in journey["events"]] == ["poison-1"]


def test_a_dead_letter_too_large_for_its_topic_keeps_what_is_said_of_it(namespace):
    async def small_dead_letter_topic() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=namespace.bootstrap)
        await admin.start()
        try:
            await admin.create_topics(
                [NewTopic(namespace.dead_letters, 4, 1, topic_configs={"max.message.bytes": "100000"})]
            )
        finally:
            await admin.close()

    asyncio.run(small_dead_letter_topic())
    worker = namespace.worker()
    big = b'{"event_id": "' + b"x" * 300_000  # malformed, and three times what the topic takes
    asyncio.run(send(namespace, [(1, big), (1, order("good-1"))]))
    (kept,) = asyncio.run(dead_letters(namespace, 1))
    headers = {name: value.decode() for name, value in kept.headers}
    assert kept.value is None and headers["reason"] == "malformed_json" and headers["source"] == namespace.sources[1]
    assert headers["omitted"].startswith(f"{len(big)} bytes")
    wait_until(lambda: by_name(worker, "tpmon_events_total", "type") == {"order.placed": 1}, 30, "the good event")
    assert by_name(worker, "tpmon_internal_errors_total", "stage") == {"deliver": 1}
    assert worker.process.poll() is None


def test_rule_errors_and_lines_produce_cannot_key_are_dead_lettered_as_replay_keeps_them(namespace, tmp_path):
    """A live worker counts and keeps the rule errors a replay of the same lines counts and keeps (per
    touchpoint, with the same touchpoint and message); `produce --source` sends the lines it cannot key
    unkeyed, and the worker dead-letters them as replay rejects them."""
    from tests.test_rule_errors import TWO_ON_ONE_TYPE

    rules = tmp_path / "rules"
    rules.mkdir()
    (rules / "catalog.yaml").write_text(TWO_ON_ONE_TYPE)
    (rules / "events.yaml").write_bytes((ROOT / "rules" / "events.yaml").read_bytes())
    worker = namespace.worker(TPMON_RULES=str(rules))
    lines = [
        order("r1", customer="c1", tier="vip"),
        order("r2", customer="c2"),  # no tier: a rule error of vip-order-ok only
        order("r3", customer="c3", tier="std"),
        order("r4", customer="c4")[:-1] + b',"customer_id":null}',  # no customer to key it by
        b'{"event_id": "r5", "type": ',  # unreadable
    ]
    sample = tmp_path / "orders.jsonl"
    sample.write_bytes(b"\n".join(lines) + b"\n")
    produced = namespace.run("produce", str(sample), "--source", "orders", TPMON_RULES=str(rules))
    said = produced.stderr.decode()
    assert "line 4: field 'customer_id' is missing: sent unkeyed" in said and "line 5: malformed JSON" in said
    assert "5 events sent (2 of them unkeyed, for the dead letters), 0 skipped" in said

    kept = asyncio.run(dead_letters(namespace, 3))
    live = Counter(
        (headers.get("reason"), headers.get("touchpoint"), headers.get("message"), value)
        for headers, value in (({n: v.decode() for n, v in m.headers}, m.value) for m in kept)
    )
    wait_until(
        lambda: by_name(worker, "tpmon_touchpoint_rule_errors_total", "touchpoint") == {"vip-order-ok": 1},
        30,
        "the rule error counted",
    )
    rejects = tmp_path / "rejects.jsonl"
    replayed = namespace.run("replay", f"orders={sample}", "--json", "--rejects", str(rejects), TPMON_RULES=str(rules))
    summary = orjson.loads(replayed.stdout)
    assert {t: row["rule_errors"] for t, row in summary["touchpoints"].items()} == {
        "vip-order-ok": 1,
        "order-amount-ok": 0,
    }
    records = [orjson.loads(r) for r in rejects.read_bytes().splitlines()]
    assert live == Counter((r["reason"], r.get("touchpoint"), r.get("message"), r["raw"].encode()) for r in records)
    assert sorted(r for r, *_ in live) == ["malformed_json", "missing_field", "rule_error"]
    assert by_name(worker, "tpmon_events_rejected_total", "reason") == {"malformed_json": 1, "missing_field": 1}
