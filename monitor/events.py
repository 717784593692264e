"""Operational events: the contract of SPEC section 1, decoded from bytes into typed events.

This is the hot path. Decoding is orjson followed by one pass over a per-type table of field checks
compiled at import; a bad input never raises: it becomes a ``Reject`` with a bounded reason, a readable
detail and the raw bytes, so it can be counted and kept whole.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Final

import orjson

from .conventions import OTHER_TYPE

# Rejection reasons: a bounded set, used as a metric label.
NOT_UTF8: Final = "not_utf8"
MALFORMED_JSON: Final = "malformed_json"
NOT_OBJECT: Final = "not_object"
MISSING_FIELD: Final = "missing_field"
WRONG_TYPE: Final = "wrong_type"
BAD_TIMESTAMP: Final = "bad_timestamp"
TOO_LARGE: Final = "too_large"
REJECT_REASONS: Final = (NOT_UTF8, MALFORMED_JSON, NOT_OBJECT, MISSING_FIELD, WRONG_TYPE, BAD_TIMESTAMP, TOO_LARGE)

#: Inputs larger than this are rejected before parsing (Kafka's own default message limit).
DEFAULT_MAX_BYTES: Final = 1_048_576

# Field kinds.
STR, NUM, NON_NEGATIVE, BOOL, TIMESTAMP = "string", "number", "number >= 0", "boolean", "timestamp"
ACTOR = "'customer' or 'company'"
_ACTORS = frozenset({"customer", "company"})

COMMON_FIELDS: Final = (("event_id", STR), ("type", STR), ("customer_id", STR), ("occurred_at", TIMESTAMP))

# type -> (source topic, required fields, optional fields, allowed values of a field)
_SCHEMA: Final[dict[str, tuple[str, tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]]] = {
    "order.placed": ("orders", (("order_id", STR), ("amount", NUM), ("channel", STR)), ()),
    "order.confirmed": ("orders", (("order_id", STR),), ()),
    "order.delivered": ("orders", (("order_id", STR), ("promised_at", TIMESTAMP)), ()),
    "order.cancelled": ("orders", (("order_id", STR), ("by", ACTOR)), ()),
    "service.activated": ("orders", (("order_id", STR),), ()),
    "customer.joined": ("orders", (), ()),
    "customer.left": ("orders", (), (("reason", STR),)),
    "bill.issued": ("bills", (("bill_id", STR), ("amount", NUM), ("expected_amount", NUM)), ()),
    "payment.succeeded": ("bills", (("bill_id", STR),), ()),
    "payment.failed": ("bills", (("bill_id", STR),), ()),
    "bill.disputed": ("bills", (("bill_id", STR),), ()),
    "dispute.resolved": ("bills", (("bill_id", STR),), ()),
    "call.answered": ("calls", (("call_id", STR), ("queue", STR), ("wait_seconds", NON_NEGATIVE)), ()),
    "call.abandoned": ("calls", (("call_id", STR), ("queue", STR), ("wait_seconds", NON_NEGATIVE)), ()),
    "call.ended": ("calls", (("call_id", STR), ("resolved", BOOL)), ()),
    "call.outbound": ("calls", (("call_id", STR), ("purpose", STR)), ()),
    "ticket.opened": ("tickets", (("ticket_id", STR), ("category", STR)), ()),
    "ticket.responded": ("tickets", (("ticket_id", STR),), ()),
    "ticket.resolved": ("tickets", (("ticket_id", STR),), ()),
    "ticket.reopened": ("tickets", (("ticket_id", STR),), ()),
}

#: The known event types and the source topic each belongs to.
SOURCE_OF_TYPE: Final = {name: source for name, (source, _, _) in _SCHEMA.items()}
KNOWN_TYPES: Final = frozenset(_SCHEMA)


def fields_of(event_type: str) -> dict[str, str]:
    """Every field an event of this known type is guaranteed to carry, with its kind."""
    _, required, optional = _SCHEMA[event_type]
    return dict(COMMON_FIELDS + required + tuple((name, kind) for name, kind in optional))


def required_fields_of(event_type: str) -> frozenset[str]:
    _, required, _ = _SCHEMA[event_type]
    return frozenset(name for name, _ in COMMON_FIELDS + required)


# RFC 3339 with 'T' and an offset; fromisoformat alone also accepts spaces, week dates and more.
_RFC3339 = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?(?:Z|[+-]\d{2}:\d{2})").fullmatch
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MICRO: Final = timedelta(microseconds=1)


def parse_timestamp(text: str) -> int | None:
    """Microseconds since the epoch, or None when the text is not an RFC 3339 timestamp with offset."""
    if _RFC3339(text) is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        return None
    return (moment - _EPOCH) // _MICRO


def format_timestamp(micros: int) -> str:
    """RFC 3339 in UTC, with microseconds only when there are any."""
    moment = _EPOCH + timedelta(microseconds=micros)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class Event:
    """A valid operational event. ``data`` is the decoded object with every field, extras included."""

    __slots__ = ("at", "customer", "data", "id", "kind", "source", "type")

    def __init__(self, data: dict, at: int, kind: str, source: str) -> None:
        self.data = data
        self.id: str = data["event_id"]
        self.type: str = data["type"]
        self.customer: str = data["customer_id"]
        self.at = at  # occurred_at, microseconds since the epoch
        self.kind = kind  # the type, or "other" when the type is not in the contract
        self.source = source

    def __repr__(self) -> str:
        return f"Event({self.type} {self.id} customer={self.customer} at={format_timestamp(self.at)})"


class Reject:
    """An input that is not a valid event, kept whole with why."""

    __slots__ = ("detail", "raw", "reason", "source")

    def __init__(self, reason: str, detail: str, raw: bytes, source: str) -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.source = source

    def __repr__(self) -> str:
        return f"Reject({self.reason}: {self.detail})"

    def record(self, **extra: object) -> dict:
        """A JSON-ready record: the raw input as text when it is UTF-8, else base64."""
        record: dict[str, object] = {"reason": self.reason, "detail": self.detail, "source": self.source}
        record.update(extra)
        try:
            record["raw"] = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            record["raw_base64"] = base64.b64encode(self.raw).decode("ascii")
        return record


def _describe(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object"


def _check(data: dict, name: str, kind: str) -> tuple[str, str] | None:
    """None when the field is present and of its kind, else (reason, detail)."""
    value = data.get(name)
    if value is None:
        return MISSING_FIELD, f"field '{name}' is missing"
    value_type = type(value)
    if kind is STR:
        if value_type is not str:
            return WRONG_TYPE, f"field '{name}' must be a string, not {_describe(value)}"
        if not value:
            return MISSING_FIELD, f"field '{name}' is empty"
    elif kind is NUM or kind is NON_NEGATIVE:
        if value_type is not int and value_type is not float:
            return WRONG_TYPE, f"field '{name}' must be a number, not {_describe(value)}"
        if kind is NON_NEGATIVE and value < 0:
            return WRONG_TYPE, f"field '{name}' must be a number >= 0, not {value}"
    elif kind is ACTOR:
        if value not in _ACTORS:
            return WRONG_TYPE, f"field '{name}' must be {ACTOR}, not {value!r}"
    elif kind is BOOL:
        if value_type is not bool:
            return WRONG_TYPE, f"field '{name}' must be a boolean, not {_describe(value)}"
    elif kind is TIMESTAMP:
        if value_type is not str:
            return WRONG_TYPE, f"field '{name}' must be an RFC 3339 timestamp string, not {_describe(value)}"
        if parse_timestamp(value) is None:
            return BAD_TIMESTAMP, (
                f"field '{name}' is not an RFC 3339 timestamp with 'T' and an offset: {value[:64]!r}"
            )
    return None


def decode(raw: bytes, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Event | Reject:
    """Decode one message or JSONL line. Never raises for bad input."""
    if len(raw) > max_bytes:
        return Reject(TOO_LARGE, f"{len(raw)} bytes is more than the limit of {max_bytes}", raw, source)
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Reject(NOT_UTF8, f"not UTF-8: byte {bad.start} is invalid", raw, source)
        return Reject(MALFORMED_JSON, f"malformed JSON: {error}", raw, source)
    if type(data) is not dict:
        return Reject(NOT_OBJECT, f"an event is a JSON object, not {_describe(data)}", raw, source)

    # The common fields, checked inline: this runs for every event.
    event_id = data.get("event_id")
    event_type = data.get("type")
    customer = data.get("customer_id")
    occurred = data.get("occurred_at")
    if (
        type(event_id) is not str
        or type(event_type) is not str
        or type(customer) is not str
        or type(occurred) is not str
        or not event_id
        or not event_type
        or not customer
    ):
        for name, kind in COMMON_FIELDS:
            problem = _check(data, name, kind)
            if problem:
                return Reject(problem[0], problem[1], raw, source)
    at = parse_timestamp(occurred)  # type: ignore[arg-type]
    if at is None:
        reason, detail = _check(data, "occurred_at", TIMESTAMP)  # type: ignore[misc]
        return Reject(reason, detail, raw, source)

    schema = _SCHEMA.get(event_type)  # type: ignore[arg-type]
    if schema is None:
        return Event(data, at, OTHER_TYPE, source)
    _, required, optional = schema
    for name, kind in required:
        problem = _check(data, name, kind)
        if problem:
            return Reject(problem[0], problem[1], raw, source)
    for name, kind in optional:
        if data.get(name) is not None:
            problem = _check(data, name, kind)
            if problem:
                return Reject(problem[0], problem[1], raw, source)
    return Event(data, at, event_type, source)  # type: ignore[arg-type]
