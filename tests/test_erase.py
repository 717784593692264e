"""Forgetting a customer on request (docs/SECURITY.md): the engine, the live partitions and replay."""

from __future__ import annotations

import re

import orjson
import pytest
from click.testing import CliRunner

from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.erasures import BadRequest, Request, Requests, read_ids
from monitor.events import format_timestamp
from monitor.replay import Replay
from monitor.simulate import Simulation
from monitor.watermark import Report
from streams.partitions import MemoryStore, Partitions
from streams.views import Views
from tests.builders import BASE, MINUTE, SHIPPED, event
from tpmon.cli import main

ORDER = "order-confirmed"
BILL = "bill-correct"


def open_and_judged(catalog) -> Engine:  # type: ignore[no-untyped-def]
    """c1 with an order open (pending) and a bad bill, c2 with an order open: the clock past their
    starts, before their dues."""
    engine = Engine(catalog, lateness=parse_duration("30s"), track=True)
    for step in (
        event("order.placed", 0, "c1", order_id="o1"),
        event("bill.issued", 10, "c1", bill_id="b1", amount=12.0, expected_amount=10.0),
        event("order.placed", 20, "c2", order_id="o2"),
        event("order.confirmed", 60, "c3", order_id="o3"),  # (moves the clock past the starts)
    ):
        engine.step(step)
    engine.outbox.clear()
    engine.dirty.clear()
    return engine


def test_erase_removes_the_customers_state_and_keeps_the_counts(catalog):
    engine = open_and_judged(catalog)
    counts = engine.counts()
    pending = engine.pending[catalog.ids.index(ORDER)]
    assert counts[BILL] == [0, 1] and pending == 2

    assert engine.erase("c1") is True
    assert "c1" not in engine.state.customers
    assert engine.record("c1") is None and engine.dirty == {"c1"}  # live: its record is deleted
    assert engine.counts() == counts  # what it counted stays (folded), naming nobody
    assert engine.pending[catalog.ids.index(ORDER)] == pending - 1  # its open order went undecided
    assert all(entry.customer != "c1" for entry in engine.state.queue)  # its events and due times left the queue
    assert all(instance.customer != "c1" for line in engine.state.due_lines.values() for instance in line)
    assert engine.erase("c1") is False  # nothing left to erase

    engine.advance(BASE + 10 * MINUTE * 1_000_000)  # past both dues: only c2's order is decided (missed)
    decided = [(o.customer, o.touchpoint, o.outcome) for o in engine.outbox]
    assert decided == [("c2", ORDER, "bad")]


def test_a_later_event_of_an_erased_customer_starts_afresh(catalog):
    engine = open_and_judged(catalog)
    engine.erase("c1")
    again = event("order.confirmed", 30, "c1", order_id="o1")  # its order was forgotten: nothing to close
    engine.step(again)
    engine.advance(BASE + 10 * MINUTE * 1_000_000)
    assert [o.customer for o in engine.outbox if o.touchpoint == ORDER] == ["c2"]
    assert list(engine.state.customers["c1"].seen) == [again.id]
    # An id it had before is no longer remembered: the same event again is judged as new.
    engine.step(event("bill.issued", 10, "c1", bill_id="b1", event_id="seen-before", amount=10.0, expected_amount=10.0))
    assert engine.counts()[BILL] == [1, 1]


def test_erasing_a_customer_keeps_the_due_lines_whole(catalog):
    """Due times wait in one line per rule with its head in the heap: erasing the head's customer
    puts the next one in its place, so later instances are still decided on time."""
    engine = Engine(catalog, lateness=parse_duration("1s"), track=True)
    for number in range(5):
        engine.step(event("order.placed", number, f"c{number}", order_id=f"o{number}"))
    engine.erase("c0")
    engine.erase("c2")
    engine.advance(BASE + 10 * MINUTE * 1_000_000)
    missed = sorted(o.customer for o in engine.outbox if o.touchpoint == ORDER)
    assert missed == ["c1", "c3", "c4"]
    assert engine.pending[catalog.ids.index(ORDER)] == 0


