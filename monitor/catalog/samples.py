"""A catalog checked on sample messages (`tpmon rules validate --sample SOURCE=FILE`).

A pointer with a typo (``/policyholder/id`` for ``/policyHolder/id``) is a valid catalog: only messages
show that it names nothing. Each sample's lines are decoded as the worker decodes its source's
messages, and each field the decoder reads is looked for where the decoder looks (``Decoder.probe``):

- errors: a required field (one of the four every event has, or a type's) found in none of the lines
  of its type, said at its declaration (file, line, field path) with a did-you-mean from the pointers
  the lines do hold;
- warnings: an optional field never present, a declared type of the source never seen, a type seen
  that no declaration names (accepted as other: no rule sees it).

Pure: lines in, a ``Sample`` per input and ``Problem``s out; reading files is the caller's.
"""

from __future__ import annotations

import difflib
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from ..contract.decoder import Probed
from ..conventions import FILE_SOURCE
from ..events import Event
from .errors import ERROR, WARNING, Problem, format_path
from .model import Catalog

#: Pointers the lines hold, collected per type for a did-you-mean (a bounded sample of them).
POINTERS_FROM = 200
MAX_DEPTH = 6


@dataclass
class Sample:
    """What one sample input says: its lines read, decoded and rejected, and where its fields were."""

    source: str  # a declared source, or FILE_SOURCE (self-describing lines)
    name: str  # how it was given: SOURCE=FILE
    lines: int = 0
    decoded: int = 0
    rejected: Counter = field(default_factory=Counter)  # reason -> lines
    first: dict[str, tuple[int, str]] = field(default_factory=dict)  # reason -> (its first line, detail)
    objects: int = 0  # lines that are JSON objects (whose fields can be looked for)
    types: Counter = field(default_factory=Counter)  # the type each object says (None: none)
    common: dict[str, list] = field(default_factory=dict)  # name -> [pointer, lines with it]
    fields: dict[str, dict[str, list]] = field(default_factory=dict)  # type -> name -> [pointer, required, lines]
    held: dict[object, set[str]] = field(default_factory=dict)  # type (None: any) -> pointers the lines hold

    def summary(self) -> str:
        rejected = sum(self.rejected.values())
        text = f"{self.name}: {self.lines} lines, {self.decoded} decoded, {rejected} rejected"
        if rejected:
            reasons = "; ".join(
                f"{reason} {count} (first at line {self.first[reason][0]}: {self.first[reason][1]})"
                for reason, count in self.rejected.most_common()
            )
            text += f" ({reasons})"
        return text


def read_sample(catalog: Catalog, source: str, name: str, lines: Iterable[bytes]) -> Sample:
    """Decode and probe every line of one input of ``source``."""
    sample = Sample(source, name)
    decoder = catalog.decoder
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        sample.lines += 1
        decoded = decoder.decode(line, source)
        if type(decoded) is Event:
            sample.decoded += 1
        else:
            sample.rejected[decoded.reason] += 1
            sample.first.setdefault(decoded.reason, (number, decoded.detail))
        try:
            data = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        event_type, probed = decoder.probe(data, source)
        if not probed:
            continue
        sample.objects += 1
        kind = event_type if type(event_type) is str else None
        sample.types[kind] += 1
        _tally(sample, kind, probed)
        held = sample.held.setdefault(kind, set())
        if sample.types[kind] <= POINTERS_FROM:
            held.update(_pointers(data, ""))
    return sample


def _tally(sample: Sample, kind: str | None, probed: list[Probed]) -> None:
    for found in probed:
        if found.common:
            mine = sample.common.setdefault(found.name, [found.pointer, 0])
        else:
            mine = sample.fields.setdefault(kind, {}).setdefault(found.name, [found.pointer, found.required, 0])  # type: ignore[arg-type]
        mine[-1] += 1 if found.present else 0


def _pointers(data: object, prefix: str, depth: int = 0) -> Iterable[str]:
    """Every JSON Pointer to a value in ``data`` (to MAX_DEPTH levels, arrays' first item only)."""
    if depth >= MAX_DEPTH:
        return
    items = data.items() if type(data) is dict else [("0", data[0])] if type(data) is list and data else []  # type: ignore[union-attr,index]
    for key, value in items:
        pointer = f"{prefix}/{str(key).replace('~', '~0').replace('/', '~1')}"
        yield pointer
        yield from _pointers(value, pointer, depth + 1)


