"""Deadline touchpoints (docs/SEMANTICS.md), on order-confirmed: order.placed -> order.confirmed within 2m."""

from __future__ import annotations

import pytest

from tests.builders import DAY, event
from tests.engine_helpers import run

T = "order-confirmed"


def placed(seconds: float, order: str = "o1", **kw: object):
    return event("order.placed", seconds, order_id=order, **kw)


def confirmed(seconds: float, order: str = "o1", **kw: object):
    return event("order.confirmed", seconds, order_id=order, **kw)


def later(seconds: float):
    """Any event that moves the clock on."""
    return event("customer.joined", seconds, customer="someone-else")


CASES = [
    ("on time", [placed(0), confirmed(60)], [("good", "in_time", "o1")], 0),
    ("exactly at the deadline is on time", [placed(0), confirmed(120)], [("good", "in_time", "o1")], 0),
    ("late: bad, once", [placed(0), confirmed(121), later(DAY)], [("bad", "missed", "o1")], 0),
    ("never: bad when the clock passes S + D", [placed(0), later(1000)], [("bad", "missed", "o1")], 0),
    (
        "an end long after the miss changes nothing",
        [placed(0), later(1000), confirmed(1001)],
        [("bad", "missed", "o1")],
        0,
    ),
    ("an end before its start matches nothing", [confirmed(0), placed(10), later(1000)], [("bad", "missed", "o1")], 0),
    (
        "an end that arrives before its start (within the lateness) is matched",
        [confirmed(60), placed(0)],
        [("good", "in_time", "o1")],
        0,
    ),
    ("an end with no start is ignored", [confirmed(60, "o9"), later(1000)], [], 0),
    (
        "a start while the instance is open is ignored",
        [placed(0), placed(30), confirmed(60), later(1000)],
        [("good", "in_time", "o1")],
        0,
    ),
    (
        "a key re-opened after the decision opens a new instance",
        [placed(0), confirmed(30), placed(200), later(1000)],
        [("good", "in_time", "o1"), ("bad", "missed", "o1")],
        0,
    ),
    (
        "a cancellation does not close the instance",
        [placed(0), event("order.cancelled", 10, order_id="o1"), later(1000)],
        [("bad", "missed", "o1")],
        0,
    ),
    (
        "keys are independent",
        [placed(0, "a"), placed(1, "b"), confirmed(50, "b"), later(1000)],
        [("good", "in_time", "b"), ("bad", "missed", "a")],
        0,
    ),
    ("pending at the end of input", [placed(0)], [], 1),
    ("not yet due at the end of input stays pending", [placed(0), later(100)], [], 1),
    ("due exactly at the end of input is decided", [placed(0), later(120)], [("bad", "missed", "o1")], 0),
]


@pytest.mark.parametrize(("events", "expected", "pending"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_deadline(catalog, events, expected, pending):
    assert run(catalog, events, T) == (expected, pending)


def test_duplicates_count_once(catalog):
    start = placed(0, event_id="same")
    again = placed(0, event_id="same")
    end = confirmed(30, event_id="end")
    end_again = confirmed(30, event_id="end")
    assert run(catalog, [start, again, end, end_again, later(1000)], T) == ([("good", "in_time", "o1")], 0)


def test_a_late_end_arrival_is_processed_and_the_deadline_is_already_decided(catalog):
    # The end is dated on time, but arrives after the watermark has passed the deadline.
    events = [placed(0), later(200), confirmed(60)]
    assert run(catalog, events, T) == ([("bad", "missed", "o1")], 0)


@pytest.mark.parametrize(
    ("events", "expected"),
    [
        ([later(1000), placed(0), confirmed(60)], [("good", "in_time", "o1")]),
        ([later(1000), confirmed(60), placed(0)], [("good", "in_time", "o1")]),
        ([later(1000), placed(0), later(1010), confirmed(60)], [("good", "in_time", "o1")]),
    ],
    ids=[
        "a late start and its end, judged as history: good",
        "in either order",
        "the input going on for less than the lateness keeps the history held",
    ],
)
def test_late_history_is_judged_as_history_never_as_a_miss(catalog, events, expected):
    """Both came after the watermark passed them: the start's deadline is not decided by the time that
    passed before it arrived, but by the history that came with it."""
    decided, _ = run(catalog, events, T, finish=False)
    assert decided == []  # nothing decided while the history is in flight
    assert run(catalog, events, T) == (expected, 0)


def test_a_late_start_is_missed_by_the_history_that_came_after_it(catalog):
    """The history itself moved on past its deadline (an event of it at 200 s): bad, before the end."""
    events = [later(1000), placed(0), confirmed(200)]
    assert run(catalog, events, T, finish=False) == ([("bad", "missed", "o1")], 0)


def test_once_the_input_goes_on_for_the_lateness_its_history_is_decided(catalog):
    events = [later(1000), placed(0), later(1031)]
    assert run(catalog, events, T, finish=False) == ([("bad", "missed", "o1")], 0)


def test_the_deadline_window_follows_the_catalog(catalog):
    # service-activated: 48h
    events = [
        event("order.confirmed", 0, order_id="o1"),
        event("service.activated", 47 * 3600, order_id="o1"),
        event("order.confirmed", 0, order_id="o2"),
        event("service.activated", 49 * 3600, order_id="o2"),
    ]
    assert run(catalog, events, "service-activated") == ([("good", "in_time", "o1"), ("bad", "missed", "o2")], 0)


@pytest.mark.parametrize(
    ("purpose", "expected"),
    [("winback", [("good", "in_time", "c1")]), ("survey", [("bad", "missed", "c1")])],
    ids=["a win-back call closes it", "another outbound call does not"],
)
def test_end_filter(catalog, purpose, expected):
    events = [event("customer.left", 0), event("call.outbound", 3600, call_id="k1", purpose=purpose), later(3 * DAY)]
    assert run(catalog, events, "winback-call") == (expected, 0)
