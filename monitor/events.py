"""Operational events: the contract of SPEC section 1, decoded from bytes into typed events.

This is the hot path, so decoding has stages built from one table of the contract (``_SCHEMA``):

- msgspec decodes and checks an event that has only the fields of its type in one pass in C, into a
  typed struct per event type. It reads every byte of such an input, so what it accepts is valid JSON;
- anything else (extra fields, a type outside the contract, a bad input) is read by orjson, which is the
  judge of what valid JSON is here, then checked: nesting, the typed fields (msgspec again, which may
  now skip the extra fields orjson has read), and for a refusal ``explain`` walks the table to find the
  reason and a readable detail (or accepts an event of a type outside the contract as "other").

A bad input never raises: it becomes a ``Reject`` with a bounded reason, a detail and the raw bytes, so it
can be counted and kept whole. An event keeps its raw bytes too: extra fields are never lost, journeys
embed them as they came, and ``Event.data`` parses them on demand (orjson has read them once already, so
that never fails).

Instants are integers of microseconds since the epoch, from year 1 to year 9999 in UTC: a timestamp
outside that range is refused, so every instant an event carries can be written back as RFC 3339.
"""

from __future__ import annotations

import re
from calendar import isleap
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from itertools import accumulate
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
FUTURE_TIMESTAMP: Final = "future_timestamp"  # live (or replay --now): too far ahead of the clock
INTERNAL_ERROR: Final = "internal_error"  # processing failed for a reason outside the contract: a bug
REJECT_REASONS: Final = (
    NOT_UTF8,
    MALFORMED_JSON,
    NOT_OBJECT,
    MISSING_FIELD,
    WRONG_TYPE,
    BAD_TIMESTAMP,
    TOO_LARGE,
    FUTURE_TIMESTAMP,
    INTERNAL_ERROR,
)

#: Inputs larger than this are rejected before parsing (Kafka's own default message limit).
DEFAULT_MAX_BYTES: Final = 1_048_576
#: JSON nested deeper than this is malformed_json: every reader of an event's bytes (journeys, CEL's
#: ``event``) can then parse it, with room for the levels a journey record adds around it.
MAX_DEPTH: Final = 100

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
_MICROS_PER_DAY: Final = 86_400 * _MICROS_PER_SECOND
#: The instants an event may carry: year 1 to year 9999, in UTC.
FIRST_INSTANT: Final = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // _MICROSECOND
LAST_INSTANT: Final = (datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - _EPOCH) // _MICROSECOND


def parse_timestamp(text: str) -> int | None:
    """Microseconds since the epoch, or None when the text is not an RFC 3339 timestamp with 'T' and an
    offset, or names an instant outside the years 1 to 9999 in UTC.

    A timestamp is a date and time to the minute, two digits of seconds, then a fraction and an offset
    (the rest). The parts are independent: any valid minute goes with any second and any valid rest.
    Events come with the same few minutes and rests again and again, so those already checked are
    remembered with their values, and most timestamps are three lookups. Rests with a fraction finer
    than milliseconds are too many to remember; those timestamps are parsed in full. A rest moves an
    instant by less than a day, so only minutes two days or more inside the range are remembered: any
    mix of remembered parts is then inside it too, and the range is checked on full parses only."""
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
        if minute is not None and _SAFE_MINUTES[0] <= minute <= _SAFE_MINUTES[1]:
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
_SAFE_MINUTES: Final = (FIRST_INSTANT + 2 * _MICROS_PER_DAY, LAST_INSTANT - 2 * _MICROS_PER_DAY)


