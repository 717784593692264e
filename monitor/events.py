"""Operational events (docs/EVENTS.md): what a valid event and a refused input are, and instants.

The contract itself (the sources, the types and their fields) is data in the catalog, and the decoder
is compiled from it (``monitor.contract``). Here: ``Event``, a valid event that keeps the bytes it came
as (extra fields are never lost, journeys embed them as they came, and ``Event.data`` parses them on
demand); ``Reject``, an input that is not a valid event, with a bounded reason, a detail and the raw
bytes, so it can be counted and kept whole; and the timestamps.

Instants are integers of microseconds since the epoch, from year 1 to year 9999 in UTC: a timestamp
outside that range is refused, so every instant an event carries can be written back as RFC 3339.
"""

from __future__ import annotations

import re
from calendar import isleap
from datetime import UTC, datetime, timedelta
from itertools import accumulate
from typing import Final

import msgspec
import orjson

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
# live: older than the ids the worker still remembers, so it could not be told from one already judged
TOO_OLD: Final = "too_old"
#: Not a rejection: an event a touchpoint's rule could not judge (the others judged it), kept whole with
#: the touchpoint and the message beside the rejects (replay --rejects, the dead letters).
RULE_ERROR: Final = "rule_error"
REJECT_REASONS: Final = (
    NOT_UTF8,
    MALFORMED_JSON,
    NOT_OBJECT,
    MISSING_FIELD,
    WRONG_TYPE,
    BAD_TIMESTAMP,
    TOO_LARGE,
    FUTURE_TIMESTAMP,
    TOO_OLD,
    INTERNAL_ERROR,
)

