"""Field kinds: the one registry of what a declared field may hold (docs/EVENTS.md).

Each kind says how a value is checked (with the words a rejected event's detail gives), the type the
decoder's structs hold it as, its type in CEL expressions, and a sample value for validating
expressions when the catalog loads. A kind is written in the catalog as its name (``string``,
``number``, ``number>=0``, ``boolean``, ``timestamp``, ``date``) or as a list of the strings allowed.

Timestamps are checked in their source's time format (``rfc3339``, ``epoch_ms``, ``epoch_s``) and
held as RFC 3339 text in UTC whatever the format, so that the same event written in any shape gives
the same fields to the rules. Dates (a day of the calendar, no time) are checked in their date format
(``YYYY-MM-DD`` unless the declaration or its source says another, such as ``DD.MM.YYYY``) and held as
``YYYY-MM-DD`` text whatever the format; expressions see a date as the instant of its local midnight
in the catalog's time zone (``monitor.catalog.expressions``).
"""

from __future__ import annotations

import re
from contextlib import suppress
from dataclasses import dataclass
from datetime import date
from itertools import pairwise
from typing import Annotated, Any, Final, Literal

import msgspec
from cel_expr_python import cel

from ..events import (
    BAD_TIMESTAMP,
    FIRST_INSTANT,
    LAST_INSTANT,
    MISSING_FIELD,
    WRONG_TYPE,
    describe,
    format_timestamp,
    parse_timestamp,
    timestamp_problem,
)

RFC3339: Final = "rfc3339"
EPOCH_MS: Final = "epoch_ms"
EPOCH_S: Final = "epoch_s"
TIME_FORMATS: Final = (RFC3339, EPOCH_MS, EPOCH_S)
_MICROS_PER_UNIT: Final = {EPOCH_MS: 1000, EPOCH_S: 1_000_000}

Problem = tuple[str, str]  # (reject reason, detail)


def read_instant(value: object, label: str, time_format: str) -> int | Problem:
    """Microseconds since the epoch from a timestamp written in ``time_format``, or why not (``label``
    names the field in the detail: "field 'slot'")."""
    if time_format == RFC3339:
        if type(value) is not str:
            return WRONG_TYPE, f"{label} must be an RFC 3339 timestamp string, not {describe(value)}"
        at = parse_timestamp(value)
        return at if at is not None else (BAD_TIMESTAMP, f"{label} {timestamp_problem(value)}")
    value_type = type(value)
    if value_type is not int and value_type is not float:
        return WRONG_TYPE, f"{label} must be a number ({time_format}), not {describe(value)}"
    at = round(value * _MICROS_PER_UNIT[time_format])  # type: ignore[operator]
    if not FIRST_INSTANT <= at <= LAST_INSTANT:
        return BAD_TIMESTAMP, f"{label} is {value}, outside the years 1 to 9999 in UTC ({time_format})"
    return at


ISO_DATE: Final = "YYYY-MM-DD"
_DATE_TOKENS = re.compile(r"YYYY|MM|DD|[-./ ]")
_DATE_DIGITS: Final = {"YYYY": r"(?P<year>[0-9]{4})", "MM": r"(?P<month>[0-9]{2})", "DD": r"(?P<day>[0-9]{2})"}
_REMEMBERED_DATES: Final = 4096


class DateFormat:
    """How a source writes dates: ``YYYY``, ``MM`` and ``DD``, each once, with ``-``, ``.``, ``/`` or a
    space (or nothing) between them: ``YYYY-MM-DD``, ``DD.MM.YYYY``, ``MM/DD/YYYY``, ``YYYYMMDD``.
    Each part has exactly its number of digits. Raises ValueError with why, when built from a format
    that is none of these."""

    __slots__ = ("_pattern", "_read", "text")

    def __init__(self, text: object) -> None:
        written = text if isinstance(text, str) else ""
        tokens = _DATE_TOKENS.findall(written)
        parts = [token for token in tokens if token in _DATE_DIGITS]
        separated = all(a in _DATE_DIGITS or b in _DATE_DIGITS for a, b in pairwise(tokens))
        ends = bool(tokens) and tokens[0] in _DATE_DIGITS and tokens[-1] in _DATE_DIGITS
        if "".join(tokens) != written or sorted(parts) != ["DD", "MM", "YYYY"] or not separated or not ends:
            raise ValueError(
                "must be a date format of YYYY, MM and DD, each once, with '-', '.', '/', ' ' or nothing "
                f"between them (YYYY-MM-DD, DD.MM.YYYY, MM/DD/YYYY, YYYYMMDD), not {text!r}"
            )
        self.text = written
        self._pattern = re.compile("".join(_DATE_DIGITS.get(t, re.escape(t)) for t in tokens) + r"\Z")
        self._read: dict[str, str | None] = {}  # dates recur: each text read once (a bounded memory)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DateFormat) and other.text == self.text

    def __hash__(self) -> int:
        return hash(self.text)

    def __repr__(self) -> str:
        return f"DateFormat({self.text!r})"

    def iso(self, text: str) -> str | None:
        """The date written ``YYYY-MM-DD``, or None when the text is not a day of the calendar written
        in this format."""
        found = self._read.get(text, False)
        if found is not False:
            return found  # type: ignore[return-value]
        match = self._pattern.match(text)
        iso = None
        if match is not None:
            with suppress(ValueError):  # a day that does not exist: 2027-02-30
                iso = date(int(match["year"]), int(match["month"]), int(match["day"])).isoformat()
        if len(self._read) >= _REMEMBERED_DATES:
            self._read.clear()
        self._read[text] = iso
        return iso

    def read(self, value: object, label: str) -> str | Problem:
        if type(value) is not str:
            return WRONG_TYPE, f"{label} must be a date written {self.text}, not {describe(value)}"
        iso = self.iso(value)
        if iso is not None:
            return iso
        if self._pattern.match(value):
            return WRONG_TYPE, f"{label} is {value[:64]!r}, a day that does not exist (a date written {self.text})"
        return WRONG_TYPE, f"{label} must be a date written {self.text}, not {value[:64]!r}"

    def write(self, day: date) -> str:
        text = self.text.replace("YYYY", f"{day.year:04d}").replace("MM", f"{day.month:02d}")
        return text.replace("DD", f"{day.day:02d}")