# -- the live partitions -----------------------------------------------------------------------------------
def live(catalog, customers=None, journeys=None) -> Partitions:  # type: ignore[no-untyped-def]
    return Partitions(catalog, customers or MemoryStore(), journeys or MemoryStore(), retention=parse_duration("24h"))


def judge(partitions: Partitions, partition: int, *events, offset: int = 0, read_at: int | None = None) -> None:  # type: ignore[no-untyped-def]
    """The events at ``offset`` on in the events topic, read by ingest at the same offsets of its input
    (or from ``read_at`` on: a message read again), then a report of the input's progress."""
    source = offset if read_at is None else read_at
    items = [(partition, offset + n, e, "orders/0", source + n) for n, e in enumerate(events)]
    newest = max(e.at for e in events)
    items.append(
        (partition, offset + len(events), Report(0, {"orders/0": (newest, False, 0)}, ("orders/0",)), None, -1)
    )
    partitions.handle_batch(items)


def delivered(partitions: Partitions) -> None:
    """What the app does once a delivery has returned: the records say the requests are applied."""
    partitions.confirm_erasures(partitions.erasures_applied())


def test_a_request_erases_the_customer_its_journey_and_stories_and_keeps_the_counts(catalog):
    partitions = live(catalog)
    judge(
        partitions,
        0,
        event("bill.issued", 0, "c1", bill_id="b1", amount=12.0, expected_amount=10.0),
        event("bill.issued", 1, "c2", bill_id="b1", amount=12.0, expected_amount=10.0),
    )
    assert {story["customer_id"] for story in Views(partitions).latest_stories(BILL)} == {"c1", "c2"}
    counts, touchpoints = Views(partitions).counts(), Views(partitions).touchpoints()

    held = partitions.erase(7, Request("c1", "dpo", BASE))
    assert held == [0]
    assert partitions.journey_store.get("c1") is None and partitions.customers.get("c1") is None
    assert partitions.journey_store.writes[-1] == (0, "c1", None)  # a tombstone in the journeys topic
    assert [story["customer_id"] for story in Views(partitions).latest_stories(BILL)] == ["c2"]
    assert partitions.journey_store.get("c2") is not None
    assert Views(partitions).counts() == counts and Views(partitions).touchpoints() == touchpoints
    state = orjson.loads(partitions.customers.get_state(0))
    assert state["erased"] == -1 and state["freeing"] == []  # not before its tombstones are stored
    delivered(partitions)
    state = orjson.loads(partitions.customers.get_state(0))
    assert state["erased"] == 7 and state["freeing"] == []
    assert partitions.erase(8, Request("c-unknown", "dpo", BASE)) == []


def test_a_partition_taken_later_applies_the_requests_its_owner_had_not(catalog):
    """A worker stopped before it read a request; another takes its partition from the changelogs and
    erases the customer as it adopts the partition. One that had applied it stores so: a later journey
    of the customer (a new event after the request) is kept by whoever takes the partition next."""
    customers, journeys = MemoryStore(), MemoryStore()
    first = live(catalog, customers, journeys)
    judge(first, 0, event("bill.issued", 0, "c1", bill_id="b1", amount=12.0, expected_amount=10.0))

    second = live(catalog, MemoryStore.replayed(customers.writes), MemoryStore.replayed(journeys.writes))
    second.erase(3, Request("c1", "dpo", BASE))  # read before it owns the partition
    second.adopt([0])
    delivered(second)
    assert second.journey_store.get("c1") is None and "c1" not in second.engine(0).state.customers
    judge(second, 0, event("bill.issued", 60, "c1", bill_id="b1", amount=10.0, expected_amount=10.0), offset=10)
    assert second.journey_store.get("c1") is not None  # a new journey

    third = live(
        catalog, MemoryStore.replayed(second.customers.writes), MemoryStore.replayed(second.journey_store.writes)
    )
    third.erase(3, Request("c1", "dpo", BASE))
    third.adopt([0])
    assert orjson.loads(third.journey_store.get("c1"))["events"][0]["occurred_at"] == format_timestamp(
        BASE + 60_000_000
    )


