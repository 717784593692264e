"""Operational events: the contract of SPEC section 1, decoded from bytes into typed events.

This is the hot path, so decoding has two stages built from one table of the contract (``_SCHEMA``):

- msgspec decodes and checks a valid event in one pass in C, into a typed struct per event type;
- whatever it refuses goes to ``explain``, which parses with orjson and walks the same table to find the
  reason and a readable detail (or finds an event of a type outside the contract, accepted as "other").

A bad input never raises: it becomes a ``Reject`` with a bounded reason, a detail and the raw bytes, so it
can be counted and kept whole. An event keeps its raw bytes too: extra fields are never lost, journeys
embed them as they came, and ``Event.data`` parses them on demand.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Annotated, Final, Literal, Union

import msgspec
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


_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_fromisoformat = datetime.fromisoformat
_MICROSECOND: Final = timedelta(microseconds=1)
_MICROS_PER_SECOND: Final = 1_000_000


def parse_timestamp(text: str) -> int | None:
    """Microseconds since the epoch, or None when the text is not an RFC 3339 timestamp with 'T' and an
    offset.

    A timestamp is a date and time to the minute, two digits of seconds, then a fraction and an offset
    (the rest). The parts are independent: any valid minute goes with any second and any valid rest.
    Events come with the same few minutes and rests again and again, so those already checked are
    remembered with their values, and most timestamps are three lookups. Rests with a fraction finer
    than milliseconds are too many to remember; those timestamps are parsed in full."""
    if len(text) - (1 if text[-1:] == "Z" else 6) > _REMEMBERED_UP_TO:
        return _parse_timestamp(text)  # finer than milliseconds
    rest = _RESTS.get(text[19:])
    if rest is not None:
        minute = _MINUTES.get(text[:17])
        second = _SECONDS.get(text[17:19])
        if minute is not None and second is not None:
            return minute + second + rest
    micros = _parse_timestamp(text)
    if micros is not None:
        minute = _parse_timestamp(text[:17] + "00Z")
        if minute is not None:
            if len(_MINUTES) >= _REMEMBERED:
                _MINUTES.clear()
            if len(_RESTS) >= _REMEMBERED:
                _RESTS.clear()
            _MINUTES[text[:17]] = minute
            _RESTS[text[19:]] = micros - minute - _SECONDS[text[17:19]]
    return micros


_MINUTES: dict[str, int] = {}  # "2026-11-22T10:00:" -> its microseconds, as UTC
_SECONDS: Final = {f"{second:02d}": second * _MICROS_PER_SECOND for second in range(60)}
_RESTS: dict[str, int] = {}  # ".250+01:00" -> microseconds to add: the fraction less the offset
_REMEMBERED: Final = 65_536  # minutes (45 days of them), or rests (1,000 fractions x the offsets in use)
_REMEMBERED_UP_TO: Final = len("2026-11-22T10:00:00.250")  # without the offset


def _parse_timestamp(text: str) -> int | None:
    """datetime.fromisoformat does the parsing; the checks before it refuse what it accepts beyond
    RFC 3339 (a space for 'T', basic and week formats, a comma fraction, offsets without a colon)."""
    if (
        len(text) < 20
        or text[10] != "T"
        or text[4] != "-"
        or text[7] != "-"
        or text[13] != ":"
        or text[16] != ":"
        or text[19] not in ".Z+-"
        or (text[19] == "." and not text[20].isdigit())
        or (text[-1] != "Z" and (text[-3] != ":" or text[-6] not in "+-"))
    ):
        return None
    try:
        moment = _fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    return (moment - _EPOCH) // _MICROSECOND


def json_bytes(value: object) -> bytes:
    """``value`` as JSON, in a bytes object of its own size, for values kept long (table records,
    journeys): orjson returns its output in the 4 KiB buffer it wrote it in, so a 200-byte record kept
    as orjson returned it holds 4 KiB."""
    return memoryview(orjson.dumps(value)).tobytes()


def format_timestamp(micros: int) -> str:
    """RFC 3339 in UTC, with microseconds only when there are any."""
    seconds, fraction = divmod(micros, _MICROS_PER_SECOND)
    if fraction:
        return f"{_format_seconds(seconds)}.{fraction:06d}Z"
    return f"{_format_seconds(seconds)}Z"


@lru_cache(maxsize=8192)
def _format_seconds(seconds: int) -> str:
    """Journeys format the same few seconds again and again (first and last times, outcomes)."""
    return (_EPOCH + timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%S")


class Event:
    """A valid operational event.

    ``fields`` is the typed struct of its type (attributes named as the contract's fields), ``raw`` the
    bytes it came as, ``data`` every field as a dict, extras included (parsed on first use).
    """

    __slots__ = ("_data", "at", "customer", "fields", "id", "kind", "raw", "source", "type")

    def __init__(self, fields: msgspec.Struct, raw: bytes, event_type: str, at: int, kind: str, source: str) -> None:
        self.fields = fields
        self.raw = raw
        self.id: str = fields.event_id  # type: ignore[attr-defined]
        self.type = event_type
        self.customer: str = fields.customer_id  # type: ignore[attr-defined]
        self.at = at  # occurred_at, microseconds since the epoch
        self.kind = kind  # the type, or "other" when the type is not in the contract
        self.source = source
        self._data: dict | None = None

    @property
    def data(self) -> dict:
        if self._data is None:
            self._data = orjson.loads(self.raw)
        return self._data

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


# -- the fast path: one msgspec struct per type, generated from the schema ---------------------------
_NON_EMPTY = Annotated[str, msgspec.Meta(min_length=1)]
_ANNOTATIONS = {
    STR: _NON_EMPTY,
    NUM: float,  # msgspec takes JSON integers for floats, and refuses booleans
    NON_NEGATIVE: Annotated[float, msgspec.Meta(ge=0)],
    BOOL: bool,
    TIMESTAMP: str,  # checked by parse_timestamp, which is stricter than msgspec's datetime
    ACTOR: Literal["customer", "company"],
}


class _Envelope(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
    event_id: _NON_EMPTY
    customer_id: _NON_EMPTY
    occurred_at: str


class _Other(msgspec.Struct, frozen=True, gc=False):
    """The fields every event has, for a type outside the contract."""

    event_id: str
    type: str
    customer_id: str
    occurred_at: str


def _struct(event_type: str) -> type[msgspec.Struct]:
    _, required, optional = _SCHEMA[event_type]
    fields = [(name, _ANNOTATIONS[kind]) for name, kind in required]
    fields += [(name, _ANNOTATIONS[kind] | None, None) for name, kind in optional]  # type: ignore[misc]
    name = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))
    return msgspec.defstruct(name, fields, bases=(_Envelope,), tag=event_type, frozen=True, gc=False)


_STRUCTS: Final = {event_type: _struct(event_type) for event_type in _SCHEMA}
_TYPE_OF: Final = {struct: event_type for event_type, struct in _STRUCTS.items()}
_DECODER: Final = msgspec.json.Decoder(Union[tuple(_STRUCTS.values())])  # noqa: UP007
_EXTRA_TIMESTAMPS: Final = {
    event_type: tuple(name for name, kind in required if kind is TIMESTAMP)
    for event_type, (_, required, _) in _SCHEMA.items()
    if any(kind is TIMESTAMP for _, kind in required)
}
_FAST_ERRORS = (msgspec.ValidationError, msgspec.DecodeError)


def decode(raw: bytes, source: str, max_bytes: int = DEFAULT_MAX_BYTES) -> Event | Reject:
    """Decode one message or JSONL line. Never raises for bad input."""
    if len(raw) > max_bytes:
        return Reject(TOO_LARGE, f"{len(raw)} bytes is more than the limit of {max_bytes}", raw, source)
    try:
        fields = _DECODER.decode(raw)
    except _FAST_ERRORS:
        return explain(raw, source)
    event_type = _TYPE_OF[type(fields)]
    at = parse_timestamp(fields.occurred_at)  # type: ignore[attr-defined]
    if at is None or (event_type in _EXTRA_TIMESTAMPS and not _timestamps_valid(fields, event_type)):
        return explain(raw, source)
    return Event(fields, raw, event_type, at, event_type, source)


def _timestamps_valid(fields: msgspec.Struct, event_type: str) -> bool:
    return all(parse_timestamp(getattr(fields, name)) is not None for name in _EXTRA_TIMESTAMPS[event_type])


def explain(raw: bytes, source: str) -> Event | Reject:
    """The slow path: say exactly what is wrong with an input, or accept an event of an unknown type."""
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
    for name, kind in COMMON_FIELDS:
        problem = _check(data, name, kind)
        if problem:
            return Reject(problem[0], problem[1], raw, source)
    at = parse_timestamp(data["occurred_at"])
    schema = _SCHEMA.get(data["type"])
    if schema is None:
        fields = _Other(data["event_id"], data["type"], data["customer_id"], data["occurred_at"])
        return Event(fields, raw, data["type"], at, OTHER_TYPE, source)  # type: ignore[arg-type]
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
    # The table says it is valid, yet the fast path refused it: say what msgspec said.
    try:
        _DECODER.decode(raw)
    except _FAST_ERRORS as error:
        return Reject(WRONG_TYPE, f"not a valid '{data['type']}' event: {error}", raw, source)
    return Reject(WRONG_TYPE, "not a valid event", raw, source)
