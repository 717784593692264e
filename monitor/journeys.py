"""Journeys: each customer's time-ordered events and the outcomes they own, bounded in length and age.

A journey record (JSON), as written by ``tpmon replay --journeys`` and to the journeys topic:

    {"customer_id": "c-000042",
     "first_at": "...", "last_at": "...",         # event-time span of what is kept
     "broken": true,                                # any bad outcome kept in the journey
     "events": [{...every field of the event...}],  # oldest first, at most max_events
     "outcomes": [{"touchpoint": "bill-correct", "outcome": "bad", "reason": "judged", ...}],
     "dropped": {"events": 0, "outcomes": 0}}       # how many aged out or overflowed

Entries older than ``max_age`` before the newest event of that journey are dropped, then the oldest
beyond ``max_events`` (and ``max_outcomes``), then the oldest events while the events kept are more than
``max_bytes`` (the newest always stays, whatever its size): a record is stored and sent whole, so a few
large events must not make it larger than a message may be.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from dataclasses import dataclass, field

import orjson

from .durations import parse_duration
from .engine.outcome import Outcome
from .events import FIRST_INSTANT, Event, format_timestamp, json_bytes, parse_timestamp

DEFAULT_MAX_EVENTS = 200
DEFAULT_MAX_OUTCOMES = 200
DEFAULT_MAX_AGE = parse_duration("30d")
DEFAULT_MAX_BYTES = 1024 * 1024  # of events' JSON in one journey


@dataclass
class Journey:
    customer: str
    events: list[tuple[int, str, bytes]] = field(default_factory=list)  # (at, event_id, raw JSON), sorted
    outcomes: list[tuple[int, str, dict]] = field(default_factory=list)  # (at, "touchpoint/key", record)
    dropped_events: int = 0
    dropped_outcomes: int = 0
    event_bytes: int = 0  # the size of the events kept

    @property
    def last_at(self) -> int:
        """The newest time kept (events may be from before 1970: no default of 0 may win over them)."""
        if self.events and self.outcomes:
            return max(self.events[-1][0], self.outcomes[-1][0])
        entries = self.events or self.outcomes
        return entries[-1][0] if entries else FIRST_INSTANT

    @property
    def broken(self) -> bool:
        return any(record["outcome"] == "bad" for _, _, record in self.outcomes)

    def record(self) -> dict:
        """The JSON record; events are embedded as they came (``orjson.Fragment``): encode with orjson."""
        times = [e[0] for e in self.events[:1]] + [o[0] for o in self.outcomes[:1]]
        return {
            "customer_id": self.customer,
            "first_at": format_timestamp(min(times)) if times else None,
            "last_at": format_timestamp(self.last_at) if times else None,
            "broken": self.broken,
            "events": [orjson.Fragment(raw) for _, _, raw in self.events],
            "outcomes": [record for _, _, record in self.outcomes],
            "dropped": {"events": self.dropped_events, "outcomes": self.dropped_outcomes},
        }

    @classmethod
    def from_record(cls, record: dict) -> Journey:
        """The journey back from its record, as stored in the journeys topic."""
        journey = cls(record["customer_id"])
        for data in record["events"]:
            at = parse_timestamp(data["occurred_at"])
            if at is not None:
                raw = json_bytes(data)
                journey.events.append((at, data["event_id"], raw))
                journey.event_bytes += len(raw)
        for outcome in record["outcomes"]:
            at = parse_timestamp(outcome["at"])
            if at is not None:
                journey.outcomes.append((at, f"{outcome['touchpoint']}/{outcome['key']}", outcome))
        journey.events.sort(key=lambda e: e[:2])
        journey.outcomes.sort(key=lambda o: o[:2])
        journey.dropped_events = record["dropped"]["events"]
        journey.dropped_outcomes = record["dropped"]["outcomes"]
        return journey


class Journeys:
    """Bounded journeys by customer. ``add_event`` and ``add_outcome`` say which journeys changed."""

    def __init__(
        self,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_outcomes: int = DEFAULT_MAX_OUTCOMES,
        max_age: int = DEFAULT_MAX_AGE,
        max_bytes: int = DEFAULT_MAX_BYTES,
    ) -> None:
        if max_events < 1 or max_outcomes < 1 or max_age <= 0 or max_bytes < 1:
            raise ValueError("journey bounds must be positive")
        self.max_events, self.max_outcomes, self.max_age = max_events, max_outcomes, max_age
        self.max_bytes = max_bytes
        self.by_customer: dict[str, Journey] = {}

    def __len__(self) -> int:
        return len(self.by_customer)

    def get(self, customer: str) -> Journey | None:
        return self.by_customer.get(customer)

    def put(self, journey: Journey) -> None:
        self.by_customer[journey.customer] = journey

    def touch(self, customer: str) -> Journey | None:
        """The customer's journey, now the most recently used (see ``keep_recent``)."""
        journey = self.by_customer.pop(customer, None)
        if journey is not None:
            self.by_customer[customer] = journey
        return journey

    def keep_recent(self, limit: int) -> None:
        """Forget all but the ``limit`` journeys most recently put or touched (a cache of journeys
        stored elsewhere, which a worker reloads when needed)."""
        excess = len(self.by_customer) - limit
        if excess > 0:
            for customer in list(itertools.islice(self.by_customer, excess)):
                del self.by_customer[customer]

    def _journey(self, customer: str) -> Journey:
        journey = self.by_customer.get(customer)
        if journey is None:
            journey = self.by_customer[customer] = Journey(customer)
        return journey

    def add_event(self, event: Event) -> Journey:
        journey = self._journey(event.customer)
        raw = event.raw.rstrip(b"\r\n")
        if _insert(journey.events, (event.at, event.id, raw)):
            journey.event_bytes += len(raw)
        self._trim(journey)
        return journey

    def add_outcome(self, outcome: Outcome) -> Journey:
        """File an outcome with the customer it belongs to."""
        journey = self._journey(outcome.customer)
        _insert(journey.outcomes, (outcome.at, f"{outcome.touchpoint}/{outcome.key}", outcome.record()))
        self._trim(journey)
        return journey

    def _trim(self, journey: Journey) -> None:
        oldest = journey.last_at - self.max_age
        events = journey.events
        for _, _, raw in _drop_old(events, oldest, self.max_events):
            journey.event_bytes -= len(raw)
            journey.dropped_events += 1
        while journey.event_bytes > self.max_bytes and len(events) > 1:
            journey.event_bytes -= len(events.pop(0)[2])
            journey.dropped_events += 1
        journey.dropped_outcomes += len(_drop_old(journey.outcomes, oldest, self.max_outcomes))

    def expire(self, before: int) -> list[str]:
        """Forget journeys with nothing newer than ``before``; return their customers."""
        gone = [customer for customer, journey in self.by_customer.items() if journey.last_at < before]
        for customer in gone:
            del self.by_customer[customer]
        return gone

    def compact(self) -> None:
        """Give back the room of expired journeys (a dict keeps the size it grew to)."""
        self.by_customer = dict(self.by_customer)

    def records(self) -> list[dict]:
        return [self.by_customer[c].record() for c in sorted(self.by_customer)]


