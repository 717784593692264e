"""The worker's hops without Kafka (streams.handlers): no message stops them, every message comes out
once, as an event passed on or whole in the dead letters (docs/EVENTS.md)."""

from __future__ import annotations

import logging

import orjson
import pytest

from monitor.contract import Decoder
from monitor.engine import Engine
from monitor.events import parse_timestamp
from streams.handlers import OMITTED, header, said
from tests.worker_helpers import DEAD_LETTERS, EVENTS, Message, Worker

NOW = parse_timestamp("2026-11-22T10:05:00Z")


def order(event_id: str, customer: str = "c1", at: str = "2026-11-22T10:00:00Z", **extra: object) -> bytes:
    return orjson.dumps(
        {
            "event_id": event_id,
            "type": "order.placed",
            "customer_id": customer,
            "occurred_at": at,
            "order_id": f"o-{event_id}",
            "amount": 5,
            "channel": "web",
            **extra,
        }
    )


HOSTILE = [
    ("past year 9999 in UTC", order("h1", at="9999-12-31T23:59:59-01:00"), "bad_timestamp"),
    ("before year 1 in UTC", order("h2", at="0001-01-01T00:00:00+01:00"), "bad_timestamp"),
    ("year 9999 (the future)", order("h3", at="9999-12-31T23:59:59Z"), "future_timestamp"),
    ("a day ahead of the clock", order("h4", at="2026-11-23T10:05:00Z"), "future_timestamp"),
    ("nested 20,000 levels", b"[" * 20_000 + b"]" * 20_000, "malformed_json"),
    ("not UTF-8", b'{"event_id": "\xff"}', "not_utf8"),
    ("empty", b"", "malformed_json"),
    ("a JSON array", b"[1, 2]", "not_object"),
    ("no offset", order("h5", at="2026-11-22T10:00:00"), "bad_timestamp"),
    (
        "a field missing",
        orjson.dumps(
            {"event_id": "h6", "type": "order.placed", "customer_id": "c", "occurred_at": "2026-11-22T10:00:00Z"}
        ),
        "missing_field",
    ),
    ("a mistyped field", order("h7", amount="lots"), "wrong_type"),
]


