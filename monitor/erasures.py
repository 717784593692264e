"""Requests to forget a customer (GDPR art. 17): what one holds, and the ones a worker has read.

A request is a message of the forget topic (``conventions.FORGET_TOPIC``, compacted), keyed by the
customer's id, whose value says who asked and when; never anything about the customer:

    {"customer_id": "c-000042", "by": "alice", "at": "2026-12-07T02:30:00Z"}

Every worker reads the whole topic, outside its consumer group, and applies each request to the
partitions it owns (``streams.erasures``, ``streams.partitions``). Each partition's own record keeps
the offset of the last request applied to it (``erased``), written once the request's tombstones are
stored, so that a worker taking the partition later (a restart, a rebalance) applies exactly the
requests that came after it, or whose tombstones a crash lost, and no other twice: a customer's later
events, which start a new journey, are not erased by an old request again.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Iterable
from dataclasses import dataclass

import orjson

from .events import format_timestamp, parse_timestamp


class BadRequest(ValueError):
    """A message of the forget topic that is not a request (said in the worker's log, then skipped)."""


@dataclass(frozen=True, slots=True)
class Request:
    customer: str
    by: str
    at: int  # when it was asked (wall clock, microseconds)

    def key(self) -> bytes:
        return self.customer.encode()

    def value(self) -> bytes:
        return orjson.dumps({"customer_id": self.customer, "by": self.by, "at": format_timestamp(self.at)})

    @classmethod
    def parse(cls, key: bytes | None, value: bytes | None) -> Request:
        """The request a message holds (its key is the customer's id, as its value says)."""
        try:
            data = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            raise BadRequest("not JSON") from None
        if not isinstance(data, dict):
            raise BadRequest("not a JSON object")
        customer, by, at = data.get("customer_id"), data.get("by"), data.get("at")
        if not isinstance(customer, str) or not customer.strip():
            raise BadRequest("no customer_id")
        if key is not None and key != customer.encode():
            raise BadRequest("its key is not its customer_id")
        when = parse_timestamp(at) if isinstance(at, str) else None
        if when is None:
            raise BadRequest("no valid 'at'")
        return cls(customer, by if isinstance(by, str) else "", when)


class Requests:
    """The requests read, in the forget topic's order (offsets), for partitions adopted later."""

    def __init__(self) -> None:
        self.read: list[tuple[int, Request]] = []
        # The offset the forget topic ends at, as last known (its reader's start, or a request read
        # since): a partition whose record says it applied a request at or beyond it has a record
        # written before the topic was deleted and created again. None: not known (no reader).
        self.end: int | None = None

    def add(self, offset: int, request: Request) -> None:
        self.read.append((offset, request))

    def after(self, offset: int) -> list[tuple[int, Request]]:
        """The requests read after ``offset`` (the last one a partition has applied), in order."""
        return [(at, request) for at, request in self.read if at > offset]

    @property
    def last(self) -> int:
        """The offset of the last request read (-1: none)."""
        return self.read[-1][0] if self.read else -1

    def __len__(self) -> int:
        return len(self.read)

    def customers(self) -> set[str]:
        return {request.customer for _, request in self.read}


def id_problem(customer: str) -> str | None:
    """What is wrong with a customer id to forget, if anything: empty, or a control character in it
    (a newline, a tab...: no event's id has one, and it would forge lines of the workers' logs)."""
    if not customer.strip():
        return "an empty customer id"
    bad = next((char for char in customer if unicodedata.category(char) == "Cc"), None)
    if bad is not None:
        return f"the customer id {customer!r} holds a control character ({bad!r}): not an id"
    return None


def read_ids(lines: Iterable[str], where: str) -> list[str]:
    """Customer ids, one a line (blank lines and lines starting with # skipped, spaces around an id
    trimmed), each once, in order; none at all, or one with a control character, is an error (a wrong
    file, most likely)."""
    found: dict[str, None] = {}
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if text and not text.startswith("#"):
            problem = id_problem(text)
            if problem is not None:
                raise ValueError(f"{where}, line {number}: {problem}")
            found[text] = None
    if not found:
        raise ValueError(f"{where}: no customer id in it (one a line)")
    return list(found)


def naming(forgotten: Iterable[str]) -> Callable[[bytes], bool]:
    """Whether a raw line (a rejected one, kept whole) is of a forgotten customer: a JSON object with a
    string ``customer_id`` is its customer's, compared whole (``c-1`` forgotten, ``c-10``'s lines
    stay); any other line (not JSON, or its customer elsewhere: a declared source's own shape) names
    one if a forgotten id appears in it as a whole token (not inside a longer id: letters, digits and
    ``-_.:@`` either side make it part of one)."""
    ids = frozenset(forgotten)
    if not ids:
        return lambda raw: False
    alternatives = b"|".join(re.escape(customer.encode()) for customer in sorted(ids, key=len, reverse=True))
    token = re.compile(rb"(?<![\w.:@-])(?:" + alternatives + rb")(?![\w.:@-])")

    def names(raw: bytes) -> bool:
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError:
            data = None
        if isinstance(data, dict):
            customer = data.get("customer_id")
            if isinstance(customer, str):
                return customer in ids
        return token.search(raw) is not None

    return names
