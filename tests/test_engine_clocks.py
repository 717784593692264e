"""Deadlines on SLA clocks (examples/support-hours): business hours, pauses, a due instant from the
start, and instances at risk, as sentences."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.catalog import load_catalog
from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.events import Event, parse_timestamp
from monitor.replay import Replay
from tests.builders import reloaded

CATALOG_DIR = Path(__file__).resolve().parents[1] / "examples" / "support-hours"
CATALOG = load_catalog(CATALOG_DIR)
_ids = itertools.count(1)
H = 3_600_000_000


def ev(event_type: str, when: str, key: str = "T1", customer: str = "c1", event_id: str | None = None, **fields):  # type: ignore[no-untyped-def]
    field = {"ticket": "ticket_id", "visit": "visit_id", "technician": "visit_id"}[event_type.split(".")[0]]
    data = {
        "event_id": event_id or f"e{next(_ids)}",
        "type": event_type,
        "customer_id": customer,
        "occurred_at": when,
        field: key,
        **({"category": "billing"} if event_type == "ticket.opened" else {}),
        **fields,
    }
    decoded = CATALOG.decoder.decode(orjson.dumps(data), "tickets")
    assert isinstance(decoded, Event), decoded
    return decoded


def opened(when: str, **kw):  # type: ignore[no-untyped-def]
    return ev("ticket.opened", when, **kw)


def responded(when: str, **kw):  # type: ignore[no-untyped-def]
    return ev("ticket.responded", when, **kw)


def waiting(when: str, **kw):  # type: ignore[no-untyped-def]
    return ev("ticket.waiting", when, **kw)


def answered(when: str, by: str = "customer", **kw):  # type: ignore[no-untyped-def]
    return ev("ticket.updated", when, by=by, **kw)


def later(when: str) -> Event:
    """Any event that moves the clock on."""
    data = {"event_id": f"e{next(_ids)}", "type": "customer.joined", "customer_id": "z", "occurred_at": when}
    decoded = CATALOG.decoder.decode(orjson.dumps(data), "tickets")
    assert isinstance(decoded, Event)
    return decoded


def judged(events: list[Event], touchpoint: str = "first-response", finish: bool = True) -> list[tuple]:
    engine = Engine(CATALOG, lateness=parse_duration("1m"))
    for event in events:
        engine.step(event)
    if finish:
        engine.finish()
    return [
        (o.outcome, o.reason, o.latency / H if o.latency is not None else None)
        for o in engine.outbox
        if o.touchpoint == touchpoint
    ]


CASES = [
    (
        "opened Friday 16:30, answered Saturday 10:00: 2.5 business hours, in time",
        [opened("2026-11-27T16:30:00+01:00"), responded("2026-11-28T10:00:00+01:00")],
        [("good", "in_time", 1.5 + 1)],
    ),
    (
        "opened Friday 16:30, answered Monday 09:00: due Saturday 11:30, bad",
        [opened("2026-11-27T16:30:00+01:00"), responded("2026-11-30T09:00:00+01:00")],
        [("bad", "missed", None)],
    ),
    (
        "answered at exactly 4 business hours: in time",
        [opened("2026-11-25T09:00:00+01:00"), responded("2026-11-25T14:00:00+01:00")],
        [("good", "in_time", 4.0)],
    ),
    (
        "not answered: bad at the due instant, over lunch and the evening",
        [opened("2026-11-25T15:00:00+01:00"), later("2026-11-26T12:00:00+01:00")],
        [("bad", "missed", None)],
    ),
    (
        "4.5 h waiting on the customer do not count",
        [
            opened("2026-11-25T08:00:00+01:00"),
            waiting("2026-11-25T09:00:00+01:00"),
            answered("2026-11-25T13:30:00+01:00"),
            responded("2026-11-25T15:30:00+01:00"),
        ],
        [("good", "in_time", 1 + 2)],
    ),
    (
        "an agent's update does not resume the clock",
        [
            opened("2026-11-25T08:00:00+01:00"),
            waiting("2026-11-25T09:00:00+01:00"),
            answered("2026-11-25T10:00:00+01:00", by="agent"),
            responded("2026-11-25T17:00:00+01:00"),
        ],
        [("good", "in_time", 1.0)],
    ),
    (
        "an end while paused is in time, however late",
        [
            opened("2026-11-25T08:00:00+01:00"),
            waiting("2026-11-25T11:00:00+01:00"),
            responded("2026-11-30T17:00:00+01:00"),
        ],
        [("good", "in_time", 3.0)],
    ),
    (
        "a pause across the weekend and a holiday: the clock runs again at the resume",
        [
            opened("2026-12-23T16:00:00+01:00"),  # Wednesday: 2 h that day
            waiting("2026-12-23T18:00:00+01:00"),
            answered("2026-12-26T10:00:00+01:00"),  # a holiday: the clock resumes, at the next opening
            responded("2026-12-28T09:30:00+01:00"),  # Sunday closed, Monday 1.5 h
        ],
        [("good", "in_time", 3.5)],
    ),
    (
        "the resumed clock is due at what was left: bad",
        [
            opened("2026-11-25T08:00:00+01:00"),
            waiting("2026-11-25T11:00:00+01:00"),  # 3 h spent
            answered("2026-11-25T14:00:00+01:00"),  # 1 h left: due 15:00
            later("2026-11-25T16:00:00+01:00"),
        ],
        [("bad", "missed", None)],
    ),
    (
        "a pause while paused and a resume while running are ignored",
        [
            opened("2026-11-25T08:00:00+01:00"),
            answered("2026-11-25T08:30:00+01:00"),
            waiting("2026-11-25T09:00:00+01:00"),
            waiting("2026-11-25T10:00:00+01:00"),
            answered("2026-11-25T11:00:00+01:00"),
            responded("2026-11-25T11:30:00+01:00"),
        ],
        [("good", "in_time", 1.5)],
    ),
    (
        "a start at night begins counting at the next opening",
        [opened("2026-11-25T23:00:00+01:00"), responded("2026-11-26T12:00:00+01:00")],
        [("good", "in_time", 4.0)],
    ),
    (
        "across the change to summer time: Saturday 11:00 CET to Monday 10:00 CEST is 3 h",
        [opened("2026-03-28T11:00:00+01:00"), responded("2026-03-30T10:00:00+02:00")],
        [("good", "in_time", 3.0)],
    ),
    (
        "across the change back: Saturday 11:00 CEST to Monday 10:00 CET is 3 h",
        [opened("2026-10-24T11:00:00+02:00"), responded("2026-10-26T10:00:00+01:00")],
        [("good", "in_time", 3.0)],
    ),
]


@pytest.mark.parametrize("events, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_first_response_on_business_hours(events, expected):
    assert judged(events) == expected


def booked(when: str, slot: str, key: str = "V1", **kw):  # type: ignore[no-untyped-def]
    return ev("visit.booked", when, key=key, slot_start=slot, **kw)


def arrived(when: str, key: str = "V1", **kw):  # type: ignore[no-untyped-def]
    return ev("technician.arrived", when, key=key, **kw)


VISITS = [
    (
        "an early arrival is in time",
        [booked("2026-11-20T10:00:00Z", "2026-11-25T08:00:00Z"), arrived("2026-11-25T07:30:00Z")],
        [("good", "in_time")],
    ),
    (
        "two hours after the slot's start is in time",
        [booked("2026-11-20T10:00:00Z", "2026-11-25T08:00:00Z"), arrived("2026-11-25T10:00:00Z")],
        [("good", "in_time")],
    ),
    (
        "a technician who never comes is bad at slot + 2h",
        [booked("2026-11-20T10:00:00Z", "2026-11-25T08:00:00Z"), later("2026-11-25T10:02:00Z")],
        [("bad", "missed")],
    ),
    (
        "across a change of the clocks, two hours are two real hours",
        [booked("2026-03-20T10:00:00Z", "2026-03-29T01:30:00+01:00"), arrived("2026-03-29T04:30:00+02:00")],
        [("good", "in_time")],
    ),
]


@pytest.mark.parametrize("events, expected", [c[1:] for c in VISITS], ids=[c[0] for c in VISITS])
def test_a_technician_due_by_the_slot(events, expected):
    assert [(outcome, reason) for outcome, reason, _ in judged(events, "technician-on-time")] == expected


def test_a_due_that_cannot_be_evaluated_is_a_rule_error_and_opens_nothing():
    engine = Engine(CATALOG, lateness=parse_duration("1m"))
    broken = booked("2026-11-20T10:00:00Z", "9999-12-31T23:00:00Z")  # + 2h is beyond what a timestamp holds
    engine.step(broken)
    engine.finish()
    assert [error.touchpoint for error in engine.errors] == ["technician-on-time"]
    assert engine.errors[0].message.startswith("due: ")
    assert engine.pending_counts()["technician-on-time"] == 0


def test_at_risk_at_the_watermark_with_time_left_in_open_hours():
    engine = Engine(CATALOG, lateness=parse_duration("1m"))
    engine.step(opened("2026-11-25T16:00:00+01:00", key="T1"))  # due 10:00 tomorrow; at risk from 09:00
    engine.step(opened("2026-11-25T17:30:00+01:00", key="T2", customer="c2"))  # due 11:30; at risk from 10:30
    engine.advance(parse_timestamp("2026-11-26T09:20:00+01:00"))
    (risky,) = [r for r in engine.at_risk() if r["touchpoint"] == "first-response"]
    assert (risky["customer_id"], risky["key"], risky["left"]) == ("c1", "T1", 40 * 60_000_000)
    assert engine.at_risk_counts()["first-response"] == 1
    engine.step(waiting("2026-11-26T09:30:00+01:00", key="T1"))  # paused with 30 m left: not at risk
    engine.advance(parse_timestamp("2026-11-26T10:40:00+01:00"))
    assert [r["key"] for r in engine.at_risk() if r["touchpoint"] == "first-response"] == ["T2"]
    engine.step(answered("2026-11-26T12:10:00+01:00", key="T1"))  # resumed at lunch: 30 m left from 13:00
    engine.advance(parse_timestamp("2026-11-26T12:50:00+01:00"))
    assert {r["key"] for r in engine.at_risk() if r["touchpoint"] == "first-response"} == {"T1"}  # T2 missed


def test_a_restored_customer_keeps_its_paused_clock():
    engine = Engine(CATALOG, lateness=parse_duration("1m"), track=True)
    for event in (opened("2026-11-25T08:00:00+01:00"), waiting("2026-11-25T11:00:00+01:00")):
        engine.step(event)
    engine.advance(parse_timestamp("2026-11-25T12:00:00+01:00"))
    again = reloaded(engine, CATALOG, lateness=parse_duration("1m"))
    for event in (answered("2026-11-26T08:00:00+01:00"), responded("2026-11-26T08:59:00+01:00")):
        again.step(event)
    again.finish()
    assert [(o.outcome, o.latency / H) for o in again.outbox if o.touchpoint == "first-response"] == [
        ("good", 3 + 59 / 60)
    ]


def test_replay_summary_says_how_many_are_at_risk_at_the_end():
    replay = Replay(CATALOG)
    # Opened Wednesday 15:00: due Thursday 09:00, at risk from Wednesday 18:00.
    replay.feed([e.raw for e in (opened("2026-11-25T15:00:00+01:00"), later("2026-11-26T08:30:00+01:00"))])
    summary = replay.summary()
    assert summary["touchpoints"]["first-response"]["at_risk"] == 1
    assert summary["touchpoints"]["technician-on-time"]["at_risk"] == 0


# -- properties: order within the lateness and duplicates change nothing ---------------------------------
TYPES = ["ticket.opened", "ticket.responded", "ticket.resolved", "ticket.waiting", "ticket.updated"]
START = parse_timestamp("2026-10-23T16:00:00+02:00")  # a Friday before the change back
moments = st.integers(0, 80).map(lambda n: n * 45 * 60_000_000)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    raw=st.lists(st.tuples(st.sampled_from(TYPES), moments, st.sampled_from(["T1", "T2"]), st.booleans()), max_size=30),
    seed=st.integers(0, 1000),
)
def test_reordering_within_the_lateness_and_duplicates_change_nothing(raw, seed):
    from monitor.events import format_timestamp

    events = []
    for number, (kind, offset, key, flag) in enumerate(raw):
        extra = {"by": "customer" if flag else "agent"} if kind == "ticket.updated" else {}
        events.append(ev(kind, format_timestamp(START + offset), key=key, event_id=f"p{number}", **extra))
    events.sort(key=lambda e: e.at)
    lateness = parse_duration("1m")
    # Shuffle within the lateness: each event may move past others less than the lateness apart.
    rng = random.Random(seed)
    shuffled = sorted(events, key=lambda e: e.at + rng.randrange(lateness))
    with_duplicates = shuffled + [e for e in shuffled if rng.random() < 0.3]

    def outcomes(sequence: list[Event]) -> list[tuple]:
        engine = Engine(CATALOG, lateness=lateness)
        for event in sequence:
            engine.step(event)
        engine.finish()
        return sorted((o.touchpoint, o.key, o.outcome, o.at, o.latency) for o in engine.outbox)

    assert outcomes(with_duplicates) == outcomes(events)


def test_a_restored_engine_says_at_once_what_is_at_risk():
    engine = Engine(CATALOG, lateness=parse_duration("1m"), track=True)
    engine.step(opened("2026-11-25T16:00:00+01:00"))
    engine.advance(parse_timestamp("2026-11-26T09:20:00+01:00"))
    assert engine.at_risk_counts()["first-response"] == 1
    again = reloaded(engine, CATALOG, lateness=parse_duration("1m"))
    assert again.at_risk_counts()["first-response"] == 1


def test_an_instance_whose_due_time_raises_is_no_longer_at_risk():
    from monitor.engine.state import DUE

    engine = Engine(CATALOG, lateness=parse_duration("1m"))
    index = CATALOG.ids.index("first-response")
    handlers = list(engine.handlers[index])

    def failing(*args):  # type: ignore[no-untyped-def]
        raise RuntimeError("a bug")

    handlers[DUE] = failing
    engine.handlers[index] = tuple(handlers)
    engine.step(opened("2026-11-25T16:00:00+01:00"))
    engine.advance(parse_timestamp("2026-11-26T09:20:00+01:00"))
    assert engine.at_risk_counts()["first-response"] == 1
    engine.advance(parse_timestamp("2026-11-26T11:00:00+01:00"))
    assert len(engine.failures) == 1 and engine.at_risk_counts()["first-response"] == 0


def test_a_pause_stored_before_the_touchpoint_stopped_pausing_is_not_put_back(tmp_path):
    import shutil

    folder = tmp_path / "catalog"
    shutil.copytree(CATALOG_DIR, folder)
    text = (folder / "touchpoints.yaml").read_text()
    (folder / "touchpoints.yaml").write_text(
        text.replace(
            "    pause: ticket.waiting\n    resume: {types: [ticket.updated], where: 'by == \"customer\"'}\n", ""
        )
    )
    plain = load_catalog(folder)
    assert plain["first-response"].pause is None
    engine = Engine(CATALOG, lateness=parse_duration("1m"), track=True)
    engine.step(opened("2026-11-25T08:00:00+01:00"))
    engine.step(waiting("2026-11-25T09:00:00+01:00"))  # queued (the watermark is behind), and a paused one
    engine.step(ev("ticket.opened", "2026-11-25T08:30:00+01:00", key="T2"))
    engine.advance(parse_timestamp("2026-11-25T08:45:00+01:00"))
    again = reloaded(engine, plain, lateness=parse_duration("1m"))
    again.step(later("2026-11-27T12:00:00+01:00"))
    assert again.pending_counts()["first-response"] == 0  # both decided on the plain business-hours clock
