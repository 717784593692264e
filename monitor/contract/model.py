"""The event contract as data: the sources, the event types and their fields, and what "customers in"
and "customers out" mean (docs/EVENTS.md). Read from the catalog by ``monitor.contract.declare``."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Final

from .kinds import ISO_DATE, RFC3339, STRING, TIMESTAMP, Kind
from .story import Template

FLAT: Final = "flat"
CLOUDEVENTS: Final = "cloudevents"
DEFAULT_SILENT_AFTER: Final = 15 * 60 * 1_000_000  # 15m: live, a source that sent nothing for this long is silent
FORMATS: Final = (FLAT, CLOUDEVENTS)

#: The fields every event has, whatever its shape.
COMMON: Final = (("event_id", STRING), ("type", STRING), ("customer_id", STRING), ("occurred_at", TIMESTAMP))
COMMON_NAMES: Final = tuple(name for name, _ in COMMON)

Pointer = tuple[str, ...]  # a JSON Pointer's reference tokens: () is the whole document


def parse_pointer(text: str) -> Pointer:
    """RFC 6901: '/a/b~1c' -> ('a', 'b/c'). Raises ValueError with why."""
    if text == "":
        return ()
    if not text.startswith("/"):
        raise ValueError(f"a JSON Pointer starts with '/', such as '/account/id', not {text!r}")
    tokens = []
    for token in text[1:].split("/"):
        rest = token.replace("~0", "").replace("~1", "")
        if "~" in rest:
            raise ValueError(f"{text!r} is not a JSON Pointer: '~' is written '~0' and '/' is written '~1'")
        tokens.append(token.replace("~1", "/").replace("~0", "~"))
    return tuple(tokens)


def format_pointer(pointer: Pointer) -> str:
    return "".join("/" + token.replace("~", "~0").replace("/", "~1") for token in pointer)


def default_pointer(name: str, source_format: str) -> Pointer:
    return ("data", name) if source_format == CLOUDEVENTS else (name,)


@dataclass(frozen=True)
class Field:
    name: str
    kind: Kind
    pointer: Pointer
    required: bool = True
    own_format: bool = False  # a date whose declaration says its format (else its source's)
    personal: bool = False  # a name, an e-mail, free text: never in logs, metrics, stories, the review


@dataclass(frozen=True)
class Source:
    """Where events come from: live, a Kafka topic of this name; in replay, ``SOURCE=FILE``."""

    name: str
    format: str = FLAT
    time: str = RFC3339
    pointers: tuple[tuple[str, Pointer], ...] = ()  # where the common fields are, when not at /NAME
    silent_after: int = DEFAULT_SILENT_AFTER  # microseconds
    calendar: str | None = None  # silence counts only in this calendar's open hours (a catalog calendar)
    date: str = ISO_DATE  # how its date fields are written, unless a field says its own format

    def pointer(self, name: str) -> Pointer:
        return self._pointers.get(name, (name,))

    @cached_property
    def _pointers(self) -> dict[str, Pointer]:
        return dict(self.pointers)

    @cached_property
    def plain(self) -> bool:
        """Flat, RFC 3339 and every common field at its own name: the decoder's fastest path (asked of
        every message, so worked out once)."""
        return self.format == FLAT and self.time == RFC3339 and all(self.pointer(n) == (n,) for n in COMMON_NAMES)


@dataclass(frozen=True)
class Declaration:
    type: str
    source: str
    fields: tuple[Field, ...] = ()  # required ones first, in the order written
    story: Template | None = None  # what a story says about an event of the type (monitor.contract.story)

    @property
    def required(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if f.required)

    @property
    def optional(self) -> tuple[Field, ...]:
        return tuple(f for f in self.fields if not f.required)


@dataclass(frozen=True)
class Contract:
    sources: tuple[Source, ...] = ()
    events: tuple[Declaration, ...] = ()
    joined: frozenset[str] = frozenset()  # the types that mean a customer came in
    left: frozenset[str] = frozenset()  # and went out
    answers: frozenset[str] = frozenset()  # the types that are answers to surveys (survey, score)

    @cached_property
    def surveys(self) -> tuple[str, ...]:
        """The surveys answers can name: the allowed values of their ``survey`` fields (bounded labels)."""
        found = {
            value
            for declaration in self.events
            if declaration.type in self.answers
            for f in declaration.fields
            if f.name == "survey"
            for value in f.kind.allowed
        }
        return tuple(sorted(found))

    @cached_property
    def _by_type(self) -> dict[str, Declaration]:
        return {d.type: d for d in self.events}

    @cached_property
    def _by_source(self) -> dict[str, Source]:
        return {s.name: s for s in self.sources}

    @cached_property
    def types(self) -> frozenset[str]:
        return frozenset(self._by_type)

    @property
    def source_names(self) -> tuple[str, ...]:
        return tuple(s.name for s in self.sources)

    def declaration(self, event_type: str) -> Declaration | None:
        return self._by_type.get(event_type)

    def source(self, name: str) -> Source | None:
        return self._by_source.get(name)

    def source_of_type(self, event_type: str) -> str | None:
        declared = self._by_type.get(event_type)
        return declared.source if declared else None

    def fields_of(self, event_type: str) -> dict[str, Kind]:
        """Every field an event of this declared type may carry, with its kind."""
        declared = self._by_type[event_type]
        return {**dict(COMMON), **{f.name: f.kind for f in declared.fields}}

    @cached_property
    def personal(self) -> dict[str, tuple[Field, ...]]:
        """The personal fields (``personal: true``) of each type that has some."""
        found = {d.type: tuple(f for f in d.fields if f.personal) for d in self.events}
        return {event_type: kept for event_type, kept in found.items() if kept}

    def personal_names_of(self, event_type: str) -> frozenset[str]:
        """The names of a type's personal fields (none for a type declared nowhere)."""
        return frozenset(f.name for f in self.personal.get(event_type, ()))

    def required_fields_of(self, event_type: str) -> frozenset[str]:
        declared = self._by_type[event_type]
        return frozenset(COMMON_NAMES) | {f.name for f in declared.required}
