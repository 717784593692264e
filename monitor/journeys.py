"""Journeys: each customer's time-ordered events and the outcomes they own, bounded in length and age.

A journey record (JSON), as written by ``tpmon replay --journeys`` and to the journeys topic:

    {"customer_id": "c-000042",
     "first_at": "...", "last_at": "...",         # event-time span of what is kept
     "broken": true,                                # any bad outcome kept in the journey
     "events": [{"type": ..., "occurred_at": ..., "customer_id": ..., "event_id": ..., "source": ...,
                 "fields": {...declared fields...}, "raw": {...the message as sent...}}],
     "outcomes": [{"touchpoint": "bill-correct", "outcome": "bad", "reason": "judged", ...}],
     "dropped": {"events": 0, "outcomes": 0}}       # how many aged out or overflowed

Each event is kept in the contract's view (its type, instant, customer, id, the source it was read
from and its declared fields as decoded, timestamps as RFC 3339), so that stories and readers need
not know the source's shape, beside the message as it was sent (``raw``: extras and envelope kept).
Records of an earlier version kept the message alone; ``Journey.from_record`` converts them.

Fields declared ``personal: true`` are taken out of both as each entry is made (``entry``), unless the
catalog says ``journeys: {personal: keep}`` (``Journeys.of``; monitor.personal); stories never show them.

Entries older than ``max_age`` before the newest event of that journey are dropped, then the oldest
beyond ``max_events`` (and ``max_outcomes``), then the oldest events while the events kept are more than
``max_bytes`` (the newest always stays, whatever its size): a record is stored and sent whole, so a few
large events must not make it larger than a message may be.
"""

from __future__ import annotations

import itertools
from bisect import bisect_left
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import msgspec
import orjson

from .contract import Contract, Decoder
from .contract.model import CLOUDEVENTS, COMMON_NAMES
from .contract.story import CONTRACT_FIELDS, render_value
from .conventions import OTHER_TYPE
from .durations import parse_duration
from .engine.outcome import Outcome
from .events import FIRST_INSTANT, Event, format_timestamp, json_bytes, parse_timestamp
from .personal import Personal, without_personal

if TYPE_CHECKING:
    from .catalog.model import Catalog

DEFAULT_MAX_EVENTS = 200
DEFAULT_MAX_OUTCOMES = 200
DEFAULT_MAX_AGE = parse_duration("30d")
DEFAULT_MAX_BYTES = 1024 * 1024  # of events' JSON in one journey (their views and the messages)
STORY_EVENTS = 6  # the last events a one-line story tells
FEW_FIELDS = 3  # the declared fields a story shows of an event whose type has no story template
DETAIL = 120  # characters of what a story says about one event


@dataclass
class Journey:
    customer: str
    events: list[tuple[int, str, bytes]] = field(default_factory=list)  # (at, event_id, entry JSON), sorted
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
        """The JSON record; events' entries are embedded as kept (``orjson.Fragment``): encode with orjson."""
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
    def from_record(cls, record: dict, decoder: Decoder | None = None) -> Journey:
        """The journey back from its record, as stored in the journeys topic. An event an earlier
        version kept as the message alone is decoded again (``decoder``: the catalog's) into its entry;
        one that cannot be (without a decoder, or a catalog that no longer reads it) keeps the
        contract's fields found at their own names, and one without a valid instant is dropped."""
        journey = cls(record["customer_id"])
        for data in record["events"]:
            kept = _entry_of(data, decoder, journey.customer)
            if kept is None:
                journey.dropped_events += 1
                continue
            journey.events.append(kept)
            journey.event_bytes += len(kept[2])
        for outcome in record["outcomes"]:
            at = parse_timestamp(outcome["at"])
            if at is not None:
                journey.outcomes.append((at, f"{outcome['touchpoint']}/{outcome['key']}", outcome))
        journey.events.sort(key=lambda e: e[:2])
        journey.outcomes.sort(key=lambda o: o[:2])
        journey.dropped_events += record["dropped"]["events"]
        journey.dropped_outcomes = record["dropped"]["outcomes"]
        return journey

    def views(self) -> list[tuple[int, dict]]:
        """Its events' entries (the contract's view beside ``raw``), oldest first, with their instants."""
        return [(at, orjson.loads(kept)) for at, _, kept in self.events]


#: Per decoded struct type (one per declared type), the names of its declared fields, in order.
_DECLARED: dict[type[msgspec.Struct], tuple[str, ...]] = {}


def entry(event: Event, drop: Personal | None = None) -> bytes:
    """An event as a journey keeps it: the contract's view of it beside the message as it was sent,
    without its type's personal fields when ``drop`` (the contract's, by type) names some."""
    fields = event.fields
    names = _DECLARED.get(type(fields))
    if names is None:
        names = _DECLARED[type(fields)] = tuple(n for n in fields.__struct_fields__ if n not in COMMON_NAMES)
    declared = {}
    for name in names:
        value = getattr(fields, name)
        if value is not None:  # (an optional field the event does not carry)
            declared[name] = value
    view = {
        "type": event.type,
        "occurred_at": fields.occurred_at,  # type: ignore[attr-defined]
        "customer_id": event.customer,
        "event_id": event.id,
        "source": event.source,
        "fields": declared,
        "raw": orjson.Fragment(event.raw.rstrip(b"\r\n")),
    }
    personal = drop.get(event.type) if drop else None
    if personal:  # only these types pay for parsing the message again
        try:
            view["raw"] = orjson.loads(event.raw)
        except orjson.JSONDecodeError:  # (a valid event is JSON: never, but never kept unread either)
            view["raw"] = None
        without_personal(view, personal)
    return json_bytes(view)


