"""no_repeat touchpoints (docs/SEMANTICS.md), on ticket-stays-resolved and no-repeat-contact."""

from __future__ import annotations

import pytest

from tests.builders import DAY, HOUR, event
from tests.engine_helpers import run

T = "ticket-stays-resolved"  # ticket.resolved, then no ticket.reopened for the same ticket within 14d


def resolved(seconds: float, ticket: str = "t1", **kw: object):
    return event("ticket.resolved", seconds, ticket_id=ticket, **kw)


def reopened(seconds: float, ticket: str = "t1", **kw: object):
    return event("ticket.reopened", seconds, ticket_id=ticket, **kw)


def later(seconds: float):
    return event("customer.joined", seconds, customer="someone-else")


CASES = [
    ("quiet for the whole window: good", [resolved(0), later(15 * DAY)], [("good", "quiet", "t1")], 0),
    ("a repeat inside the window: bad", [resolved(0), reopened(DAY)], [("bad", "repeated", "t1")], 0),
    (
        "a repeat exactly at the end of the window: bad",
        [resolved(0), reopened(14 * DAY)],
        [("bad", "repeated", "t1")],
        0,
    ),
    ("a repeat outside the window changes nothing", [resolved(0), reopened(15 * DAY)], [("good", "quiet", "t1")], 0),
    (
        "a repeat before its trigger does not count",
        [reopened(0), resolved(10), later(15 * DAY)],
        [("good", "quiet", "t1")],
        0,
    ),
    (
        "a repeat at the trigger's instant does not count",
        [resolved(0), reopened(0), later(15 * DAY)],
        [("good", "quiet", "t1")],
        0,
    ),
    (
        "a repeat that arrives before its trigger (within the lateness) counts",
        [reopened(20), resolved(0)],
        [("bad", "repeated", "t1")],
        0,
    ),
    ("a trigger while open is ignored", [resolved(0), resolved(DAY), later(15 * DAY)], [("good", "quiet", "t1")], 0),
    (
        "a key re-opened after the decision opens a new instance",
        [resolved(0), reopened(DAY), resolved(2 * DAY), later(17 * DAY)],
        [("bad", "repeated", "t1"), ("good", "quiet", "t1")],
        0,
    ),
    (
        "only the first repeat counts",
        [resolved(0), reopened(HOUR), reopened(2 * HOUR), later(15 * DAY)],
        [("bad", "repeated", "t1")],
        0,
    ),
    ("a repeat with no trigger is ignored", [reopened(0), later(15 * DAY)], [], 0),
    ("pending at the end of input", [resolved(0), later(DAY)], [], 1),
]


@pytest.mark.parametrize(("events", "expected", "pending"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_no_repeat(catalog, events, expected, pending):
    assert run(catalog, events, T) == (expected, pending)


def test_duplicates_count_once(catalog):
    events = [
        resolved(0, event_id="r"),
        resolved(0, event_id="r"),
        reopened(HOUR, event_id="o"),
        reopened(HOUR, event_id="o"),
    ]
    assert run(catalog, events, T) == ([("bad", "repeated", "t1")], 0)


CONTACT = [
    (
        "a resolved call, then quiet for a week: good",
        [event("call.ended", 0, call_id="k1", resolved=True), later(8 * DAY)],
        [("good", "quiet", "c1")],
    ),
    (
        "a resolved call, then another call: bad",
        [event("call.ended", 0, call_id="k1", resolved=True), event("call.answered", DAY, call_id="k2")],
        [("bad", "repeated", "c1")],
    ),
    (
        "an unresolved call opens nothing",
        [
            event("call.ended", 0, call_id="k1", resolved=False),
            event("call.answered", DAY, call_id="k2"),
            later(8 * DAY),
        ],
        [],
    ),
    (
        "a resolved ticket, then a ticket from the same customer: bad",
        [event("ticket.resolved", 0, ticket_id="t1"), event("ticket.opened", HOUR, ticket_id="t2")],
        [("bad", "repeated", "c1")],
    ),
    (
        "another customer's contact is not a repeat",
        [
            event("ticket.resolved", 0, ticket_id="t1"),
            event("call.abandoned", HOUR, call_id="k9", customer="c2"),
            later(8 * DAY),
        ],
        [("good", "quiet", "c1")],
    ),
]


@pytest.mark.parametrize(("events", "expected"), [c[1:] for c in CONTACT], ids=[c[0] for c in CONTACT])
def test_no_repeat_contact(catalog, events, expected):
    assert run(catalog, events, "no-repeat-contact") == (expected, 0)
