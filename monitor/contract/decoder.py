"""Bytes into events, compiled from a contract: the hot path of docs/EVENTS.md.

Per contract, the decoder builds a typed msgspec struct for each declared type, and reads a message in
stages:

- an event of a plain source (flat, RFC 3339, every field at its own name) that has only the fields of
  its type is decoded and checked in one pass in C by the *exact* structs; they read every byte of what
  they accept, so what they accept is valid JSON;
- anything else is read whole by orjson (the judge of what valid JSON is here), then checked: nesting,
  then the typed fields (msgspec again, the *lenient* structs that may skip the extra fields orjson has
  read); an event in another shape (fields found by JSON Pointers, epoch timestamps, a CloudEvent) is
  first brought to the contract's own shape, field by field, so that the rules see the same fields
  whatever shape it came in; a refusal is explained (the reason and a readable detail), and an event of
  an undeclared type is accepted as "other".

A bad input never raises: it becomes a ``Reject`` with a bounded reason, a detail and the raw bytes.
"""

from __future__ import annotations

import functools
from typing import Final, NamedTuple, Union

import msgspec
import orjson

from ..conventions import OTHER_TYPE
from ..events import (
    DEFAULT_MAX_BYTES,
    FUTURE_TIMESTAMP,
    MALFORMED_JSON,
    MAX_DEPTH,
    MISSING_FIELD,
    NOT_OBJECT,
    NOT_UTF8,
    TOO_LARGE,
    WRONG_TYPE,
    Event,
    Reject,
    describe,
    format_timestamp,
    nesting_exceeds,
    parse_timestamp,
)
from .kinds import ISO_DATE, RFC3339, STRING, TIMESTAMP
from .model import (
    CLOUDEVENTS,
    COMMON,
    FLAT,
    Contract,
    Declaration,
    Pointer,
    Source,
    default_pointer,
    format_pointer,
)

_new = object.__new__

_NON_EMPTY = STRING.annotation
_FAST_ERRORS = (msgspec.ValidationError, msgspec.DecodeError, RecursionError)
_MISSING: Final = object()
SPECVERSION: Final = "1.0"
#: Where a CloudEvent (structured mode) holds the common fields; the customer is data's customer_id,
#: or the subject when data has none.
CLOUDEVENT_POINTERS: Final = {"event_id": ("id",), "type": ("type",), "occurred_at": ("time",)}
#: How a reject's detail names them.
_CLOUDEVENT_LABELS: Final = {
    "event_id": "attribute 'id' (event_id)",
    "type": "attribute 'type'",
    "customer_id": "field 'customer_id' (data's, or the attribute 'subject')",
    "occurred_at": "attribute 'time' (occurred_at)",
}


@functools.cache
def _label(name: str, pointer: Pointer, written: str) -> str:
    """How a reject's detail names a field: by its name, and where it was looked for when that is not
    where its format puts a field of that name."""
    if pointer != default_pointer(name, written):
        return f"field '{name}' (at {format_pointer(pointer)})"
    return f"field '{name}'" if written == FLAT else f"field '{name}' of data"


#: The contract's own shape: the four common fields at their names, RFC 3339.
_OWN_SHAPE: Final = Source("")


class Probed(NamedTuple):
    """A field as ``Decoder.probe`` found it in a message: where it was looked for, and whether it is there."""

    name: str
    pointer: str  # as written in a catalog: /account/id
    required: bool
    present: bool
    common: bool  # one of the four every event has (where its source says), else its type's


class _Envelope(msgspec.Struct, frozen=True, gc=False, tag_field="type"):
    event_id: _NON_EMPTY  # type: ignore[valid-type]
    customer_id: _NON_EMPTY  # type: ignore[valid-type]
    occurred_at: str


class _Other(msgspec.Struct, frozen=True, gc=False):
    """The fields every event has, for a type no declaration names."""

    event_id: str
    type: str
    customer_id: str
    occurred_at: str


def _struct(declared: Declaration, exact: bool) -> type[msgspec.Struct]:
    """The type's struct; ``exact`` refuses fields the type does not declare."""
    fields: list[tuple] = [(f.name, f.kind.annotation) for f in declared.required]
    fields += [(f.name, f.kind.annotation | None, None) for f in declared.optional]
    name = "".join(part.capitalize() for part in declared.type.replace(".", "_").replace("-", "_").split("_"))
    return msgspec.defstruct(
        name or "Event",
        fields,
        bases=(_Envelope,),
        tag=declared.type,
        frozen=True,
        gc=False,
        forbid_unknown_fields=exact,
    )


def _union(structs: list[type[msgspec.Struct]]) -> msgspec.json.Decoder | None:
    if not structs:
        return None
    return msgspec.json.Decoder(Union[tuple(structs)])  # type: ignore[arg-type]  # noqa: UP007