def current(stored: bytes, decoder: Decoder) -> bytes:
    """A stored journey record in this version's form: as it is, or (written by an earlier version and
    not rewritten since) converted as ``Journey.from_record`` reads it."""
    record = orjson.loads(stored)
    if all(is_entry(data) for data in record.get("events", ())):
        return stored
    return json_bytes(Journey.from_record(record, decoder).record())


def is_entry(data: object) -> bool:
    """Whether a record's event is an entry of this version (else the message alone, as kept before)."""
    return type(data) is dict and type(data.get("fields")) is dict and "raw" in data and "source" in data


def _entry_of(data: dict, decoder: Decoder | None, customer: str) -> tuple[int, str, bytes] | None:
    if is_entry(data):
        at = parse_timestamp(data["occurred_at"]) if type(data.get("occurred_at")) is str else None
        return (at, str(data.get("event_id", "")), json_bytes(data)) if at is not None else None
    raw = json_bytes(data)
    if decoder is not None:
        contract = decoder.contract
        # Self-describing first (the contract's flat shape, CloudEvents), then each mapped source.
        shapes = [""] + [s.name for s in contract.sources if not s.plain and s.format != CLOUDEVENTS]
        for source in shapes:
            decoded = decoder.decode(raw, source)
            if type(decoded) is Event:
                if not source:
                    decoded.source = contract.source_of_type(decoded.type) or ""
                return decoded.at, decoded.id, entry(decoded)
    at = parse_timestamp(data["occurred_at"]) if type(data.get("occurred_at")) is str else None
    if at is None:
        return None
    event_type, event_id = data.get("type"), data.get("event_id")
    view = {
        "type": event_type if type(event_type) is str and event_type else OTHER_TYPE,
        "occurred_at": data["occurred_at"],
        "customer_id": customer,
        "event_id": event_id if type(event_id) is str else "",
        "source": "",
        "fields": {},
        "raw": orjson.Fragment(raw),
    }
    return at, view["event_id"], json_bytes(view)


class Journeys:
    """Bounded journeys by customer. ``add_event`` and ``add_outcome`` say which journeys changed."""

    def __init__(
        self,
        max_events: int = DEFAULT_MAX_EVENTS,
        max_outcomes: int = DEFAULT_MAX_OUTCOMES,
        max_age: int = DEFAULT_MAX_AGE,
        max_bytes: int = DEFAULT_MAX_BYTES,
        drop: Personal | None = None,
    ) -> None:
        """``drop``: the personal fields to take out of each event kept, by type (``Journeys.of``)."""
        if max_events < 1 or max_outcomes < 1 or max_age <= 0 or max_bytes < 1:
            raise ValueError("journey bounds must be positive")
        self.max_events, self.max_outcomes, self.max_age = max_events, max_outcomes, max_age
        self.max_bytes = max_bytes
        self.drop = drop or None
        self.by_customer: dict[str, Journey] = {}

    @classmethod
    def of(cls, catalog: Catalog, **bounds: int) -> Journeys:
        """The journeys a catalog keeps: for its retention, with or without personal fields as its
        ``journeys: {personal: keep|drop}`` says (live and replay alike build them here)."""
        settings = catalog.journeys
        bounds.setdefault("max_age", settings.retention)
        drop = None if settings.keeps_personal else catalog.contract.personal
        return cls(**bounds, drop=drop)

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
        kept = entry(event, self.drop)
        if _insert(journey.events, (event.at, event.id, kept)):
            journey.event_bytes += len(kept)
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

    def erase(self, customers: Iterable[str]) -> None:
        """Forget these customers' journeys (forgotten on request: docs/SECURITY.md)."""
        for customer in customers:
            self.by_customer.pop(customer, None)

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


def describe(view: dict, contract: Contract) -> str:
    """What a story says about one event (a journey's entry): its declaration's ``story`` template, or
    without one a few of its declared fields, by name, never a personal one (a template cannot name
    one: the catalog would not load)."""
    fields = view.get("fields") or {}
    declared = contract.declaration(view.get("type", ""))
    if declared is not None and declared.story is not None:
        values = {**fields, **{name: view.get(name) for name in CONTRACT_FIELDS}}
        text = declared.story.render(values)
    else:
        names = [f.name for f in declared.fields if not f.personal] if declared is not None else list(fields)
        shown = [name for name in names if name in fields][:FEW_FIELDS]
        text = ", ".join(f"{name} {render_value(fields[name])}" for name in shown)
    return text if len(text) <= DETAIL else text[: DETAIL - 1] + "…"


def story(journey: Journey, broken: set[str], contract: Contract) -> str | None:
    """A short reconstructed journey of a customer with a bad outcome of one of ``broken``, or None: its
    last events, each with what the catalog's declarations say of it (``describe``), in one line."""
    bad = [o for _, _, o in journey.outcomes if o["outcome"] == "bad" and o["touchpoint"] in broken]
    if not bad:
        return None
    steps = []
    for _, view in journey.views()[-STORY_EVENTS:]:
        detail = describe(view, contract)
        steps.append(view["type"] + (f" ({detail})" if detail else ""))
    return f"{journey.customer}: " + " -> ".join(steps) + f"  => {bad[-1]['touchpoint']} BAD"
