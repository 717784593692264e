"""Replay: a whole input through the engine, counted as docs/SEMANTICS.md describes.

Pure: it takes lines of bytes and gives a summary; reading files, progress and printing are the CLI's.

No line can stop a replay (docs/EVENTS.md): each line's decoding, step and journey are guarded, as the
worker guards each message. A line whose processing raises for a reason outside the contract (a bug) is
a ``Failure``; the line goes to ``on_reject`` whole with reason internal_error (rejected, unless it had
been judged already, see ``monitor.failures``) and to ``on_failure``, and the replay goes on.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from .catalog.model import Catalog
from .conventions import FILE_SOURCE
from .counts import DUPLICATES, EVENTS, LATE, REJECTED, RULE_ERRORS
from .engine import Engine, Outcome
from .engine.impact import impact_view
from .events import DEFAULT_MAX_BYTES, INTERNAL_ERROR, Event, Reject
from .failures import DECODE, JOURNEY, JUDGED_STAGES, Failure
from .journeys import Journeys
from .judging import Judged, Judging
from .state import judge, reliability, vital_few, warming_up

# Lines judged at a time: what the core gives back of a chunk is kept in line order before the next.
CHUNK = 1024


@dataclass
class Tally:
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    rule_errors: int = 0
    rule_errors_by_touchpoint: Counter = field(default_factory=Counter)
    internal_errors: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    by_kind: dict[str, int] = field(default_factory=dict)  # accepted events by type ("other" for unknown)


class Replay:
    """Feed lines, then ``finish``. ``on_reject(line_number, reject)`` sees every rejected line,
    ``on_event(event)`` every event accepted (as the journeys do), and each rule error as the event kept
    whole with reason rule_error, its touchpoint and message (the event is accepted: not a reject), and
    ``on_failure(line_number, failure)`` every failure (line_number None for one of no line).
    ``not_after``: refuse events that occurred after it as future_timestamp (``tpmon replay --now``)."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        lateness: int | None = None,
        journeys: Journeys | None = None,
        on_reject: Callable[[int, Reject], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
        on_event: Callable[[Event], None] | None = None,
        on_failure: Callable[[int | None, Failure], None] | None = None,
        not_after: int | None = None,
        attributed_within: tuple[int, int] | None = None,
    ) -> None:
        """``attributed_within``: count only the leavings and answers with an instant in [low, high)
        (the review's span), each still attributed in its window as always."""
        self.catalog = catalog
        # Outcomes are built only for whoever reads them; the summary needs only their counts.
        # (customers active: the live worker's churn lift; a replay's counts its own customers)
        self.engine = Engine(
            catalog,
            lateness=lateness,
            outcomes=journeys is not None or on_outcome is not None,
            fair=True,
            count_active=False,
        )
        self.engine.impact.within = attributed_within
        self.journeys = journeys
        self.on_reject = on_reject
        self.on_outcome = on_outcome
        self.on_event = on_event
        self.on_failure = on_failure
        self.not_after = not_after
        wanted = journeys is not None or on_event is not None or on_outcome is not None
        filing = _Filing(journeys, on_event, on_outcome) if wanted else None
        self.judging = Judging(self.engine, journeys=filing)
        self.tally = Tally()
        self.lines = 0

    def feed(self, lines: Iterable[bytes], source: str = FILE_SOURCE) -> None:
        """Judge lines read as messages of ``source`` (a declared source's shape applies; the default,
        self-describing lines: the contract's own shape or CloudEvents)."""
        # (``_judge`` of ``_decoded``, without a generator between: a line's number is its place)
        decode, not_after = self.catalog.decoder.decode, self.not_after
        batch = self.judging.batch
        texts: list[bytes] = []  # the chunk's lines
        found: list[object] = []  # each line's event, reject or failure
        events: list = []  # (position, event, None) of the events
        others: list[int] = []  # the positions of the rest
        first = self.lines + 1  # the number of the chunk's first line
        try:
            for line in lines:
                try:
                    item = decode(line, source, DEFAULT_MAX_BYTES, not_after)  # JSON allows the newline
                except Exception as error:
                    item = Failure(DECODE, error)
                position = len(texts)
                if type(item) is Event:
                    events.append((position, item, None))
                else:
                    others.append(position)
                texts.append(line)
                found.append(item)
                if position == CHUNK - 1:
                    taken = texts, found, events, others
                    texts, found, events, others = [], [], [], []
                    first += CHUNK
                    self._take(range(first - CHUNK, first), taken[0], taken[1], batch(taken[2]), taken[3])
            self._take(range(first, first + len(texts)), texts, found, batch(events), others)
        finally:
            self.lines = first - 1 + len(texts)

    def feed_merged(self, inputs: Sequence[tuple[str, Iterable[bytes]]]) -> None:
        """Judge several inputs, each (source, lines), merged in event-time order as the live watermark
        aligns sources (docs/EVENTS.md): each input is read in its own order, and the input whose next
        event occurred earliest goes next. A line that is not an event (it has no time) goes as soon as
        it is next in its input."""
        self._judge(_merged([self._decoded(lines, source) for source, lines in inputs]))

    def _decoded(self, lines: Iterable[bytes], source: str, before: int = 0) -> Iterator[tuple[int, bytes, object]]:
        """(line number in its input, after ``before`` lines, line, event or reject or failure)."""
        decode = self.catalog.decoder.decode
        not_after = self.not_after
        for number, line in enumerate(lines, before + 1):
            try:
                yield number, line, decode(line, source, DEFAULT_MAX_BYTES, not_after)  # JSON allows the newline
            except Exception as error:
                yield number, line, Failure(DECODE, error)

    def _judge(self, decoded: Iterable[tuple[int, bytes, object]]) -> None:
        """Judge the decoded lines a chunk at a time through the core (``monitor.judging``); then, in
        line order, keep each rejected line, rule error and failure of the chunk."""
        judging, others, chunk = self.judging, [], []
        events: list = []
        lines = self.lines
        try:
            for item in decoded:
                lines += 1
                event = item[2]
                if type(event) is Event:
                    events.append((len(chunk), event, None))
                else:
                    others.append(len(chunk))
                chunk.append(item)
                if len(chunk) == CHUNK:
                    taken = chunk, events, others
                    chunk, events, others = [], [], []
                    self._take_chunk(taken[0], judging.batch(taken[1]), taken[2])
            self._take_chunk(chunk, judging.batch(events), others)
        finally:
            self.lines = lines

    def _take_chunk(self, chunk: list[tuple[int, bytes, object]], judged: Judged, others: list[int]) -> None:
        numbers, texts, found = (list(column) for column in zip(*chunk, strict=True)) if chunk else ([], [], [])
        self._take(numbers, texts, found, judged, others)

    def _take(
        self, numbers: Sequence[int], texts: list[bytes], found: list[object], judged: Judged, others: list[int]
    ) -> None:
        """Count what the core judged of a chunk (its lines' numbers, the lines, and what each was decoded
        as), and keep its lines that are not judged events (rejects, failures) or whose rule raised, in
        line order."""
        tally, by_kind = self.tally, self.tally.by_kind
        for key, amount in judged.counts.get("", {}).items():
            what = key[0]
            if what == EVENTS:
                by_kind[key[2]] = by_kind.get(key[2], 0) + amount
            elif what == DUPLICATES:
                tally.duplicates += amount
            elif what == LATE:
                tally.late += amount
            elif what == RULE_ERRORS:
                tally.rule_errors += amount
                tally.rule_errors_by_touchpoint[key[1]] += amount
            elif what == REJECTED:  # too old (an engine that forgets ids: not a replay's)
                tally.rejected += amount
                tally.rejected_by_reason[key[2]] += amount
        if others or judged.failed or judged.rule_errors:
            kept = [(position, None) for position in others]
            kept += judged.failed
            kept += judged.rule_errors
            kept.sort(key=lambda pair: pair[0])
            for position, what in kept:
                number, line, decoded = numbers[position], texts[position], found[position]
                if what is None:
                    if type(decoded) is Failure:
                        self._failed(number, line, decoded)
                    else:
                        self._reject(number, line, decoded)  # type: ignore[arg-type]
                elif type(what) is Failure:
                    self._failed(number, line, what)
                elif self.on_reject is not None:  # a rule error: the event is accepted, kept whole with it
                    self.on_reject(number, what.kept(line.rstrip(b"\r\n"), decoded.source))  # type: ignore[attr-defined]
        self._settled(judged)

    def _settled(self, judged: Judged) -> None:
        """Count what the engine set aside of no line: rule errors of a release, failures."""
        for error in judged.released_errors:
            self.tally.rule_errors += 1
            self.tally.rule_errors_by_touchpoint[error.touchpoint] += 1
        for failure in judged.failures:
            self._failed(None, None, failure)

    def _reject(self, number: int, line: bytes, reject: Reject) -> None:
        if not line.strip():
            return  # blank lines are not events
        reject.raw = line.rstrip(b"\r\n")
        self.tally.rejected += 1
        self.tally.rejected_by_reason[reject.reason] += 1
        if self.on_reject is not None:
            self.on_reject(number, reject)

    def _failed(self, number: int | None, line: bytes | None, failure: Failure) -> None:
        """Count a failure; its line, if it has one, is kept as internal_error (rejected if not judged)."""
        self.tally.internal_errors += 1
        if self.on_failure is not None:
            self.on_failure(number, failure)
        if number is None or line is None:
            return
        reject = Reject(INTERNAL_ERROR, failure.detail, line.rstrip(b"\r\n"), FILE_SOURCE, failure.stage)
        if failure.stage in JUDGED_STAGES:
            if self.on_reject is not None:
                self.on_reject(number, reject)
            return
        self._reject(number, line, reject)

    def finish(self, until: int | None = None) -> dict:
        """Decide what the end of input decides (with ``until``, what is due by then), and return the
        summary of docs/SEMANTICS.md."""
        try:
            self.engine.finish(until)
        except Exception as error:  # a failure in one of the last decisions
            self.engine.outbox.clear()
            self._failed(None, None, Failure(JOURNEY, error))
        self._settled(self.judging.settle())
        return self.summary()

    def mostly_rejected(self) -> str | None:
        """When more than half of the lines read (blank lines aside) were rejected, what says so: how
        many, and the most frequent reasons (a replay then exits non-zero: a catalog whose pointers do
        not fit its input rejects most of it). None otherwise."""
        tally = self.tally
        read = tally.rejected + sum(tally.by_kind.values()) + tally.duplicates
        if not tally.rejected or tally.rejected * 2 <= read:
            return None
        top = ", ".join(f"{reason} {count}" for reason, count in tally.rejected_by_reason.most_common(3))
        return f"{tally.rejected} of the {read} lines read were rejected ({top})"

    def summary(self) -> dict:
        tally, engine = self.tally, self.engine
        pending, counts = engine.pending, engine.counts()
        customers = engine.state.customers
        at_risk = engine.at_risk_counts()
        impacted: dict[str, int] = {}  # distinct customers owning a bad outcome of each touchpoint
        for mine in customers.values():
            for touchpoint_id, count in (mine.bad or {}).items():
                if count:
                    impacted[touchpoint_id] = impacted.get(touchpoint_id, 0) + 1
        touchpoints = {}
        left = sum(tally.by_kind.get(kind, 0) for kind in self.catalog.contract.left)
        # The state over the whole input, on the outcomes decided on data alone, warming up while none
        # can be (docs/SEMANTICS.md, "Warming up"); good and bad count every outcome decided.
        fair, end = engine.fair, engine.state.watermark
        for index, touchpoint in enumerate(self.catalog.touchpoints):
            good, bad = counts[touchpoint.id]
            warming = end is not None and warming_up(touchpoint, end, engine.state.min_at)
            verdict = judge(touchpoint, *fair.counts[touchpoint.id], self.catalog.z, warming)  # type: ignore[union-attr]
            touchpoints[touchpoint.id] = {
                "good": good,
                "bad": bad,
                "pending": pending[index],
                "reliability": reliability(good, bad),
                "state": verdict.state,
                "rule_errors": tally.rule_errors_by_touchpoint.get(touchpoint.id, 0),
            }
            if touchpoint.at_risk is not None:  # open and running with at most at_risk left, at the end
                touchpoints[touchpoint.id]["at_risk"] = at_risk.get(touchpoint.id, 0)
            tallies = engine.impact.totals.get(touchpoint.id, {})
            mine = impacted.get(touchpoint.id, 0)  # churn lift: against the input's leavers of its customers
            touchpoints[touchpoint.id]["impact"] = impact_view(tallies, mine, (mine, left, len(customers)))
        return {
            "events": {
                "accepted": sum(tally.by_kind.values()),
                "rejected": tally.rejected,
                "duplicates": tally.duplicates,
                "late": tally.late,
                "rule_errors": tally.rule_errors,
                "internal_errors": tally.internal_errors,
            },
            "touchpoints": touchpoints,
            "customers": {
                "joined": sum(tally.by_kind.get(kind, 0) for kind in self.catalog.contract.joined),
                "left": left,
            },
            "journeys": {
                "total": len(customers),
                "broken": sum(1 for mine in customers.values() if mine.bad),
            },
            "vital_few": vital_few({t: row["state"] for t, row in touchpoints.items()}, impacted),
        }


