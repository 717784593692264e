"""Field kinds: the one registry of what a declared field may hold (docs/EVENTS.md).

Each kind says how a value is checked (with the words a rejected event's detail gives), the type the
decoder's structs hold it as, its type in CEL expressions, and a sample value for validating
expressions when the catalog loads. A kind is written in the catalog as its name (``string``,
``number``, ``number>=0``, ``boolean``, ``timestamp``) or as a list of the strings allowed.

Timestamps are checked in their source's time format (``rfc3339``, ``epoch_ms``, ``epoch_s``) and
held as RFC 3339 text in UTC whatever the format, so that the same event written in any shape gives
the same fields to the rules.
"""

from __future__ import annotations

from dataclasses import dataclass
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


@dataclass(frozen=True, eq=False)
class Kind:
    """One kind of field. ``allowed``: the strings a choice allows (empty for the other kinds). Kinds
    are compared by identity: the named ones are the constants below."""

    name: str
    annotation: Any  # the type of the decoder's struct field (after a timestamp is made RFC 3339)
    cel_type: Any
    samples: tuple[object, object]  # for expressions: booleans give one of each
    allowed: tuple[str, ...] = ()

    def __str__(self) -> str:
        return " or ".join(repr(value) for value in self.allowed) if self.allowed else self.name

    def read(self, value: object, label: str, time_format: str = RFC3339) -> object:
        """The value as the rules see it, or a ``Problem``; ``None`` means the field is absent.
        ``label`` names the field in a problem's detail, and where it was looked for ("field 'ts'
        (at /meta/ts)", "attribute 'time' (occurred_at)")."""
        if value is None:
            return MISSING_FIELD, f"{label} is missing"
        value_type = type(value)
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

#: The kinds written by name.
KINDS: Final = {kind.name: kind for kind in (STRING, NUMBER, NON_NEGATIVE, BOOLEAN, TIMESTAMP)}


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
