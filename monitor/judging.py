"""The judging core: a batch of events and watermark reports through one engine, and what it did.

Replay (``monitor.replay``) and the live worker (``streams.partitions``) both judge through ``Judging``:
each event is stepped, sorted (accepted, late, a duplicate of the stream, too old to judge), counted by
source and type, filed in its customer's journey with the outcomes it decided, and the engine's side
lists (outcomes, rule errors, failures, changed customers) are emptied into one typed result,
``Judged``. What differs between the two is only what surrounds the core: a replay reads lines and
prints, a worker skips the messages it has accounted for already, keeps records and serves figures.

Pure: time comes in the events and the reports; journeys are filed through ``Filing`` (a replay's
``Journeys``, or a worker's journeys read back from their store).

No event can stop a batch (docs/EVENTS.md): an event whose step raises is a failure of stage judge (not
judged: the engine is as if it never came); one whose journey raises, of stage journey (judged).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from . import counts as tally
from .catalog.model import DEADLINE, Catalog
from .conventions import OTHER_TYPE
from .engine import DUPLICATE, TOO_OLD, Engine, Outcome, RuleError
from .events import TOO_OLD as TOO_OLD_REASON
from .events import Event
from .failures import JOURNEY, JUDGE, RESTORE, Failure
from .watermark import Report


class Filing(Protocol):
    """Where events and outcomes are filed with their customers: journeys."""

    def add_event(self, event: Event) -> object: ...

    def add_outcome(self, outcome: Outcome) -> object: ...


class Watermark(Protocol):
    """The watermark of an engine that does not keep its own (live: a partition's inputs)."""

    def report(self, report: Report) -> tuple[int | None, int | None]:
        """Take a report; return (the watermark, the instant to hold what is decided at, or None)."""
        ...

    def late(self, name: str, at: int) -> None:
        """An event of input ``name`` came after the watermark passed its instant ``at``: history."""
        ...


#: One item of a batch: (its position, the event or report, the event's input or None).
Item = tuple[int, "Event | Report", "str | None"]


@dataclass(slots=True)
class Judged:
    """What judging did. Positions are the items' own (a replay's line numbers, a worker's place in
    its batch). ``counts``: per customer (``Judging(per_customer=True)``), else all under "", in the keys
    of ``monitor.counts``: events by source and type, duplicates and late by source, too old by source
    (rejected), rule errors by touchpoint, and with ``measured`` what the outcomes add (their state
    window's bucket, deadlines' latency, journeys turned broken, customers impacted)."""

    counts: dict[str, tally.Counts] = field(default_factory=dict)
    outcomes: list[Outcome] = field(default_factory=list)
    failed: list[tuple[int, Failure]] = field(default_factory=list)  # (position, failure): the item's
    rule_errors: list[tuple[int, RuleError]] = field(default_factory=list)  # of the events stepped
    duplicates: list[int] = field(default_factory=list)  # positions of the duplicates of the stream
    too_old: list[int] = field(default_factory=list)  # positions of the events refused as too old
    failures: list[Failure] = field(default_factory=list)  # of no item: rules that raised while deciding
    released_errors: list[RuleError] = field(default_factory=list)  # rule errors of no event (a release)
    changed: set[str] = field(default_factory=set)  # customers whose state changed (tracking engines)
    loaded: list[str] = field(default_factory=list)  # customers put back in memory from their records


class Judging:
    """One engine's judging. ``journeys``: where events and outcomes are filed (None: not filed).
    ``watermark``: for an engine that does not keep its own clock (reports are taken only then).
    ``per_customer``: count under each event's customer (a worker stores a customer's counts with its
    record), else all under "". ``measured``: count what outcomes add to the figures a worker serves.
    ``stored``: a customer's stored record, for an engine that holds only some customers in memory (the
    others unloaded, their counts in its totals: ``Engine.unload``): read before the customer's event is
    stepped, when it is not held."""

    def __init__(
        self,
        engine: Engine,
        *,
        journeys: Filing | None = None,
        watermark: Watermark | None = None,
        per_customer: bool = False,
        measured: bool = False,
        stored: Callable[[str], dict | None] | None = None,
    ) -> None:
        self.engine = engine
        self.stored = stored
        self.journeys = journeys
        self.watermark = watermark
        self.per_customer = per_customer
        self.measured = measured
        catalog = engine.catalog
        self._types = catalog.contract.types
        self._event_keys: dict[str, dict[str, tally.Key]] = {}  # source -> type -> its key, built once
        self._windows = {t.id: t.window for t in catalog.touchpoints}
        self.buckets = tally.latency_buckets(catalog)
        self._latency = _latency_keys(catalog, self.buckets)

    def batch(self, items: Iterable[Item], judged: Judged | None = None) -> Judged:
        """Judge the items in order, then empty what the engine set aside (``settle``) into ``judged``."""
        judged = judged if judged is not None else Judged()
        engine, journeys, watermark, per_customer = self.engine, self.journeys, self.watermark, self.per_customer
        step, outbox, errors = engine.step, engine.outbox, engine.errors
        counts, event_keys, failed = judged.counts, self._event_keys, judged.failed
        stored, held = self.stored, engine.state.customers
        total = counts.get("")
        if total is None and not per_customer:
            total = counts[""] = {}
        mine = total
        known, kinds = None, {}  # the source of the last event counted, and its types' keys
        for position, item, name in items:
            if type(item) is Report:
                if watermark is not None:
                    self._report(position, item, judged)
                continue
            event: Event = item  # type: ignore[assignment]
            try:
                if stored is not None and event.customer not in held:
                    self._load(event.customer, judged)
                status = step(event)
            except Exception as error:
                failed.append((position, Failure(JUDGE, error, event_id=event.id, customer=event.customer)))
                continue
            if per_customer:
                mine = counts.get(event.customer)
                if mine is None:
                    mine = counts[event.customer] = {}
            source = event.source
            if status:
                if status == DUPLICATE:
                    tally.add(mine, (tally.DUPLICATES, source))
                    judged.duplicates.append(position)
                    continue
                if status == TOO_OLD:
                    tally.add(mine, (tally.REJECTED, source, TOO_OLD_REASON))
                    judged.too_old.append(position)
                    continue
                tally.add(mine, (tally.LATE, source))
                if watermark is not None:
                    watermark.late(name or "", event.at)
            if source is not known:
                known, kinds = source, event_keys.get(source)
                if kinds is None:
                    kinds = event_keys[source] = {}
            kind = event.kind
            key = kinds.get(kind)
            if key is None:
                key = kinds[kind] = (tally.EVENTS, source, kind if kind in self._types else OTHER_TYPE)
            mine[key] = mine.get(key, 0) + 1  # type: ignore[index]
            if errors:
                for error in errors:
                    tally.add(mine, (tally.RULE_ERRORS, error.touchpoint))  # type: ignore[arg-type]
                    judged.rule_errors.append((position, error))
                errors.clear()
            if journeys is not None or outbox:
                try:
                    if journeys is not None:
                        journeys.add_event(event)
                    if outbox:
                        self._file(judged)
                except Exception as error:
                    outbox.clear()
                    failed.append((position, Failure(JOURNEY, error, event_id=event.id, customer=event.customer)))
        self.settle(judged)
        return judged

    def _load(self, customer: str, judged: Judged) -> None:
        """A customer not in memory: its stored record, if it has one, put back (``stored``)."""
        record = self.stored(customer)  # type: ignore[misc]
        if record is not None:
            self.engine.load(customer, record, counted=True)  # (raising, it leaves nothing half put back)
            judged.loaded.append(customer)

    def _report(self, position: int, report: Report, judged: Judged) -> None:
        """A report moves the watermark (``watermark``), which decides what it passed; the customers
        away with something due by then are put back first (``Engine.waking``)."""
        try:
            self.advance(*self.watermark.report(report), judged=judged)  # type: ignore[union-attr]
        except Exception as error:
            self.engine.outbox.clear()
            judged.failed.append((position, Failure(JUDGE, error)))

    def advance(self, watermark: int | None, held: int | None = None, judged: Judged | None = None) -> Judged:
        """Move the engine's clock (``Engine.advance``), the customers away with something due by then
        put back first (``Engine.waking``); the outcomes are filed, the rest left for ``settle``."""
        judged = judged if judged is not None else Judged()
        engine = self.engine
        if self.stored is not None:
            for customer in engine.waking(watermark, held):
                try:
                    self._load(customer, judged)
                except Exception as error:  # (its record unreadable now: asked again at the next advance)
                    judged.failures.append(Failure(RESTORE, error, customer=customer))
                    engine.wake_again(customer)
        engine.advance(watermark, held)
        if engine.outbox:
            self._file(judged)
        return judged

    def settle(self, judged: Judged | None = None) -> Judged:
        """Empty what the engine set aside outside a batch's steps (the end of input, retention, an
        advance) into ``judged``: the outcomes not filed yet, failures, rule errors of no event, the
        customers changed and, measured, the customers impacted anew."""
        judged = judged if judged is not None else Judged()
        engine = self.engine
        try:
            self._file(judged)
        except Exception as error:  # a failure in filing an outcome of no event in particular
            engine.outbox.clear()
            judged.failures.append(Failure(JOURNEY, error))
        judged.failures.extend(engine.failures)
        engine.failures.clear()
        if engine.errors:  # of no step's event (the engine files those in steps only: a release)
            judged.released_errors.extend(engine.errors)
            engine.errors.clear()
        if engine.dirty:
            judged.changed |= engine.dirty
            engine.dirty.clear()
        if engine.latest_bad:
            if self.measured:
                self._impacted(judged, engine.latest_bad)
            engine.latest_bad.clear()
        return judged

    def _file(self, judged: Judged) -> None:
        """File the engine's outcomes with their customers, and count what they add (``measured``)."""
        outbox = self.engine.outbox
        if not outbox:
            return
        if self.measured:  # (counted before they are filed: a journey that raises loses no figure)
            self._measure(judged, outbox)
        judged.outcomes.extend(outbox)
        journeys = self.journeys
        try:
            if journeys is not None:
                for outcome in outbox:
                    journeys.add_outcome(outcome)
        finally:
            outbox.clear()

    def _counts_of(self, judged: Judged, customer: str) -> tally.Counts:
        key = customer if self.per_customer else ""
        mine = judged.counts.get(key)
        if mine is None:
            mine = judged.counts[key] = {}
        return mine

    def _measure(self, judged: Judged, outcomes: Sequence[Outcome]) -> None:
        """What each outcome adds to a worker's figures: its state window's bucket, and the latency of a
        deadline met."""
        windows, latency, buckets = self._windows, self._latency, self.buckets
        for outcome in outcomes:
            mine = self._counts_of(judged, outcome.customer)
            window = windows.get(outcome.touchpoint)
            if window is not None:  # the state window's bucket of its instant (monitor.window)
                side = "good" if outcome.good else "bad"
                tally.add(mine, (tally.WINDOW, outcome.touchpoint, str(window.bucket(outcome.at)), side))
            if outcome.latency is not None:
                keys = latency.get(outcome.touchpoint)
                if keys is not None:
                    tally.observe_latency(mine, keys, outcome.latency / 1_000_000, buckets)

    def _impacted(self, judged: Judged, latest_bad: list[tuple[str, str, int, int]]) -> None:
        """Each bad outcome that is its customer's latest of its touchpoint moves the customer to the
        bucket of its instant: distinct customers impacted (counts.IMPACTED)."""
        windows = self._windows
        for customer, touchpoint, before, at in latest_bad:
            window = windows.get(touchpoint)
            if window is not None:
                mine = self._counts_of(judged, customer)
                tally.move_impacted(mine, touchpoint, None if before < 0 else window.bucket(before), window.bucket(at))


def _latency_keys(catalog: Catalog, buckets: tuple[float, ...]) -> dict[str, list[tally.Key]]:
    return {t.id: tally.latency_keys(t.id, buckets) for t in catalog.touchpoints if t.kind == DEADLINE}
