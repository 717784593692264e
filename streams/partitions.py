"""One engine per partition, and the records that keep its state: the adapter between Faust and the core.

Nothing here knows Faust: state is read from and written to ``Store`` objects (the app gives it its
changelog-backed tables), time comes in as an argument. Each customer's part of the engine state is one
record (``customers`` store), each customer's journey another (``journeys`` store, whose changelog is
the compacted journeys topic). A record is written whole, so a crash never leaves half of a change
behind, and a reprocessed event is recognised as a duplicate by the record that already holds it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from typing import Protocol

import orjson
from aiokafka.partitioner import murmur2

from monitor.catalog import Catalog
from monitor.engine import DUPLICATE, LATE, Engine
from monitor.events import Event, json_bytes, parse_timestamp
from monitor.journeys import Journey, Journeys
from monitor.metrics import Metrics
from monitor.state import reliability, touchpoint_state

# Journeys kept as objects per partition, the most recently used; the others are read back from their
# stored records when needed, so memory does not hold every journey twice (as objects and as records).
JOURNEY_CACHE = 10_000


def key_partition(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner gives a key: where ingest sends a customer's events."""
    return (murmur2(key) & 0x7FFFFFFF) % count


class Store(Protocol):
    """A keyed store whose writes land in a partition of its changelog."""

    def get(self, key: str) -> bytes | None: ...

    def put(self, partition: int, key: str, value: bytes | None) -> None: ...

    def items(self) -> Iterable[tuple[str, bytes]]: ...


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
        partition_of: Callable[[str], int] | None = None,
    ) -> None:
        self.catalog = catalog
        self.lateness = lateness
        self.retention = retention
        self.customers = customers
        self.journey_store = journeys
        self.engines: dict[int, Engine] = {}
        self.journeys: dict[int, Journeys] = {}  # per partition, the recently used journeys (a cache)
        self.journey_cache = journey_cache
        self.last_at: dict[int, dict[str, int]] = {}  # per partition, customer -> newest time in its journey
        # The partition of a customer's events, for the stored journeys, which do not say theirs.
        self.partition_of = partition_of
        self.metrics: Metrics | None = None

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

    def touchpoints(self) -> dict[str, dict]:
        """The state of every touchpoint over this worker's partitions, since their data began."""
        counts, pending = self.counts(), self.pending_counts()
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
        return view

    # -- partitions come and go -------------------------------------------------------------------------
    def engine(self, partition: int) -> Engine:
        """The partition's engine, rebuilt from its stored records the first time it is needed."""
        engine = self.engines.get(partition)
        if engine is None:
            engine = Engine(self.catalog, lateness=self.lateness, track=True)
            for customer, value in list(self.customers.items()):
                record = orjson.loads(value)
                if record.get("partition") == partition:
                    engine.load(customer, record)
            engine.dirty.clear()
            self.engines[partition] = engine
            self.journeys[partition] = Journeys()
            self.last_at[partition] = self._stored_last_at(partition)
        return engine

    def _stored_last_at(self, partition: int) -> dict[str, int]:
        """The newest time in each stored journey of the partition, so that retention also expires the
        journeys of customers not seen since this worker took the partition (after a restart, say)."""
        last_at: dict[str, int] = {}
        if self.partition_of is None:
            return last_at
        for customer, value in self.journey_store.items():
            if self.partition_of(customer) == partition:
                newest = orjson.loads(value)["last_at"]
                last_at[customer] = (parse_timestamp(newest) or 0) if newest else 0
        return last_at

    def adopt(self, partitions: Iterable[int]) -> None:
        """Build the engines of partitions this worker owns and has recovered, even if no event has come
        for them yet: after a restart, a quiet partition's deadlines and retention run all the same."""
        for partition in partitions:
            self.engine(partition)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker no longer owns (their records stay in the changelog)."""
        for partition in partitions:
            self.engines.pop(partition, None)
            self.journeys.pop(partition, None)
            self.last_at.pop(partition, None)

    # -- the work ---------------------------------------------------------------------------------------
    def handle(self, partition: int, event: Event, now: int) -> int:
        """One event; see ``handle_batch``."""
        return self.handle_batch([(partition, event)], now)[0]

    def handle_batch(self, batch: list[tuple[int, Event]], now: int) -> list[int]:
        """Step every event of a batch, then write each changed record once per batch (a customer with
        ten events in the batch is written once, not ten times); returns each event's status."""
        statuses = []
        touched: dict[int, dict[str, Journey]] = {}
        # Counted per batch: a labelled counter's increment takes a lock, once per event was too often.
        kinds: Counter[tuple[str, str]] = Counter()
        duplicates: Counter[str] = Counter()
        late: Counter[str] = Counter()
        for partition, event in batch:
            engine = self.engine(partition)
            status = engine.step(event, now)
            statuses.append(status)
            if status == DUPLICATE:
                duplicates[event.source] += 1
                continue
            kinds[event.source, event.kind] += 1
            if status == LATE:
                late[event.source] += 1
            journeys = touched.setdefault(partition, {})
            journeys[event.customer] = self._journey(partition, event.customer)
            self.journeys[partition].add_event(event)
            if engine.outbox:
                self._file_outcomes(partition, engine, journeys)
        for partition, journeys in touched.items():
            self._settle(partition, self.engines[partition], journeys)
        if self.metrics is not None:
            for (source, kind), count in kinds.items():
                self.metrics.event(source, kind, count)
            for source, count in duplicates.items():
                self.metrics.duplicate(source, count)
            for source, count in late.items():
                self.metrics.late_event(source, count)
        return statuses

    def tick(self, now: int) -> None:
        """Move idle clocks on; every partition whose clock moved writes what that decided."""
        for partition, engine in list(self.engines.items()):
            engine.tick(now)
            if engine.outbox or engine.dirty:
                self._settle(partition, engine, {})

    def forget(self, before: int) -> None:
        """Forget event ids older than ``before`` and journeys with nothing newer (retention)."""
        for partition, engine in list(self.engines.items()):
            engine.forget(before)
            self._settle(partition, engine, {})
            self.journeys[partition].expire(before)
            last_at = self.last_at[partition]
            for customer in [customer for customer, at in last_at.items() if at < before]:
                del last_at[customer]
                self.journey_store.put(partition, customer, None)

    def _journey(self, partition: int, customer: str) -> Journey:
        journeys = self.journeys[partition]
        journey = journeys.touch(customer)
        if journey is None:
            stored = self.journey_store.get(customer)
            journey = Journey.from_record(orjson.loads(stored)) if stored else Journey(customer)
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
            if metrics is not None:
                metrics.outcome(outcome)
                if not was_broken and journey.broken:
                    metrics.journey_broken()
        engine.outbox.clear()

    def _settle(self, partition: int, engine: Engine, touched: dict[str, Journey]) -> None:
        """File what is left in the outbox, then write every changed record."""
        self._file_outcomes(partition, engine, touched)
        if self.metrics is not None:
            for error in engine.errors:
                self.metrics.rule_error(error.touchpoint)
        engine.errors.clear()
        for customer in engine.dirty:
            record = engine.record(customer)
            if record is None:
                self.customers.put(partition, customer, None)
            else:
                record["partition"] = partition
                self.customers.put(partition, customer, json_bytes(record))
        engine.dirty.clear()
        last_at = self.last_at[partition]
        for customer, journey in touched.items():
            self.journey_store.put(partition, customer, json_bytes(journey.record()))
            last_at[customer] = journey.last_at
        self.journeys[partition].keep_recent(self.journey_cache)


class MemoryStore:
    """A Store in a dict, for tests and for replaying a partition by hand."""

    def __init__(self) -> None:
        self.data: dict[str, bytes] = {}
        self.writes: list[tuple[int, str, bytes | None]] = []

    def get(self, key: str) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        self.writes.append((partition, key, value))
        if value is None:
            self.data.pop(key, None)
        else:
            self.data[key] = value

    def items(self) -> Iterable[tuple[str, bytes]]:
        return self.data.items()
