"""Conditions and filters in CEL (Common Expression Language), compiled once when the catalog loads.

Expressions see every field of the contract as a typed variable (``amount``, ``wait_seconds``,
``resolved``, ``occurred_at``...), the event's type as ``event_type`` and the whole event, extra fields
included, as the map ``event``. Numbers are ``dyn`` so that ``wait_seconds <= 60`` reads as written;
timestamps are CEL timestamps, so ``occurred_at <= promised_at`` compares instants, not strings.
A date is the timestamp of its local midnight in the catalog's time zone, and three functions count in
that zone's calendar days, whatever its changes of the clocks: ``date_of(t)`` (the local midnight that
starts t's day: its date), ``days_between(a, b)`` (the calendar days from a's date to b's) and
``add_days(t, n)`` (the same local time n days later).

An evaluation binds only the variables the expression names, and remembers recent results by their
values: the same inputs give the same answer, and the C++ evaluator is the costly step.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from operator import attrgetter
from zoneinfo import ZoneInfo

from cel_expr_python import cel

from ..contract.kinds import TIMESTAMP, Kind
from ..contract.model import COMMON, Contract
from ..events import Event

EVENT_TYPE = "event_type"
WHOLE_EVENT = "event"
_DYN = Kind("dyn", object, cel.Type.DYN, (None, None))


def _one_type(uses: list[tuple[str, Kind]]) -> bool:
    """Whether a name has one type in expressions (a date and a timestamp are both timestamps there,
    but read differently: they do not merge)."""
    first = uses[0][1]
    return all(
        kind.cel_type == first.cel_type and bool(kind.date_format) == bool(first.date_format) for _, kind in uses
    )


_MIDNIGHTS_REMEMBERED = 4096


class Dates:
    """Dates and days in one time zone: what the date functions of expressions do, and how a date
    field becomes the instant of its local midnight. A local midnight that does not exist (a zone
    whose clocks go forward at midnight) is the first instant of that day."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self._midnights: dict[str, datetime] = {}

    def midnight(self, iso: str) -> datetime:
        """The instant a date (``YYYY-MM-DD``, as the decoder holds it) starts."""
        found = self._midnights.get(iso)
        if found is None:
            if len(self._midnights) >= _MIDNIGHTS_REMEMBERED:
                self._midnights.clear()
            found = self._midnights[iso] = self._start(date.fromisoformat(iso))
        return found

    def _start(self, day: date) -> datetime:
        return datetime.combine(day, time(), tzinfo=self.zone).astimezone(UTC)

    def date_of(self, instant: datetime) -> datetime:
        return self._start(instant.astimezone(self.zone).date())

    def days_between(self, first: datetime, second: datetime) -> int:
        zone = self.zone
        return (second.astimezone(zone).date() - first.astimezone(zone).date()).days

    def add_days(self, instant: datetime, days: int) -> datetime:
        local = instant.astimezone(self.zone)
        later = datetime.combine(local.date() + timedelta(days=days), local.timetz().replace(tzinfo=None))
        return later.replace(tzinfo=self.zone, fold=local.fold).astimezone(UTC)

    def extension(self) -> cel.CelExtension:
        timestamp, integer = cel.Type.TIMESTAMP, cel.Type.INT

        def function(name: str, returns: cel.Type, parameters: list, impl: Callable) -> cel.FunctionDecl:
            overload = f"{name}_{'_'.join(p.name().lower() for p in parameters)}"
            return cel.FunctionDecl(name, [cel.Overload(overload, returns, parameters, impl=impl)])

        return cel.CelExtension(
            "tpmon.dates",
            [
                function("date_of", timestamp, [timestamp], self.date_of),
                function("days_between", integer, [timestamp, timestamp], self.days_between),
                function("add_days", timestamp, [timestamp, integer], self.add_days),
            ],
        )


class Environment:
    """The variables expressions see, from a catalog's contract: each declared field (and the fields
    every event has, but ``type``, a CEL keyword: expressions use ``event_type``), the type, and the
    whole event. A field name declared with two kinds on two types is ``dyn`` (``conflicts`` says
    which, so that validation warns: the names do not merge silently). Dates and days are those of
    ``zone``, the catalog's time zone."""

    def __init__(self, contract: Contract, zone: ZoneInfo | None = None) -> None:
        kinds: dict[str, Kind] = {}
        seen: dict[str, list[tuple[str, Kind]]] = {}
        for declared in sorted(contract.events, key=lambda d: d.type):
            for name, kind in contract.fields_of(declared.type).items():
                seen.setdefault(name, []).append((declared.type, kind))
        self.conflicts = {name: uses for name, uses in seen.items() if not _one_type(uses)}
        for name, uses in seen.items():
            kinds[name] = _DYN if name in self.conflicts else uses[0][1]
        for name, kind in COMMON:
            kinds.setdefault(name, kind)
        del kinds["type"]
        self.kinds = kinds
        self.variables = frozenset(kinds) | {EVENT_TYPE, WHOLE_EVENT}
        self.dates = Dates(zone or ZoneInfo("UTC"))
        self.env = cel.NewEnv(
            variables={
                **{name: kind.cel_type for name, kind in kinds.items()},
                EVENT_TYPE: cel.Type.STRING,
                WHOLE_EVENT: cel.Type.Map(cel.Type.STRING, cel.Type.DYN),
            },
            extensions=[self.dates.extension()],
        )


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _micros(moment: datetime) -> int:
    """Microseconds since the epoch, exactly (a float timestamp would round)."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


_STRINGS = re.compile(r"""(?:[rRbB]{0,2})("(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*')""")
_IDENTIFIER = re.compile(r"(?<![.\w])([A-Za-z_]\w*)")
_MEMO_LIMIT = 4096