def sample_problems(catalog: Catalog, samples: list[Sample], where: Declared) -> list[Problem]:
    """The errors and warnings the samples show, each at the declaration it is about."""
    problems: list[Problem] = []
    contract = catalog.contract
    for sample in samples:
        if not sample.objects:
            continue
        held_anywhere = set().union(*sample.held.values())
        for name, (pointer, count) in sample.common.items():
            if count == 0:
                file, line, path = where.common(sample.source, name, sample.name)
                problems.append(
                    Problem(
                        file,
                        line,
                        path,
                        f"field '{name}' (at {pointer}) is in none of the {sample.objects} messages of {sample.name}"
                        + _did_you_mean(pointer, held_anywhere),
                    )
                )
        for kind, fields in sample.fields.items():
            for name, (pointer, required, count) in fields.items():
                if count:
                    continue
                file, line, path = where.field(kind, name)
                lines = sample.types[kind]
                problems.append(
                    Problem(
                        file,
                        line,
                        path,
                        f"field '{name}' of '{kind}' (at {pointer}) is in none of its {lines} messages in {sample.name}"
                        + ("" if required else " (it is optional)")
                        + _did_you_mean(pointer, sample.held.get(kind, set())),
                        ERROR if required else WARNING,
                    )
                )
        if sample.source != FILE_SOURCE:
            for declared in contract.events:
                if declared.source == sample.source and not sample.types.get(declared.type):
                    file, line, path = where.type(declared.type)
                    problems.append(
                        Problem(
                            file,
                            line,
                            path,
                            f"'{declared.type}' is in none of the {sample.objects} messages of {sample.name}",
                            WARNING,
                        )
                    )
        for kind, count in sorted(sample.types.items(), key=lambda pair: str(pair[0])):
            if kind is not None and contract.declaration(kind) is None:
                file, line, path = where.common(sample.source, "type", sample.name)
                close = difflib.get_close_matches(kind, sorted(contract.types), n=1)
                problems.append(
                    Problem(
                        file,
                        line,
                        path,
                        f"{count} of the {sample.objects} messages of {sample.name} are of type '{kind}', which no declaration names: "
                        f"they are accepted as other (journeys only)"
                        + (f"; did you mean '{close[0]}'?" if close else ""),
                        WARNING,
                    )
                )
    return sorted(problems)


def _did_you_mean(pointer: str, held: set[str]) -> str:
    """A pointer the messages hold that is close to the one declared (letter case first)."""
    if pointer in held:
        return ""
    by_case = [p for p in held if p.lower() == pointer.lower()]
    close = by_case or difflib.get_close_matches(pointer, sorted(held), n=1, cutoff=0.75)
    return f"; did you mean '{close[0]}'?" if close else ""


class Declared:
    """Where the catalog declares each source, its pointers, each type and its fields: (file, line,
    field path), read again from the catalog's files (only for checking samples)."""

    def __init__(self, files: Iterable[str | Path]) -> None:
        from .load import _plain, _yaml

        self.at: dict[tuple, tuple[str, int, str]] = {}
        for file in files:
            lines: dict[tuple, int] = {}
            try:
                data = _plain(_yaml().load(Path(file).read_bytes()), (), lines)
            except Exception:  # (the catalog was read whole once already: it was valid)
                continue
            if not isinstance(data, dict):
                continue

            def keep(key: tuple, path: tuple, file: str = str(file), lines: dict = lines) -> None:
                self.at.setdefault(key, (file, lines.get(path, 0), format_path(path)))

            for index, source in enumerate(data.get("sources") or []):
                if isinstance(source, dict) and isinstance(source.get("name"), str):
                    keep(("source", source["name"]), ("sources", index, "name"))
                    for name in source.get("fields") or {}:
                        keep(("common", source["name"], name), ("sources", index, "fields", name))
            for index, event in enumerate(data.get("events") or []):
                if isinstance(event, dict) and isinstance(event.get("type"), str):
                    keep(("type", event["type"]), ("events", index, "type"))
                    for section in ("fields", "optional"):
                        declared = event.get(section)
                        for name in declared if isinstance(declared, dict) else ():
                            keep(("field", event["type"], name), ("events", index, section, name))

    def common(self, source: str, name: str, sample: str) -> tuple[str, int, str]:
        """Where a source says one of the four fields is (or the source itself, for its default place)."""
        found = self.at.get(("common", source, name)) or self.at.get(("source", source))
        return found or (sample, 0, name)

    def field(self, event_type: str, name: str) -> tuple[str, int, str]:
        return self.at.get(("field", event_type, name)) or self.type(event_type)

    def type(self, event_type: str) -> tuple[str, int, str]:
        return self.at.get(("type", event_type)) or ("", 0, event_type)
