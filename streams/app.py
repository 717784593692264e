"""The Faust application: topics, tables, agents, timers and web views, wired; the work is elsewhere.

sources (orders, bills, calls, tickets)
    -> ingest: decode; rejects go whole to the dead-letter topic, with reason and source in headers
    -> tpmon-events, keyed and partitioned by customer
    -> judge: the partition's engine (streams.partitions) steps; changed customer records and
       journeys are written to changelog-backed tables (the journeys table's changelog is the
       compacted tpmon-journeys topic)
a timer ticks idle partitions' clocks, so quiet sources still decide their deadlines.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

import faust
from faust.sensors.prometheus import setup_prometheus_sensors
from prometheus_client import CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.catalog import Catalog
from monitor.durations import parse_duration
from monitor.events import Event, decode
from monitor.metrics import Metrics

from .partitions import Partitions
from .recovery import SeekFirstTableManager
from .settings import Settings

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
FORGET_EVERY = 60.0  # seconds between retention sweeps


def wall_clock() -> int:
    return time.time_ns() // 1000


class TableStore:
    """A Faust table as a ``Store``: writes go to the local data and to a chosen changelog partition,
    so timers (which have no current event) can write too."""

    def __init__(self, table: faust.Table) -> None:
        self.table = table

    def get(self, key: str) -> bytes | None:
        return self.table.data.get(key.encode())

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        raw_key = key.encode()
        if value is None:
            self.table.data.pop(raw_key, None)
        else:
            self.table.data[raw_key] = value
        self.table.send_changelog(partition, raw_key, value)

    def items(self) -> Iterable[tuple[str, bytes]]:
        return (
            (key.decode() if isinstance(key, bytes) else key, value) for key, value in list(self.table.data.items())
        )


class LagCollector(Collector):
    """tpmon_consumer_lag: the end offset minus the committed offset of each partition the group
    consumes (the source topics and the repartitioned events; not the changelogs read on recovery)."""

    def __init__(self, app: faust.App, topics: set[str]) -> None:
        self.app = app
        self.topics = topics

    def collect(self) -> Iterator[Metric]:
        lag = GaugeMetricFamily(
            "tpmon_consumer_lag", "Messages not yet committed, per topic partition.", labels=["topic", "partition"]
        )
        monitor = self.app.monitor
        for tp, end in dict(getattr(monitor, "tp_end_offsets", {})).items():
            committed = getattr(monitor, "tp_committed_offsets", {}).get(tp)
            if tp.topic not in self.topics or committed is None:
                continue  # not this group's topic, or no commit seen by this process yet
            lag.add_metric([tp.topic, str(tp.partition)], max(0, end - committed))
        yield lag


def _header(headers: object, name: str) -> str:
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for key, value in items:  # type: ignore[union-attr]
        if key == name:
            return value.decode() if isinstance(value, bytes) else str(value)
    return ""


def create_app(settings: Settings, catalog: Catalog) -> tuple[faust.App, Partitions]:
    app = faust.App(
        settings.app_id,
        broker=settings.broker_url,
        broker_credentials=settings.credentials(),
        store="memory://",
        autodiscover=False,
        datadir=settings.data_dir,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        topic_partitions=settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_MESSAGE_BYTES,
        consumer_max_fetch_size=MAX_MESSAGE_BYTES,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
        TableManager=SeekFirstTableManager,  # see streams.recovery: messages lost when taking over partitions
    )
    sources = app.topic(*settings.source_topics, key_type=bytes, value_type=bytes)
    events = app.topic(
        settings.events_topic, partitions=settings.partitions, internal=True, key_type=bytes, value_type=bytes
    )
    dead_letters = app.topic(settings.dead_letter_topic, partitions=settings.partitions, internal=True)
    customers = app.Table("customers", partitions=settings.partitions, key_type=bytes, value_type=bytes)
    journeys_changelog = app.topic(
        settings.journeys_topic,
        partitions=settings.partitions,
        compacting=True,
        internal=True,
        key_type=bytes,
        value_type=bytes,
    )
    journeys = app.Table(
        "journeys", partitions=settings.partitions, changelog_topic=journeys_changelog, key_type=bytes, value_type=bytes
    )

    lateness = parse_duration(settings.lateness) if settings.lateness else None
    partitions = Partitions(
        catalog,
        TableStore(customers),
        TableStore(journeys),
        lateness=lateness,
        retention=parse_duration(settings.dedup_retention),
    )
    registry = CollectorRegistry()
    metrics = partitions.metrics = Metrics(catalog, partitions, registry)
    for source in settings.source_topics:
        metrics.bind_source(source)
    registry.register(LagCollector(app, {*settings.source_topics, settings.events_topic}))
    setup_prometheus_sensors(app, pattern="/metrics", registry=registry, name_prefix="faust")

    @app.agent(sources)
    async def ingest(stream: faust.StreamT) -> None:
        async for message in stream.events():
            raw = message.value or b""
            source = message.message.topic
            decoded = decode(raw, source)
            if isinstance(decoded, Event):
                await events.send(key=decoded.customer.encode(), value=raw, headers=[("source", source.encode())])
                continue
            metrics.reject(source, decoded.reason)
            headers = [
                ("reason", decoded.reason.encode()),
                ("source", source.encode()),
                ("detail", decoded.detail.encode()),
            ]
            await dead_letters.send(key=message.key, value=raw, headers=headers)

    @app.agent(events)
    async def judge(stream: faust.StreamT) -> None:
        # Batches: each changed record is written once per batch; the events are acknowledged after.
        async for messages in stream.take_events(settings.batch_size, within=settings.batch_within):
            batch = []
            for message in messages:
                decoded = decode(message.value or b"", _header(message.headers, "source") or settings.events_topic)
                if isinstance(decoded, Event):  # else a message not written by ingest: ignore it
                    batch.append((message.message.partition, decoded))
            partitions.handle_batch(batch, wall_clock())

    @app.timer(interval=settings.tick_interval)
    async def tick() -> None:
        # Only engines the judge has built tick: the judge receives a partition's events once its
        # tables are recovered, so an engine is never built from a table that is still recovering
        # (it would write back records that lack what the changelog held).
        if not app.rebalancing:
            partitions.tick(wall_clock())

    @app.timer(interval=FORGET_EVERY)
    async def forget() -> None:
        if not app.rebalancing:
            partitions.forget(wall_clock() - partitions.retention)

    @app.on_partitions_revoked.connect
    async def revoked(app: faust.App, revoked: set, **kwargs: object) -> None:
        partitions.drop(tp.partition for tp in revoked if tp.topic == settings.events_topic)

    @app.on_partitions_assigned.connect
    async def assigned(app: faust.App, assigned: set, **kwargs: object) -> None:
        # Rebuilt from the tables once they are recovered, when next needed.
        partitions.drop(tp.partition for tp in assigned if tp.topic == settings.events_topic)

    @app.page("/touchpoints")
    async def touchpoints(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        assigned = sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.events_topic)
        return web.json({"partitions": assigned, "touchpoints": partitions.touchpoints()})

    @app.page("/journeys/{customer_id}")
    @app.table_route(table=journeys, match_info="customer_id")
    async def journey(web: faust.web.View, request: faust.web.Request, customer_id: str) -> faust.web.Response:
        stored = journeys.data.get(customer_id.encode())
        if stored is None:
            return web.json({"error": f"no journey for customer {customer_id!r}"}, status=404)
        return web.bytes(stored, content_type="application/json")

    app.tpmon_partitions = partitions  # type: ignore[attr-defined]
    return app, partitions