def test_a_copy_read_again_of_an_event_judged_before_the_request_is_not_judged_again(catalog):
    """After a restart, ingest reads again what it had not committed: the copy of an event judged before
    its customer was erased is not counted twice, nor does it start a journey."""
    partitions = live(catalog)
    bill = event("bill.issued", 0, "c1", bill_id="b1", amount=12.0, expected_amount=10.0)
    judge(partitions, 0, bill, offset=0)  # at source offset 0 of orders/0
    partitions.erase(1, Request("c1", "dpo", BASE))
    counts = Views(partitions).counts()
    judge(partitions, 0, bill, offset=5, read_at=0)  # the same message again, at a new events offset
    assert Views(partitions).counts() == counts and partitions.journey_store.get("c1") is None
    later = event("bill.issued", 60, "c1", bill_id="b2", amount=10.0, expected_amount=10.0)
    judge(partitions, 0, later, offset=10)  # a new message of the customer: judged, a new journey
    assert Views(partitions).counts()[BILL] == [counts[BILL][0] + 1, counts[BILL][1]]
    assert partitions.journey_store.get("c1") is not None


def test_a_copy_read_again_is_not_judged_again_once_the_customer_has_state_again(catalog):
    """c1's bill judged, c1 erased, a new order of c1 (state again); ingest then reads the bill again:
    it is not counted twice, nor does it go into c1's new journey."""
    partitions = live(catalog)
    bill = event("bill.issued", 0, "c1", bill_id="b1", amount=12.0, expected_amount=10.0)
    judge(partitions, 0, bill, offset=0)  # at source offset 0 of orders/0
    assert Views(partitions).counts()[BILL] == [0, 1]
    partitions.erase(1, Request("c1", "dpo", BASE))
    judge(partitions, 0, event("order.placed", 60, "c1", order_id="o9"), offset=5, read_at=3)
    assert "c1" in partitions.engine(0).state.customers
    judge(partitions, 0, bill, offset=10, read_at=0)  # ingest restarted: the bill again
    assert Views(partitions).counts()[BILL] == [0, 1]
    events = orjson.loads(partitions.journey_store.get("c1"))["events"]
    assert [e["type"] for e in events] == ["order.placed"]


def test_a_crash_between_the_counts_and_the_deletion_counts_nothing_twice(catalog):
    customers, journeys = MemoryStore(), MemoryStore()
    partitions = live(catalog, customers, journeys)
    judge(partitions, 0, event("bill.issued", 0, "c1", bill_id="b1", amount=12.0, expected_amount=10.0))
    before = len(customers.writes)
    partitions.erase(0, Request("c1", "dpo", BASE))
    # Cut right after the partition's record naming c1 as freeing (its counts folded), before the tombstone.
    cut = MemoryStore.replayed(customers.writes[: before + 1])
    assert cut.get("c1") is not None
    again = live(catalog, cut, MemoryStore.replayed(journeys.writes))
    again.adopt([0])
    assert Views(again).counts()[BILL] == [0, 1] and cut.get("c1") is None


def test_a_crash_before_the_tombstones_are_stored_applies_the_request_again(catalog):
    """The customers changelog kept what the erasure wrote, the journeys topic lost its tombstone (another
    topic: no order between them): the partition's record does not say the request is applied, so the
    worker taking the partition erases the journey again."""
    customers, journeys = MemoryStore(), MemoryStore()
    first = live(catalog, customers, journeys)
    judge(first, 0, event("bill.issued", 0, "c1", bill_id="b1", amount=12.0, expected_amount=10.0))
    kept = len(journeys.writes)
    first.erase(4, Request("c1", "dpo", BASE))
    judge(first, 0, event("bill.issued", 1, "c2", bill_id="b2", amount=10.0, expected_amount=10.0), offset=5)
    assert journeys.writes[kept] == (0, "c1", None)
    lost = [write for n, write in enumerate(journeys.writes) if n != kept]  # the crash: no tombstone stored

    second = live(catalog, MemoryStore.replayed(customers.writes), MemoryStore.replayed(lost))
    assert second.journey_store.get("c1") is not None
    second.erase(4, Request("c1", "dpo", BASE))  # read from the forget topic at its start
    second.adopt([0])
    assert second.journey_store.get("c1") is None and second.journey_store.get("c2") is not None
    assert Views(second).counts()[BILL] == [1, 1]  # nothing counted twice, nothing lost

    # Once a delivery has returned, the record says so: the next owner does not apply it again.
    delivered(first)
    assert orjson.loads(customers.get_state(0))["erased"] == 4


