"""Small builders that make engine tests read like sentences."""

from __future__ import annotations

import asyncio
import itertools
import shutil
from collections import namedtuple
from pathlib import Path

import orjson
from aiokafka.errors import MessageSizeTooLargeError

from monitor.catalog import load_catalog
from monitor.catalog.model import Catalog
from monitor.engine import Engine
from monitor.events import Event, format_timestamp, parse_timestamp
from streams.partitions import MemoryStore
from streams.store import CheckpointingOutbox, DiskTableStore, open_tables

#: The shipped catalog, whose declarations are the contract of docs/EVENTS.md; its decoder.
SHIPPED = load_catalog(Path(__file__).resolve().parents[1] / "rules")
CONTRACT = SHIPPED.contract
decode = SHIPPED.decoder.decode

BASE = parse_timestamp("2026-11-22T10:00:00Z")
_ids = itertools.count(1)

# The fields each type needs, so tests only say what matters to them.
DEFAULTS = {
    "order.placed": {"amount": 10.0, "channel": "web"},
    "order.delivered": {"promised_at": "2026-11-22T12:00:00Z"},
    "order.cancelled": {"by": "customer"},
    "bill.issued": {"amount": 10.0, "expected_amount": 10.0},
    "call.answered": {"queue": "billing", "wait_seconds": 10},
    "call.abandoned": {"queue": "billing", "wait_seconds": 90},
    "call.ended": {"resolved": True},
    "call.outbound": {"purpose": "winback"},
    "ticket.opened": {"category": "billing"},
}


def at(seconds: float) -> str:
    """The timestamp `seconds` after 10:00:00Z."""
    return format_timestamp(BASE + round(seconds * 1_000_000))


def event(
    event_type: str, seconds: float, customer: str = "c1", event_id: str | None = None, **fields: object
) -> Event:
    data = {
        "event_id": event_id or f"e{next(_ids)}",
        "type": event_type,
        "customer_id": customer,
        "occurred_at": at(seconds),
        **DEFAULTS.get(event_type, {}),
        **fields,
    }
    decoded = decode(orjson.dumps(data), "test")
    assert isinstance(decoded, Event), decoded
    return decoded


MINUTE = 60
HOUR = 3600
DAY = 86400


def reloaded(engine: Engine, catalog: Catalog | None = None, lateness: int | None = None) -> Engine:
    """A new engine from what ``engine`` stores, through JSON, as a worker restores a partition: the
    engine's own part (``saved``) taken back, then each customer's record, then ``settle``."""
    saved = orjson.loads(orjson.dumps(engine.saved()))
    records = orjson.loads(orjson.dumps({customer: engine.record(customer) for customer in engine.state.customers}))
    again = Engine(catalog or engine.catalog, lateness=engine.lateness if lateness is None else lateness, track=True)
    again.resume(saved)
    for customer, record in records.items():
        again.load(customer, record)
    again.settle()
    return again


# -- a partitions' stores, and what a crash leaves of them ----------------------------------------------------
# The live = replay tests run the worker's partitions on either store (TPMON_STORE): Faust's memory
# store (``MemoryStore``, which keeps its changelog as a list of writes) and tpmon's RocksDB store
# (streams.store), with a changelog and a producer of their own instead of the broker.
class Changelog:
    """A changelog topic: per partition, its records in offset order; ``hold`` keeps deliveries waiting."""

    def __init__(self) -> None:
        self.records: dict[int, list[tuple[bytes, bytes | None]]] = {}
        self.hold = asyncio.Event()
        self.hold.set()

    def append(self, partition: int, records: list[tuple[bytes, bytes | None]]) -> int:
        log = self.records.setdefault(partition, [])
        log.extend(records)
        return len(log) - len(records)

    def state(self, partition: int) -> dict[bytes, bytes]:
        """What a reader of the whole partition ends with (compacted or not, the same)."""
        found: dict[bytes, bytes] = {}
        for key, value in self.records.get(partition, []):
            if value is None:
                found.pop(key, None)
            else:
                found[key] = value
        return found

    def after(self, partition: int, offset: int) -> list[tuple[int, bytes, bytes | None]]:
        return [(at, k, v) for at, (k, v) in enumerate(self.records.get(partition, [])) if at > offset]

    def copy(self) -> Changelog:
        again = Changelog()
        again.records = {partition: list(records) for partition, records in self.records.items()}
        return again


Metadata = namedtuple("Metadata", "topic partition offset")


class RecordBatch:
    def __init__(self) -> None:
        self.records: list[tuple[bytes, bytes | None]] = []

    def append(self, key, value, timestamp, headers):  # type: ignore[no-untyped-def]
        self.records.append((key, value))
        return object()

    def record_count(self) -> int:
        return len(self.records)

    def close(self) -> None:
        pass


class Producer:
    """aiokafka's producer as the outbox uses it, storing each topic into its ``Changelog``; refuses
    values over ``largest`` bytes, as a broker refuses a record larger than the topic takes."""

    def __init__(self, changelogs: dict[str, Changelog], largest: int | None = None) -> None:
        self.changelogs = changelogs
        self.largest = largest

    async def partitions_for(self, topic):  # type: ignore[no-untyped-def]
        return {0, 1, 2, 3}

    def create_batch(self) -> RecordBatch:
        return RecordBatch()

    async def send_batch(self, batch, topic, partition):  # type: ignore[no-untyped-def]
        return asyncio.ensure_future(self._store(topic, partition, batch.records))

    async def send(self, topic, value, key=None, partition=None, headers=None):  # type: ignore[no-untyped-def]
        return asyncio.ensure_future(self._store(topic, partition, [(key, value)]))

    async def _store(self, topic, partition, records):  # type: ignore[no-untyped-def]
        changelog = self.changelogs[topic]
        await changelog.hold.wait()
        if self.largest is not None and any(len(value or b"") > self.largest for _, value in records):
            raise MessageSizeTooLargeError("too large for the topic")
        return Metadata(topic, partition, changelog.append(partition, records))


