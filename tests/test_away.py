"""Customers away: unloaded with instances open, put back before the clock reaches what they have due.

A worker keeps in memory only the customers with something waiting on the watermark or due soon, and
the most recently changed others (``TPMON_CUSTOMERS_IN_MEMORY``). One whose open instances are due far
off (an order leaves ``service-activated`` open for 48 hours) is unloaded like a quiet one, its next due
or risk instant filed in the engine's wake-up heap, and the core puts it back before a report moves the
clock there. Nothing a user sees may change for it: after every batch, the counts, the pending
instances and what is at risk are those of a worker holding every customer."""

from __future__ import annotations

import zlib
from pathlib import Path

import orjson
import pytest

from monitor.catalog import load_catalog
from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.events import Event, parse_timestamp
from monitor.judging import Judging
from monitor.simulate import Simulation
from monitor.watermark import Report
from streams.partitions import Item, MemoryStore, Partitions
from streams.views import Views
from tests.builders import HOUR, SHIPPED, event

PARTITIONS = 3
INPUT = "all/0"
SUPPORT = Path(__file__).resolve().parents[1] / "examples" / "support-hours"


def orders() -> tuple:
    """The shipped catalog and a simulated day of orders, bills and calls: service-activated is open
    for 48 hours after each order."""
    lines = Simulation(customers=400, duration=parse_duration("8h"), seed=11).lines()
    return SHIPPED, [("orders", line) for line in lines]


def support(sources: tuple[str, ...] = ("tickets", "visits")) -> tuple:
    """SLA clocks: business hours, pauses while the customer is waited on, a due instant from the
    event (technician-on-time), and instances at risk before they are due."""
    catalog = load_catalog(SUPPORT)
    lines = [
        (parse_timestamp(orjson.loads(line)["occurred_at"]), source, line)
        for source in sources
        for line in (SUPPORT / "samples" / f"{source}.jsonl").read_bytes().splitlines()
    ]
    return catalog, [(source, line) for _, source, line in sorted(lines)]


def batches(catalog, lines: list[tuple[str, bytes]], size: int) -> list[list[Item]]:  # type: ignore[no-untyped-def]
    """Each event to its customer's partition, then a report of the input's progress to every partition."""
    out, progress, offsets = [], None, [0] * PARTITIONS

    def placed(partition: int, item: Event | Report, at_source: int) -> Item:
        offsets[partition] += 1
        return (partition, offsets[partition] - 1, item, None if type(item) is Report else INPUT, at_source)

    for start in range(0, len(lines), size):
        batch: list[Item] = []
        for number, (source, line) in enumerate(lines[start : start + size], start):
            event = catalog.decoder.decode(line, source)
            assert isinstance(event, Event), event
            batch.append(placed(zlib.crc32(event.customer.encode()) % PARTITIONS, event, number))
            progress = event.at if progress is None else max(progress, event.at)
        report = Report(0, {INPUT: (progress, False, 0)}, (INPUT,))
        batch.extend(placed(partition, report, -1) for partition in range(PARTITIONS))
        out.append(batch)
    return out


def seen(live: Partitions) -> tuple:
    """What a user sees of the partitions: counts, pending instances, what is at risk (and who)."""
    views = Views(live)
    at_risk = sorted((i["touchpoint"], i["customer_id"], i["key"]) for i in views.at_risk(limit=10_000))
    return views.counts(), views.pending_counts(), views.at_risk_counts(), at_risk


def judge(catalog, work: list[list[Item]], in_memory: int, restart_at: int | None = None):  # type: ignore[no-untyped-def]
    """Every batch through a worker's partitions holding ``in_memory`` customers that could leave; what
    a user sees after each batch, and the most customers away at once. ``restart_at``: the worker is
    started again from its stores before that batch."""
    customers, journeys = MemoryStore(changelog=False), MemoryStore(changelog=False)

    def started() -> Partitions:
        return Partitions(catalog, customers, journeys, retention=parse_duration("24h"), in_memory=in_memory)

    live, trace, away = started(), [], 0
    for number, batch in enumerate(work):
        if number == restart_at:
            live = started()
            live.adopt(range(PARTITIONS))
        assert live.handle_batch(batch).failed == []
        trace.append(seen(live))
        away = max(away, sum(part.engine.away for part in live.owned.values()))
    assert live.failures == []
    return trace, away, live


@pytest.mark.parametrize("scenario", [orders, support], ids=["orders due in 48 hours", "SLA clocks"])
def test_customers_away_are_judged_as_if_every_customer_were_in_memory(scenario):
    catalog, lines = scenario()
    work = batches(catalog, lines, 25)
    held, _, _ = judge(catalog, work, in_memory=1_000_000)
    few, away, live = judge(catalog, work, in_memory=2)
    for number, (expected, found) in enumerate(zip(held, few, strict=True)):
        assert found == expected, f"after batch {number}"
    assert away > 20  # customers with instances open were away
    assert sum(len(part.engine.state.customers) for part in live.owned.values()) < away
    assert any(pending for pending in held[-1][1].values())  # instances still open at the end
    if scenario is support:
        assert any(risky for _, _, risky, _ in held)  # instances were at risk, and said so in time


