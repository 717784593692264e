"""One engine per partition, and the records that keep its state: the adapter between Faust and the core.

Nothing here knows Faust: state is read from and written to ``Store`` objects (the app gives it its
changelog-backed tables), and time comes in the inputs' reports. Each customer's part of the engine
state is one record (``customers`` store), each customer's journey another (``journeys`` store, whose
changelog is the compacted journeys topic). A record is written whole, so a crash never leaves half of
a change behind, and a reprocessed event is recognised as a duplicate by the record that already holds
it.

Each partition has one more record, small, in the customers store: its clock (the inputs' progress and
the watermark, ``monitor.watermark``) and the counts of the customers it has freed. It is written after
the partition's customer records of a batch, in the same changelog partition, so Kafka keeps that
order: when it is stored, so is everything the watermark it holds had decided. A customer with nothing
open, queued or remembered is freed (``forget``, by the watermark: retention is in event time). Its
counts move into the partition's record, which is written first, naming the customers freed, and only
then are their records deleted: a partition read back after a crash in between finishes the deletions
instead of counting the freed customers twice.

No event can stop it (docs/EVENTS.md): each event's step, its journey, each customer's records and the
metrics are guarded apart. ``handle_batch`` returns the events that failed (the app keeps them whole as
internal_error); failures of no event (a stored record that cannot be read back, a rule that raised
while deciding, a timer) collect in ``failures``, for the app to log and count.
"""

from __future__ import annotations

from collections import Counter, deque
from collections.abc import Callable, Iterable
from typing import Protocol

import orjson
from aiokafka.partitioner import murmur2

from monitor.catalog import Catalog
from monitor.engine import DUPLICATE, LATE, Engine
from monitor.engine.impact import IMPACTED, add_tallies, impact_view
from monitor.events import Event, format_timestamp, json_bytes, parse_timestamp
from monitor.failures import JOURNEY, JUDGE, METRICS, RECORD, RESTORE, TIMER, Failure
from monitor.journeys import DEFAULT_MAX_AGE, Journey, Journeys, story
from monitor.metrics import Metrics
from monitor.state import reliability, touchpoint_state
from monitor.watermark import Inputs, Report

# Journeys kept as objects per partition, the most recently used; the others are read back from their
# stored records when needed, so memory does not hold every journey twice (as objects and as records).
JOURNEY_CACHE = 10_000
# The latest stories kept per touchpoint (customers with a bad outcome of it), for /stories.
STORIES = 5
# Customers freed at once: the partition's record names them, so it stays small.
FREE_AT_ONCE = 10_000
# A partition's dicts are rebuilt once what they hold has fallen below half of what they held (and that
# was at least this many): a dict does not give back the room it grew to.
COMPACT_FROM = 10_000


