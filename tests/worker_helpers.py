"""The worker's handlers without Kafka: messages as plain records, an outbox that keeps what is sent."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry

from monitor.catalog import Catalog
from streams.partitions import MemoryStore, key_partition
from streams.settings import Settings
from streams.wiring import wire

EVENTS, DEAD_LETTERS = "events", "rejects"
PARTITIONS = 4
_offsets = itertools.count()


@dataclass
class Message:
    topic: str
    value: bytes | None
    key: bytes | None = None
    partition: int = 0
    headers: list = field(default_factory=list)
    offset: int = field(default_factory=lambda: next(_offsets))


@dataclass
class Sent:
    topic: str
    key: bytes | None
    value: bytes | None
    partition: int | None
    headers: dict[str, str]


class ListOutbox:
    def __init__(self) -> None:
        self.sent: list[Sent] = []

    def add(self, topic, key, value, partition=None, headers=None) -> None:  # type: ignore[no-untyped-def]
        self.sent.append(Sent(topic, key, value, partition, {k: v.decode() for k, v in headers or []}))

    def take(self, topic: str) -> list[Sent]:
        taken = [s for s in self.sent if s.topic == topic]
        self.sent = [s for s in self.sent if s.topic != topic]
        return taken


class CaughtUp:
    """Positions of a worker that reads every partition of the source topics, all caught up."""

    def __init__(self, topics: tuple[str, ...], partitions: int = 1) -> None:
        self.inputs = [(topic, partition) for topic in topics for partition in range(partitions)]

    def assigned(self) -> list[tuple[str, int]]:
        return self.inputs

    def known(self) -> list[tuple[str, int]]:
        return self.inputs

    def caught_up(self, topic: str, partition: int) -> bool:
        return True


class Worker:
    """A worker's ingest and judge, wired by the worker's own wiring (streams.wiring), on memory stores."""

    def __init__(self, catalog: Catalog, max_future: str = "1h") -> None:
        self.catalog = catalog
        self.outbox = ListOutbox()
        self.customers, self.journeys = MemoryStore(), MemoryStore()
        self.registry = CollectorRegistry()
        settings = Settings(max_future=max_future, partitions=PARTITIONS, dedup_retention="24h")
        wired = wire(
            catalog,
            settings,
            self.customers,
            self.journeys,
            self.outbox,  # type: ignore[arg-type]
            CaughtUp(catalog.contract.source_names),
            self.registry,
            events_topic=EVENTS,
            dead_letter_topic=DEAD_LETTERS,
        )
        self.partitions, self.views, self.metrics, self.page = wired.partitions, wired.views, wired.metrics, wired.page
        self.dead_letters, self.ingest, self.judge = wired.dead_letters, wired.ingest, wired.judge

    def restarted(self) -> Worker:
        """A new worker on what this one stored (its memory gone, the changelogs kept)."""
        again = Worker(self.catalog)
        again.customers = again.partitions.customers = MemoryStore.replayed(self.customers.writes)
        again.journeys = again.partitions.journey_store = MemoryStore.replayed(self.journeys.writes)
        return again

    def run(self, messages: list[Message], now: int) -> list[Sent]:
        """Both hops; returns the dead letters."""
        self.ingest(messages, now)
        forwarded = [
            Message(
                EVENTS,
                s.value,
                s.key,
                key_partition(s.key, PARTITIONS) if s.partition is None else s.partition,
                [(k, v.encode()) for k, v in s.headers.items()],
            )
            for s in self.outbox.take(EVENTS)
        ]
        self.judge(forwarded, now)
        self.views.publish(self.views.snapshot())  # (what is sent here is stored at once)
        return self.outbox.take(DEAD_LETTERS)

    def judged(self) -> set[str]:
        """The ids of the events the engines have taken."""
        return {
            event_id
            for engine in self.partitions.engines.values()
            for mine in engine.state.customers.values()
            for event_id in mine.seen
        }

    def sample(self, name: str, **labels: str) -> float:
        """The sum over the series with these labels (whatever their partition)."""
        return sum(
            sample.value
            for family in self.registry.collect()
            for sample in family.samples
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
        )
