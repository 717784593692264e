"""The clock: the live watermark follows the slowest input (monitor.watermark); replay's own clock;
lateness; retention in event time. Time is passed in."""

from __future__ import annotations

from monitor.durations import parse_duration
from monitor.engine import DUPLICATE, LATE, Engine
from monitor.watermark import History, Inputs, Report
from tests.builders import event

S = 1_000_000
LATENESS = parse_duration("30s")
T0 = 1_700_000_000 * S  # a wall-clock instant


def inputs(*names: str) -> Inputs:
    clock = Inputs(LATENESS)
    clock.report(Report(T0, {}, names))
    return clock


def said(clock: Inputs, now: int, **progress: tuple) -> int | None:
    """A report at ``now`` of inputs name=(progress, idle, delivered); the watermark after it."""
    clock.report(Report(now, {name: values for name, values in progress.items()}))
    return clock.watermark()


def test_the_watermark_is_the_slowest_input_minus_the_lateness():
    clock = inputs("orders", "calls")
    assert said(clock, T0, orders=(T0 + 100 * S, False, T0)) is None  # calls has said nothing yet
    assert said(clock, T0, calls=(T0 + 40 * S, False, T0)) == T0 + 40 * S - LATENESS
    assert said(clock, T0, calls=(T0 + 500 * S, False, T0)) == T0 + 100 * S - LATENESS  # orders now slowest


def test_an_input_read_ahead_never_makes_another_late():
    """A backfill: orders read to the end first; calls' events from day one are not late."""
    clock = inputs("orders", "calls")
    day = 86400 * S
    said(clock, T0, orders=(T0 - 10 * day, False, T0), calls=(None, False, T0))
    assert clock.watermark() is None
    assert said(clock, T0 + S, orders=(T0, False, T0 + S)) is None  # calls has a backlog, and no progress
    assert said(clock, T0 + 2 * S, calls=(T0 - 10 * day + 5 * S, False, T0 + 2 * S)) == T0 - 10 * day + 5 * S - LATENESS


def test_an_idle_input_does_not_hold_the_watermark_back():
    clock = inputs("orders", "calls")
    said(clock, T0, orders=(T0, False, T0), calls=(T0 - 3600 * S, False, T0 - 600 * S))
    assert clock.watermark() == T0 - 3600 * S - LATENESS
    assert said(clock, T0, calls=(T0 - 3600 * S, True, T0 - 600 * S)) == T0 - LATENESS


def test_a_backlog_is_never_idle_whatever_its_quiet():
    """Only the reader knows: it says idle only when caught up; here calls is quiet but behind."""
    clock = inputs("orders", "calls")
    said(clock, T0 + 600 * S, orders=(T0 + 600 * S, False, T0 + 600 * S), calls=(T0, False, T0))
    assert clock.watermark() == T0 - LATENESS


def test_when_every_input_is_idle_the_watermark_moves_with_the_wall_clock_never_past_it():
    clock = inputs("orders", "calls")
    last = T0 + 10 * S
    said(clock, last, orders=(last, False, last), calls=(T0, False, T0))
    for waited in (30, 31, 45, 500):
        now = last + waited * S
        watermark = said(clock, now, orders=(last, True, last), calls=(T0, True, T0))
        assert watermark == min(last - LATENESS + waited * S, now - LATENESS)
        assert watermark <= now - LATENESS


def test_a_quiet_backfill_only_moves_on_by_its_pauses():
    """Events from last year, then quiet: the watermark moves by the pause, not to now."""
    clock = inputs("orders")
    old = T0 - 365 * 86400 * S
    said(clock, T0, orders=(old, False, T0))
    assert said(clock, T0 + 60 * S, orders=(old, True, T0)) == old - LATENESS + 60 * S


def test_reports_of_different_clocks_take_the_oldest_and_the_newest_delivery():
    clock = inputs("orders", "calls")
    said(clock, T0 + 40 * S, orders=(T0, True, T0))
    assert said(clock, T0 + 90 * S, calls=(T0 + 5 * S, True, T0 + 5 * S)) == T0 + 5 * S - LATENESS + 35 * S


def test_an_input_taken_over_keeps_its_progress_and_a_source_removed_holds_nothing_back():
    clock = inputs("orders", "calls")
    said(clock, T0, orders=(T0 + 50 * S, False, T0), calls=(T0 + 80 * S, False, T0))
    # The new reader of orders has delivered nothing yet: what was delivered stands.
    assert said(clock, T0 + S, orders=(None, False, T0 + S)) == T0 + 50 * S - LATENESS
    clock.report(Report(T0 + 2 * S, {}, ("calls",)))  # orders is no longer a source
    assert clock.watermark() == T0 + 80 * S - LATENESS


