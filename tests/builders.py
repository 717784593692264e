"""Small builders that make engine tests read like sentences."""

from __future__ import annotations

import itertools
from pathlib import Path

import orjson

from monitor.catalog import load_catalog
from monitor.catalog.model import Catalog
from monitor.engine import Engine
from monitor.events import Event, format_timestamp, parse_timestamp

#: The shipped catalog, whose declarations are the contract of docs/EVENTS.md; its decoder.
SHIPPED = load_catalog(Path(__file__).resolve().parents[1] / "rules")
CONTRACT = SHIPPED.contract
decode = SHIPPED.decoder.decode

BASE = parse_timestamp("2026-11-22T10:00:00Z")
_ids = itertools.count(1)

# The fields each type needs, so tests only say what matters to them.
DEFAULTS = {
    "order.placed": {"amount": 10.0, "channel": "web"},
    "order.delivered": {"promised_at": "2026-11-22T12:00:00Z"},
    "order.cancelled": {"by": "customer"},
    "bill.issued": {"amount": 10.0, "expected_amount": 10.0},
    "call.answered": {"queue": "billing", "wait_seconds": 10},
    "call.abandoned": {"queue": "billing", "wait_seconds": 90},
    "call.ended": {"resolved": True},
    "call.outbound": {"purpose": "winback"},
    "ticket.opened": {"category": "billing"},
}


def at(seconds: float) -> str:
    """The timestamp `seconds` after 10:00:00Z."""
    return format_timestamp(BASE + round(seconds * 1_000_000))


def event(
    event_type: str, seconds: float, customer: str = "c1", event_id: str | None = None, **fields: object
) -> Event:
    data = {
        "event_id": event_id or f"e{next(_ids)}",
        "type": event_type,
        "customer_id": customer,
        "occurred_at": at(seconds),
        **DEFAULTS.get(event_type, {}),
        **fields,
    }
    decoded = decode(orjson.dumps(data), "test")
    assert isinstance(decoded, Event), decoded
    return decoded


MINUTE = 60
HOUR = 3600
DAY = 86400


def reloaded(engine: Engine, catalog: Catalog | None = None, lateness: int | None = None) -> Engine:
    """A new engine from what ``engine`` stores, through JSON, as a worker restores a partition: the
    engine's own part (``saved``) taken back, then each customer's record, then ``settle``."""
    saved = orjson.loads(orjson.dumps(engine.saved()))
    records = orjson.loads(orjson.dumps({customer: engine.record(customer) for customer in engine.state.customers}))
    again = Engine(catalog or engine.catalog, lateness=engine.lateness if lateness is None else lateness, track=True)
    again.resume(saved)
    for customer, record in records.items():
        again.load(customer, record)
    again.settle()
    return again