# -- requests -------------------------------------------------------------------------------------------
def test_a_request_holds_the_id_who_asked_and_when_and_nothing_else():
    request = Request("c-1", "alice", BASE)
    assert orjson.loads(request.value()) == {"customer_id": "c-1", "by": "alice", "at": format_timestamp(BASE)}
    assert Request.parse(request.key(), request.value()) == request
    requests = Requests()
    requests.add(4, request)
    requests.add(9, Request("c-2", "bob", BASE))
    assert [offset for offset, _ in requests.after(4)] == [9] and requests.last == 9


@pytest.mark.parametrize(
    ("key", "value"),
    [
        (b"c-1", b"not json"),
        (b"c-1", b"[]"),
        (b"c-1", b'{"by": "a", "at": "2026-01-01T00:00:00Z"}'),
        (b"c-2", b'{"customer_id": "c-1", "by": "a", "at": "2026-01-01T00:00:00Z"}'),
        (b"c-1", b'{"customer_id": "c-1", "by": "a"}'),
    ],
    ids=["not JSON", "not an object", "no id", "a key that is not its id", "no time"],
)
def test_a_message_that_is_not_a_request_is_refused(key, value):
    with pytest.raises(BadRequest):
        Request.parse(key, value)


def test_ids_are_read_one_a_line_once_each():
    assert read_ids(["c1", " c2 ", "", "# a comment", "c1"], "ids.txt") == ["c1", "c2"]
    with pytest.raises(ValueError, match="no customer id"):
        read_ids(["", "# only a comment"], "ids.txt")


# -- replay and report --forget ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def simulated(tmp_path_factory):  # type: ignore[no-untyped-def]
    folder = tmp_path_factory.mktemp("forget")
    events = folder / "events.jsonl"
    events.write_bytes(b"\n".join(Simulation(customers=60, duration=parse_duration("2d"), seed=5).lines()) + b"\n")
    return events


def broken_customer(events) -> str:  # type: ignore[no-untyped-def]
    """A customer with a bad outcome (whose story a review would tell)."""
    bad = []
    replay = Replay(SHIPPED, on_outcome=lambda o: bad.append(o.customer) if not o.good else None)
    replay.feed(events.read_bytes().splitlines())
    replay.finish()
    return bad[0]


def test_replay_forget_keeps_every_count_and_names_the_customers_nowhere(simulated, tmp_path):
    customer = broken_customer(simulated)
    ids = tmp_path / "forget.txt"
    ids.write_text(f"{customer}\n")
    runner = CliRunner()
    plain = runner.invoke(main, ["replay", str(simulated), "--json", "--journeys", str(tmp_path / "all.jsonl")])
    assert plain.exit_code == 0, plain.output
    assert customer.encode() in (tmp_path / "all.jsonl").read_bytes()
    forgotten = runner.invoke(
        main,
        ["replay", str(simulated), "--json", "--journeys", str(tmp_path / "some.jsonl"), "--forget", str(ids)],
    )
    assert forgotten.exit_code == 0, forgotten.output
    assert orjson.loads(forgotten.stdout) == orjson.loads(plain.stdout)  # every count the same
    kept = (tmp_path / "some.jsonl").read_bytes()
    assert customer.encode() not in kept and kept.count(b"\n") == (tmp_path / "all.jsonl").read_bytes().count(b"\n") - 1
    assert customer not in forgotten.output