class ExpressionError(ValueError):
    """The text is not a valid CEL expression for this catalog; the message is CEL's, without noise."""


_UNBOUND = re.compile(r'No value with name "(\w+)" found in Activation')
#: The instants whose comparison by the evaluator is known to be exact, and is done without it: from
#: 1970 to 2^31 seconds after. The evaluator reads an instant through a float of seconds, which at
#: year 2973 already holds 20:59:59.999999 as 21:00:00 and so puts it after 21:00:00; here a float of
#: seconds is finer than a quarter of a microsecond, and the second of a microsecond never rounds up.
_EXACT_FROM = datetime(1970, 1, 1, tzinfo=UTC)
_EXACT_UNTIL = datetime(2038, 1, 19, 3, 14, 8, tzinfo=UTC)
#: Two variables compared: ``occurred_at <= promised_at``.
_COMPARISON = re.compile(r"\s*([A-Za-z_]\w*)\s*(<=|>=|<|>|==|!=)\s*([A-Za-z_]\w*)\s*")
_COMPARE = {
    "<=": operator.le,
    ">=": operator.ge,
    "<": operator.lt,
    ">": operator.gt,
    "==": operator.eq,
    "!=": operator.ne,
}


def _clean(message: str) -> str:
    """CEL's message without its status codes, on one line."""
    text = message.replace("INVALID_ARGUMENT: ", "").replace(" [INVALID_ARGUMENT]", "").replace("UNKNOWN: ", "")
    text = _UNBOUND.sub(r"the event has no field '\1'", text)
    text = text.replace("ERROR: <input>:", "at ").replace(" (in container '')", "")
    return text.strip().splitlines()[0] if text.strip() else "evaluation failed"


#: The failures on sample events (values of the declared kinds) that say something of the expression
#: itself: a field the type does not carry, values of kinds no function takes (numbers are dyn, so
#: only evaluation sees ``amount + 1``, a double and an int), a result that is not what is wanted.
MISSING = "the event has no field"
_TYPE_FAILURES = (MISSING, "No matching overloads", "Applying SELECT to non-message", "gave ")


def type_failure(message: str) -> bool:
    """Whether a failure on sample events is the expression's own. Any other (a string that is no
    timestamp, a key absent from ``event``, a division by zero) depends on an event's values, which
    samples cannot stand for: a valid expression never fails validation for them."""
    return message.startswith(_TYPE_FAILURES)


def _referenced(text: str, variables: frozenset[str]) -> tuple[str, ...]:
    """The variables an expression names (an over-approximation is harmless: it only binds more)."""
    without_strings = _STRINGS.sub('""', text)
    names = {match.group(1) for match in _IDENTIFIER.finditer(without_strings)}
    return tuple(sorted(names & variables))