def key_partition(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner gives a key: where ingest sends a customer's events."""
    return (murmur2(key) & 0x7FFFFFFF) % count


class Store(Protocol):
    """A keyed store whose writes land in a partition of its changelog, and one record per partition."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, partition: int, key: str, value: bytes | None) -> None: ...

    def items(self, partition: int) -> Iterable[tuple[str, bytes]]:
        """The records of one partition (and only those)."""
        ...

    def get_state(self, partition: int) -> bytes | None: ...

    def put_state(self, partition: int, value: bytes) -> None: ...

    def compact(self) -> None:
        """Give back the room of deleted records."""
        ...


class Partitions:
    def __init__(
        self,
        catalog: Catalog,
        customers: Store,
        journeys: Store,
        *,
        lateness: int | None = None,
        retention: int,
        journey_cache: int = JOURNEY_CACHE,
        journey_age: int = DEFAULT_MAX_AGE,
    ) -> None:
        self.catalog = catalog
        self.lateness = catalog.lateness if lateness is None else lateness
        self.retention = retention
        self.journey_age = journey_age
        self.customers = customers
        self.journey_store = journeys
        self.engines: dict[int, Engine] = {}
        self.clocks: dict[int, Inputs] = {}  # per partition, its inputs' progress
        self.journeys: dict[int, Journeys] = {}  # per partition, the recently used journeys (a cache)
        self.journey_cache = journey_cache
        self.last_at: dict[int, dict[str, int]] = {}  # per partition, customer -> newest time in its journey
        self.peaks: dict[int, int] = {}  # per partition, the most customers held since its dicts were rebuilt
        self.metrics: Metrics | None = None
        # Per touchpoint, its latest bad outcomes on this worker: (instant, partition, customer).
        self.stories: dict[str, deque[tuple[int, int, str]]] = {t: deque(maxlen=STORIES) for t in catalog.ids}
        self.failures: list[Failure] = []  # failures of no event in particular, for the app to drain

    # -- OutcomeSource, for the metrics ---------------------------------------------------------------
    def counts(self) -> dict[str, list[int]]:
        totals = {touchpoint_id: [0, 0] for touchpoint_id in self.catalog.ids}
        for engine in list(self.engines.values()):
            for touchpoint_id, (good, bad) in engine.counts().items():
                pair = totals.setdefault(touchpoint_id, [0, 0])
                pair[0] += good
                pair[1] += bad
        return totals

    def pending_counts(self) -> dict[str, int]:
        totals = dict.fromkeys(self.catalog.ids, 0)
        for engine in list(self.engines.values()):
            for touchpoint_id, count in engine.pending_counts().items():
                totals[touchpoint_id] = totals.get(touchpoint_id, 0) + count
        return totals

    def at_risk_counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for engine in list(self.engines.values()):
            for touchpoint_id, count in engine.at_risk_counts().items():
                totals[touchpoint_id] = totals.get(touchpoint_id, 0) + count
        return totals

    def impact_totals(self) -> dict[str, dict[str, float]]:
        totals: dict[str, dict[str, float]] = {}
        for engine in list(self.engines.values()):
            add_tallies(totals, engine.impact.totals)
        return totals

    def customers_active(self) -> int:
        return sum(engine.impact.active_total for engine in list(self.engines.values()))

    def at_risk(self, limit: int = 100) -> list[dict]:
        """The instances at risk on this worker's partitions, the least time left first (at most
        ``limit``), each with its touchpoint, customer, key and time left at its partition's watermark."""
        found = [item for engine in list(self.engines.values()) for item in engine.at_risk()]
        found.sort(key=lambda item: (item["left"], item["touchpoint"], item["customer_id"], item["key"]))
        return found[:limit]

    def touchpoints(self) -> dict[str, dict]:
        """The state of every touchpoint over this worker's partitions, since their data began."""
        counts, pending = self.counts(), self.pending_counts()
        at_risk = self.at_risk_counts()
        impact = self.impact_totals()
        view = {}
        for t in self.catalog.touchpoints:
            good, bad = counts[t.id]
            view[t.id] = {
                "stage": t.stage,
                "owner": t.owner,
                "good": good,
                "bad": bad,
                "pending": pending[t.id],
                "reliability": reliability(good, bad),
                "objective": t.objective,
                "differentiating": t.differentiating,
                "state": touchpoint_state(t, good, bad),
            }
            if t.at_risk is not None:
                view[t.id]["at_risk"] = at_risk.get(t.id, 0)
            named = impact.get(t.id, {})  # customers impacted: once per customer and UTC day, as the metric
            view[t.id]["impact"] = impact_view(named, int(named.get(IMPACTED, 0)))
        return view

    # -- partitions come and go -------------------------------------------------------------------------
    def engine(self, partition: int) -> Engine:
        """The partition's engine, rebuilt from its stored records the first time it is needed."""
        engine = self.engines.get(partition)
        if engine is None:
            engine = Engine(self.catalog, lateness=self.lateness, track=True, own_clock=False)
            clock = Inputs(self.lateness)
            freeing: set[str] = set()
            try:
                stored = self.customers.get_state(partition)
                if stored is not None:
                    state = orjson.loads(stored)
                    clock.load(state["inputs"])
                    engine.fold(state["folded"], state.get("impact"), state.get("active", 0))
                    engine.state.watermark = state["watermark"]
                    freeing = set(state["freeing"])
            except Exception as error:  # a clock this version cannot read: it starts again from the reports
                self.failures.append(Failure(RESTORE, error))
            for customer, value in list(self.customers.items(partition)):
                if customer in freeing:  # freed, its counts folded, its deletion not yet stored
                    self.customers.put(partition, customer, None)
                    continue
                try:
                    engine.load(customer, orjson.loads(value))
                except Exception as error:  # a record this version cannot read: the others still load
                    engine.state.customers.pop(customer, None)
                    self.failures.append(Failure(RESTORE, error, customer=customer))
            engine.dirty.clear()
            engine.settle()  # what is at risk at the stored watermark (what it changes is stored next)
            self.engines[partition] = engine
            self.clocks[partition] = clock
            self.journeys[partition] = Journeys()
            self.last_at[partition] = self._stored_last_at(partition)
        return engine

    def _stored_last_at(self, partition: int) -> dict[str, int]:
        """The newest time in each stored journey of the partition, so that retention also expires the
        journeys of customers not seen since this worker took the partition (after a restart, say)."""
        last_at: dict[str, int] = {}
        for customer, value in self.journey_store.items(partition):
            try:
                newest = orjson.loads(value)["last_at"]
            except Exception as error:
                self.failures.append(Failure(RESTORE, error, customer=customer))
                newest = None
            last_at[customer] = (parse_timestamp(newest) or 0) if newest else 0
        return last_at

    def latest_stories(self, touchpoint: str) -> list[dict]:
        """The latest customers of this worker with a bad outcome of ``touchpoint``, newest first, each
        with its story (``monitor.journeys.story``) from its journey."""
        found = []
        for at, partition, customer in reversed(self.stories.get(touchpoint, ())):
            journeys = self.journeys.get(partition)
            journey = journeys.by_customer.get(customer) if journeys is not None else None
            if journey is not None:
                record = orjson.loads(json_bytes(journey.record()))  # (its events are kept as bytes)
            else:
                stored = self.journey_store.get(customer)
                if not stored:
                    continue  # expired since
                record = orjson.loads(stored)
            found.append(
                {
                    "customer_id": customer,
                    "bad_at": format_timestamp(at),
                    "story": story(record, {touchpoint}),
                    "journey": f"/journeys/{customer}",
                }
            )
        return found

    def customers_held(self) -> dict[int, int]:
        """Per partition, the customers whose state its engine holds (open, queued or remembered)."""
        return {partition: len(engine.state.customers) for partition, engine in sorted(self.engines.items())}

    def watermarks(self) -> dict[int, int | None]:
        return {partition: engine.state.watermark for partition, engine in sorted(self.engines.items())}

    def progress(self) -> dict[str, tuple[int | None, bool]]:
        """Every input as the reports taken here say: its progress (the largest any partition knows) and
        whether it is idle."""
        view: dict[str, tuple[int | None, bool]] = {}
        for clock in self.clocks.values():
            for name, mine in clock.inputs.items():
                known = view.get(name)
                if known is None or (mine.progress is not None and (known[0] is None or mine.progress > known[0])):
                    view[name] = (mine.progress, mine.idle)
        return view

    def adopt(self, partitions: Iterable[int]) -> None:
        """Build the engines of partitions this worker owns and has recovered, even if no event has come
        for them yet: after a restart, a quiet partition's deadlines and retention run all the same."""
        for partition in partitions:
            self.engine(partition)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker no longer owns (their records stay in the changelog)."""
        for partition in partitions:
            self.engines.pop(partition, None)
            self.clocks.pop(partition, None)
            self.journeys.pop(partition, None)
            self.last_at.pop(partition, None)
            self.peaks.pop(partition, None)

    # -- the work ---------------------------------------------------------------------------------------
    def handle(self, partition: int, item: Event | Report) -> list[tuple[int, Failure]]:
        """One event or report; see ``handle_batch``."""
        return self.handle_batch([(partition, item)])

    def handle_batch(self, batch: list[tuple[int, Event | Report]]) -> list[tuple[int, Failure]]:
        """Step every event of a batch and take every report (which moves the watermark), in order;
        then write each changed record once per batch (a customer with ten events in the batch is
        written once, not ten times), and last each partition's own record. Returns (position in the
        batch, failure) for each item whose processing raised: not judged (stage judge: the engine is
        as if it never came), or judged with its journey or records incomplete (journey, record)."""
        failed: dict[int, Failure] = {}  # by position in the batch: the first failure of each item
        duplicate_items: set[int] = set()
        touched: dict[int, dict[str, Journey]] = {}
        # Counted per batch: a labelled counter's increment takes a lock, once per event was too often.
        kinds: Counter[tuple[str, str]] = Counter()
        duplicates: Counter[str] = Counter()
        late: Counter[str] = Counter()
        for item, (partition, event) in enumerate(batch):
            if type(event) is Report:
                journeys = touched.setdefault(partition, {})
                try:
                    engine = self.engine(partition)
                    clock = self.clocks[partition]
                    clock.report(event)
                    engine.advance(clock.watermark())
                    if engine.outbox:
                        self._file_outcomes(partition, engine, journeys)
                except Exception as error:
                    if partition in self.engines:
                        self.engines[partition].outbox.clear()
                    failed[item] = Failure(JUDGE, error)
                continue
            try:
                engine = self.engine(partition)
                status = engine.step(event)  # type: ignore[arg-type]
            except Exception as error:
                failed[item] = Failure(JUDGE, error, event_id=event.id, customer=event.customer)
                continue
            if status == DUPLICATE:
                duplicates[event.source] += 1
                duplicate_items.add(item)
                continue
            kinds[event.source, event.kind] += 1
            if status == LATE:
                late[event.source] += 1
            journeys = touched.setdefault(partition, {})
            try:
                journeys[event.customer] = self._journey(partition, event.customer)
                self.journeys[partition].add_event(event)
                if engine.outbox:
                    self._file_outcomes(partition, engine, journeys)
            except Exception as error:
                engine.outbox.clear()
                failed[item] = Failure(JOURNEY, error, event_id=event.id, customer=event.customer)

        def record_failed(partition: int, failure: Failure) -> None:
            """A customer's record could not be written: its events of the batch say so (once each);
            a customer with none (decided by the clock) is a failure of no event."""
            mine = [
                item
                for item, (where, event) in enumerate(batch)
                if where == partition
                and type(event) is Event
                and event.customer == failure.customer
                and item not in duplicate_items
            ]
            for item in mine:
                event = batch[item][1]
                failed.setdefault(item, Failure(RECORD, failure.error, event_id=event.id, customer=event.customer))
            if not mine:
                self.failures.append(failure)

        for partition, journeys in touched.items():
            if partition in self.engines:
                self._settle(partition, self.engines[partition], journeys, record_failed)
                self._write_state(partition)
        if self.metrics is not None:
            try:
                for (source, kind), count in kinds.items():
                    self.metrics.event(source, kind, count)
                for source, count in duplicates.items():
                    self.metrics.duplicate(source, count)
                for source, count in late.items():
                    self.metrics.late_event(source, count)
            except Exception as error:
                self.failures.append(Failure(METRICS, error))
        return sorted(failed.items())

    def forget(self) -> bool:
        """Retention, in event time: each partition forgets event ids older than its watermark minus the
        retention, frees the customers left with nothing, and deletes journeys quiet for their age.
        Returns whether it rebuilt dicts (so that the caller may give the freed memory back)."""
        compacted = False
        for partition, engine in list(self.engines.items()):
            watermark = engine.state.watermark
            if watermark is None:
                continue
            high = max(self.peaks.get(partition, 0), len(engine.state.customers), len(self.last_at[partition]))
            try:
                for _, freed in engine.forget_in_chunks(watermark - self.retention, FREE_AT_ONCE):
                    if freed:  # the counts first, naming whom they come from; then the deletions
                        self._write_state(partition, freeing=freed)
                    self._settle(partition, engine, {})
                before = watermark - self.journey_age
                self.journeys[partition].expire(before)
                last_at = self.last_at[partition]
                for customer in [customer for customer, at in last_at.items() if at < before]:
                    del last_at[customer]
                    self.journey_store.put(partition, customer, None)
                self._write_state(partition)
                now = max(len(engine.state.customers), len(last_at))
                if high >= COMPACT_FROM and now < high // 2:
                    engine.compact()
                    self.journeys[partition].compact()
                    self.last_at[partition] = dict(last_at)
                    high, compacted = now, True
                self.peaks[partition] = high
            except Exception as error:
                self.failures.append(Failure(TIMER, error))
        if compacted:
            try:
                self.customers.compact()
                self.journey_store.compact()
            except Exception as error:
                self.failures.append(Failure(TIMER, error))
        return compacted

    def _write_state(self, partition: int, freeing: list[str] | None = None) -> None:
        engine = self.engines[partition]
        try:
            state = {
                "version": 1,
                "watermark": engine.state.watermark,
                "inputs": self.clocks[partition].record(),
                "folded": engine.folded,
                "impact": engine.impact.folded,
                "active": engine.impact.active_folded,
                "freeing": freeing or [],
            }
            self.customers.put_state(partition, json_bytes(state))
        except Exception as error:
            self.failures.append(Failure(RECORD, error))

    def _journey(self, partition: int, customer: str) -> Journey:
        journeys = self.journeys[partition]
        journey = journeys.touch(customer)
        if journey is None:
            stored = self.journey_store.get(customer)
            try:
                journey = Journey.from_record(orjson.loads(stored)) if stored else Journey(customer)
            except Exception as error:  # a stored journey this version cannot read: it starts again
                self.failures.append(Failure(RESTORE, error, customer=customer))
                journey = Journey(customer)
            journeys.put(journey)
        return journey

    def _file_outcomes(self, partition: int, engine: Engine, touched: dict[str, Journey]) -> None:
        """Count the outcomes and file them in their customers' journeys."""
        metrics = self.metrics
        journeys = self.journeys[partition]
        for outcome in engine.outbox:
            journey = touched.get(outcome.customer) or self._journey(partition, outcome.customer)
            was_broken = journey.broken
            journeys.add_outcome(outcome)
            touched[outcome.customer] = journey
            if not outcome.good:
                latest = self.stories.get(outcome.touchpoint)
                if latest is not None:  # each customer once: its newest
                    for item in [item for item in latest if item[2] == outcome.customer]:
                        latest.remove(item)
                    latest.append((outcome.at, partition, outcome.customer))
            if metrics is not None:
                metrics.outcome(outcome)
                if not was_broken and journey.broken:
                    metrics.journey_broken()
        engine.outbox.clear()

    def _settle(
        self,
        partition: int,
        engine: Engine,
        touched: dict[str, Journey],
        record_failed: Callable[[int, Failure], None] | None = None,
    ) -> None:
        """File what is left in the outbox, then write every changed record. A record that cannot be
        written is reported (to ``record_failed``, else in ``failures``) and the others are written."""
        try:
            self._file_outcomes(partition, engine, touched)
        except Exception as error:
            engine.outbox.clear()
            self.failures.append(Failure(JOURNEY, error))
        self.failures.extend(engine.failures)  # rules that raised while deciding
        engine.failures.clear()
        if self.metrics is not None:
            for error in engine.errors:
                self.metrics.rule_error(error.touchpoint)
        engine.errors.clear()
        writes = [(customer, self._write_customer) for customer in engine.dirty]
        writes += [(customer, self._write_journey) for customer in touched]
        for customer, write in writes:
            try:
                write(partition, engine, customer, touched)
            except Exception as error:
                failure = Failure(RECORD, error, customer=customer)
                if record_failed is None:
                    self.failures.append(failure)
                else:
                    record_failed(partition, failure)
        engine.dirty.clear()
        self.journeys[partition].keep_recent(self.journey_cache)

    def _write_customer(self, partition: int, engine: Engine, customer: str, touched: dict[str, Journey]) -> None:
        record = engine.record(customer)
        if record is None:
            self.customers.put(partition, customer, None)
        else:
            record["partition"] = partition
            self.customers.put(partition, customer, json_bytes(record))

    def _write_journey(self, partition: int, engine: Engine, customer: str, touched: dict[str, Journey]) -> None:
        journey = touched[customer]
        self.journey_store.put(partition, customer, json_bytes(journey.record()))
        self.last_at[partition][customer] = journey.last_at