def _at(data: object, pointer: Pointer) -> object:
    """The value a JSON Pointer names in parsed JSON, or _MISSING."""
    for token in pointer:
        if type(data) is dict:
            data = data.get(token, _MISSING)  # type: ignore[union-attr]
        elif type(data) is list and token.isdigit() and (token == "0" or token[0] != "0"):
            index = int(token)
            data = data[index] if index < len(data) else _MISSING  # type: ignore[index]
        else:
            return _MISSING
        if data is _MISSING:
            return _MISSING
    return data


class Decoder:
    """Decodes the messages of a contract's sources (``decode``); built once per catalog."""

    def __init__(self, contract: Contract) -> None:
        self.contract = contract
        plain_sources = {s.name for s in contract.sources if s.plain}
        self._exact: dict[str, type[msgspec.Struct]] = {}
        self._lenient: dict[str, type[msgspec.Struct]] = {}
        #: the types read by the structs straight from the bytes: a plain source, every field at its name
        self._direct: set[str] = set()
        for declared in contract.events:
            self._lenient[declared.type] = _struct(declared, exact=False)
            if (
                declared.source in plain_sources
                and all(f.pointer == (f.name,) for f in declared.fields)
                and all(f.kind.date_format is None or f.kind.date_format.text == ISO_DATE for f in declared.fields)
            ):  # (a date in another format is rewritten YYYY-MM-DD, field by field)
                self._exact[declared.type] = _struct(declared, exact=True)
                self._direct.add(declared.type)
        self._type_of = {struct: t for structs in (self._exact, self._lenient) for t, struct in structs.items()}
        #: per declared source, whether its messages may take the fast path (one lookup per message)
        self._plain = {s.name: s.plain and bool(self._direct) for s in contract.sources}
        self._exact_decoder = _union([self._exact[t] for t in self._direct])
        self._plain_default = self._exact_decoder is not None  # (a source declared nowhere: self-describing)
        self._lenient_decoder = _union([self._lenient[t] for t in self._direct])
        #: per type, the fields the structs hold as text that must be read again: timestamps and dates
        self._timestamps = {
            d.type: tuple((f.name, f.kind) for f in d.fields if f.kind is TIMESTAMP or f.kind.date_format)
            for d in contract.events
            if any(f.kind is TIMESTAMP or f.kind.date_format for f in d.fields)
        }

    # -- the fast path -------------------------------------------------------------------------------
    def decode(
        self, raw: bytes, source: str, max_bytes: int = DEFAULT_MAX_BYTES, not_after: int | None = None
    ) -> Event | Reject:
        """Decode one message or JSONL line of ``source``. Never raises for bad input.

        ``not_after``: live, the wall clock plus ``max_future``; an event that occurred after it is
        refused as ``future_timestamp``, so that one wrong clock upstream cannot move the watermark."""
        if len(raw) > max_bytes:
            return Reject(TOO_LARGE, f"{len(raw)} bytes is more than the limit of {max_bytes}", raw, source)
        if not self._plain.get(source, self._plain_default):
            return self._read_whole(raw, source, self.contract.source(source), not_after)
        try:
            fields = self._exact_decoder.decode(raw)  # type: ignore[union-attr]
        except _FAST_ERRORS:
            return self._read_whole(raw, source, self.contract.source(source), not_after)
        event_type = self._type_of[type(fields)]
        at = parse_timestamp(fields.occurred_at)  # type: ignore[attr-defined]
        if at is None or (event_type in self._timestamps and not self._timestamps_valid(fields, event_type)):
            return self._read_whole(raw, source, self.contract.source(source), not_after)
        if not_after is not None and at > not_after:
            return _from_the_future(fields.occurred_at, raw, source, not_after)  # type: ignore[attr-defined]
        # Event(fields, raw, event_type, at, event_type, source), without a call of its __init__ (an
        # event per message)
        event = _new(Event)
        event.fields, event.raw, event.at, event.source, event._data = fields, raw, at, source, None
        event.id, event.customer = fields.event_id, fields.customer_id  # type: ignore[attr-defined]
        event.type = event.kind = event_type
        return event

    def from_fields(self, data: dict, source: str = "catalog") -> Event | Reject:
        """An event from its fields by name, in the contract's own shape (no pointers: validation's
        sample events, whatever shape their source writes)."""
        return self._mapped(data, orjson.dumps(data), source, _OWN_SHAPE, by_name=True)

    def _timestamps_valid(self, fields: msgspec.Struct, event_type: str) -> bool:
        for name, kind in self._timestamps[event_type]:
            value = getattr(fields, name)
            if value is None:
                continue  # an optional field that is absent
            if kind.date_format is None:
                if parse_timestamp(value) is None:
                    return False
            elif kind.date_format.iso(value) != value:
                return False
        return True

    # -- everything else -----------------------------------------------------------------------------
    def _read_whole(self, raw: bytes, source: str, shape: Source | None, not_after: int | None) -> Event | Reject:
        """orjson reads the whole input (the judge of valid JSON), then the nesting and the fields."""
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
            return Reject(NOT_OBJECT, f"an event is a JSON object, not {describe(data)}", raw, source)
        if "specversion" in data or (shape is not None and shape.format == CLOUDEVENTS):
            decoded = self._cloudevent(data, raw, source)
        elif shape is not None and not shape.plain:
            decoded = self._mapped(data, raw, source, shape)
        else:
            decoded = self._flat(data, raw, source, shape)
        if type(decoded) is Event and not_after is not None and decoded.at > not_after:
            return _from_the_future(format_timestamp(decoded.at), raw, source, not_after)
        return decoded

    def _flat(self, data: dict, raw: bytes, source: str, shape: Source | None) -> Event | Reject:
        """An object in the contract's own shape."""
        event_type = data.get("type")
        if type(event_type) is str and event_type in self._direct and self._lenient_decoder is not None:
            try:
                fields = self._lenient_decoder.decode(raw)
            except _FAST_ERRORS:
                pass
            else:
                at = parse_timestamp(fields.occurred_at)  # type: ignore[attr-defined]
                if at is not None and (
                    event_type not in self._timestamps or self._timestamps_valid(fields, event_type)
                ):
                    return Event(fields, raw, event_type, at, event_type, source, data)
        elif type(event_type) is str and event_type and self.contract.declaration(event_type) is None:
            # A type declared nowhere, in a plain shape (flat, RFC 3339, the four fields at their names):
            # what ``_mapped`` accepts of it, without reading it field by field.
            other = self._other(data, raw, source, event_type)
            if other is not None:
                return other
        return self._mapped(data, raw, source, shape or _OWN_SHAPE)  # checked field by field, to say why

    @staticmethod
    def _other(data: dict, raw: bytes, source: str, event_type: str) -> Event | None:
        """An event of an undeclared type whose common fields are all valid (else None: ``_mapped``
        says what is wrong)."""
        event_id, customer, occurred_at = data.get("event_id"), data.get("customer_id"), data.get("occurred_at")
        if type(event_id) is not str or not event_id or type(customer) is not str or not customer:
            return None
        if type(occurred_at) is not str:
            return None
        at = parse_timestamp(occurred_at)
        if at is None:
            return None
        fields = _Other(event_id, event_type, customer, occurred_at)
        return Event(fields, raw, event_type, at, OTHER_TYPE, source, dict(data))

    def _mapped(self, data: dict, raw: bytes, source: str, shape: Source, by_name: bool = False) -> Event | Reject:
        """An object whose fields the source finds by JSON Pointers, timestamps in its time format."""
        common, labels = {}, {}
        for name, _ in COMMON:
            pointer = shape.pointer(name)
            value = _at(data, pointer)
            common[name] = None if value is _MISSING else value
            labels[name] = _label(name, pointer, FLAT)
        return self._checked(common, labels, data, data, raw, source, shape.time, FLAT, by_name)

    def _cloudevent(self, data: dict, raw: bytes, source: str) -> Event | Reject:
        """CloudEvents 1.0, structured mode: id, type, time, and data holding the type's fields."""
        version = data.get("specversion")
        if version != SPECVERSION:
            return Reject(WRONG_TYPE, f"attribute 'specversion' must be '1.0', not {version!r}", raw, source)
        body = data.get("data")
        if body is None and "data_base64" in data:
            return Reject(WRONG_TYPE, "attribute 'data' must be a JSON object, not binary data", raw, source)
        if body is None:
            body = {}
        if type(body) is not dict:
            return Reject(WRONG_TYPE, f"attribute 'data' must be an object, not {describe(body)}", raw, source)
        common = {name: data.get(pointer[0]) for name, pointer in CLOUDEVENT_POINTERS.items()}
        common["customer_id"] = body.get("customer_id", data.get("subject"))
        return self._checked(common, _CLOUDEVENT_LABELS, data, body, raw, source, RFC3339, CLOUDEVENTS)

    def _checked(
        self,
        common: dict,
        labels: dict[str, str],
        data: dict,
        extras: dict,
        raw: bytes,
        source: str,
        time_format: str,
        written: str,
        by_name: bool = False,
    ) -> Event | Reject:
        """Check the common fields and the type's, then build the event in the contract's own shape.
        ``written``: the message's format; ``extras``: the object whose other fields the event keeps;
        ``labels``: how a detail names each common field."""
        normal = dict(extras)
        for name, kind in COMMON:
            value = kind.read(common[name], labels[name], time_format if name == "occurred_at" else RFC3339)
            if type(value) is tuple:
                return Reject(value[0], value[1], raw, source)  # type: ignore[index]
            normal[name] = value
        declared = self.contract.declaration(normal["type"])
        if declared is None:
            fields = _Other(normal["event_id"], normal["type"], normal["customer_id"], normal["occurred_at"])
            return self._event(fields, raw, normal, OTHER_TYPE, source)
        # A declaration's pointers are in its source's format; a message in the other format (a
        # CloudEvent of a flat source's type, say) has the fields at their names there.
        own = self.contract.source(declared.source)
        theirs = not by_name and own is not None and own.format == written
        for field in declared.fields:
            pointer = field.pointer if theirs else default_pointer(field.name, written)
            value = _at(data, pointer)
            if value is _MISSING or value is None:
                if field.required:
                    return Reject(MISSING_FIELD, f"{_label(field.name, pointer, written)} is missing", raw, source)
                if value is None:
                    normal[field.name] = None  # (as the message says: null, the field's default when read)
                else:
                    normal.pop(field.name, None)
                continue
            read = field.kind.read(value, _label(field.name, pointer, written), time_format)
            if type(read) is tuple:
                detail = read[1]  # type: ignore[index]
                if field.personal:  # a detail is printed (tpmon produce) and kept apart: never the value
                    label = _label(field.name, pointer, written)
                    detail = f"{label} is not a valid {field.kind.name} (a personal field: its value is not quoted)"
                return Reject(read[0], detail, raw, source)  # type: ignore[index]
            normal[field.name] = read
        try:
            fields = msgspec.convert(normal, self._lenient[declared.type])
        except msgspec.ValidationError as error:  # the kinds said yes, msgspec no: say what it said
            return Reject(WRONG_TYPE, f"not a valid '{declared.type}' event: {error}", raw, source)
        return self._event(fields, raw, normal, declared.type, source)

    # -- where the fields are: for checking a catalog on sample messages (not the hot path) ------------
    def probe(self, data: object, source: str) -> tuple[object, list[Probed]]:
        """Of a parsed message of ``source``: its type (as written, or None), and for each field the
        decoder reads in it (the four every event has, then its declared type's), where it is looked
        for and whether a value is there, as ``decode`` looks (`tpmon rules validate --sample`)."""
        if type(data) is not dict:
            return None, []
        shape = self.contract.source(source)
        found: list[Probed] = []
        if "specversion" in data or (shape is not None and shape.format == CLOUDEVENTS):
            written = CLOUDEVENTS
            for name, pointer in CLOUDEVENT_POINTERS.items():
                found.append(Probed(name, format_pointer(pointer), True, data.get(pointer[0]) is not None, True))
            body = data.get("data")
            customer = (body if type(body) is dict else {}).get("customer_id", data.get("subject"))
            found.append(Probed("customer_id", "/data/customer_id or /subject", True, customer is not None, True))
        else:
            written = FLAT
            shape = shape if shape is not None else _OWN_SHAPE
            for name, _ in COMMON:
                pointer = shape.pointer(name)
                value = _at(data, pointer)
                found.append(
                    Probed(name, format_pointer(pointer), True, value is not _MISSING and value is not None, True)
                )
        event_type = data.get("type") if written == CLOUDEVENTS else _at(data, shape.pointer("type"))  # type: ignore[union-attr]
        declared = self.contract.declaration(event_type) if type(event_type) is str else None
        if declared is not None:
            own = self.contract.source(declared.source)
            theirs = own is not None and own.format == written
            for field in declared.fields:
                pointer = field.pointer if theirs else default_pointer(field.name, written)
                value = _at(data, pointer)
                present = value is not _MISSING and value is not None
                found.append(Probed(field.name, format_pointer(pointer), field.required, present, False))
        return (None if event_type is _MISSING else event_type), found

    @staticmethod
    def _event(fields: msgspec.Struct, raw: bytes, normal: dict, kind: str, source: str) -> Event:
        return Event(fields, raw, normal["type"], parse_timestamp(normal["occurred_at"]), kind, source, normal)  # type: ignore[arg-type]


def _from_the_future(text: str, raw: bytes, source: str, not_after: int) -> Reject:
    return Reject(
        FUTURE_TIMESTAMP,
        f"field 'occurred_at' is {text[:64]!r}, more than max_future ahead of the clock "
        f"(accepted up to {format_timestamp(not_after)})",
        raw,
        source,
    )