_NO_TIME = -(2**63)  # a line that is not an event goes as soon as it is next in its input


def _merged(inputs: list[Iterator[tuple[int, bytes, object]]]) -> Iterator[tuple[int, bytes, object]]:
    """The inputs' items, the earliest head next (ties: the input given first)."""
    heads: list[tuple[int, int, tuple[int, bytes, object]]] = []
    for index, items in enumerate(inputs):
        item = next(items, None)
        if item is not None:
            heads.append((_time_of(item), index, item))
    heapq.heapify(heads)
    while heads:
        _, index, item = heads[0]
        yield item
        following = next(inputs[index], None)
        if following is None:
            heapq.heappop(heads)
        else:
            heapq.heapreplace(heads, (_time_of(following), index, following))


def _time_of(item: tuple[int, bytes, object]) -> int:
    event = item[2]
    return event.at if type(event) is Event else _NO_TIME  # type: ignore[attr-defined]


class _Filing:
    """A replay's journeys and its callbacks on each event accepted and each outcome, as the core files
    them (a callback that raises is a failure of the journey stage, as a journey's is)."""

    def __init__(
        self,
        journeys: Journeys | None,
        on_event: Callable[[Event], None] | None,
        on_outcome: Callable[[Outcome], None] | None,
    ) -> None:
        self.journeys, self.on_event, self.on_outcome = journeys, on_event, on_outcome

    def add_event(self, event: Event) -> None:
        if self.journeys is not None:
            self.journeys.add_event(event)
        if self.on_event is not None:
            self.on_event(event)

    def add_outcome(self, outcome: Outcome) -> None:
        if self.journeys is not None:
            self.journeys.add_outcome(outcome)
        if self.on_outcome is not None:
            self.on_outcome(outcome)
