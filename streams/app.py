"""The Faust application: topics, tables, batch handlers, timers and web views, wired; the work is elsewhere.

the catalog's sources (rules/events.yaml: orders, bills, calls, tickets, surveys)
    -> ingest: decode; rejects go whole to the dead-letter topic, with reason and source in headers
    -> tpmon-events, keyed and partitioned by customer
    -> judge: the partition's engine (streams.partitions) steps; changed customer records and
       journeys are written to changelog-backed tables (the journeys table's changelog is the
       compacted tpmon-journeys topic)
ingest reports its inputs' progress to every events partition after each batch and at each tick, so
the judge's watermark follows the slowest input and quiet sources still decide their deadlines; at each
tick it pauses the inputs read too far ahead of the slowest (streams.handlers).

ingest and judge are not Faust agents: the consumer hands them each fetch's messages as one list
(streams.seam), which is several times faster than Faust's per-message path to an agent
(docs/PERFORMANCE.md). Their work, message by message and guarded so that no message can stop them, is
``streams.handlers``; what they send goes through one ``streams.outbox``. Whatever reaches into Faust's
internals is in ``streams.seam``.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import faust
import orjson
from faust.sensors import Monitor
from faust.types import Message
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from monitor.catalog import Catalog
from monitor.durations import format_duration
from monitor.erasures import Request, id_problem
from monitor.events import forget_remembered, format_timestamp, json_bytes
from monitor.journeys import current
from monitor.observe.windows import PROFILES
from monitor.personal import for_reader
from monitor.state import vital_few

from .erasures import ErasureReader
from .link import KafkaLink
from .outbox import Outbox
from .partitions import Partitions
from .seam import (
    DISK_STORE,
    BatchHandler,
    ConsumerPositions,
    SeekFirstTableManager,
    TableStore,
    batch_broker,
    producer,
    recovered_records,
)
from .settings import Settings
from .store import CheckpointingOutbox, DiskTable, DiskTableStore, give_back_c_heap, open_tables
from .views import Views
from .webauth import web_server_options
from .webconfig import WebConfig, web_user
from .wiring import wire

log = logging.getLogger("tpmon.forget")
state_log = logging.getLogger("tpmon.state")  # (recoveries are said by streams.seam, to the same logger)

MAX_MESSAGE_BYTES = 8 * 1024 * 1024
# tpmon's own topics take messages as large as the producer sends, so that a dead letter (the message
# and its headers) or a large journey fits where a topic at Kafka's default (1 MiB) would refuse it.
TOPIC_CONFIG = {"max.message.bytes": str(MAX_MESSAGE_BYTES)}
# The state's changelogs (customer records, journeys) are compacted, and soon: a worker taking a partition
# without a local checkpoint reads its changelog whole, so it reads the latest record of each customer and
# what the last few minutes wrote, not every record a busy day wrote (Kafka compacts only closed
# segments, and by default closes one a week). A deletion's tombstone stays a day (Kafka's default, set
# here since streams.store trusts a local checkpoint for less than that: streams.store.MAX_AGE).
STATE_TOPIC_CONFIG = {
    **TOPIC_CONFIG,
    "cleanup.policy": "compact",
    "segment.ms": str(5 * 60 * 1000),
    "min.cleanable.dirty.ratio": "0.1",
    "delete.retention.ms": str(24 * 3600 * 1000),
}
CUSTOMERS_TABLE = "customers"
JOURNEYS_TABLE = "journeys"
TABLES = (CUSTOMERS_TABLE, JOURNEYS_TABLE)


def customers_changelog(app_id: str) -> str:
    """The customers table's changelog topic, as Faust names it."""
    return f"{app_id}-{CUSTOMERS_TABLE}-changelog"


# Batches of the producer: Faust's defaults (16 KiB, no linger) sent a request for every few events.
PRODUCER_BATCH_BYTES = 512 * 1024
PRODUCER_LINGER = 0.005  # seconds


def wall_clock() -> int:
    return time.time_ns() // 1000