@pytest.fixture(scope="module")
def orders(tmp_path_factory):  # type: ignore[no-untyped-def]
    """Orders all day, a third never confirmed: order-confirmed is broken, and a review tells stories."""
    lines = []
    for n in range(60):
        customer = f"c-{n:03d}"
        lines.append(event("order.placed", n * 600, customer, order_id=f"o-{n}").raw)
        if n % 3:
            lines.append(event("order.confirmed", n * 600 + 30, customer, order_id=f"o-{n}").raw)
    path = tmp_path_factory.mktemp("orders") / "orders.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def test_report_forget_tells_no_story_of_the_customers_and_keeps_the_figures(orders, tmp_path):
    runner = CliRunner()
    plain = runner.invoke(
        main, ["report", str(orders), "--out", str(tmp_path / "a.html"), "--json", str(tmp_path / "a.json")]
    )
    assert plain.exit_code == 0, plain.output
    named = sorted(set(re.findall(r"c-\d{3}", (tmp_path / "a.html").read_text())))
    assert named, "the review should tell some stories"
    ids = tmp_path / "forget.txt"
    ids.write_text("\n".join(named) + "\n")
    forgotten = runner.invoke(
        main,
        [
            "report",
            str(orders),
            *("--out", str(tmp_path / "b.html"), "--json", str(tmp_path / "b.json")),
            *("--forget", str(ids)),
        ],
    )
    assert forgotten.exit_code == 0, forgotten.output
    page = (tmp_path / "b.html").read_text()
    assert not set(named) & set(re.findall(r"c-\d{3}", page + forgotten.output))
    assert re.findall(r"c-\d{3}", page), "another customer's story is told instead"
    assert (tmp_path / "b.json").read_bytes() == (tmp_path / "a.json").read_bytes()  # every figure the same


# -- the forget topic's reader ------------------------------------------------------------------------------
class Message:
    def __init__(self, offset: int, request: Request | None) -> None:
        self.offset = offset
        self.key = request.key() if request else b"x"
        self.value = request.value() if request else None


class FakeConsumer:
    """The forget topic as a list of messages (its offsets from ``start``), for ErasureReader."""

    topics: list[list[Message]] = []
    options: dict = {}

    def __init__(self, **options: object) -> None:
        FakeConsumer.options = options
        self.messages = FakeConsumer.topics.pop(0) if FakeConsumer.topics else []
        self.at = 0

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        pass

    def assign(self, partitions) -> None:  # type: ignore[no-untyped-def]
        self.partition = partitions[0]

    def seek(self, partition, offset: int) -> None:  # type: ignore[no-untyped-def]
        self.at = offset

    async def end_offsets(self, partitions):  # type: ignore[no-untyped-def]
        if FakeConsumer.end is not None:
            return {partitions[0]: FakeConsumer.end}
        return {partitions[0]: self.messages[-1].offset + 1 if self.messages else 0}

    def highwater(self, partition) -> int | None:  # type: ignore[no-untyped-def]
        return None

    async def position(self, partition) -> int:  # type: ignore[no-untyped-def]
        return self.at

    async def getmany(self, partition, timeout_ms: int):  # type: ignore[no-untyped-def]
        found = [m for m in self.messages if m.offset >= self.at]
        if not found:
            if not FakeConsumer.topics:
                FakeConsumer.done = True
                return {}
            raise ConnectionError("the topic went away")  # (ends this read: the next finds the next topic)
        self.at = found[-1].offset + 1
        return {partition: found}

    done = False
    end: int | None = None  # where the topic ends at the start of a read (None: after its messages)


def read_forget_topic(monkeypatch, topics: list[list[Message]], on_request, on_end=None, end=None):  # type: ignore[no-untyped-def]
    """Run an ErasureReader over ``topics`` (one list of messages per read: the topic as each read
    finds it), until every read is done; returns the reader."""
    import asyncio

    from prometheus_client import CollectorRegistry

    import streams.erasures as erasures
    from streams.settings import Settings

    async def nothing(settings) -> None:  # type: ignore[no-untyped-def]
        pass

    FakeConsumer.topics, FakeConsumer.done, FakeConsumer.end = list(topics), False, end
    monkeypatch.setattr(erasures, "AIOKafkaConsumer", FakeConsumer)
    monkeypatch.setattr(erasures, "ensure_forget_topic", nothing)
    monkeypatch.setattr(erasures, "RETRY_AFTER", 0)
    reader = erasures.ErasureReader(Settings(), on_request, on_end, CollectorRegistry())
    asyncio.run(reader.run(lambda: FakeConsumer.done))
    return reader


