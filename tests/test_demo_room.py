"""The terminal Customer Room: the workers' window gauges judged on evidence, stories, plain lines."""

from __future__ import annotations

import orjson
from rich.console import Console

from monitor.journeys import Journeys
from tests.builders import event
from tpmon.demo.room import Journey, Room, Snapshot, story


def snapshot(at: float, good: int, bad: int, warming: bool = False) -> Snapshot:
    """What the workers serve: bill-correct's outcomes in its window (every partition added up)."""
    return Snapshot(at, window={"bill-correct": (good, bad)}, warming={"bill-correct": warming})


def test_the_state_is_judged_on_the_window_the_workers_serve(catalog):
    room = Room(catalog, window=10)
    room.add(snapshot(0, 100, 50))  # a bad stretch in the window
    assert room.states()["bill-correct"] == "broken"
    room.add(snapshot(10, 2000, 0))  # the window has moved on: only good bills
    assert room.states()["bill-correct"] == "differentiating"
    assert room.worst["bill-correct"] == "broken" and room.broken_spells["bill-correct"] == 1


def test_a_small_sample_just_under_the_objective_is_not_broken(catalog):
    """bill-correct's objective is 97%: 28 of 30 (93%) is not confident evidence of less."""
    room = Room(catalog, window=10)
    room.add(snapshot(0, 28, 2))
    assert room.states()["bill-correct"] == "reliable"
    assert "between" in room.verdicts()["bill-correct"].why(catalog["bill-correct"])


def test_few_outcomes_are_unknown_and_a_fresh_window_warms_up(catalog):
    room = Room(catalog, window=10)
    room.add(snapshot(5, 3, 3))
    assert room.states()["bill-correct"] == "unknown"
    room.add(snapshot(6, 300, 300, warming=True))
    assert room.states()["bill-correct"] == "warming up"


def test_the_wall_shows_every_touchpoint(catalog):
    room = Room(catalog, window=10)
    room.add(snapshot(0, 0, 0))
    console = Console(record=True, width=200)
    console.print(room.render("Customer Room"))
    text = console.export_text()
    assert all(touchpoint_id in text for touchpoint_id in catalog.ids)
    assert "broken:" in room.line(3.0)


def test_a_story_tells_what_happened_to_the_customer(catalog):
    """The wall's story line says what the catalog's story templates say of each event."""
    journeys = Journeys()
    journeys.add_event(event("bill.issued", 0, "c-1", bill_id="b-7", amount=40.0, expected_amount=29.0))
    journeys.add_event(event("call.abandoned", 60, "c-1", call_id="k-1", queue="billing", wait_seconds=31))
    record = orjson.loads(orjson.dumps(journeys.get("c-1").record()))
    record["outcomes"] = [{"touchpoint": "bill-correct", "outcome": "bad", "key": "b-7", "at": record["last_at"]}]
    journey = Journey.from_record(record, catalog.decoder)
    line = story(journey, {"bill-correct"}, catalog.contract)
    assert line == (
        "c-1: bill.issued (bill b-7: 40.00 billed, 29.00 expected) -> "
        "call.abandoned (call k-1 in billing: hung up after 31 s)  => bill-correct BAD"
    )
    assert story(journey, {"call-answered"}, catalog.contract) is None


def test_the_wall_names_the_vital_few_that_touchpoints_names(catalog):
    """One function for both: a worker's partitions in a billing outage, read by the wall from its
    /metrics (window outcomes and distinct customers impacted, added up) and as /touchpoints states it."""
    from prometheus_client import generate_latest

    from monitor.durations import parse_duration
    from monitor.metrics import Metrics
    from monitor.simulate import Simulation
    from monitor.state import vital_few
    from streams.partitions import MemoryStore, Partitions
    from streams.views import Views
    from tests.test_partitions import batches, finish
    from tpmon.demo.run import snapshot_of

    lines = list(
        Simulation(customers=1500, duration=parse_duration("3h"), seed=4, scenario="billing-outage-day").lines()
    )
    live = Partitions(catalog, MemoryStore(), MemoryStore(), retention=parse_duration("24h"))
    for batch in batches(lines, 50):
        live.handle_batch(batch)
    finish(live)
    views = Views(live)
    views.publish(views.snapshot())
    room = Room(catalog, window=3600)
    room.add(snapshot_of(generate_latest(Metrics(catalog, views).registry).decode()))
    view = views.touchpoints()
    named = vital_few({t: row["state"] for t, row in view.items()}, views.customers_impacted())
    assert "bill-correct" in named
    assert [t for t, _, _ in room.vital_few()] == named
    assert {t: n for t, n, _ in room.vital_few()} == {t: views.customers_impacted()[t] for t in named}