def _parse_timestamp(text: str) -> int | None:
    """datetime.fromisoformat does the parsing; the checks before it refuse what it accepts beyond
    RFC 3339 (a space for 'T', basic and week formats, a comma fraction, offsets without a colon)."""
    if (
        len(text) < 20
        or not text.isascii()  # RFC 3339 is ASCII; str.isdigit and fromisoformat take other digits too
        or text[10] != "T"
        or text[4] != "-"
        or text[7] != "-"
        or text[13] != ":"
        or text[16] != ":"
        or text[19] not in ".Z+-"
        or (text[19] == "." and not text[20:21].isdigit())
        or (text[-1] != "Z" and (text[-3] != ":" or text[-6] not in "+-"))
    ):
        return None
    try:
        moment = _fromisoformat(text)
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None
    micros = (moment - _EPOCH) // _MICROSECOND
    if micros < FIRST_INSTANT or micros > LAST_INSTANT:
        return None  # a valid local time whose offset takes it before year 1 or past year 9999 in UTC
    return micros


def timestamp_problem(text: str) -> str:
    """Why ``parse_timestamp`` refused the text, in words."""
    year = text[:4]
    if year.isascii() and year.isdigit() and _parse_timestamp(text) is None:
        # The same text in a year well inside the range (as leap as its own): valid then, only the
        # instant is out of range.
        probe = ("2000" if isleap(int(year)) else "2001") + text[4:]
        if _parse_timestamp(probe) is not None:
            return f"is outside the years 1 to 9999 in UTC: {text[:64]!r}"
    return f"is not an RFC 3339 timestamp with 'T' and an offset: {text[:64]!r}"


def json_bytes(value: object) -> bytes:
    """``value`` as JSON, in a bytes object of its own size, for values kept long (table records,
    journeys): orjson returns its output in the 4 KiB buffer it wrote it in, so a 200-byte record kept
    as orjson returned it holds 4 KiB."""
    return memoryview(orjson.dumps(value)).tobytes()


def format_timestamp(micros: int) -> str:
    """RFC 3339 in UTC, with microseconds only when there are any. Every integer has a text: those
    outside the years 1 to 9999 (which no event carries, but a due time may reach) get a year of more
    than four digits or a sign."""
    seconds, fraction = divmod(micros, _MICROS_PER_SECOND)
    if fraction:
        return f"{_format_seconds(seconds)}.{fraction:06d}Z"
    return f"{_format_seconds(seconds)}Z"


@lru_cache(maxsize=8192)
def _format_seconds(seconds: int) -> str:
    """Journeys format the same few seconds again and again (first and last times, outcomes)."""
    days, second = divmod(seconds, 86_400)
    year, month, day = _civil_date(days)
    hour, second = divmod(second, 3600)
    minute, second = divmod(second, 60)
    return f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"