class MemoryStores:
    """A worker's two stores in memory (``TPMON_STORE=memory``): each keeps its changelog, the list of
    its writes, and the changelog a restarted worker reads is that list (or a prefix of it)."""

    def __init__(self, customers: MemoryStore | None = None, journeys: MemoryStore | None = None) -> None:
        self.customers = customers or MemoryStore()
        self.journeys = journeys or MemoryStore()
        self.deliver()

    def deliver(self) -> None:
        """The delivery of everything written so far has returned: the changelogs hold it."""
        self.delivered = len(self.customers.writes), len(self.journeys.writes)

    def crashed(self, customers: float = 0.0, journeys: float = 0.0) -> MemoryStores:
        """The stores of a worker started after this one died with a delivery under way, of which the
        broker had stored the fraction ``customers`` of the customers' writes (and ``journeys`` of the
        journeys'), in the order they were written (Kafka keeps a partition's order). Asked again, the
        same crash with another fraction stored: these stores are left as they are."""

        def cut(store: MemoryStore, delivered: int, fraction: float) -> MemoryStore:
            kept = delivered + int((len(store.writes) - delivered) * fraction)
            return MemoryStore.replayed(store.writes[:kept])

        return MemoryStores(
            cut(self.customers, self.delivered[0], customers), cut(self.journeys, self.delivered[1], journeys)
        )

    def close(self) -> None:
        pass


TABLES = ("customers", "journeys")


class DiskStores:
    """A worker's two stores on disk (``TPMON_STORE=rocksdb``), built as streams.app builds them: one
    RocksDB per table in ``folder`` (``open_tables``), each a ``DiskTableStore`` whose writes go to its
    changelog through a ``CheckpointingOutbox`` and reach the disk once their delivery has returned.
    At its start the worker's recovery reads each changelog partition after the partition's checkpoint
    (what Faust's recovery hands ``DiskStore``)."""

    def __init__(
        self, folder: Path, partitions: int, changelogs: dict[str, Changelog] | None = None, opened: list | None = None
    ) -> None:
        self.folder, self.partitions = folder, partitions
        self.changelogs = changelogs or {f"{name}-changelog": Changelog() for name in TABLES}
        self.opened = opened if opened is not None else []  # (every store of the lineage: closed at the end)
        self.opened.append(self)
        self.tables = open_tables(folder, TABLES)
        self.loop = asyncio.new_event_loop()
        self.recovered = 0  # the changelog records the recovery read
        on_topic = {f"{name}-changelog": table for name, table in self.tables.items()}
        for topic, table in on_topic.items():
            mine = range(partitions)
            table.take(mine, newly=mine)  # (every partition newly taken: as at a worker's start)
            for partition in mine:
                read = self.changelogs[topic].after(partition, table.checkpoint(partition))
                table.restore(partition, read)
                self.recovered += len(read)
                # What a worker on a new disk would read whole (docs/STATE.md): a local copy holding a
                # record its changelog does not would judge alike here, and differ once another took over.
                assert dict(table.items(partition)) == self.changelogs[topic].state(partition), (topic, partition)
        self.outbox = CheckpointingOutbox(lambda: Producer(self.changelogs), on_topic)
        self.customers, self.journeys = (
            DiskTableStore(self.tables[name], f"{name}-changelog", self.outbox, partitions) for name in TABLES
        )

    def deliver(self) -> None:
        """The delivery of everything written so far has returned: the changelogs hold it, and so does
        the disk, with the checkpoints the offsets it took allow."""
        self.loop.run_until_complete(self.outbox.deliver())

    def crashed(self, customers: float = 0.0, journeys: float = 0.0) -> DiskStores:
        """As ``MemoryStores.crashed``: the broker had stored those fractions of the writes under way,
        but the delivery never returned, so the disk has none of them (nor a checkpoint over them). The
        process is gone (its tables closed: what RocksDB was given is on disk); a new one opens its
        folder and recovers each partition from its checkpoint. (It opens a copy of the folder and of
        the changelogs, so that the same crash may be asked again with another fraction stored.)"""
        changelogs = {topic: changelog.copy() for topic, changelog in self.changelogs.items()}
        under_way, stored = self.outbox.messages, 0
        for name, fraction in zip(TABLES, (customers, journeys), strict=True):
            topic = f"{name}-changelog"
            mine = [(partition, key, value) for to, key, value, partition, _ in under_way if to == topic]
            for partition, key, value in mine[: int(len(mine) * fraction)]:
                changelogs[topic].append(partition, [(key, value)])
                stored += 1
        self.close()
        folder = self.folder.with_name(f"{self.folder.name}.{len(self.opened)}")
        shutil.copytree(self.folder, folder)
        again = DiskStores(folder, self.partitions, changelogs, self.opened)
        # The checkpoints cover every delivery that returned (no other writer here): the restart on the
        # same disk reads only what the broker stored of the delivery under way (docs/STATE.md).
        assert again.recovered == stored, (again.recovered, stored)
        return again

    def close(self) -> None:
        for table in self.tables.values():
            table.close()
        if not self.loop.is_closed():
            self.loop.close()