def test_the_reader_logs_the_requests_of_before_it_caught_up_at_debug_then_one_line(monkeypatch, caplog):
    import logging

    seen = []

    async def on_request(offset: int, request: Request) -> bool:
        seen.append(offset)
        return request.customer == "c1"

    topic = [Message(0, Request("c1", "dpo", BASE)), Message(1, None), Message(2, Request("c2", "dpo", BASE))]
    with caplog.at_level(logging.DEBUG, logger="tpmon.forget"):
        reader = read_forget_topic(monkeypatch, [topic], on_request)
    assert seen == [0, 2] and reader.caught_up.is_set()
    assert FakeConsumer.options["auto_offset_reset"] == "earliest"  # an offset out of range skips no request
    info = [r.getMessage() for r in caplog.records if r.levelno >= logging.INFO and r.name == "tpmon.forget"]
    assert any("read 2 requests to forget customers" in line and "1 erased something" in line for line in info)
    assert reader.last._value.get() == 2
    assert [r.levelname for r in caplog.records if "forget topic" not in r.getMessage()] == ["INFO"]


def test_a_request_made_after_the_worker_started_is_new_even_before_it_caught_up(monkeypatch):
    async def on_request(offset: int, request: Request) -> bool:
        return True

    topic = [Message(0, Request("c1", "dpo", BASE)), Message(1, Request("c2", "dpo", BASE))]
    reader = read_forget_topic(monkeypatch, [topic], on_request, end=1)  # c2's came after the start
    assert not reader.new(0) and reader.new(1) and (reader.read, reader.applied) == (1, 1)


def test_a_forget_topic_created_again_is_said_and_read_from_its_first_request(monkeypatch, caplog):
    import logging

    seen = []

    async def on_request(offset: int, request: Request) -> bool:
        seen.append((offset, request.customer))
        return False

    ends: list[tuple[int, bool]] = []
    before = [Message(n, Request(f"c{n}", "dpo", BASE)) for n in range(5)]
    after = [Message(0, Request("c-new", "dpo", BASE))]
    with caplog.at_level(logging.INFO, logger="tpmon.forget"):
        reader = read_forget_topic(monkeypatch, [before, after], on_request, lambda *told: ends.append(told))
    assert seen[-1] == (0, "c-new") and ends == [(5, False), (1, True)]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert any("deleted and created again" in line for line in errors)
    assert any("cannot read the forget topic" in line for line in errors)  # (caught up: an error)
    assert reader.up._value.get() == 1


def test_partitions_apply_a_forget_topic_created_again_from_its_first_request(catalog, caplog):
    import logging

    customers, journeys = MemoryStore(), MemoryStore()
    first = live(catalog, customers, journeys)
    judge(first, 0, event("bill.issued", 0, "c1", bill_id="b1", amount=12.0, expected_amount=10.0))
    first.forget_topic_end(0)
    first.erase(8, Request("c0", "dpo", BASE))
    delivered(first)
    assert orjson.loads(customers.get_state(0))["erased"] == 8
    # The topic deleted and created again: it ends at 1, its one request (offset 0) for c1.
    first.forget_topic_end(1)
    assert orjson.loads(customers.get_state(0))["erased"] == -1
    first.erase(0, Request("c1", "dpo", BASE))
    assert first.journey_store.get("c1") is None

    # A worker started after: its record (erased 8) is beyond the topic's end.
    judge(first, 0, event("bill.issued", 60, "c2", bill_id="b2", amount=12.0, expected_amount=10.0), offset=5)
    delivered(first)
    second = live(catalog, MemoryStore.replayed(customers.writes), MemoryStore.replayed(journeys.writes))
    second.customers.put_state(0, customers.get_state(0).replace(b'"erased":0', b'"erased":8'))
    second.forget_topic_end(1)
    second.erase(0, Request("c2", "dpo", BASE))
    with caplog.at_level(logging.ERROR, logger="tpmon.forget"):
        second.adopt([0])
    assert second.journey_store.get("c2") is None
    assert any("deleted and created again" in r.getMessage() for r in caplog.records)