@pytest.mark.parametrize("scenario", [orders, support], ids=["orders due in 48 hours", "SLA clocks"])
def test_a_restart_leaves_customers_away_on_disk_and_wakes_them_in_time(scenario):
    catalog, lines = scenario()
    work = batches(catalog, lines, 25)
    held, _, _ = judge(catalog, work, in_memory=1_000_000)
    middle = len(work) // 2
    again, _, live = judge(catalog, work, in_memory=2, restart_at=middle)
    assert again == held
    restored = Partitions(catalog, MemoryStore(), MemoryStore(), retention=parse_duration("24h"), in_memory=2)
    restored.customers, restored.journey_store = live.customers, live.journey_store
    restored.adopt(range(PARTITIONS))
    away = sum(part.engine.away for part in restored.owned.values())
    assert away > (10 if scenario is orders else 0)  # left on disk at the restore
    assert seen(restored)[:2] == held[-1][:2]  # its counts and pending instances, read from the records


def test_a_customer_is_never_away_with_something_at_risk_or_due_by_what_is_decided():
    catalog, lines = support()
    work = batches(catalog, lines, 25)
    customers, journeys = MemoryStore(changelog=False), MemoryStore(changelog=False)
    live = Partitions(catalog, customers, journeys, retention=parse_duration("24h"), in_memory=1_000_000)
    for batch in work[: len(work) // 2]:
        live.handle_batch(batch)
    kept = 0
    for part in live.owned.values():
        engine, mark = part.engine, part.engine.mark()
        risky = {customer for at_risk in engine.risky.values() for customer, _ in at_risk}
        for customer in list(engine.state.customers):
            mine = engine.state.customers[customer]
            if customer in risky or mine.queued:
                assert not engine.unload(customer)
                kept += 1
            elif mine.open and engine.unload(customer):
                assert all(at > mark for at, who in engine.wakes if who == customer)
    assert kept > 0


def test_partitions_restored_together_share_the_customers_in_memory():
    """Four partitions adopted at once after a restart hold the worker's share between them, not the
    first the whole of it (the others on disk, counted: the same counts and pending)."""
    catalog, lines = orders()
    customers, journeys = MemoryStore(changelog=False), MemoryStore(changelog=False)
    before = Partitions(catalog, customers, journeys, retention=parse_duration("24h"), in_memory=1_000_000)
    for batch in batches(catalog, lines, 25):
        before.handle_batch(batch)
    after = Partitions(catalog, customers, journeys, retention=parse_duration("24h"), in_memory=30)
    after.adopt(range(PARTITIONS))
    waiting = sum(1 for part in after.owned.values() for mine in part.engine.state.customers.values() if mine.queued)
    assert sum(len(part.resident) for part in after.owned.values()) <= 30
    assert sum(len(part.engine.state.customers) for part in after.owned.values()) <= 30 + waiting
    assert seen(after)[:2] == seen(before)[:2]


def test_instances_a_changed_catalog_drops_are_not_counted_away(tmp_path):
    """technician-on-time was a plain deadline (no SLA clock), and gets ``due:`` from the event: the
    instances stored by the plain rule carry no due instant, so they are dropped at the restore, whether their customer
    is loaded or left on disk (not counted pending, not away for ever)."""
    _, lines = support(("visits",))
    text = (SUPPORT / "touchpoints.yaml").read_text()
    due = 'due: slot_start + duration("2h")\n    at_risk: 30m'
    assert due in text
    for name, rule in (("plain", "within: 20h"), ("due", due.replace("2h", "20h"))):
        (tmp_path / name).mkdir()
        (tmp_path / name / "touchpoints.yaml").write_text(text.replace(due, rule))
        (tmp_path / name / "events.yaml").write_text((SUPPORT / "events.yaml").read_text())
    plain, with_due = load_catalog(tmp_path / "plain"), load_catalog(tmp_path / "due")
    first, then = batches(plain, lines, 25), batches(with_due, lines, 25)
    half = len(first) // 2

    def run(in_memory: int) -> list:
        customers, journeys = MemoryStore(changelog=False), MemoryStore(changelog=False)
        live = Partitions(plain, customers, journeys, retention=parse_duration("24h"), in_memory=1_000_000)
        for batch in first[:half]:
            live.handle_batch(batch)
        assert seen(live)[1]["technician-on-time"] > 0  # open instances stored by the plain rule
        live = Partitions(with_due, customers, journeys, retention=parse_duration("24h"), in_memory=in_memory)
        live.adopt(range(PARTITIONS))
        trace = [seen(live)]
        for batch in then[half:]:
            live.handle_batch(batch)
            trace.append(seen(live))
        return trace

    assert run(2) == run(1_000_000)


def test_a_customer_whose_record_cannot_be_read_when_due_is_asked_for_again():
    """A store that fails once as the clock reaches a customer's due time: the core says so, and puts
    the customer back at the next report, which decides its deadline missed at its due instant."""
    placed = event("order.confirmed", 0, "c1", order_id="o-1")
    engine = Engine(SHIPPED, lateness=0, track=True, own_clock=False)
    engine.step(placed)
    engine.advance(placed.at)
    record, due = engine.record("c1"), placed.at + 48 * HOUR * 1_000_000
    engine.dirty.clear()
    assert engine.unload("c1") and engine.away == 1
    reads = iter([OSError("the disk is busy"), record])

    def stored(customer: str) -> dict:
        read = next(reads)
        if isinstance(read, Exception):
            raise read
        return read

    judging = Judging(engine, stored=stored)
    judged = judging.advance(due)
    assert [failure.customer for failure in judged.failures] == ["c1"] and judged.outcomes == []
    assert engine.pending_counts()["service-activated"] == 1 and engine.away == 1
    judged = judging.advance(due + 1)
    assert [(o.touchpoint, o.good, o.at) for o in judged.outcomes] == [("service-activated", False, due)]
    assert engine.pending_counts()["service-activated"] == 0 and engine.away == 0