def _civil_date(days: int) -> tuple[int, int, int]:
    """(year, month, day) of the proleptic Gregorian calendar, ``days`` after 1970-01-01 (any integer:
    whole 400-year eras of 146,097 days, then the year, month and day within the era)."""
    shifted = days + 719_468  # days since 0000-03-01, so that a leap day ends its year
    era, day_of_era = divmod(shifted, 146_097)
    year_of_era = (day_of_era - day_of_era // 1460 + day_of_era // 36_524 - day_of_era // 146_096) // 365
    day_of_year = day_of_era - (365 * year_of_era + year_of_era // 4 - year_of_era // 100)
    month_from_march = (5 * day_of_year + 2) // 153
    day = day_of_year - (153 * month_from_march + 2) // 5 + 1
    month = month_from_march + 3 if month_from_march < 10 else month_from_march - 9
    return year_of_era + era * 400 + (month <= 2), month, day


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
    """An input that is not a valid event, kept whole with why (``stage``: where an internal_error was)."""

    __slots__ = ("detail", "raw", "reason", "source", "stage")

    def __init__(self, reason: str, detail: str, raw: bytes, source: str, stage: str | None = None) -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.source = source
        self.stage = stage

    def __repr__(self) -> str:
        return f"Reject({self.reason}: {self.detail})"

    def record(self, **extra: object) -> dict:
        """A JSON-ready record: the raw input as text when it is UTF-8, else base64."""
        record: dict[str, object] = {"reason": self.reason, "detail": self.detail, "source": self.source}
        if self.stage is not None:
            record["stage"] = self.stage
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
        if value_type is not str or value not in _ACTORS:
            return WRONG_TYPE, f"field '{name}' must be {ACTOR}, not {value!r}"
    elif kind is BOOL:
        if value_type is not bool:
            return WRONG_TYPE, f"field '{name}' must be a boolean, not {_describe(value)}"
    elif kind is TIMESTAMP:
        if value_type is not str:
            return WRONG_TYPE, f"field '{name}' must be an RFC 3339 timestamp string, not {_describe(value)}"
        if parse_timestamp(value) is None:
            return BAD_TIMESTAMP, f"field '{name}' {timestamp_problem(value)}"
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


def _struct(event_type: str, exact: bool) -> type[msgspec.Struct]:
    """The event type's struct; ``exact`` refuses fields the type does not declare."""
    _, required, optional = _SCHEMA[event_type]
    fields = [(name, _ANNOTATIONS[kind]) for name, kind in required]
    fields += [(name, _ANNOTATIONS[kind] | None, None) for name, kind in optional]  # type: ignore[misc]
    name = "".join(part.capitalize() for part in event_type.replace(".", "_").split("_"))
    return msgspec.defstruct(
        name, fields, bases=(_Envelope,), tag=event_type, frozen=True, gc=False, forbid_unknown_fields=exact
    )


def _decoder(structs: dict[str, type[msgspec.Struct]]) -> msgspec.json.Decoder:
    return msgspec.json.Decoder(Union[tuple(structs.values())])  # type: ignore[arg-type]  # noqa: UP007


# Exact structs read every byte of what they accept (fields of the contract are scalars, so such an event
# is one level deep); with extra fields, msgspec skips over them without checking them, so the lenient
# structs are used only on inputs that orjson has read whole.
_EXACT: Final = {event_type: _struct(event_type, exact=True) for event_type in _SCHEMA}
_LENIENT: Final = {event_type: _struct(event_type, exact=False) for event_type in _SCHEMA}
_TYPE_OF: Final = {struct: event_type for structs in (_EXACT, _LENIENT) for event_type, struct in structs.items()}
_EXACT_DECODER: Final = _decoder(_EXACT)
_LENIENT_DECODER: Final = _decoder(_LENIENT)
_EXTRA_TIMESTAMPS: Final = {
    event_type: tuple(name for name, kind in required if kind is TIMESTAMP)
    for event_type, (_, required, _) in _SCHEMA.items()
    if any(kind is TIMESTAMP for _, kind in required)
}
_FAST_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)


def decode(raw: bytes, source: str, max_bytes: int = DEFAULT_MAX_BYTES, not_after: int | None = None) -> Event | Reject:
    """Decode one message or JSONL line. Never raises for bad input.

    ``not_after``: live, the wall clock plus ``max_future``; an event that occurred after it is refused
    as ``future_timestamp``, so that one wrong clock upstream cannot move the watermark (SPEC section 1).
    """
    if len(raw) > max_bytes:
        return Reject(TOO_LARGE, f"{len(raw)} bytes is more than the limit of {max_bytes}", raw, source)
    try:
        fields = _EXACT_DECODER.decode(raw)
    except _FAST_ERRORS:
        return _decode_read_whole(raw, source, not_after)
    event_type = _TYPE_OF[type(fields)]
    at = parse_timestamp(fields.occurred_at)  # type: ignore[attr-defined]
    if at is None or (event_type in _EXTRA_TIMESTAMPS and not _timestamps_valid(fields, event_type)):
        return _decode_read_whole(raw, source, not_after)
    if not_after is not None and at > not_after:
        return _from_the_future(fields.occurred_at, raw, source, not_after)  # type: ignore[attr-defined]
    return Event(fields, raw, event_type, at, event_type, source)


def _timestamps_valid(fields: msgspec.Struct, event_type: str) -> bool:
    return all(parse_timestamp(getattr(fields, name)) is not None for name in _EXTRA_TIMESTAMPS[event_type])


def _from_the_future(text: str, raw: bytes, source: str, not_after: int) -> Reject:
    return Reject(
        FUTURE_TIMESTAMP,
        f"field 'occurred_at' is {text[:64]!r}, more than max_future ahead of the clock "
        f"(accepted up to {format_timestamp(not_after)})",
        raw,
        source,
    )


def _decode_read_whole(raw: bytes, source: str, not_after: int | None) -> Event | Reject:
    """Everything the exact structs refused: orjson reads the whole input (the judge of valid JSON), then
    the nesting and the typed fields are checked."""
    unreadable = None
    try:
        data = orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            return Reject(NOT_UTF8, f"not UTF-8: byte {bad.start} is invalid", raw, source)
        unreadable = error
    if nesting_exceeds(raw, MAX_DEPTH):  # (orjson's own limit, 1,024 levels, says less)
        return Reject(MALFORMED_JSON, f"malformed JSON: nested deeper than {MAX_DEPTH} levels", raw, source)
    if unreadable is not None:
        return Reject(MALFORMED_JSON, f"malformed JSON: {unreadable}", raw, source)
    if type(data) is not dict:
        return Reject(NOT_OBJECT, f"an event is a JSON object, not {_describe(data)}", raw, source)
    try:
        fields = _LENIENT_DECODER.decode(raw)
    except _FAST_ERRORS:
        decoded = explain(data, raw, source)
    else:
        event_type = _TYPE_OF[type(fields)]
        at = parse_timestamp(fields.occurred_at)  # type: ignore[attr-defined]
        if at is None or (event_type in _EXTRA_TIMESTAMPS and not _timestamps_valid(fields, event_type)):
            decoded = explain(data, raw, source)
        else:
            decoded = Event(fields, raw, event_type, at, event_type, source)
    if type(decoded) is Event:
        decoded._data = data
        if not_after is not None and decoded.at > not_after:
            return _from_the_future(data["occurred_at"], raw, source, not_after)
    return decoded


def explain(data: dict, raw: bytes, source: str) -> Event | Reject:
    """Say exactly what is wrong with a JSON object that the typed structs refused, or accept an event of
    a type outside the contract."""
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
    # The table says it is valid, yet the typed structs refused it: say what msgspec said.
    try:
        _LENIENT_DECODER.decode(raw)
    except _FAST_ERRORS as error:
        return Reject(WRONG_TYPE, f"not a valid '{data['type']}' event: {error}", raw, source)
    return Reject(WRONG_TYPE, "not a valid event", raw, source)


# -- nesting ---------------------------------------------------------------------------------------------
# A string, or the rest of the input when one is never closed: each quote then starts at most one
# match, so the search is linear (a pattern that needs the closing quote retries from every quote of an
# unclosed string, and took hours over a megabyte of escaped quotes).
_JSON_STRING: Final = re.compile(rb'"(?:[^"\\]|\\.)*(?:"|\Z)', re.DOTALL)
_NOT_BRACKETS: Final = bytes(set(range(256)) - set(b"[]{}"))
_NESTING_STEP: Final = [0] * 256
for _byte in b"[{":
    _NESTING_STEP[_byte] = 1
for _byte in b"]}":
    _NESTING_STEP[_byte] = -1


def nesting_exceeds(raw: bytes, limit: int) -> bool:
    """Whether the JSON text nests arrays and objects deeper than ``limit``. Fewer brackets than that
    cannot (the usual case, two counts); else strings (which may hold brackets) are taken out and the
    depth followed over the brackets left, in C."""
    if raw.count(b"[") + raw.count(b"{") <= limit:
        return False
    brackets = _JSON_STRING.sub(b"", raw).translate(None, _NOT_BRACKETS)
    return max(accumulate(map(_NESTING_STEP.__getitem__, brackets)), default=0) > limit
