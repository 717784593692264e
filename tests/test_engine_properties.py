"""Properties: outcomes do not depend on duplicates, nor on arrival order within the lateness."""

from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.judging import Judging
from monitor.watermark import Report
from tests.builders import DAY, event, reloaded

LATENESS = parse_duration("30s")

KINDS = {
    "order.placed": "order_id",
    "order.confirmed": "order_id",
    "ticket.opened": "ticket_id",
    "ticket.resolved": "ticket_id",
    "ticket.reopened": "ticket_id",
    "call.answered": "call_id",
    "call.ended": "call_id",
    "bill.issued": "bill_id",
    "customer.left": None,
    "call.outbound": "call_id",
    "survey.answered": "survey_id",
}

moments = st.one_of(st.integers(0, 40).map(lambda n: n * 10), st.sampled_from([3 * 3600, 2 * DAY, 8 * DAY, 15 * DAY]))
raw_events = st.lists(
    st.tuples(
        st.sampled_from(sorted(KINDS)),
        moments,
        st.sampled_from(["k1", "k2"]),
        st.sampled_from(["c1", "c2"]),
        st.booleans(),
    ),
    max_size=40,
)


def build(raw):
    events = []
    for number, (kind, seconds, key, customer, flag) in enumerate(raw):
        fields = {KINDS[kind]: key} if KINDS[kind] else {}
        if kind == "call.ended":
            fields["resolved"] = flag
        if kind == "bill.issued":
            fields["amount"] = 10.0 if flag else 12.0
        if kind == "call.outbound":
            fields["purpose"] = "winback" if flag else "survey"
        if kind == "survey.answered":
            fields.update(survey="nps", score=10 if flag else 3)
        events.append(event(kind, seconds, customer=customer, event_id=f"e{number}", **fields))
    return events


def outcomes(catalog, events):
    """Through the judging core, as replay and the worker judge."""
    engine = Engine(catalog, lateness=LATENESS)
    judging = Judging(engine)
    judged = judging.batch((position, e, None) for position, e in enumerate(events))
    engine.finish()
    judging.settle(judged)
    decided = sorted(
        (o.touchpoint, o.outcome, o.reason, o.key, o.at, o.opened_at, o.customer, o.event_id) for o in judged.outcomes
    )
    return decided, list(engine.pending), engine.impact.totals


def in_time_order(events):
    return sorted(events, key=lambda e: e.at)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_events, seed=st.integers(0, 2**32))
def test_duplicates_change_nothing(catalog, raw, seed):
    events = in_time_order(build(raw))
    rng = random.Random(seed)
    with_duplicates = list(events)
    for original in events:
        if rng.random() < 0.5:
            # A duplicate comes after its original, as a redelivery would, within the lateness.
            position = with_duplicates.index(original) + 1 + rng.randrange(3)
            with_duplicates.insert(min(position, len(with_duplicates)), original)
    assert outcomes(catalog, with_duplicates) == outcomes(catalog, events)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_events, seed=st.integers(0, 2**32))
def test_shuffling_within_the_lateness_changes_nothing(catalog, raw, seed):
    events = in_time_order(build(raw))
    rng = random.Random(seed)
    # Each event leaves its source up to (not including) the lateness after it happened: none is late.
    arrival = sorted(events, key=lambda e: e.at + rng.randrange(LATENESS))
    assert outcomes(catalog, arrival) == outcomes(catalog, events)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_events, cut=st.integers(0, 40))
def test_a_restored_snapshot_continues_exactly(catalog, raw, cut):
    """State is plain data: stored mid-stream as a worker stores it (the engine's saved part and each
    customer's record, through JSON), restored into a new engine as a worker restores it, and nothing
    changes."""
    events = in_time_order(build(raw))
    cut = min(cut, len(events))
    engine = Engine(catalog, lateness=LATENESS, track=True)
    for e in events[:cut]:
        engine.step(e)
    before = list(engine.outbox)
    resumed = reloaded(engine, catalog, lateness=LATENESS)
    for e in events[cut:]:
        resumed.step(e)
    resumed.finish()
    combined = sorted(
        (o.touchpoint, o.outcome, o.reason, o.key, o.at, o.opened_at, o.customer, o.event_id)
        for o in before + resumed.outbox
    )
    assert (combined, list(resumed.pending), resumed.impact.totals) == outcomes(catalog, events)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=raw_events, size=st.integers(1, 8), cut=st.integers(0, 40))
def test_the_worker_unloading_customers_and_restarting_decides_as_replay(catalog, raw, size, cut):
    """The worker's partition (one), in batches of ``size`` events each followed by the input's report,
    holding one customer in memory that could leave it (the others unloaded to the store, put back at
    their next event or before their next due time), restarted from its stores at ``cut``: the same outcomes and pending as the core alone."""
    from streams.partitions import MemoryStore, Partitions

    events = in_time_order(build(raw))
    customers, journeys = MemoryStore(), MemoryStore()

    def new() -> Partitions:
        return Partitions(catalog, customers, journeys, lateness=LATENESS, retention=100 * DAY * 1_000_000, in_memory=1)

    live = new()
    for start in range(0, len(events), size):
        if start >= cut > start - size:
            customers = MemoryStore.replayed(customers.writes)  # a restart: memory gone, the changelogs kept
            journeys = MemoryStore.replayed(journeys.writes)
            live = new()
        batch: list = [(0, None, e, None, -1) for e in events[start : start + size]]
        progress = max(e.at for e in events[: start + size])
        batch.append((0, None, Report(0, {"in": (progress, False, 0)}, ("in",)), None, -1))
        live.handle_batch(batch)
    part = live.partition(0)
    part.judging.advance(part.engine.state.max_at)  # the end of input: the customers away put back first
    part.engine.finish()
    expected, pending, _ = outcomes(catalog, events)
    by_touchpoint = {t: [0, 0] for t in catalog.ids}
    for touchpoint, outcome, *_ in expected:
        by_touchpoint[touchpoint][0 if outcome == "good" else 1] += 1
    assert {t: list(pair) for t, pair in part.engine.counts().items()} == by_touchpoint
    assert list(part.engine.pending) == pending