#: Inputs larger than this are rejected before parsing (Kafka's own default message limit).
DEFAULT_MAX_BYTES: Final = 1_048_576
#: JSON nested deeper than this is malformed_json: every reader of an event's bytes (journeys, CEL's
#: ``event``) can then parse it, with room for the levels a journey record adds around it.
MAX_DEPTH: Final = 100

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

    A timestamp is a date and hour, minutes and seconds, then a fraction and an offset (the rest). The
    parts are independent: any valid hour goes with any minute and second and any valid rest. Events
    come with the same few hours and rests again and again, so those already checked are remembered
    with their values, and most timestamps are three lookups (the minutes and seconds are a table).
    Rests with a fraction finer than milliseconds are too many to remember; those timestamps are parsed
    in full. A rest moves an instant by less than a day, so only hours two days or more inside the
    range are remembered: any mix of remembered parts is then inside it too, and the range is checked
    on full parses only."""
    rest = _RESTS.get(text[19:])  # (a fraction finer than milliseconds is never remembered)
    if rest is not None:
        try:
            return rest + _HOURS_SEEN[text[:14]] + _MINUTES_SECONDS_IN[text[14:19]]
        except KeyError:
            pass
    if len(text) - (1 if text[-1:] == "Z" else 6) > _REMEMBERED_UP_TO:
        return _parse_timestamp(text)  # finer than milliseconds
    micros = _parse_timestamp(text)
    if micros is not None:
        hour = _parse_timestamp(text[:14] + "00:00Z")
        if hour is not None and _SAFE_HOURS[0] <= hour <= _SAFE_HOURS[1]:
            if len(_HOURS_SEEN) >= _REMEMBERED:
                _HOURS_SEEN.clear()
            if len(_RESTS) >= _REMEMBERED:
                _RESTS.clear()
            _HOURS_SEEN[text[:14]] = hour
            _RESTS[text[19:]] = micros - hour - _MINUTES_SECONDS_IN[text[14:19]]
    return micros


_HOURS_SEEN: dict[str, int] = {}  # "2026-11-22T10:" -> its microseconds, as UTC
_RESTS: dict[str, int] = {}  # ".250+01:00" -> microseconds to add: the fraction less the offset
_REMEMBERED: Final = 65_536  # hours (7 years of them), or rests (1,000 fractions x the offsets in use)
_REMEMBERED_UP_TO: Final = len("2026-11-22T10:00:00.250")  # without the offset
_SAFE_HOURS: Final = (FIRST_INSTANT + 2 * _MICROS_PER_DAY, LAST_INSTANT - 2 * _MICROS_PER_DAY)


def forget_remembered() -> None:
    """Empty what is remembered to read and write timestamps (the hours, rests and dates seen); it
    fills again from the next events. A worker empties it at each sweep: the entries of a busy hour are
    small objects scattered over the allocator's arenas, and a few of them left in an arena keep it all
    from the system once the worker is quiet (docs/PERFORMANCE.md)."""
    _HOURS_SEEN.clear()
    _RESTS.clear()
    _DATES.clear()


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
    days, second = divmod(seconds, 86_400)
    date = _DATES.get(days) or _date_text(days)
    hour, second = divmod(second, 3_600)
    if fraction:
        return f"{date}{_HOURS[hour]}{_MINUTES_SECONDS[second]}.{fraction:06d}Z"
    return f"{date}{_HOURS[hour]}{_MINUTES_SECONDS[second]}Z"


# The time of day's texts, built once: journeys write the same instants again and again, and a cache of
# whole timestamps (an LRU of seconds) renewed its entries as time went on, each a few small objects
# that outlived the busy hour they were made in and kept its memory from the system (docs/PERFORMANCE.md).
_HOURS: Final = tuple(f"T{hour:02d}:" for hour in range(24))
_TWO_DIGITS: Final = tuple(f"{number:02d}" for number in range(60))
_MINUTES_SECONDS: Final = tuple(f"{minute}:{second}" for minute in _TWO_DIGITS for second in _TWO_DIGITS)
#: "MM:SS" -> microseconds into the hour, for ``parse_timestamp`` (a leap second's 60 is refused, as
#: fromisoformat refuses it)
_MINUTES_SECONDS_IN: Final = {text: second * _MICROS_PER_SECOND for second, text in enumerate(_MINUTES_SECONDS)}
#: The dates written so far ("2026-11-18"), by day since the epoch: one more a day of event time.
_DATES: dict[int, str] = {}
_DATES_KEPT: Final = 4_096


def _date_text(days: int) -> str:
    """The date ``days`` after 1970-01-01 as RFC 3339 writes it, remembered (all are forgotten once
    ``_DATES_KEPT`` are, as a file of centuries could ask for)."""
    year, month, day = _civil_date(days)
    text = f"{year:04d}-{month:02d}-{day:02d}"
    if len(_DATES) >= _DATES_KEPT:
        _DATES.clear()
    _DATES[days] = text
    return text


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
    bytes it came as, ``data`` every field as a dict in the contract's shape, extras included (given by
    the decoder when it has it, else parsed from ``raw`` on first use).
    """

    __slots__ = ("_data", "at", "customer", "fields", "id", "kind", "raw", "source", "type")

    def __init__(
        self,
        fields: msgspec.Struct,
        raw: bytes,
        event_type: str,
        at: int,
        kind: str,
        source: str,
        data: dict | None = None,
    ) -> None:
        self.fields = fields
        self.raw = raw
        self.id: str = fields.event_id  # type: ignore[attr-defined]
        self.type = event_type
        self.customer: str = fields.customer_id  # type: ignore[attr-defined]
        self.at = at  # occurred_at, microseconds since the epoch
        self.kind = kind  # the type, or "other" when the type is not in the contract
        self.source = source
        self._data = data

    @property
    def data(self) -> dict:
        if self._data is None:
            self._data = orjson.loads(self.raw)
        return self._data

    def __repr__(self) -> str:
        return f"Event({self.type} {self.id} customer={self.customer} at={format_timestamp(self.at)})"


class Reject:
    """An input that is not a valid event, kept whole with why (``stage``: where an internal_error was;
    ``touchpoint`` and ``message``: a rule_error's)."""

    __slots__ = ("detail", "message", "raw", "reason", "source", "stage", "touchpoint")

    def __init__(
        self,
        reason: str,
        detail: str,
        raw: bytes,
        source: str,
        stage: str | None = None,
        touchpoint: str | None = None,
        message: str | None = None,
    ) -> None:
        self.reason = reason
        self.detail = detail
        self.raw = raw
        self.source = source
        self.stage = stage
        self.touchpoint = touchpoint
        self.message = message

    def __repr__(self) -> str:
        return f"Reject({self.reason}: {self.detail})"

    def record(self, **extra: object) -> dict:
        """A JSON-ready record: the raw input as text when it is UTF-8, else base64."""
        record: dict[str, object] = {"reason": self.reason, "detail": self.detail, "source": self.source}
        if self.stage is not None:
            record["stage"] = self.stage
        if self.touchpoint is not None:
            record["touchpoint"] = self.touchpoint
            record["message"] = self.message
        record.update(extra)
        try:
            record["raw"] = self.raw.decode("utf-8")
        except UnicodeDecodeError:
            import base64

            record["raw_base64"] = base64.b64encode(self.raw).decode("ascii")
        return record


def describe(value: object) -> str:
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