@dataclass(frozen=True, eq=False)
class Kind:
    """One kind of field. ``allowed``: the strings a choice allows (empty for the other kinds). Kinds
    are compared by identity: the named ones are the constants below."""

    name: str
    annotation: Any  # the type of the decoder's struct field (after a timestamp is made RFC 3339)
    cel_type: Any
    samples: tuple[object, object]  # for expressions: booleans give one of each
    allowed: tuple[str, ...] = ()
    date_format: DateFormat | None = None  # how a date is written (dates only)

    def __str__(self) -> str:
        return " or ".join(repr(value) for value in self.allowed) if self.allowed else self.name

    def read(self, value: object, label: str, time_format: str = RFC3339) -> object:
        """The value as the rules see it, or a ``Problem``; ``None`` means the field is absent.
        ``label`` names the field in a problem's detail, and where it was looked for ("field 'ts'
        (at /meta/ts)", "attribute 'time' (occurred_at)")."""
        if value is None:
            return MISSING_FIELD, f"{label} is missing"
        value_type = type(value)
        if self.date_format is not None:
            return self.date_format.read(value, label)
        if self is TIMESTAMP:
            at = read_instant(value, label, time_format)
            if type(at) is tuple:
                return at
            return value if time_format == RFC3339 else format_timestamp(at)  # type: ignore[arg-type]
        if self.allowed:
            if value_type is not str or value not in self.allowed:
                return WRONG_TYPE, f"{label} must be {self}, not {value!r}"
        elif self is STRING:
            if value_type is not str:
                return WRONG_TYPE, f"{label} must be a string, not {describe(value)}"
            if not value:
                return MISSING_FIELD, f"{label} is empty"
        elif self is NUMBER or self is NON_NEGATIVE:
            if value_type is not int and value_type is not float:
                return WRONG_TYPE, f"{label} must be a number, not {describe(value)}"
            if self is NON_NEGATIVE and value < 0:  # type: ignore[operator]
                return WRONG_TYPE, f"{label} must be a number >= 0, not {value}"
        elif self is BOOLEAN and value_type is not bool:
            return WRONG_TYPE, f"{label} must be a boolean, not {describe(value)}"
        return value


_NON_EMPTY = Annotated[str, msgspec.Meta(min_length=1)]

STRING: Final = Kind("string", _NON_EMPTY, cel.Type.STRING, ("x", "x"))
# msgspec takes JSON integers for floats and refuses booleans; CEL sees numbers as dyn, so that
# `wait_seconds <= 60` reads as written.
NUMBER: Final = Kind("number", float, cel.Type.DYN, (1, 1))
NON_NEGATIVE: Final = Kind("number>=0", Annotated[float, msgspec.Meta(ge=0)], cel.Type.DYN, (1, 1))
BOOLEAN: Final = Kind("boolean", bool, cel.Type.BOOL, (True, False))
# Held as text, checked by parse_timestamp (stricter than msgspec's datetime); a CEL timestamp.
TIMESTAMP: Final = Kind("timestamp", str, cel.Type.TIMESTAMP, ("2026-01-01T00:00:00Z", "2026-01-01T00:00:00Z"))


def date_kind(written: DateFormat) -> Kind:
    """The kind of a field that holds a date written in ``written`` (held as ``YYYY-MM-DD`` text); in
    expressions, the timestamp of its local midnight."""
    samples = (written.write(date(2026, 1, 1)), written.write(date(2026, 7, 1)))
    return Kind("date", str, cel.Type.TIMESTAMP, samples, date_format=written)


#: A date written YYYY-MM-DD, unless its declaration or its source says another format.
DATE: Final = date_kind(DateFormat(ISO_DATE))

#: The kinds written by name.
KINDS: Final = {kind.name: kind for kind in (STRING, NUMBER, NON_NEGATIVE, BOOLEAN, TIMESTAMP, DATE)}


def choice(allowed: tuple[str, ...]) -> Kind:
    """The kind of a field that holds one of the ``allowed`` strings."""
    return Kind("choice", Literal[allowed], cel.Type.STRING, (allowed[0], allowed[0]), allowed)  # type: ignore[valid-type]


def kind_of(written: object) -> Kind | str:
    """The kind a declaration writes (a name, or a list of allowed strings), or why it is none."""
    if isinstance(written, str):
        kind = KINDS.get(written.strip())
        if kind is None:
            return f"{written!r} is not a kind; the kinds are {', '.join(KINDS)}, or a list of allowed strings"
        return kind
    if isinstance(written, list):
        if not written or not all(isinstance(value, str) and value for value in written):
            return "a list of allowed values must hold one or more non-empty strings"
        if len(set(written)) != len(written):
            return "a list of allowed values names a value twice"
        return choice(tuple(written))
    return f"a kind is a name ({', '.join(KINDS)}) or a list of allowed strings, not {written!r}"