# -- tpmon forget ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("given", ["c-1\nforget: customer c-2", "c\t1", "c-1\x1b[2J", " "])
def test_forget_refuses_an_id_with_a_control_character_or_empty(given, tmp_path):
    result = CliRunner().invoke(main, ["forget", given, "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2 and ("control character" in result.output or "empty" in result.output)
    ids = tmp_path / "ids.txt"
    ids.write_text("c-1\nc\x002\n")
    result = CliRunner().invoke(main, ["forget", "--file", str(ids), "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 2 and "line 2" in result.output and "control character" in result.output


def test_forget_says_which_requests_were_recorded_when_a_send_fails_part_way(monkeypatch):
    import tpmon.commands.forget as command

    async def half(settings, ids, by, recorded) -> None:  # type: ignore[no-untyped-def]
        recorded.append(ids[0])
        raise ConnectionError("Kafka at x did not take a request (timed out)")

    monkeypatch.setattr(command, "_send", half)
    result = CliRunner().invoke(main, ["forget", "c-1", "c-2", "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 1
    text = " ".join(result.output.split())
    assert "1 request of 2 recorded (c-1), the others not" in text and "no request recorded" not in text


def test_forget_says_what_the_workers_logs_tell(monkeypatch):
    import tpmon.commands.forget as command

    async def sent(settings, ids, by, recorded) -> None:  # type: ignore[no-untyped-def]
        recorded.extend(ids)

    monkeypatch.setattr(command, "_send", sent)
    result = CliRunner().invoke(main, ["forget", "c-1", "--by", "dpo", "--bootstrap", "127.0.0.1:1"])
    assert result.exit_code == 0, result.output
    text = " ".join(result.output.split())
    assert "recorded 1 request to forget, by dpo" in text and "'held nothing here'" in text


def test_a_rejected_line_is_a_forgotten_customers_by_its_customer_id_or_a_whole_token():
    from monitor.erasures import naming

    names = naming(["c-1"])
    assert names(b'{"customer_id": "c-1", "type": "nonsense"}')
    assert not names(b'{"customer_id": "c-10", "type": "nonsense"}')
    assert not names(b'{"customer_id": "c-10", "note": "c-1x"}')
    assert names(b"not json, customer c-1 here") and names(b'{"cust": "c-1"}')
    assert not names(b"not json, customer c-10 here") and not names(b'{"cust": "xc-1"}')
    assert not naming([])(b'{"customer_id": "c-1"}')


def test_replay_forget_keeps_the_rejects_of_other_customers_whose_id_holds_a_forgotten_one(tmp_path):
    lines = [
        orjson.dumps({"event_id": f"e{n}", "type": "order.placed", "customer_id": customer, "occurred_at": "bad"})
        for n, customer in enumerate(["c-1", "c-10", "c-100"])
    ]
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join([*lines, b"not json at all c-1", b"not json c-10"]) + b"\n")
    ids = tmp_path / "forget.txt"
    ids.write_text("c-1\n")
    rejects = tmp_path / "rejects.jsonl"
    result = CliRunner().invoke(main, ["replay", str(events), "--rejects", str(rejects), "--forget", str(ids)])
    assert result.exit_code == 3, result.output  # (every line rejected)
    kept = [orjson.loads(line)["raw"] for line in rejects.read_bytes().splitlines()]
    assert len(kept) == 3 and all("c-1" not in raw.replace("c-10", "") for raw in kept), kept


def test_a_customer_unloaded_to_the_store_is_erased_as_one_in_memory(catalog):
    """A quiet customer beyond the share held in memory is on disk only (its record): a request to
    forget it puts it back, erases it, deletes its record and journey, and keeps what it counted."""
    partitions = Partitions(catalog, MemoryStore(), MemoryStore(), retention=parse_duration("24h"), in_memory=1)
    bills = [event("bill.issued", n, f"c{n}", bill_id=f"b{n}", amount=12.0, expected_amount=10.0) for n in range(4)]
    judge(partitions, 0, *bills)
    part = partitions.partition(0)
    assert "c0" not in part.engine.state.customers and part.on_disk == 3  # the three least recent
    counts = Views(partitions).counts()
    assert counts[BILL] == [0, 4] and Views(partitions).customers_held() == {0: 4}
    assert partitions.erase(1, Request("c0", "dpo", BASE)) == [0]
    assert partitions.customers.get("c0") is None and partitions.journey_store.get("c0") is None
    assert Views(partitions).counts() == counts and part.on_disk == 2
    assert Views(partitions).customers_held() == {0: 3}