class Expression:
    """A compiled CEL expression that judges one event: True, False, or None with ``last_error`` set."""

    __slots__ = (
        "_compared",
        "_compiled",
        "_dates",
        "_key",
        "_keys",
        "_memo",
        "_midnight",
        "_partial",
        "_timestamps",
        "_wanted",
        "last_error",
        "text",
        "variables",
    )

    def __init__(self, text: str, environment: Environment, instant: bool = False) -> None:
        """``instant``: the expression gives a timestamp (a deadline's ``due:``), judged as microseconds
        since the epoch, rather than true or false."""
        try:
            self._compiled = environment.env.compile(text)
        except RuntimeError as error:
            raise ExpressionError(_clean(str(error))) from None
        returns = self._compiled.return_type()
        self._wanted = cel.Type.TIMESTAMP if instant else cel.Type.BOOL
        if returns != self._wanted and returns != cel.Type.DYN:
            wanted = "give a timestamp" if instant else "be true or false"
            raise ExpressionError(f"must {wanted}, but it gives a value of type {returns.name().lower()}")
        self.text = text
        self.variables = _referenced(text, environment.variables)
        # The fields behind the variables, read in one call for the memo's key (with the event's type).
        self._keys = tuple(name for name in self.variables if name not in (EVENT_TYPE, WHOLE_EVENT))
        self._key = attrgetter(*self._keys) if self._keys else None
        # The classes of fields (a struct per type) found without one of those fields: every struct of
        # a class has the same fields, so theirs are read one by one at once (an exception raised and
        # caught costs more than the evaluation it leads to, when the result is remembered).
        self._partial: set[type] = set()
        self._timestamps = frozenset(v for v in self.variables if environment.kinds.get(v) is TIMESTAMP)
        self._dates = frozenset(v for v in self.variables if getattr(environment.kinds.get(v), "date_format", None))
        self._midnight = environment.dates.midnight
        # Two timestamps compared (``occurred_at <= promised_at``): their instants are compared here, as
        # the evaluator would compare them, without a call of the evaluator (each event has instants of
        # its own: the memo seldom finds one); (left, comparison, right), else None.
        self._compared = None
        comparison = None if instant else _COMPARISON.fullmatch(text)
        if comparison is not None and {comparison[1], comparison[3]} <= self._timestamps:
            self._compared = (comparison[1], _COMPARE[comparison[2]], comparison[3])
        # Results by input values; the whole-event map is not hashable, so it is never remembered.
        self._memo: dict[tuple, tuple[bool | None, str]] | None = None if WHOLE_EVENT in self.variables else {}
        self.last_error = ""

    def __repr__(self) -> str:
        return f"Expression({self.text!r})"

    def __call__(self, event: Event) -> bool | None:
        """Judge an event. None means it could not be evaluated (see ``last_error``)."""
        memo = self._memo
        if memo is None:
            result, self.last_error = self._evaluate(event)
            return result
        # Remembered variables are fields of the contract, whose kinds the decoder has checked, so the
        # values alone are a sound key (1 and True never meet in one field; 1 == 1.0 in CEL as in Python).
        if self._key is None:
            key = event.type
        else:
            fields = event.fields
            if type(fields) in self._partial:  # (known to lack one: read without raising again)
                key = (event.type, tuple(getattr(fields, name, None) for name in self._keys))
            else:
                try:
                    key = (event.type, self._key(fields))
                except AttributeError:  # a field this event's type does not carry
                    key = (event.type, tuple(getattr(fields, name, None) for name in self._keys))
                    self._partial.add(type(fields))
        found = memo.get(key)
        if found is None:
            if len(memo) >= _MEMO_LIMIT:
                memo.clear()
            found = memo[key] = self._evaluate(event)
        self.last_error = found[1]
        return found[0]

    def _evaluate(self, event: Event) -> tuple[bool | None, str]:
        """(verdict, ""), or (None, why): an expression that cannot judge an event's values is a rule
        error of that event, whatever the evaluator raised (a value it cannot hold, say)."""
        try:
            if self._compared is not None:
                verdict = self._compare_instants(event)
                if verdict is not None:
                    return verdict, ""
            return self._evaluate_values(event)
        except Exception as error:
            return None, f"could not be evaluated: {type(error).__name__}: {_clean(str(error))}"

    def _compare_instants(self, event: Event) -> bool | None:
        """Two timestamps compared (``_compared``) as the evaluator compares them: the same values bound
        (``datetime.fromisoformat`` of each field), compared as instants. None when either is absent,
        null, not a timestamp, without an offset or outside the years the evaluator is known to compare
        exactly: the evaluator then says what it says."""
        left, compare, right = self._compared  # type: ignore[misc]
        fields = event.fields
        first, second = getattr(fields, left, None), getattr(fields, right, None)
        if type(first) is not str or type(second) is not str:
            return None
        try:
            first, second = datetime.fromisoformat(first), datetime.fromisoformat(second)
        except ValueError:
            return None
        if first.tzinfo is None or second.tzinfo is None:
            return None
        if not (_EXACT_FROM <= first < _EXACT_UNTIL and _EXACT_FROM <= second < _EXACT_UNTIL):
            return None
        return compare(first, second)

    def _evaluate_values(self, event: Event) -> tuple[bool | None, str]:
        bindings: dict[str, object] = {}
        fields = event.fields
        for name in self.variables:
            if name == WHOLE_EVENT:
                bindings[name] = event.data
            elif name == EVENT_TYPE:
                bindings[name] = event.type
            elif hasattr(fields, name):
                value = getattr(fields, name)
                if value is None:
                    continue  # an optional field that is absent
                if name in self._timestamps:
                    try:
                        value = datetime.fromisoformat(value)
                    except (TypeError, ValueError):
                        return None, f"'{name}' is not a timestamp: {value!r}"
                elif name in self._dates:
                    try:
                        value = self._midnight(value)
                    except (TypeError, ValueError):
                        return None, f"'{name}' is not a date: {value!r}"
                bindings[name] = value
        result = self._compiled.eval(data=bindings)
        value = result.value()
        if self._wanted == cel.Type.TIMESTAMP:
            if isinstance(value, datetime) and value.tzinfo is not None:
                return _micros(value), ""  # type: ignore[return-value]
        elif type(value) is bool:
            return value, ""
        if result.type() == cel.Type.ERROR:
            return None, _clean(str(value))
        return None, f"gave {value!r}, not {'a timestamp' if self._wanted == cel.Type.TIMESTAMP else 'true or false'}"