def give_back_memory() -> None:
    """What a sweep gives back: the timestamps remembered (``forget_remembered``), then a full
    collection (the worker collects seldom: ``tpmon.runtime.collect_seldom``), then the C heap's free
    pages (glibc's malloc_trim): without it the worker's resident memory stays at its peak after many
    customers were freed. The trim takes milliseconds (2 ms with 200,000 customers on the disk store,
    29 ms with them all in memory, 855 MiB), once a sweep."""
    forget_remembered()
    gc.collect()
    give_back_c_heap()


class RecoveryCollector(Collector):
    """tpmon_state_recovered_records: the changelog records the latest recovery of each changelog
    partition assigned here read back into the tables' local data (on disk, only those written after
    the partition's checkpoint). A gauge of the partition's owner, as the other gauges of a partition."""

    def __init__(self, app: faust.App) -> None:
        self.app = app

    def collect(self) -> Iterator[Metric]:
        read = GaugeMetricFamily(
            "tpmon_state_recovered_records",
            "Changelog records the latest recovery of the partition read back into the local state.",
            labels=["topic", "partition"],
        )
        for tp, count in sorted(recovered_records(self.app).items()):
            read.add_metric([tp.topic, str(tp.partition)], count)
        yield read


class OffsetsMonitor(Monitor):
    """Faust's monitor keeping only what tpmon_consumer_lag reads: end and committed offsets.

    Faust calls its sensors four times for every message; the default monitor's bookkeeping there (and
    the Prometheus sensor's histograms) took a sixth of a worker's time, for figures nobody reads.
    """

    def on_message_in(self, tp, offset, message) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_stream_event_in(self, tp, offset, stream, event) -> None:  # type: ignore[no-untyped-def]
        return None

    def on_stream_event_out(self, tp, offset, stream, event, state=None) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_message_out(self, tp, offset, message) -> None:  # type: ignore[no-untyped-def]
        pass

    def on_send_initiated(self, producer, topic, message, keysize, valsize) -> None:  # type: ignore[no-untyped-def]
        return None

    def on_send_completed(self, producer, state, metadata) -> None:  # type: ignore[no-untyped-def]
        pass


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


class StateCollector(Collector):
    """The partitions' state gauges: how many customers each holds (something open, queued or remembered;
    the others are freed, so this follows the active customers, not all ever seen), how many of them in
    memory, and how long it has held what it decides for late history."""

    def __init__(self, views: Views) -> None:
        self.views = views

    def collect(self) -> Iterator[Metric]:
        views = self.views
        for name, text, values in (
            ("tpmon_state_customers", "Customers whose state is held, per partition.", views.customers_held()),
            (
                "tpmon_state_customers_in_memory",
                "Customers whose state is held in memory, per partition (the others wait in the store).",
                views.customers_in_memory(),
            ),
            (
                "tpmon_history_held_seconds",
                "How long the partition has held what it decides for late history to be read (0: not holding).",
                views.holding(),
            ),
        ):
            family = GaugeMetricFamily(name, text, labels=["partition"])
            for partition, value in values.items():
                family.add_metric([str(partition)], value)
            yield family


STOP_WITHIN = 8.0  # seconds: a stopping worker that has not flushed by then ends without it


class App(faust.App):
    """A Faust app that stops within seconds, even with the broker gone. Its broker URLs name tpmon's
    transport (``streams.seam.batch_broker``), whose consumer delivers tpmon's hot topics in batches."""

    batch_handlers: dict[str, BatchHandler]
    outbox: Outbox
    link: KafkaLink

    async def on_stop(self) -> None:
        """Stopping, Faust waits for the batch in hand, commits and flushes: with the broker gone, for
        ever. Past STOP_WITHIN the process ends without them, saying what was not written. Nothing is
        lost: what a batch caused is acknowledged only once stored (streams.outbox), so what was not
        written was not committed either, and is read and judged again at the next start."""
        threading.Thread(target=self._stop_or_leave, name="tpmon-stop", daemon=True).start()
        await super().on_stop()

    def _stop_or_leave(self) -> None:
        time.sleep(STOP_WITHIN)
        waiting = self.outbox.unwritten()
        reach = "unreachable" if not self.link.up else "not answering"
        unwritten = (
            f" without flushing {waiting:,} messages (repartitioned events, table records, dead letters); their "
            "source events were not committed, so they are read and judged again at the next start"
            if waiting
            else ""
        )
        print(
            f"tpmon worker: Kafka at {self.link.bootstrap} {reach}; stopped after {STOP_WITHIN:.0f} s{unwritten}.",
            file=sys.stderr,
            flush=True,
        )
        os._exit(0)  # a stop asked for: nothing is lost (above)


