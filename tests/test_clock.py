"""The clock: watermark from event time, idle advance by the wall clock, lateness, duplicate memory."""

from __future__ import annotations

from monitor.durations import parse_duration
from monitor.engine import DUPLICATE, LATE, Engine
from tests.builders import event

S = 1_000_000
LATENESS = parse_duration("30s")


def test_a_quiet_source_still_decides_its_deadline_at_due_plus_lateness(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    placed = event("order.placed", 0, order_id="o1")
    wall = placed.at  # live: event time follows the wall clock
    engine.step(placed, now=wall)
    due = placed.at + 120 * S
    engine.tick(due + LATENESS - 1)
    assert [o for o in engine.outbox if o.touchpoint == "order-confirmed"] == []
    engine.tick(due + LATENESS)
    assert [(o.touchpoint, o.outcome) for o in engine.outbox] == [("order-confirmed", "bad")]


def test_an_idle_clock_never_passes_wall_clock_minus_lateness(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    placed = event("order.placed", 0, order_id="o1")
    arrived = placed.at + 20 * S  # it reached us 20 s after it happened
    engine.step(placed, now=arrived)
    for waited in (30, 31, 45, 500):
        engine.tick(arrived + waited * S)
        assert engine.state.watermark <= arrived + waited * S - LATENESS


def test_a_backfill_only_moves_on_by_its_pauses(catalog):
    """Events from last year, streamed now: a pause moves the watermark by the pause, not to now."""
    engine = Engine(catalog, lateness=LATENESS)
    old = event("order.placed", 0, order_id="o1")
    now = old.at + 365 * 86400 * S
    engine.step(old, now=now)
    engine.tick(now + 60 * S)
    assert engine.state.watermark == old.at - LATENESS + 60 * S
    assert engine.outbox == []  # due at +120s of event time: not yet


def test_no_tick_before_the_lateness_has_passed(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    placed = event("order.placed", 0, order_id="o1")
    engine.step(placed, now=placed.at)
    before = engine.state.watermark
    engine.tick(placed.at + LATENESS - 1)
    assert engine.state.watermark == before


def test_late_events_are_flagged_and_processed(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    assert engine.step(event("customer.joined", 100)) == 0
    assert engine.step(event("customer.joined", 71)) == 0  # within the lateness
    assert engine.step(event("customer.joined", 69)) == LATE


def test_duplicates_are_remembered_until_forgotten(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    first = event("bill.issued", 0, bill_id="b", event_id="x")
    assert engine.step(first) == 0
    assert engine.step(event("bill.issued", 3600, bill_id="b", event_id="x")) == DUPLICATE
    assert engine.forget(first.at + 1) == ["c1"]
    assert engine.step(event("bill.issued", 3600, bill_id="b", event_id="x")) == 0


def test_a_customer_with_nothing_left_is_dropped(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    joined = event("customer.joined", 0, customer="quiet")
    engine.step(joined)
    engine.forget(joined.at + 1)
    assert "quiet" not in engine.state.customers


def test_a_restored_clock_counts_its_quiet_time_from_the_first_tick(catalog):
    """Records put back after a restart carry no arrival time: quiet from the first tick on."""
    before = Engine(catalog, lateness=LATENESS, track=True)
    placed = event("order.placed", 0, order_id="o1")
    before.step(placed, now=placed.at)
    restarted = Engine(catalog, lateness=LATENESS, track=True)
    restarted.load(placed.customer, before.record(placed.customer))
    due = placed.at + 120 * S
    downtime = 40 * S
    restarted.tick(placed.at + downtime)  # the new worker's first tick
    restarted.tick(due + LATENESS + downtime - 1)
    assert restarted.outbox == []
    restarted.tick(due + LATENESS + downtime)
    assert [(o.touchpoint, o.outcome) for o in restarted.outbox] == [("order-confirmed", "bad")]
