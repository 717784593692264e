"""The terminal Customer Room: state over a sliding window, stories, plain lines."""

from __future__ import annotations

from rich.console import Console

from tpmon.demo.room import Room, Snapshot, story


def snapshot(at: float, good: int, bad: int) -> Snapshot:
    return Snapshot(at, {"bill-correct": (good, bad)})


def test_the_state_follows_the_window_not_the_whole_history(catalog):
    room = Room(catalog, window=10)
    room.add(snapshot(0, 0, 0))
    room.add(snapshot(10, 100, 50))  # a bad stretch
    assert room.states()["bill-correct"] == "broken"
    room.add(snapshot(20, 300, 50))  # then only good bills
    room.add(snapshot(30, 500, 50))
    assert room.states()["bill-correct"] == "differentiating"
    assert room.worst["bill-correct"] == "broken" and room.broken_spells["bill-correct"] == 1


def test_few_outcomes_are_unknown(catalog):
    room = Room(catalog, window=10)
    room.add(snapshot(0, 0, 0))
    room.add(snapshot(5, 3, 3))
    assert room.states()["bill-correct"] == "unknown"


def test_the_wall_shows_every_touchpoint(catalog):
    room = Room(catalog, window=10)
    room.add(snapshot(0, 0, 0))
    console = Console(record=True, width=200)
    console.print(room.render("Customer Room"))
    text = console.export_text()
    assert all(touchpoint_id in text for touchpoint_id in catalog.ids)
    assert "broken:" in room.line(3.0)


def test_a_story_tells_what_happened_to_the_customer():
    record = {
        "customer_id": "c-1",
        "events": [
            {"type": "bill.issued", "amount": 40.0, "expected_amount": 29.0},
            {"type": "call.abandoned", "wait_seconds": 31},
        ],
        "outcomes": [{"touchpoint": "bill-correct", "outcome": "bad"}],
    }
    line = story(record, {"bill-correct"})
    assert (
        line is not None and "40.00 instead of 29.00" in line and "waited 31 s" in line and "bill-correct BAD" in line
    )
    assert story(record, {"call-answered"}) is None