def break_the_record_of(customer: str, worker: Worker, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A test-only store error: writing this customer's record raises."""
    put = worker.customers.put

    def failing_put(partition, key, value):  # type: ignore[no-untyped-def]
        if key == customer:
            raise RuntimeError("store bug")
        put(partition, key, value)

    monkeypatch.setattr(worker.customers, "put", failing_put)


def poison_the_engine(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A test-only rule error: the engine's step raises on events whose id starts with 'poison'."""
    step = Engine.step

    def poisoned(self, event):  # type: ignore[no-untyped-def]
        if event.id.startswith("poison"):
            raise RuntimeError("a test-only rule error")
        return step(self, event)

    monkeypatch.setattr(Engine, "step", poisoned)


@pytest.mark.parametrize(("raw", "reason"), [h[1:] for h in HOSTILE], ids=[h[0] for h in HOSTILE])
def test_a_hostile_message_goes_whole_to_the_dead_letters(catalog, raw, reason):
    worker = Worker(catalog)
    (dead,) = worker.run([Message("orders", raw, key=b"k")], NOW)
    assert (dead.value, dead.key, dead.headers["reason"], dead.headers["source"]) == (raw, b"k", reason, "orders")
    assert worker.sample("tpmon_events_rejected_total", source="orders", reason=reason) == 1
    assert worker.judged() == set()  # nothing reached an engine


def test_a_hostile_message_does_not_hold_back_the_good_ones_around_it(catalog):
    worker = Worker(catalog)
    batch = [
        Message("orders", order("g1")),
        *(Message("orders", raw) for _, raw, _ in HOSTILE),
        Message("orders", order("g2")),
    ]
    dead = worker.run(batch, NOW)
    assert [d.headers["reason"] for d in dead] == [reason for _, _, reason in HOSTILE]
    assert worker.judged() == {"g1", "g2"}
    assert all((engine.state.max_at or 0) <= NOW for engine in worker.partitions.engines.values())


def test_a_poison_in_the_engine_is_dead_lettered_as_internal_error_and_the_rest_judged(catalog, monkeypatch, caplog):
    poison_the_engine(monkeypatch)
    worker = Worker(catalog)
    raw = order("poison-1", customer="c2")
    with caplog.at_level(logging.ERROR, logger="tpmon"):
        dead = worker.run([Message("orders", order("g1")), Message("orders", raw), Message("orders", order("g2"))], NOW)
        worker.run([Message("orders", order("poison-2", customer="c3"))], NOW)
    (first,) = dead
    assert (first.value, first.headers["reason"], first.headers["stage"], first.headers["source"]) == (
        raw,
        "internal_error",
        "judge",
        "orders",
    )
    assert "RuntimeError: a test-only rule error" in first.headers["detail"]
    assert worker.judged() == {"g1", "g2"}
    assert worker.sample("tpmon_internal_errors_total", stage="judge") == 2
    assert worker.sample("tpmon_events_rejected_total", source="orders", reason="internal_error") == 2
    # Logged once with its traceback; the second of its kind only in one line.
    tracebacks = [r for r in caplog.records if "Traceback" in r.getMessage()]
    assert len(tracebacks) == 1 and "a test-only rule error" in tracebacks[0].getMessage()


def test_a_poison_in_decoding_is_dead_lettered_at_either_hop(catalog, monkeypatch):
    decode = Decoder.decode

    def poisoned(self, raw, source, *args, **kwargs):  # type: ignore[no-untyped-def]
        if b"poison" in raw:
            raise RuntimeError("decoder bug")
        return decode(self, raw, source, *args, **kwargs)

    monkeypatch.setattr(Decoder, "decode", poisoned)
    worker = Worker(catalog)
    (dead,) = worker.run([Message("orders", order("poison-3")), Message("orders", order("g1"))], NOW)
    assert (dead.headers["reason"], dead.headers["stage"]) == ("internal_error", "decode")
    assert worker.judged() == {"g1"}


def test_a_record_that_cannot_be_written_marks_its_customers_events_and_spares_the_others(catalog, monkeypatch):
    worker = Worker(catalog)
    break_the_record_of("c-poison", worker, monkeypatch)
    dead = worker.run([Message("orders", order("p1", customer="c-poison")), Message("orders", order("g1"))], NOW)
    assert [(d.headers["reason"], d.headers["stage"]) for d in dead] == [("internal_error", "record")]
    assert "c1" in worker.customers.data  # the other customer's record is written
    # The event was judged: a record failure is not a rejection.
    assert worker.judged() == {"p1", "g1"}
    assert worker.sample("tpmon_events_rejected_total", source="orders", reason="internal_error") == 0


def test_an_unreadable_stored_record_is_reported_and_the_partition_still_loads(catalog):
    worker = Worker(catalog)
    worker.run([Message("orders", order("g1"))], NOW)
    worker.customers.put(0, "broken", b"{not json")
    rebuilt = worker.restarted()
    for partition in range(4):
        rebuilt.partitions.engine(partition)
    rebuilt.judge.drain()
    rebuilt.views.publish(rebuilt.views.snapshot())
    assert rebuilt.sample("tpmon_internal_errors_total", stage="restore") == 1  # only its partition reads it
    assert rebuilt.judged() == {"g1"}


def test_messages_on_the_events_topic_that_ingest_did_not_write_are_kept(catalog):
    worker = Worker(catalog)
    from_2099 = order("far", at="2099-01-01T00:00:00Z")
    worker.judge([Message(EVENTS, b"junk", headers=[("source", b"orders")]), Message(EVENTS, from_2099)], NOW)
    junk, future = worker.outbox.take(DEAD_LETTERS)
    assert (junk.value, junk.headers["reason"], junk.headers["source"]) == (b"junk", "malformed_json", "orders")
    assert (future.value, future.headers["reason"], future.headers["source"]) == (from_2099, "future_timestamp", EVENTS)
    assert worker.judged() == set()  # the clock did not move


def test_what_the_broker_refuses_is_dead_lettered_or_reported(catalog):
    from aiokafka.errors import MessageSizeTooLargeError

    worker = Worker(catalog)
    too_big = MessageSizeTooLargeError("too large")
    event_message = (EVENTS, b"c1", order("big"), 0, [("source", b"orders")])
    worker.dead_letters.refused(event_message, too_big)
    (dead,) = worker.outbox.take(DEAD_LETTERS)
    assert (dead.value, dead.headers["reason"], dead.headers["source"]) == (order("big"), "too_large", "orders")
    # That dead letter refused in turn: its headers are kept, its value cannot be.
    worker.dead_letters.refused(
        (DEAD_LETTERS, b"c1", dead.value, None, [(k, v.encode()) for k, v in dead.headers.items()]), too_big
    )
    (stub,) = worker.outbox.take(DEAD_LETTERS)
    assert stub.value is None and stub.headers["reason"] == "too_large" and OMITTED in stub.headers
    # And a stub refused is only reported: nothing more is sent.
    worker.dead_letters.refused((DEAD_LETTERS, b"c1", None, None, [(OMITTED, b"x")]), too_big)
    assert worker.outbox.take(DEAD_LETTERS) == []
    assert worker.sample("tpmon_internal_errors_total", stage="deliver") == 2


def test_each_failing_event_is_kept_once_whatever_else_fails(catalog, monkeypatch):
    """A customer whose step raised for one event, whose other event came twice, and whose record
    cannot be written: each of its messages is kept once, with the first failure it met."""
    poison_the_engine(monkeypatch)
    worker = Worker(catalog)
    break_the_record_of("c1", worker, monkeypatch)
    raws = [order("g1"), order("poison-1"), order("g1")]
    dead = worker.run([Message("orders", raw) for raw in raws], NOW)
    assert sorted((d.value, d.headers["stage"]) for d in dead) == sorted([(raws[0], "record"), (raws[1], "judge")])


def test_an_input_read_to_its_end_and_quiet_holds_no_other_input_back(catalog):
    """The end of a backfill: bills was read to its end, its last event an hour before orders' next.
    Once it is caught up and quiet for SETTLED, orders' last messages are read at once, not held until
    bills goes idle a lateness later; while bills still delivers (a producer writing it as it is read),
    orders waits for it as before."""
    from streams.handlers import AHEAD, SETTLED

    worker = Worker(catalog)
    ingest = worker.ingest
    hour = 3_600_000_000
    worker.ingest([Message("orders", order("g1")), Message("bills", order("b1", customer="c2"))], NOW)
    orders, bills = ingest.inputs["orders/0"], ingest.inputs["bills/0"]
    last = parse_timestamp("2026-11-22T10:00:00Z")
    orders[0], bills[0] = last + hour + AHEAD, last  # orders read far past bills' last event
    ingest.report(NOW)
    ingest.positions.caught_up = lambda topic, partition: topic == "bills"  # type: ignore[method-assign]
    assert ingest.ahead(now=NOW + SETTLED - 1) == {("orders", 0)}  # bills delivered a moment ago
    assert ingest.ahead(now=NOW + SETTLED) == set()  # bills: caught up and quiet, nothing to wait for
    ingest.positions.caught_up = lambda topic, partition: False  # type: ignore[method-assign]
    assert ingest.ahead(now=NOW + SETTLED) == {("orders", 0)}  # bills has a backlog: orders waits


def test_ingest_reports_its_inputs_progress_to_every_events_partition(catalog):
    worker = Worker(catalog)
    junk = Message("orders", b"junk")
    worker.ingest([Message("orders", order("g1")), junk], NOW)
    reports = [s for s in worker.outbox.take(EVENTS) if s.headers.get("tpmon") == "report"]
    assert sorted(s.partition for s in reports) == [0, 1, 2, 3]
    said = orjson.loads(reports[0].value)
    assert said["now"] == NOW and "orders/0" in said["known"]
    progress, idle, delivered, caught_up, history = said["inputs"]["orders/0"]
    assert progress == parse_timestamp(orjson.loads(order("g1"))["occurred_at"]) and not idle and delivered == NOW
    assert caught_up and history is None
    assert said["inputs"]["bills/0"] == [None, True, NOW, True, None]  # caught up, never delivered: idle
    # The junk is counted by one partition (each input's rejects have theirs), with its offset there.
    from streams.handlers import counter_of

    counting = [(s.partition, orjson.loads(s.value).get("rejects")) for s in reports]
    rejects = {"orders/0": [[junk.offset, "orders", "malformed_json", None]]}
    assert [(p, r) for p, r in counting if r] == [(counter_of("orders/0", 4), rejects)]


def test_ingest_pauses_what_is_ahead_of_the_slowest_input(catalog):
    from streams.handlers import AHEAD

    worker = Worker(catalog)
    ingest = worker.ingest
    minute = 60_000_000
    ingest.last_report = {
        "orders/0": (NOW + AHEAD + 2 * minute, False, NOW, True),
        "bills/0": (NOW + minute, False, NOW, True),
        "calls/0": (NOW - 10 * AHEAD, True, NOW, True),  # idle: holds nothing back
        "tickets/0": (None, False, NOW, True),  # caught up, nothing delivered: nothing to wait for
    }
    assert ingest.ahead() == {("orders", 0)}
    # Another worker's input, behind: everything here with progress beyond it waits.
    assert ingest.ahead({"orders/1": (NOW - AHEAD, False)}) == {("orders", 0), ("bills", 0)}
    # An input with a backlog and no progress yet: the others wait for its first events.
    ingest.positions.caught_up = lambda topic, partition: topic != "tickets"  # type: ignore[method-assign]
    assert ingest.ahead() == {("orders", 0), ("bills", 0)}
    # What the judge knows of an input from before a restart counts too.
    ingest.positions.caught_up = lambda topic, partition: True  # type: ignore[method-assign]
    assert ingest.ahead({"tickets/0": (NOW - AHEAD, False)}) == {("orders", 0), ("bills", 0)}
    # While an input delivers history behind its own stream, its progress does not move: nothing waits.
    assert ingest.ahead({"tickets/0": (NOW - AHEAD, False)}, history=True) == set()


def test_the_ingest_step_alone_says_what_to_send_where_and_sends_nothing(catalog, monkeypatch):
    from streams.handlers import ingest

    decode = Decoder.decode

    def poisoned(self, raw, source, *args, **kwargs):  # type: ignore[no-untyped-def]
        if b"poison" in raw:
            raise RuntimeError("decoder bug")
        return decode(self, raw, source, *args, **kwargs)

    monkeypatch.setattr(Decoder, "decode", poisoned)
    late, early = order("g2", customer="c2", at="2026-11-22T10:01:00Z"), order("g1", at="2026-11-22T10:00:00Z")
    batch = [
        Message("orders", late, partition=1),
        Message("orders", early, partition=1),
        Message("orders", b"junk", partition=0),
        Message("bills", order("poison-1"), partition=0),
        Message("orders", order("x", at="2026-11-23T10:00:00Z"), partition=2),
    ]
    step = ingest(batch, catalog.decoder, not_after=NOW)
    # Each event with where it was read: its input and offset there.
    at = [f"orders/1@{m.offset}".encode() for m in batch[:2]]
    assert step.events == [(b"c2", late, b"orders", at[0]), (b"c1", early, b"orders", at[1])]
    assert [(m.value, r.reason) for m, r in step.rejects] == [
        (b"junk", "malformed_json"),
        (batch[4].value, "future_timestamp"),
    ]
    assert [(m.value, source, f.stage) for m, source, f in step.failed] == [(batch[3].value, "bills", "decode")]
    # Every input the batch delivered, with its largest occurred_at (None: no event of it).
    assert step.progress == {
        ("orders", 1): parse_timestamp("2026-11-22T10:01:00Z"),
        ("orders", 0): None,
        ("bills", 0): None,
        ("orders", 2): None,
    }


def test_the_judge_steps_reading_alone_keeps_reports_and_events_in_order(catalog):
    from monitor.events import Event
    from monitor.watermark import Report
    from streams.handlers import REPORT, read_events

    report = Report(NOW, {"orders/0": (NOW - 1, False, NOW, False, None)}, ("orders/0",))
    batch = [
        Message(EVENTS, order("g1"), partition=2, headers=[("source", b"orders"), ("input", b"orders/0@41")]),
        Message(EVENTS, orjson.dumps(report.record()), partition=2, headers=[REPORT]),
        Message(EVENTS, b"junk", partition=3, headers=[("source", b"bills")]),
        Message(EVENTS, b"{", partition=3, headers=[REPORT]),
    ]
    step = read_events(batch, catalog.decoder, EVENTS, not_after=NOW)
    (p1, o1, event, name, at), (p2, o2, taken, _, _), (p3, _, junk, _, _), (_, _, broken, _, _) = step.items
    # What is not an event goes on too, for its partition to count it (and to the dead letters).
    assert (p3, junk.source, junk.reason, junk.stage) == (3, "bills", "malformed_json", None)
    assert (broken.reason, broken.stage) == ("internal_error", "decode")
    assert (p1, o1, type(event), event.id, event.source) == (2, batch[0].offset, Event, "g1", "orders")
    assert (name, at) == ("orders/0", 41)  # where ingest read it
    assert (p2, o2, taken.record()) == (2, batch[1].offset, report.record())
    assert [(m, source) for m, source in step.held][:2] == [(batch[0], "orders"), (batch[1], EVENTS)]
    assert [(m.value, r.reason, r.source) for m, r in step.rejects] == [(b"junk", "malformed_json", "bills")]
    assert [(m.value, f.stage) for m, _, f in step.failed] == [(b"{", "decode")]


def test_a_cloudevent_in_kafka_binary_mode_goes_on_in_structured_form_with_its_attributes(tmp_path):
    import shutil

    from monitor.catalog import load_catalog
    from streams.handlers import ingest
    from tests.conftest import ROOT

    for rule in (ROOT / "rules").glob("*.yaml"):
        shutil.copy(rule, tmp_path / rule.name)
    (tmp_path / "helpdesk.yaml").write_text(
        "version: 1\nsources: [{name: helpdesk, format: cloudevents}]\n"
        "events: [{type: ticket.created, source: helpdesk, fields: {ticket_id: string}}]\n"
    )
    catalog = load_catalog(tmp_path)
    attributes = [("ce_specversion", b"1.0"), ("ce_id", b"h1"), ("ce_type", b"ticket.created")]
    attributes += [("ce_time", b"2026-11-22T10:00:00Z"), ("ce_subject", b"acct-1"), ("ce_source", b"/helpdesk")]
    good = Message("helpdesk", b'{"ticket_id": "T-1"}', headers=attributes)
    untyped = Message("helpdesk", b'{"ticket_id": "T-2"}', headers=[h for h in attributes if h[0] != "ce_type"])
    binary = Message("helpdesk", b"\x00\x01", headers=attributes)
    step = ingest([good, untyped, binary], catalog.decoder, not_after=NOW)
    ((key, value, source, _),) = step.events
    assert (key, source) == (b"acct-1", b"helpdesk")
    assert orjson.loads(value) == {
        "specversion": "1.0",
        "id": "h1",
        "type": "ticket.created",
        "time": "2026-11-22T10:00:00Z",
        "subject": "acct-1",
        "source": "/helpdesk",
        "data": {"ticket_id": "T-1"},
    }
    assert [(m.value, r.reason, r.detail) for m, r in step.rejects] == [
        (untyped.value, "missing_field", "attribute 'type' is missing"),
        (binary.value, "wrong_type", "attribute 'data' must be a JSON object, not binary data"),
    ]


def test_ingest_says_which_inputs_deliver_history_behind_their_own_stream(catalog):
    """An input whose events fall more than the lateness behind what it delivered before delivers
    history: its reports say how far that history has come, until it is quiet of it for the lateness."""
    worker = Worker(catalog)
    minute = 60_000_000
    worker.ingest([Message("orders", order("now", at="2026-11-22T10:00:00Z"))], NOW)
    worker.outbox.sent.clear()
    old = [order(f"h{n}", at=f"2026-11-0{n}T10:00:00Z") for n in (1, 2)]
    worker.ingest([Message("orders", raw) for raw in old], NOW + minute)

    def said(now: int) -> list:
        worker.ingest.report(now)
        reports = [s for s in worker.outbox.take(EVENTS) if s.headers.get("tpmon") == "report"]
        return orjson.loads(reports[-1].value)["inputs"]["orders/0"]

    assert said(NOW + minute)[4] == parse_timestamp("2026-11-02T10:00:00Z")
    assert said(NOW + 2 * minute)[4] is None  # quiet of history for the lateness (30 s), and caught up


def test_a_messages_headers_are_read_once_as_header_reads_each():
    for headers in (
        [("source", b"orders"), ("input", b"orders/0@7"), ("source", b"bills")],
        {"tpmon": b"report"},
        [("source", "orders"), ("bad", b"\xff")],
        [],
        None,
    ):
        found = said(headers)
        names = headers.keys() if isinstance(headers, dict) else [name for name, _ in headers or []]
        assert found == {name: header(headers, name) for name in names}
