"""Journeys: time-ordered, bounded in length and age, with the outcomes their customers own."""

from __future__ import annotations

import orjson
import pytest

from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.journeys import Journey, Journeys
from tests.builders import DAY, event


def test_events_are_kept_in_time_order_with_every_field():
    journeys = Journeys()
    journeys.add_event(event("order.confirmed", 60, order_id="o1", note="extra"))
    journeys.add_event(event("order.placed", 0, order_id="o1"))
    record = orjson.loads(orjson.dumps(journeys.get("c1").record()))
    assert [e["type"] for e in record["events"]] == ["order.placed", "order.confirmed"]
    assert record["events"][1]["raw"]["note"] == "extra"  # beside the contract's view, the message as sent


def test_length_is_bounded_oldest_first():
    journeys = Journeys(max_events=3)
    for second in range(5):
        journeys.add_event(event("customer.joined", second))
    journey = journeys.get("c1")
    assert len(journey.events) == 3 and journey.dropped_events == 2
    assert [at for at, _, _ in journey.events] == sorted(at for at, _, _ in journey.events)


def test_age_is_bounded_by_the_newest_entry():
    journeys = Journeys(max_age=parse_duration("30d"))
    journeys.add_event(event("customer.joined", 0))
    journeys.add_event(event("customer.joined", 10 * DAY))
    journeys.add_event(event("customer.joined", 31 * DAY))
    assert journeys.get("c1").events[0][0] > event("customer.joined", 0).at
    assert journeys.get("c1").dropped_events == 1


def test_a_journey_with_a_bad_outcome_is_broken_and_the_outcome_is_its_owners(catalog):
    engine = Engine(catalog)
    journeys = Journeys()
    for e in [event("bill.issued", 0, bill_id="b", amount=30.0, expected_amount=20.0, customer="alice")]:
        engine.step(e)
        journeys.add_event(e)
    for outcome in engine.outbox:
        journeys.add_outcome(outcome)
    record = journeys.get("alice").record()
    assert record["broken"] is True
    assert record["outcomes"][0]["touchpoint"] == "bill-correct" and record["outcomes"][0]["outcome"] == "bad"


def test_a_reprocessed_event_or_outcome_is_not_added_twice(catalog):
    engine = Engine(catalog)
    journeys = Journeys()
    bill = event("bill.issued", 0, bill_id="b", amount=30.0, expected_amount=20.0)
    engine.step(bill)
    for _ in range(2):
        journeys.add_event(bill)
        for outcome in engine.outbox:
            journeys.add_outcome(outcome)
    assert len(journeys.get("c1").events) == 1 and len(journeys.get("c1").outcomes) == 1


def test_journeys_expire_when_nothing_new_happened():
    journeys = Journeys()
    journeys.add_event(event("customer.joined", 0, customer="old"))
    journeys.add_event(event("customer.joined", 40 * DAY, customer="new"))
    assert journeys.expire(event("customer.joined", 30 * DAY).at) == ["old"]
    assert len(journeys) == 1


def test_a_journey_comes_back_from_its_record(catalog):
    engine = Engine(catalog)
    journeys = Journeys()
    for e in [
        event("bill.issued", 0, bill_id="b", amount=2.0, expected_amount=1.0, note="x"),
        event("customer.joined", 5),
    ]:
        engine.step(e)
        journeys.add_event(e)
    for outcome in engine.outbox:
        journeys.add_outcome(outcome)
    journey = journeys.get("c1")
    again = Journey.from_record(orjson.loads(orjson.dumps(journey.record())))
    assert orjson.loads(orjson.dumps(again.record())) == orjson.loads(orjson.dumps(journey.record()))


def test_bounds_must_be_positive():
    with pytest.raises(ValueError):
        Journeys(max_events=0)