class MemoryStore:
    """A Store in dicts, for tests and for replaying a partition by hand. ``writes`` keeps every write in
    order (a partition's record as the key None), as a changelog would."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.partition_of: dict[str, int] = {}
        self.states: dict[int, bytes] = {}
        self.writes: list[tuple[int, str | None, bytes | None]] = []

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        self.writes.append((partition, key, value))
        if value is None:
            self.data.pop(key, None)
            self.partition_of.pop(key, None)
        else:
            self.data[key] = value
            self.partition_of[key] = partition

    def items(self, partition: int) -> Iterable[tuple[str, bytes]]:
        return [(key, self.data[key]) for key, where in self.partition_of.items() if where == partition]

    def get_state(self, partition: int) -> bytes | None:
        return self.states.get(partition)

    def put_state(self, partition: int, value: bytes) -> None:
        self.writes.append((partition, None, value))
        self.states[partition] = value

    def compact(self) -> None:
        self.data, self.partition_of = dict(self.data), dict(self.partition_of)

    @classmethod
    def replayed(cls, writes: list[tuple[int, str | None, bytes | None]]) -> MemoryStore:
        """The store a changelog holding ``writes`` gives back (a crash may have cut them short)."""
        store = cls()
        for partition, key, value in writes:
            if key is None:
                store.put_state(partition, value)  # type: ignore[arg-type]
            else:
                store.put(partition, key, value)
        return store