def _insert(entries: list[tuple], entry: tuple) -> bool:
    """Keep entries sorted by their first two items, each once (a reprocessed event is not added
    again: False); most arrive in order and are appended."""
    identity = entry[:2]
    if not entries or entries[-1][:2] < identity:
        entries.append(entry)
        return True
    position = bisect_left(entries, identity, key=lambda e: e[:2])
    if position < len(entries) and entries[position][:2] == identity:
        return False
    entries.insert(position, entry)
    return True


def _drop_old(entries: list[tuple], oldest: int, limit: int) -> list[tuple]:
    """Drop entries older than ``oldest``, then the oldest beyond ``limit``; return those that went."""
    drop = 0
    while drop < len(entries) and entries[drop][0] < oldest:
        drop += 1
    drop = max(drop, len(entries) - limit)
    if drop <= 0:
        return []
    gone = entries[:drop]
    del entries[:drop]
    return gone


def story(record: dict, broken: set[str]) -> str | None:
    """A short reconstructed journey (a stored journey record) of a customer with a bad outcome of one
    of ``broken``, or None: its last events, with what went wrong where the shipped events say it."""
    bad = [o for o in record.get("outcomes", []) if o["outcome"] == "bad" and o["touchpoint"] in broken]
    if not bad:
        return None
    steps = []
    for event in record.get("events", [])[-6:]:
        detail = ""
        if event["type"] == "bill.issued" and event.get("amount") != event.get("expected_amount"):
            detail = f" ({event['amount']:.2f} instead of {event['expected_amount']:.2f})"
        elif event["type"] in ("call.answered", "call.abandoned"):
            detail = f" (waited {event.get('wait_seconds', 0):.0f} s)"
        steps.append(event["type"] + detail)
    return f"{record['customer_id']}: " + " -> ".join(steps) + f"  => {bad[-1]['touchpoint']} BAD"