def test_a_late_history_holds_until_every_input_has_read_its_part_whatever_the_time():
    """A fortnight produced at once into orders and calls: orders' part is read whole first, then
    calls' backlog takes minutes. The win-back calls that end orders' history starts are in that
    backlog: nothing past the history's first instant is decided until calls too has caught up, a
    lateness after the hold came; then the hold ends."""
    clock, history = inputs("orders", "calls"), History(LATENESS)
    old = T0 - 14 * 86400 * S
    history.late("orders", old)
    clock.report(Report(T0, {"orders": (T0, False, T0, True, old), "calls": (T0, False, T0, False, None)}))
    assert history.held(clock) == old - LATENESS
    for minute in range(1, 4):  # orders caught up for minutes; calls still reading its backlog
        now = T0 + minute * 60 * S
        clock.report(Report(now, {"orders": (T0, False, T0, True, None), "calls": (T0, False, now, False, old)}))
        assert history.held(clock) == old - LATENESS, minute
    now = T0 + 4 * 60 * S
    clock.report(Report(now, {"orders": (T0, False, T0, True, None), "calls": (T0, False, now, True, None)}))
    assert history.held(clock) is None


def test_a_straggler_holds_a_lateness_only_and_no_hold_outlasts_five_minutes():
    clock, history = inputs("orders", "calls"), History(LATENESS)
    caught_up = {"orders": (T0, False, T0, True, None), "calls": (T0, False, T0, True, None)}
    history.late("orders", T0 - 40 * S)
    clock.report(Report(T0, caught_up))
    assert history.held(clock) == T0 - 40 * S - LATENESS
    clock.report(Report(T0 + LATENESS - S, caught_up))
    assert history.held(clock) == T0 - 40 * S - LATENESS
    clock.report(Report(T0 + LATENESS, caught_up))
    assert history.held(clock) is None
    history.late("orders", T0 - 40 * S)  # and one whose other input never catches up
    clock.report(Report(T0 + 2 * LATENESS, {**caught_up, "calls": (T0, False, T0, False, None)}))
    assert history.held(clock) == T0 - 40 * S - LATENESS
    clock.report(Report(T0 + 2 * LATENESS + 299 * S, {**caught_up, "calls": (T0, False, T0, False, None)}))
    assert history.held(clock) == T0 - 40 * S - LATENESS
    clock.report(Report(T0 + 2 * LATENESS + 300 * S, {**caught_up, "calls": (T0, False, T0, False, None)}))
    assert history.held(clock) is None


def test_the_clock_is_stored_and_read_back():
    clock = inputs("orders", "calls")
    said(clock, T0, orders=(T0 + 50 * S, True, T0), calls=(T0 + 80 * S, False, T0))
    again = Inputs(LATENESS)
    again.load(clock.record(), clock.caught_up_record())
    assert again.watermark() == clock.watermark() and again.record() == clock.record()
    assert again.caught_up_record() == clock.caught_up_record() == {"orders": T0}
    # Each input's record is the six fields a worker of before reads (since when it was caught up is
    # kept apart), and one of a later version with more fields is read too.
    assert all(len(values) == 6 for values in clock.record().values())
    later = Inputs(LATENESS)
    later.load({name: [*values, "more"] for name, values in clock.record().items()})
    assert later.record() == clock.record()
    assert Report.from_record(Report(T0, {"orders": (1, True, 2, True, None)}, ("orders",)).record()) == Report(
        T0, {"orders": (1, True, 2, True, None)}, ("orders",)
    )


def test_an_engine_on_a_given_clock_decides_only_when_advanced(catalog):
    engine = Engine(catalog, lateness=LATENESS, own_clock=False)
    placed = event("order.placed", 0, order_id="o1")
    engine.step(placed)
    engine.step(event("customer.joined", 100_000))  # far ahead: moves nothing on a given clock
    assert engine.outbox == []
    due = placed.at + 120 * S
    engine.advance(due - 1)
    assert engine.outbox == []
    engine.advance(due)
    assert [(o.touchpoint, o.outcome) for o in engine.outbox] == [("order-confirmed", "bad")]
    engine.advance(due - 10 * S)  # never back
    assert engine.state.watermark == due


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
    assert engine.forget(first.at + 1) == (["c1"], [])  # (held: its outcome's mark is recent, see below)
    assert engine.step(event("bill.issued", 3600, bill_id="b", event_id="x")) == 0


def test_a_customer_with_nothing_left_is_freed_and_its_counts_kept(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    bill = event("bill.issued", 0, customer="quiet", bill_id="b")
    engine.step(bill)
    before = engine.counts()
    assert sum(sum(pair) for pair in before.values()) == 1
    # Its ids go after the retention, but its outcome's mark is kept for the attribution window (impact).
    assert engine.forget(bill.at + 1) == (["quiet"], [])
    engine.advance(bill.at + catalog.attribution_left - 1)
    assert engine.forget(bill.at + 1) == (["quiet"], [])  # its active day goes, its mark stays
    assert engine.forget(bill.at + 1) == ([], [])
    engine.advance(bill.at + catalog.attribution_left + 1)
    assert engine.forget(bill.at + 1) == (["quiet"], ["quiet"])
    assert "quiet" not in engine.state.customers
    assert engine.counts() == before and engine.folded["bill-correct"] == before["bill-correct"]


def test_a_customer_with_an_open_instance_is_not_freed(catalog):
    engine = Engine(catalog, lateness=LATENESS, own_clock=False)
    placed = event("order.placed", 0, customer="waiting", order_id="o1")
    engine.step(placed)
    engine.advance(placed.at)  # the order is filed, its deadline open
    assert engine.forget(placed.at + 1) == (["waiting"], [])
    assert "waiting" in engine.state.customers