def create_app(settings: Settings, catalog: Catalog, web: WebConfig | None = None) -> tuple[faust.App, Partitions]:
    """``web``: the web port's TLS and basic authentication (streams.webconfig), if any."""
    catalog = catalog.scaled(PROFILES[settings.profile].scale)
    app = App(
        settings.app_id,
        broker=batch_broker(settings.broker_url),  # tpmon's transport (streams.seam)
        broker_credentials=settings.credentials(),
        store="memory://",
        autodiscover=False,
        datadir=settings.data_dir,
        web_host=settings.web_host,
        web_bind=settings.web_host,
        web_port=settings.web_port,
        canonical_url=settings.advertised_url(web.scheme if web is not None else "http"),
        topic_partitions=settings.partitions,
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
        producer_max_request_size=MAX_MESSAGE_BYTES,
        broker_max_poll_records=settings.batch_size,
        producer_max_batch_size=PRODUCER_BATCH_BYTES,
        producer_linger=PRODUCER_LINGER,
        table_standby_replicas=0,
        broker_session_timeout=settings.session_timeout,
        broker_heartbeat_interval=min(3.0, settings.session_timeout / 4),
        TableManager=SeekFirstTableManager,  # see streams.seam: messages lost when taking over partitions
        monitor=OffsetsMonitor(),
        web_tables_enabled=False,  # Faust's /table pages would read the state tables' records over HTTP
        **web_server_options(web, settings.web_ca_file),
    )
    topic_of = settings.topics_of(catalog.contract.source_names)  # source -> its topic
    source_topics = tuple(topic_of.values())
    source_of_topic = {topic: source for source, topic in topic_of.items()}
    sources = app.topic(*source_topics, key_type=bytes, value_type=bytes)
    events = app.topic(
        settings.events_topic, partitions=settings.partitions, internal=True, key_type=bytes, value_type=bytes
    )
    dead_letters = app.topic(settings.dead_letter_topic, partitions=settings.partitions, internal=True)
    disks: dict[str, DiskTable] = {}  # table name -> its records on disk (``--store rocksdb``)
    if settings.store == "rocksdb":  # opened now: a folder in use or not writable is said at start
        disks = open_tables(Path(app.conf.tabledir), TABLES)

    def on_disk(name: str) -> dict:
        """A table's store: Faust's memory store, or tpmon's disk store with its records (streams.store)."""
        disk = disks.get(name)
        # (The URL names the table: Faust takes a table's store URL for none at all when it is empty.)
        return {} if disk is None else {"store": f"{DISK_STORE}://{name}", "options": {"disk": disk}}

    customers = app.Table(
        CUSTOMERS_TABLE,
        partitions=settings.partitions,
        key_type=bytes,
        value_type=bytes,
        extra_topic_configs=STATE_TOPIC_CONFIG,
        **on_disk(CUSTOMERS_TABLE),
    )
    journeys_changelog = app.topic(
        settings.journeys_topic,
        partitions=settings.partitions,
        compacting=True,
        internal=True,
        key_type=bytes,
        value_type=bytes,
        config=STATE_TOPIC_CONFIG,
    )
    journeys = app.Table(
        JOURNEYS_TABLE,
        partitions=settings.partitions,
        changelog_topic=journeys_changelog,
        key_type=bytes,
        value_type=bytes,
        **on_disk(JOURNEYS_TABLE),
    )

    registry = CollectorRegistry()
    dead_letters_name, events_name = dead_letters.get_topic_name(), events.get_topic_name()

    if disks:  # what is delivered is written to disk, and checkpointed (streams.store)
        on_topic = {table.changelog_topic.get_topic_name(): disks[table.name] for table in (customers, journeys)}
        outbox = app.outbox = CheckpointingOutbox(lambda: producer(app), on_topic)
    else:
        outbox = app.outbox = Outbox(lambda: producer(app))

    def table_store(table: faust.Table) -> TableStore | DiskTableStore:
        disk = disks.get(table.name)
        if disk is None:
            return TableStore(table, outbox)
        return DiskTableStore(disk, table.changelog_topic.get_topic_name(), outbox, settings.partitions)

    customer_store, journey_store = table_store(customers), table_store(journeys)
    link = app.link = KafkaLink(settings.bootstrap, registry)
    positions = ConsumerPositions(app, source_topics)
    wired = wire(
        catalog,
        settings,
        customer_store,
        journey_store,
        outbox,
        positions,
        registry,
        events_topic=events_name,
        dead_letter_topic=dead_letters_name,
    )
    partitions, views, metrics, ingest, judge = wired.partitions, wired.views, wired.metrics, wired.ingest, wired.judge
    page = wired.page
    if isinstance(outbox, CheckpointingOutbox):  # a refused record is told to its table (streams.store)
        outbox.on_refused = outbox.refusing(wired.dead_letters.refused)
    registry.register(LagCollector(app, {*source_topics, settings.events_topic}))
    registry.register(StateCollector(views))
    registry.register(RecoveryCollector(app))

    @app.page("/metrics")
    async def metrics_page(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # (the partitions' families built once per change of what is published: streams.views.MetricsPage)
        return web.bytes(page.page(registry), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def stored() -> None:
        """Deliver what was added, then let /metrics serve the figures it accounts for (never a
        figure a restart could take back: streams.partitions)."""
        figures = views.snapshot()
        erasures = partitions.erasures_applied()
        await outbox.deliver()
        views.publish(figures)
        # The erasures whose tombstones that delivery carried: now the partitions' records may say so.
        if erasures and partitions.confirm_erasures(erasures):
            await outbox.deliver()

    async def ingest_batch(messages: list[Message]) -> None:
        ingest(messages, wall_clock())
        await outbox.deliver()

    async def judge_batch(messages: list[Message]) -> None:
        # Nothing is judged before the requests to forget customers are read (streams.erasures).
        await erasures.caught_up.wait()
        # Each changed record is written once per batch; the events are acknowledged after.
        judge(messages, wall_clock())
        await stored()

    # Delivered by the consumer in batches (streams.seam), not through agents.
    app.batch_handlers = {**dict.fromkeys(source_topics, ingest_batch), settings.events_topic: judge_batch}
    app.topics.add(sources)
    app.topics.add(events)

    def events_partitions() -> list[int]:
        """The events partitions assigned to this worker."""
        return sorted(tp.partition for tp in app.assignor.assigned_actives() if tp.topic == settings.events_topic)

    joined: list[bool] = []  # once the group has assigned this worker its partitions (none, maybe)

    def recovering() -> list[int]:
        """The partitions assigned here whose state is not whole yet (all of them during a rebalance)."""
        if app.rebalancing:
            return events_partitions()
        return [partition for partition in events_partitions() if partition not in partitions.owned]

    async def tick() -> None:
        # An engine must never be built from a table that is still recovering (it would write back
        # records that lack what the changelog held). Faust ends a rebalance once the assigned
        # partitions' tables are recovered, so between rebalances every assigned partition has its
        # engine, whether or not its events have started to come (a quiet partition after a restart).
        # One partition a tick: building one from a large state takes seconds.
        if app.rebalancing:
            return
        waiting = recovering()
        if waiting and erasures.caught_up.is_set():
            began = time.monotonic()
            partitions.adopt(waiting[:1])
            views.publish_restored(waiting[0])
            state_log.info(  # (one the judge was sent something for first is built there, unsaid)
                "partition %d: its engine built from the stored records in %.1f s (%s customers held)",
                waiting[0],
                time.monotonic() - began,
                f"{views.customers_held().get(waiting[0], 0):,}",
            )
        now = wall_clock()
        ingest.tick(now)
        await positions.pause(ingest.ahead(partitions.progress(), partitions.history_in_flight(), now))
        judge.drain()
        await stored()

    @app.task
    async def ticking() -> None:
        # A loop of its own rather than a Faust timer: a tick that waits long on the broker, or builds
        # a partition, is not a fault to log (the timer said "overlapping"), the next one just starts later.
        while not app.should_stop:
            await asyncio.sleep(settings.tick_interval)
            if not app.should_stop:
                await tick()

    async def erase(offset: int, request: Request) -> bool:
        """A request to forget a customer (tpmon forget): erased here from the partitions this worker
        owns; said in the log with who asked (never anything about the customer but its id): each
        request made since the worker started at INFO, the others at DEBUG (every start reads them all)."""
        held = partitions.erase(offset, request)
        await stored()
        where = f"erased from partition {', '.join(map(str, held))}" if held else "held nothing here"
        (log.info if erasures.new(offset) else log.debug)(
            "forget: customer %s (asked by %s at %s, offset %d): %s",
            request.customer,
            request.by or "?",
            format_timestamp(request.at),
            offset,
            where,
        )
        return bool(held)

    erasures = ErasureReader(settings, erase, partitions.forget_topic_end, registry)

    @app.task
    async def erasure_requests() -> None:
        await erasures.run(lambda: app.should_stop)

    @app.timer(interval=1.0)
    async def watch_kafka() -> None:
        # Its own timer: the tick waits on deliveries, which wait for the broker.
        link.update(positions.connected(), time.monotonic())

    @app.timer(interval=settings.sweep_interval)
    async def forget() -> None:
        if not app.rebalancing:
            partitions.forget()
            judge.drain()
            await stored()
            # After the deletions are sent (until then the outbox holds them). Its full collection takes
            # about 0.2 s with 50,000 customers in memory; without it, cyclic garbage that reached the
            # oldest generation, such as a fetch's records dropped at a pause, a seek or a rebalance
            # (aiokafka's hold a reference to themselves), would wait hours for its collection.
            give_back_memory()

    @app.on_partitions_revoked.connect
    async def revoked(app: faust.App, revoked: set, **kwargs: object) -> None:
        partitions.drop(tp.partition for tp in revoked if tp.topic == settings.events_topic)

    @app.on_partitions_assigned.connect
    async def assigned(app: faust.App, assigned: set, **kwargs: object) -> None:
        # Rebuilt from the tables once they are recovered, when next needed.
        partitions.drop(tp.partition for tp in assigned if tp.topic == settings.events_topic)
        positions.forget()
        joined[:] = [True]

    def reading_requests(web: faust.web.View) -> faust.web.Response | None:
        """503 until the requests to forget customers are read (streams.erasures)."""
        if erasures.caught_up.is_set():
            return None
        return web.json(
            {"error": f"starting: reading the requests to forget customers ({settings.forget_topic})"}, status=503
        )

    def still_recovering(web: faust.web.View) -> faust.web.Response | None:
        """503 while some partition's state is not whole: a partial answer would be a false one."""
        if not joined:
            return web.json({"error": "starting: joining the consumer group; ask again shortly"}, status=503)
        if (busy := reading_requests(web)) is not None:
            return busy
        waiting = recovering()
        if not waiting:
            return None
        return web.json(
            {
                "error": "recovering: the state of some partitions is not read back yet; ask again shortly",
                "recovering": waiting,
                "partitions": events_partitions(),
            },
            status=503,
        )

    @app.page("/ready")
    async def ready(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        """200 once every partition assigned here is recovered and judging; 503 with what is left."""
        return still_recovering(web) or web.json({"ready": True, "partitions": events_partitions()})

    @app.page("/touchpoints")
    async def touchpoints(web: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        busy = still_recovering(web)
        if busy is not None:
            return busy
        watermarks = {
            str(partition): None if at is None else format_timestamp(at) for partition, at in views.watermarks().items()
        }
        decided = {
            str(partition): None if at is None else format_timestamp(at) for partition, at in views.decided().items()
        }
        inputs = {str(partition): clock.view() for partition, clock in views.clocks().items()}
        # Sources that sent this worker nothing for their silent_after, and the touchpoints fed only by
        # them (of the sources it reads: another worker's are not this one's to call silent).
        read_here = {source_of_topic.get(topic, topic) for topic, _ in positions.assigned()}
        last_events = {source: at for source, at in metrics.last_events().items() if source in read_here}
        silent = catalog.silent_sources(last_events, time.time())
        sources_view = {
            source: {"last_event": format_timestamp(round(at * 1_000_000)), "silent": source in silent}
            for source, at in sorted(last_events.items())
        }
        silent_touchpoints = catalog.fed_only_by(silent)
        touchpoints = {
            touchpoint: {**view, "silent": touchpoint in silent_touchpoints}
            for touchpoint, view in views.touchpoints().items()
        }
        return web.json(
            {
                "partitions": events_partitions(),
                "watermarks": watermarks,
                "decided": decided,  # up to where each partition has decided: below it while holding for history
                "inputs": inputs,
                "paused": sorted(f"{tp.topic}/{tp.partition}" for tp in positions.paused),
                "touchpoints": touchpoints,
                # The broken touchpoints that hurt the most customers (docs/SEMANTICS.md, "Impact"): each
                # touchpoint's state and distinct customers impacted over its window, as the wall names them
                # (one fed only by silent sources has no data there, so it is not broken: not named).
                "vital_few": vital_few(
                    {t: "no data" if view["silent"] else view["state"] for t, view in touchpoints.items()},
                    {t: view["impact"]["customers_impacted"] for t, view in touchpoints.items()},
                ),
                "sources": sources_view,
                # The instances at risk, the least time left first (open hours, with a calendar).
                "at_risk": [
                    {**item, "left": format_duration(max(0, item["left"]) // 1_000_000 * 1_000_000)}
                    for item in views.at_risk()
                ],
            }
        )

    @app.page("/stories/{touchpoint}")
    async def stories(web: faust.web.View, request: faust.web.Request, touchpoint: str) -> faust.web.Response:
        """The latest customers on this worker's partitions with a bad outcome of the touchpoint, with
        their stories (the drilldown links here)."""
        if touchpoint not in catalog.ids:
            return web.json(
                {"error": f"no touchpoint {touchpoint!r}; the catalog has {', '.join(catalog.ids)}"}, status=404
            )
        busy = still_recovering(web)
        if busy is not None:
            return busy
        return web.json({"touchpoint": touchpoint, "stories": views.latest_stories(touchpoint)})

    @app.page("/journeys/{customer_id}")
    @app.table_route(table=journeys, match_info="customer_id")
    async def journey(web: faust.web.View, request: faust.web.Request, customer_id: str) -> faust.web.Response:
        busy = still_recovering(web)
        if busy is not None:
            return busy
        stored = journey_store.get(customer_id)
        if stored is None:
            return web.json({"error": f"no journey for customer {customer_id!r}"}, status=404)
        answer = current(stored, catalog.decoder)
        if catalog.contract.personal:  # shown to personal readers only (monitor.personal)
            keep = catalog.journeys.keeps_personal
            answer = json_bytes(
                for_reader(orjson.loads(answer), catalog.contract, web_user(request), settings.readers, keep)
            )
        return web.bytes(answer, content_type="application/json")

    @app.page("/forget/{customer_id}")
    class Forget(faust.web.View):
        """POST: a request to forget the customer, as `tpmon forget` writes it, by one of the web users
        named in --forget-users (docs/SECURITY.md); anyone else, and without a web configuration
        everyone, is refused. It takes JSON only, so that no page of another site can make a browser
        holding the user's credentials send it (a form cannot send JSON)."""

        async def post(self, request: faust.web.Request, customer_id: str) -> faust.web.Response:
            user = web_user(request)
            if not user or user not in settings.forgetters:
                who = f"web user {user!r} is not" if user else "no authenticated web user is"
                return self.json(
                    {
                        "error": f"{who} allowed to forget customers: the worker's --forget-users "
                        "(TPMON_FORGET_USERS) names who is (docs/SECURITY.md); or use `tpmon forget`"
                    },
                    status=403,
                )
            if request.content_type != "application/json":
                return self.json(
                    {"error": "send the request with Content-Type: application/json (an empty {} will do)"},
                    status=415,
                )
            problem = id_problem(customer_id)
            if problem is not None:
                return self.json({"error": problem}, status=400)
            busy = reading_requests(self)  # (its log would count it with those of before its start)
            if busy is not None:
                return busy
            asked = Request(customer_id, str(user), wall_clock())
            outbox.add(settings.forget_topic, asked.key(), asked.value(), 0)
            await outbox.deliver()
            return self.json(
                {"recorded": {"customer_id": customer_id, "by": asked.by, "at": format_timestamp(asked.at)}},
                status=202,
            )

    app.tpmon_partitions = partitions  # type: ignore[attr-defined]
    return app, partitions
