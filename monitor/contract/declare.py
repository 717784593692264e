"""Read the declarations of a catalog's files into a ``Contract``, saying every problem with its path.

Any catalog file may hold ``sources``, ``events``, ``customers`` and ``surveys`` (docs/EVENTS.md);
together they are one contract. A type is declared once, in one source; a source once; ``customers``
and ``surveys`` once.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from ..durations import parse_duration
from .kinds import ISO_DATE, KINDS, STRING, TIME_FORMATS, DateFormat, date_kind, kind_of
from .model import (
    COMMON,
    COMMON_NAMES,
    DEFAULT_SILENT_AFTER,
    FORMATS,
    Contract,
    Declaration,
    Field,
    Source,
    default_pointer,
    parse_pointer,
)
from .story import compile_template

Path_ = tuple[str | int, ...]
Say = Callable[[Path_, str], None]  # (path in the file, message): an error

NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
TYPE = re.compile(r"^[A-Za-z0-9_-]+(?:\.[A-Za-z0-9_-]+)*$")
SOURCE = re.compile(r"^[A-Za-z0-9._-]+$")  # a Kafka topic's characters
#: Names an expression cannot use for a field: CEL's reserved words, and the two variables of ours.
RESERVED = frozenset(
    [
        "as",
        "break",
        "const",
        "continue",
        "else",
        "false",
        "for",
        "function",
        "if",
        "import",
        "in",
        "let",
        "loop",
        "package",
        "namespace",
        "null",
        "return",
        "true",
        "var",
        "void",
        "while",
        "event",
        "event_type",
    ]
)
SOURCE_KEYS = ("name", "format", "time", "date", "fields", "silent_after", "calendar")
FIELD_KEYS = ("kind", "at", "format", "personal")
EVENT_KEYS = ("type", "source", "fields", "optional", "story")
CUSTOMER_KEYS = ("joined", "left")


def _hint(word: str, choices: list[str] | tuple[str, ...]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f"; did you mean '{close[0]}'?" if close else ""


def _unknown_keys(say: Say, path: Path_, data: dict, allowed: tuple[str, ...]) -> None:
    for key in data:
        if key not in allowed:
            hint = _hint(key, allowed) or f"; allowed here: {', '.join(allowed)}"
            say((*path, key), f"is not a field{hint}")


@dataclass
class Declarations:
    """Collects the declarations of every file, then checks what needs them all (``contract``)."""

    sources: dict[str, tuple[Source, Say, Path_]] = field(default_factory=dict)
    events: dict[str, tuple[Declaration, Say, Path_, str]] = field(default_factory=dict)  # + where written
    customers: tuple[dict, Say, Path_] | None = None
    surveys: tuple[list, Say, Path_] | None = None  # the types that are customers' answers to surveys
    where: dict[tuple[str, str], str] = field(default_factory=dict)  # (section, name) -> file:line

    def read(self, data: dict, say: Say, where: Callable[[Path_], str]) -> None:
        """One catalog file's ``sources``, ``events`` and ``customers``."""
        for index, raw in enumerate(_items(data, "sources", say)):
            self._source(raw, ("sources", index), say, where)
        for index, raw in enumerate(_items(data, "events", say)):
            self._event(raw, ("events", index), say, where)
        customers = data.get("customers")
        if customers is not None:
            path: Path_ = ("customers",)
            if not isinstance(customers, dict):
                say(path, "must be a mapping: joined: [types], left: [types]")
            elif self.customers is not None:
                say(path, f"is already set at {self.where['customers', '']}")
            else:
                _unknown_keys(say, path, customers, CUSTOMER_KEYS)
                self.customers = (customers, say, path)
                self.where["customers", ""] = where(path)
        surveys = data.get("surveys")
        if surveys is not None:
            path = ("surveys",)
            if isinstance(surveys, str):
                surveys = [surveys]
            if not isinstance(surveys, list) or not all(isinstance(t, str) for t in surveys):
                say(path, "must be a list of event types (the answers to surveys)")
            elif self.surveys is not None:
                say(path, f"is already set at {self.where['surveys', '']}")
            else:
                self.surveys = (surveys, say, path)
                self.where["surveys", ""] = where(path)

    def _source(self, raw: object, path: Path_, say: Say, where: Callable[[Path_], str]) -> None:
        if not isinstance(raw, dict):
            say(path, "must be a mapping with the source's name")
            return
        _unknown_keys(say, path, raw, SOURCE_KEYS)
        name = raw.get("name")
        if not isinstance(name, str) or not SOURCE.match(name):
            say((*path, "name"), f"must be a topic name (letters, digits, '.', '_', '-'), not {name!r}")
            return
        if name in self.sources:
            say((*path, "name"), f"source '{name}' is already declared at {self.where['sources', name]}")
            return
        source_format = raw.get("format", "flat")
        if source_format not in FORMATS:
            say(
                (*path, "format"),
                f"must be one of {', '.join(FORMATS)}, not {source_format!r}{_hint(str(source_format), FORMATS)}",
            )
            return
        time_format = raw.get("time", "rfc3339")
        if time_format not in TIME_FORMATS:
            say(
                (*path, "time"),
                f"must be one of {', '.join(TIME_FORMATS)}, not {time_format!r}{_hint(str(time_format), TIME_FORMATS)}",
            )
            return
        date_format = raw.get("date", ISO_DATE)
        try:
            DateFormat(date_format)
        except ValueError as error:
            say((*path, "date"), str(error))
            date_format = ISO_DATE  # said; the source is still declared, so its types are checked
        pointers = []
        mapped = raw.get("fields") or {}
        if not isinstance(mapped, dict):
            say(
                (*path, "fields"),
                "must map contract fields (event_id, type, customer_id, occurred_at) to JSON Pointers",
            )
            return
        for key, text in mapped.items():
            if key not in COMMON_NAMES:
                say(
                    (*path, "fields", key),
                    f"is not a field every event has; those are {', '.join(COMMON_NAMES)}{_hint(key, COMMON_NAMES)}",
                )
                continue
            pointer = _pointer(say, (*path, "fields", key), text)
            if pointer is not None:
                pointers.append((key, pointer))
        silent_after = DEFAULT_SILENT_AFTER
        if "silent_after" in raw:
            written = raw["silent_after"]
            try:
                if isinstance(written, bool) or not isinstance(written, str):
                    raise ValueError
                silent_after = parse_duration(written)
            except ValueError:
                say((*path, "silent_after"), f"must be a duration such as '15m' or '2h', not {written!r}")
                return
        calendar = raw.get("calendar")
        if calendar is not None and (not isinstance(calendar, str) or not calendar.strip()):
            say((*path, "calendar"), f"must name a calendar of the catalog (calendars:), not {calendar!r}")
            return
        source = Source(name, source_format, time_format, tuple(pointers), silent_after, calendar, date_format)
        self.sources[name] = (source, say, path)
        self.where["sources", name] = where(path)

    def _event(self, raw: object, path: Path_, say: Say, where: Callable[[Path_], str]) -> None:
        if not isinstance(raw, dict):
            say(path, "must be a mapping with the event's type and source")
            return
        _unknown_keys(say, path, raw, EVENT_KEYS)
        event_type = raw.get("type")
        if not isinstance(event_type, str) or not TYPE.match(event_type):
            say((*path, "type"), f"must be a dotted name such as 'appointment.booked', not {event_type!r}")
            return
        source = raw.get("source")
        if not isinstance(source, str) or not source:
            say((*path, "source"), "is required: the name of a declared source")
            return
        if event_type in self.events:
            first, _, _, at = self.events[event_type]
            say((*path, "type"), f"'{event_type}' is already declared at {at}, in source '{first.source}'")
            return
        fields: list[Field] = []
        for section, required in (("fields", True), ("optional", False)):
            declared = raw.get(section) or {}
            if not isinstance(declared, dict):
                say((*path, section), "must map field names to kinds")
                continue
            for name, written in declared.items():
                made = self._field(say, (*path, section, name), name, written, required, fields)
                if made is not None:
                    fields.append(made)
        story = None
        if "story" in raw:
            kinds = {**dict(COMMON), "source": STRING, **{f.name: f.kind for f in fields}}
            personal = frozenset(f.name for f in fields if f.personal)
            story = compile_template(raw["story"], event_type, kinds, personal)
            if isinstance(story, str):
                say((*path, "story"), story)
                story = None
        self.events[event_type] = (Declaration(event_type, source, tuple(fields), story), say, path, where(path))

    def _field(
        self, say: Say, path: Path_, name: str, written: object, required: bool, seen: list[Field]
    ) -> Field | None:
        if not NAME.match(name) or name in RESERVED:
            say(
                path,
                f"'{name}' cannot be a field name: letters, digits and '_', not starting with a digit, and not one of CEL's reserved words",
            )
            return None
        if name in COMMON_NAMES:
            say(path, f"'{name}' is a field every event has: where it is is said by the source's fields")
            return None
        if any(f.name == name for f in seen):
            say(path, f"'{name}' is declared twice")
            return None
        pointer_text = date_format = None
        personal = False
        if isinstance(written, dict):
            unknown = [key for key in written if key not in FIELD_KEYS]
            for key in unknown:
                say((*path, key), f"is not a field{_hint(key, FIELD_KEYS)}; allowed here: {', '.join(FIELD_KEYS)}")
            if "kind" not in written:
                say(path, "is required: kind")
                return None
            personal = written.get("personal", False)
            if type(personal) is not bool:
                say(
                    (*path, "personal"), f"must be true or false (whether the field is personal data), not {personal!r}"
                )
                return None
            pointer_text, date_format, written = written.get("at"), written.get("format"), written["kind"]
        kind = kind_of(written)
        if isinstance(kind, str):
            say(path, kind + _hint(str(written), tuple(KINDS)))
            return None
        if date_format is not None:
            if kind.date_format is None:
                say((*path, "format"), f"is the format of a date: a {kind} field has none")
                return None
            try:
                kind = date_kind(DateFormat(date_format))
            except ValueError as error:
                say((*path, "format"), str(error))
                return None
        pointer = None
        if pointer_text is not None:
            pointer = _pointer(say, (*path, "at"), pointer_text)
            if pointer is None:
                return None
        return Field(name, kind, pointer if pointer is not None else (), required, date_format is not None, personal)

    def contract(self) -> Contract:
        """The contract, once every file is read; the checks that need all of them."""
        declarations = []
        for event_type, (declared, say, path, _) in self.events.items():
            source = self.sources.get(declared.source)
            if source is None:
                say(
                    (*path, "source"),
                    f"'{declared.source}' is not a declared source{_hint(declared.source, sorted(self.sources))}",
                )
                continue
            fields = tuple(_in_source(f, source[0]) for f in declared.fields)
            declarations.append(Declaration(event_type, declared.source, fields, declared.story))
        joined: frozenset[str] = frozenset()
        left: frozenset[str] = frozenset()
        if self.customers is not None:
            data, say, path = self.customers
            for key in CUSTOMER_KEYS:
                types = data.get(key, [])
                if isinstance(types, str):
                    types = [types]
                if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
                    say((*path, key), "must be a list of event types")
                    continue
                for index, event_type in enumerate(types):
                    if event_type not in self.events:
                        say(
                            (*path, key, index),
                            f"'{event_type}' is not a declared event type{_hint(event_type, sorted(self.events))}",
                        )
                if key == "joined":
                    joined = frozenset(types)
                else:
                    left = frozenset(types)
        answers: frozenset[str] = frozenset()
        if self.surveys is not None:
            types, say, path = self.surveys
            valid = []
            for index, event_type in enumerate(types):
                found = self.events.get(event_type)
                if found is None:
                    say(
                        (*path, index),
                        f"'{event_type}' is not a declared event type{_hint(event_type, sorted(self.events))}",
                    )
                    continue
                names = {f.name: f for f in found[0].fields if f.required}
                if (
                    "survey" not in names
                    or not names["survey"].kind.allowed
                    or "score" not in names
                    or names["score"].kind.name not in ("number", "number>=0")
                ):
                    say(
                        (*path, index),
                        f"'{event_type}' must declare the fields survey (which survey, one of a list: "
                        "[nps, csat, ces]) and score (a number) to be an answer",
                    )
                    continue
                if names["survey"].personal or names["score"].personal:
                    say(
                        (*path, index),
                        f"'{event_type}' declares survey or score personal (personal: true): an answer's survey "
                        "is a metric label and its score is in the review, so neither can be personal",
                    )
                    continue
                valid.append(event_type)
            answers = frozenset(valid)
        sources = tuple(source for source, _, _ in self.sources.values())
        return Contract(sources, tuple(declarations), joined, left, answers)

    def unused_sources(self) -> list[tuple[Say, Path_, str]]:
        used = {declared.source for declared, _, _, _ in self.events.values()}
        return [(say, path, name) for name, (_, say, path) in self.sources.items() if name not in used]

    def source_calendars(self) -> list[tuple[Say, Path_, str]]:
        """(say, path, calendar name) of each source that counts its silence in a calendar's hours."""
        return [(say, (*path, "calendar"), s.calendar) for s, say, path in self.sources.values() if s.calendar]

    def event_paths(self) -> dict[str, tuple[Say, Path_]]:
        return {event_type: (say, path) for event_type, (_, say, path, _) in self.events.items()}


def _in_source(written: Field, source: Source) -> Field:
    """A field as its source reads it: at its name in the source's format unless it says ``at``, and a
    date in the source's date format unless it says its own."""
    pointer = written.pointer or default_pointer(written.name, source.format)
    kind = written.kind
    if kind.date_format is not None and not written.own_format and source.date != kind.date_format.text:
        kind = date_kind(DateFormat(source.date))
    return Field(written.name, kind, pointer, written.required, written.own_format, written.personal)


def _items(data: dict, key: str, say: Say) -> list:
    items = data.get(key)
    if items is None:
        return []
    if not isinstance(items, list):
        say((key,), "must be a list")
        return []
    return items


def _pointer(say: Say, path: Path_, text: object) -> tuple[str, ...] | None:
    if not isinstance(text, str):
        say(path, f"must be a JSON Pointer such as '/account/id', not {text!r}")
        return None
    try:
        return parse_pointer(text)
    except ValueError as error:
        say(path, str(error))
        return None
