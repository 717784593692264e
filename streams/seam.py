"""The one seam to faust-streaming's internals: everything tpmon overrides or reads that Faust does not
document lives here, and ``INTERNALS`` lists it, so that a test (tests/test_seam.py) fails loudly, naming
the method, when a new faust-streaming or aiokafka changes one. The versions are pinned in pyproject.toml
(``FAUST_VERSION``, ``AIOKAFKA_VERSION``).

What it holds:

- tpmon's transport (``BatchTransport``, registered under its own URL scheme: ``batch_broker``) and batch
  delivery (``BatchConsumer``): the drain loop hands each fetch's messages to a handler as a list;
- the recovery correction (``SeekFirstRecovery``): no messages lost when taking over partitions;
- the tables' data (``table_data``, ``key_partitions``): read and written directly, per partition, by
  the store of a table in memory (``TableStore``; on disk: ``streams.store``);
- the disk store (streams.store): its URL scheme in Faust's store registry, what recovery reads put
  into it, and a checkpoint beyond its changelog's end emptied (``SeekFirstRecovery``);
- the producer Faust configured (``producer``), for the outbox's batches;
- the inputs' positions (``ConsumerPositions``): what the watermark's idleness needs to know of each
  source partition (its position against its end offset, and whether a fetch said so lately),
  pausing the inputs that are ahead, and whether the consumer is connected at all (``streams.link``);
- quiet stops and outages (``BatchConsumerThread``, ``ReconnectBackoff``): a stop is not a crash, and
  the Kafka client backs off its reconnections.

## Quiet stops and outages

Three things Faust and aiokafka do that a healthy worker must not show:

- Faust's fetcher takes a cancellation during a rebalance for a crash, so a worker stopped while it
  joins its group or recovers exited 1 with a CRITICAL line; and aiokafka's fetcher, closed while one
  of its fetches waits out a retry (the broker gone), raises that fetch's cancellation out of the
  consumer's stop, which printed a thread's traceback. Both are stops, and end quietly here.
- aiokafka retries a connection to a broker that is gone every 100 ms in each of its loops (metadata,
  fetches, the coordinator, the producer): about 20 attempts a second from one worker, each an error
  line, and enough attempts on loopback to take a port in the ephemeral range by a self-connection.
  ``ReconnectBackoff`` spaces a node's attempts out, from 0.25 s doubling to 2 s while they fail, as
  the Java client's ``reconnect.backoff.max.ms`` does; a connection that succeeds resets it.
- Faust's livelock check looks for streams that do not take the messages fetched, and tpmon's batch
  handlers are not streams: it logged ``Stream has not started processing`` for a healthy idle
  worker's table partitions. tpmon says what matters itself (``tpmon_kafka_up``, ``tpmon_consumer_lag``).

## Batch delivery

Batch delivery: tpmon's hot topics go from each fetch straight to their handler, a list at a time.

Faust hands every message to its agents one by one: the consumer's drain loop starts two tasks per
message (the delivery, and a wait on the flow control), the conductor wraps it in an event and queues
it, and the agent's stream takes it out again with its sensors and acknowledgements. That is most of a
worker's time, twice over for tpmon's two hops (ingest, judge), and more than the judging itself.

Here the drain loop keeps Faust's bookkeeping per message (read offsets, holes as compacted offsets,
tracking for a clean rebalance) but collects the messages of the topics that have a batch handler, and
after each fetch awaits each handler once with its list; the messages are acknowledged only when the
handler has returned, i.e. when what they caused is stored. Everything else (table changelogs during
recovery, the assignor's topic) takes Faust's usual path, a fetch at a time: Faust awaited each message
apart against a suspension of the flow, four tasks a message, which made a recovery crawl (14 s for
the 200k changelog records of 20k customers held, the most of a restart). An error in a handler ends the drain loop as
one in Faust's own does (logged and raised), with its batch unacknowledged, hence not committed.

A rebalance that begins while a batch is collected or handled makes the batch stale: it is dropped
unacknowledged, and read again from the committed offsets once the partitions are resumed (see
the recovery correction below, which seeks every resumed partition first). Messages read twice are duplicates the
engine recognises.

## The recovery correction

A correction to Faust's recovery, so that a worker taking over partitions does not lose messages.

faust-streaming 0.15.3 ends a recovery in this order: resume fetching the stream partitions, seek them
to their committed offsets (a broker round trip, with the consumer's flow already running), then
resume the flow control. Two things then go wrong together:

- resuming the flow control clears every stream's input queue, so the messages fetched during the
  seek are thrown away unprocessed;
- the seek has reset the consumer's read offset to the committed one, so the next message fetched
  looks like it follows a hole in the partition, and Faust counts holes as offsets that do not exist
  (as in compacted topics): acknowledged, and committed past.

And a partition with no committed offset yet (or 0) is not sought at all. Besides, a fetch begun
before the rebalance can still be waiting with its snapshot of the active partitions; emptied by the
pause, that snapshot lets it hand out every partition's buffered records, which the consumer then
drops as inactive, their positions moved on.

Found with the live-pipeline test that kills a worker mid-stream: runs of consecutive offsets missing
from the events topic, and outcomes missing against replay, about one run in three. The correction:
while Faust completes its recovery, resuming the stream partitions is held back; once the queues are
cleared and the last fetch begun earlier has ended, the held partitions are sought to their committed
offsets (those without one to their beginning, the ``earliest`` reset) and only then resumed. A
takeover costs about a second more; messages read twice are duplicates the engine recognises.

## Pausing

Pausing an input (``ConsumerPositions.pause``) has the same hazard as the pause of a rebalance: the
fetch under way drops its records while the position moves past them. A resumed partition is sought
to the offset the consumer hands out next (``BatchConsumer.next_offsets``). Found with the
integration test that kills one of two workers in a backlog: the survivor, taking over, paused its
own inputs until the new ones had progress, and resumed each one message too far (Faust's read
offset, after the recovery's seek, is the next offset, not the last one read); that message was
committed past unread, one in about three runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import contextmanager
from typing import Any

import faust
from aiokafka.client import AIOKafkaClient, ConnectionGroup
from faust import stores
from faust.stores import memory
from faust.tables import TableManager
from faust.tables.recovery import Recovery
from faust.transport import consumer as faust_consumer
from faust.transport import drivers as transports
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message

from .outbox import Outbox
from .store import STATE_KEY, DiskStore

FAUST_VERSION = "0.15.3"
AIOKAFKA_VERSION = "0.14.0"

BatchHandler = Callable[[list[Message]], Awaitable[None]]
state_log = logging.getLogger("tpmon.state")


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering the topics of ``app.batch_handlers`` in batches.

    It also keeps, per partition, the offset it hands out next (``next_offsets``): after a message,
    the one after it; after a seek, the offset sought. Faust's own read offset means the last message
    read after a delivery but the next one after a seek, so it cannot say where to resume a paused
    partition (``ConsumerPositions.pause``).

    And, per partition, where it had read to when all it had read was handled (``settled``): the
    aiokafka position at the end of a round of the drain loop, once its batches' handlers returned.
    aiokafka's position moves when a fetch's records are handed over, before they are handled (or
    while they cross from the consumer's thread): a partition at its end by that position may still
    have its whole backlog in hand, unread by tpmon (``ConsumerPositions.caught_up``). A seek forgets
    it until the next round.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.next_offsets: dict[TP, int] = {}
        self.settled: dict[TP, int] = {}
        # While the recovery holds them (``SeekFirstRecovery``): the partitions Faust resumes, collected
        # here instead of resumed (None: resumed as Faust asks).
        self.held: set[TP] | None = None

    def resume_partitions(self, partitions: Iterable[TP]) -> None:
        if self.held is not None:
            self.held.update(partitions)
            return
        super().resume_partitions(partitions)

    async def seek(self, partition: TP, offset: int) -> None:
        self.settled.pop(partition, None)
        await super().seek(partition, offset)
        self.next_offsets[partition] = offset

    def _settle(self) -> None:
        """Every record handed out so far is handled: the position of each partition is settled."""
        settled = self.settled
        settled.clear()
        try:
            consumer = self._thread._ensure_consumer()  # type: ignore[attr-defined]
            assignment = consumer._subscription.subscription
        except Exception:
            return  # not started, or stopping
        if assignment is None:
            return
        states = assignment.assignment
        for tp in assignment.assignment.tps:
            state = states.state_value(tp)
            if state is not None and state.has_valid_position:
                settled[tp] = state.position

    async def perform_seek(self) -> None:
        """Faust's seek of every partition to its committed offset, which it leaves as the read offset
        (None: no committed offset; such a partition is sought to its beginning next)."""
        self.settled.clear()
        await super().perform_seek()
        next_offsets = self.next_offsets
        for tp, offset in list(self._read_offset.items()):
            if offset is None:
                next_offsets.pop(tp, None)
            else:
                next_offsets[tp] = offset

    async def _drain_messages(self, fetcher: Any) -> None:
        app: Any = self.app
        handlers: dict[str, BatchHandler] = app.batch_handlers
        callback = self.callback
        stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offsets = self._read_offset
        next_offsets = self.next_offsets
        acks_enabled_for = app.topics.acks_enabled_for
        changelogs = app.tables.changelog_topics
        commit_every = self._commit_every
        try:
            while not (stopped() or fetcher_stopped()):
                generation = app.consumer_generation_id
                batches: dict[BatchHandler, list[Message]] = {}
                others: list[Message] = []
                await self.sleep(0)
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    last = read_offsets[tp]
                    if last is not None and offset < last:
                        continue  # delivered already: fetched again after a seek
                    if last and offset - last > 1 and acks_enabled_for(tp.topic) and tp.topic not in changelogs:
                        # A hole: offsets that do not exist, for the commits. (A changelog is not
                        # committed: read on recovery, compacted, it is all holes, and Faust's gaps,
                        # merged again at each hole, would cost it quadratic time.)
                        await self._add_gap(tp, last + 1, offset)
                    handler = handlers.get(tp.topic)
                    if handler is not None:
                        self.track_message(message)
                        batches.setdefault(handler, []).append(message)
                    else:
                        others.append(message)
                    read_offsets[tp] = offset
                    next_offsets[tp] = offset + 1
                if others:  # the changelogs read on recovery, and Faust's path, a fetch at a time (below)
                    others = restored(app, others)
                if others:
                    await self.wait_first(_each(callback, others), self.suspend_flow.wait())
                dropped = False
                for handler, messages in batches.items():
                    if app.rebalancing or app.consumer_generation_id != generation or not self.flow_active:
                        self._drop(messages)
                        dropped = True
                        continue
                    await handler(messages)
                    for message in messages:
                        self.ack(message)
                if dropped or app.rebalancing or app.consumer_generation_id != generation:
                    self.settled.clear()  # until a round hands out and handles what it reads again
                else:
                    self._settle()
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except asyncio.CancelledError:
            # Stopping cancels the fetch under way. Faust's fetcher takes a cancellation during a
            # rebalance (a worker stopped while it joins or recovers) for a crash, and the worker then
            # exits 1 with a CRITICAL line: a stop is not a crash.
            if fetcher_stopped():
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise

    def _drop(self, messages: list[Message]) -> None:
        """Forget a stale batch: unacknowledged, so not committed, and not waited for by the rebalance."""
        for message in messages:
            self._unacked_messages.discard(message)

    def verify_event_path(self, now: float, tp: TP) -> None:
        """Faust's check that streams take what is fetched: tpmon's handlers are not streams (above)."""

    def _new_consumer_thread(self) -> faust_aiokafka.AIOKafkaConsumerThread:
        return BatchConsumerThread(self, loop=self.loop, beacon=self.beacon)


class BatchConsumerThread(faust_aiokafka.AIOKafkaConsumerThread):
    """Faust's consumer thread, whose client backs off its reconnections and whose stop is quiet."""

    def _create_worker_consumer(self, transport: Any) -> Any:
        consumer = super()._create_worker_consumer(transport)
        backing_off(consumer._client)
        return consumer

    async def on_thread_stop(self) -> None:
        # aiokafka's fetcher, closed during a fetch's retry, raises that fetch's cancellation (above).
        with contextlib.suppress(asyncio.CancelledError):
            await super().on_thread_stop()


class BatchProducer(faust_aiokafka.Producer):
    """Faust's producer, whose client backs off its reconnections."""

    def _new_producer(self, transactional_id: str | None = None) -> Any:
        producer = super()._new_producer(transactional_id)
        backing_off(producer.client)
        return producer


class ReconnectBackoff(AIOKafkaClient):
    """An aiokafka client whose connection attempts to a node that keeps refusing are spaced out: after
    a failure the next waits ``FIRST`` seconds, doubling up to ``MOST``; a success starts over."""

    FIRST = 0.25
    MOST = 2.0

    async def _get_conn(self, node_id: Any, *, group: Any = ConnectionGroup.DEFAULT, no_hint: bool = False) -> Any:
        conn_id = (node_id, group)
        backoff: dict = self.__dict__.setdefault("_tpmon_backoff", {})  # conn_id -> (failures, not before)
        known = self._conns.get(conn_id)
        if known is None or not known.connected():
            not_before = backoff.get(conn_id, (0, 0.0))[1]
            while (wait := not_before - time.monotonic()) > 0:
                await asyncio.sleep(wait)
                not_before = backoff.get(conn_id, (0, 0.0))[1]  # another caller may have tried meanwhile
        conn = await super()._get_conn(node_id, group=group, no_hint=no_hint)
        if conn is None:
            failures = backoff.get(conn_id, (0, 0.0))[0] + 1
            delay = min(self.MOST, self.FIRST * 2 ** (failures - 1))
            backoff[conn_id] = (failures, time.monotonic() + delay)
        else:
            backoff.pop(conn_id, None)
        return conn


def backing_off(client: AIOKafkaClient) -> None:
    """Make a client aiokafka built a ``ReconnectBackoff`` (it adds behaviour, no state of its own)."""
    client.__class__ = ReconnectBackoff


def restored(app: Any, messages: list[Message]) -> list[Message]:
    """Put the records of the tables' changelogs read on recovery straight into the tables' data, in
    order, and tell the recovery how far each partition is read; return the other messages, for Faust.

    Faust takes a recovered record through its conductor, a queue, an event and the recovery's loop,
    which awaits each with a timeout of its own: about a hundred microseconds a record, 80 s of a
    restart with 200k customers held. tpmon's tables keep bytes as they are: in memory (``table_data``)
    applying a record is setting (or, for a tombstone, deleting) its key, and noting its partition, as
    Faust's memory store does; on disk (streams.store) the fetch's records of a partition are written
    with their checkpoint in one batch. The recovery sees each partition's offset move, and ends as it
    would once nothing remains, at once (rather than at its loop's next look, up to 5 s later: a fixed
    5 s of every restart that read anything). Each record read is counted (``SeekFirstRecovery.read``)."""
    recovery = app.tables.recovery
    if not recovery.in_recovery:
        return messages
    active, to_table, offsets = recovery.active_tps, recovery.tp_to_table, recovery.active_offsets
    received, now = recovery._active_events_received_at, time.monotonic()
    recovery._last_flush_at = now  # (what Faust's loop notes as it goes, or it warns that none came)
    read: Counter[TP] | None = getattr(recovery, "read", None)
    to_disk: dict[TP, list[tuple[int, bytes, bytes | None]]] = {}
    left = []
    for message in messages:
        tp = message.tp
        if tp not in active:
            left.append(message)
            continue
        if offsets[tp] is not None and message.offset <= offsets[tp]:
            continue  # applied already (as Faust's own loop, a record delivered again is skipped)
        table = to_table[tp]
        key, value = message.key, message.value
        if isinstance(table.data, DiskStore):
            to_disk.setdefault(tp, []).append((message.offset, key, value))
        else:
            data, where = table_data(table), key_partitions(table)
            if value is None:
                data.pop(key, None)
                where.pop(key, None)
            else:
                data[key] = value
                where[key] = tp.partition
        offsets[tp] = message.offset
        received[tp] = now
        if read is not None:
            read[tp] += 1
    for tp, records in to_disk.items():
        to_table[tp].data.disk.restore(tp.partition, records)
    if len(left) < len(messages) and not recovery.need_recovery():
        # Read to the end: Faust's loop would notice at its next look, up to 5 s on; the recovery goes on
        # now (that loop still looks, as before, and ends the recovery itself if this signal was missed).
        recovery.signal_recovery_end.set()
    return left


async def _each(callback: Callable[[Message], Awaitable[Any]], messages: list[Message]) -> None:
    """Hand each message to Faust's callback, in order. Faust awaits each one apart against a suspension
    of the flow (a rebalance), with four tasks for every message: most of a recovery's time. Here one
    wait covers a fetch; a suspension still stops the delivery, and what was not delivered is fetched
    again after the rebalance, as before."""
    for message in messages:
        await callback(message)


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer
    Producer = BatchProducer


FETCH_ROUND = 1.1  # seconds: Faust's consumer waits up to 1 s for each fetch


class SeekFirstRecovery(Recovery):
    """Faust's recovery, corrected (above), which also empties a disk table's partition whose checkpoint
    is beyond its changelog's end, and counts (``read``, by ``restored``) and logs what each recovery read."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.read: Counter[TP] = Counter()  # changelog records the latest recovery read, per active partition
        self._began = time.monotonic()
        self._from: dict[TP, int | None] = {}

    async def _build_highwaters(self, consumer: Any, tps: set[TP], destination: Counter[TP], title: str) -> None:
        """Faust's highwaters of the changelog partitions; then, for the active ones, a disk table's
        checkpoint beyond the last offset (the topic was cut short, or deleted and created again: its
        local data may hold what the changelog does not) empties the partition, read whole."""
        await super()._build_highwaters(consumer, tps, destination, title)
        if destination is not self.active_highwaters:
            return
        self._began = time.monotonic()
        self.read = Counter(dict.fromkeys(tps, 0))
        self._from = {}
        for tp in tps:
            table, checkpoint, last = self.tp_to_table.get(tp), self.active_offsets.get(tp), destination.get(tp)
            self._from[tp] = checkpoint
            if table is None or not isinstance(table.data, DiskStore) or checkpoint is None or last is None:
                continue
            if checkpoint > last:
                table.data.disk.drop(
                    tp.partition,
                    f"its checkpoint at offset {checkpoint} is beyond the changelog's last offset {last}: the topic "
                    "was cut short, or deleted and created again",
                )
                self.active_offsets[tp] = -1
                self._from[tp] = -1

    async def on_recovery_completed(self, generation_id: int = 0) -> None:
        with self._streams_held() as held:
            await super().on_recovery_completed(generation_id)
        self._said()
        await self._resume(held)

    def _said(self) -> None:
        """The log of a recovery: per changelog partition, where it started and what it read."""
        parts = []
        for tp in sorted(self._from):
            start = self._from[tp]
            where = "whole" if start is None or start < 0 else f"after offset {start}"
            parts.append(f"{tp.topic}[{tp.partition}] {self.read[tp]:,} ({where})")
        if parts:
            total = sum(self.read[tp] for tp in self._from)
            state_log.info(
                "state recovered in %.1f s: %s changelog records read: %s",
                time.monotonic() - self._began,
                f"{total:,}",
                ", ".join(parts),
            )

    async def _resume_streams(self, generation_id: int = 0) -> None:
        with self._streams_held() as held:
            await super()._resume_streams(generation_id)
        await self._resume(held)

    @contextmanager
    def _streams_held(self) -> Iterator[set[TP]]:
        """Collect, instead of resuming, the partitions Faust resumes meanwhile (BatchConsumer.held)."""
        consumer: Any = self.app.consumer
        held: set[TP] = set()
        consumer.held = held
        try:
            yield held
        finally:
            consumer.held = None

    async def _resume(self, held: set[TP]) -> None:
        """Seek the held partitions to their committed offsets (those without one to their beginning),
        now that their queues are clear and nothing can be fetched for them meanwhile; then resume them."""
        consumer: Any = self.app.consumer
        if not held or self.should_stop:
            return
        # A fetch begun before the rebalance may still be waiting, with a snapshot of the partitions
        # that were active then; emptied by the pause, it hands out every partition's records, which
        # the consumer drops as inactive after their position has moved on. Let it end first.
        await asyncio.sleep(FETCH_ROUND)
        await consumer.perform_seek()
        uncommitted = [tp for tp in held if not consumer._committed_offset.get(tp)]
        if uncommitted:
            for tp, offset in (await consumer.earliest_offsets(*uncommitted)).items():
                await consumer.seek(tp, offset)
        consumer.resume_partitions(held)


class SeekFirstTableManager(TableManager):
    """Faust's table manager, with the corrected recovery (``TableManager`` setting of the app)."""

    @property
    def recovery(self) -> Recovery:
        if self._recovery is None:
            self._recovery = SeekFirstRecovery(self.app, self, beacon=self.beacon, loop=self.loop)
        return self._recovery


# -- the transport ----------------------------------------------------------------------------------------
#: The URL scheme of tpmon's transport (``BatchTransport``: batch delivery, and connections backed off
#: for the consumer and the producer alike) in Faust's transport registry, as the disk store's is in the
#: store registry: the app's broker URLs name it (``batch_broker``). Installed packages add theirs through
#: the ``faust.transports`` entry points; tpmon's is added here, so that a checkout run from its folder
#: finds it too.
BATCH_TRANSPORT = "tpmon-kafka"
transports.TRANSPORTS.aliases.setdefault(BATCH_TRANSPORT, "streams.seam:BatchTransport")


def batch_broker(url: str) -> str:
    """Faust's broker URLs (``kafka://host:port,...``) naming tpmon's transport instead."""
    return ",".join(
        f"{BATCH_TRANSPORT}://{part.split('://', 1)[1]}" if "://" in part else part for part in url.split(",")
    )


# -- tables ------------------------------------------------------------------------------------------------
#: The URL scheme of tpmon's disk store (streams.store.DiskStore) in Faust's store registry. Installed
#: packages add theirs to the registry through the ``faust.stores`` entry points; tpmon's is added here,
#: so that a checkout run from its folder finds it too.
DISK_STORE = "tpmon-rocksdb"
stores.STORES.aliases.setdefault(DISK_STORE, "streams.store:DiskStore")


class TableStore:
    """A Faust table in memory (``--store memory``) as a ``Store``: writes go to the local data and,
    through the outbox, to a chosen partition of the table's changelog, so timers (which have no current
    event) can write too. Each partition's own record has a key no customer can have (not UTF-8). (On
    disk, the default: streams.store.DiskTableStore.)"""

    def __init__(self, table: faust.Table, outbox: Outbox) -> None:
        self.table = table
        self.outbox = outbox
        self.changelog = table.changelog_topic.get_topic_name()

    def get(self, key: str, partition: int | None = None) -> bytes | None:
        return table_data(self.table).get(key.encode())

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        self._put(partition, key.encode(), value)

    def _put(self, partition: int, raw_key: bytes, value: bytes | None) -> None:
        data, where = table_data(self.table), key_partitions(self.table)
        if value is None:
            data.pop(raw_key, None)
            where.pop(raw_key, None)
        else:
            data[raw_key] = value
            where[raw_key] = partition
        self.outbox.add(self.changelog, raw_key, value, partition)

    def items(self, partition: int) -> Iterable[tuple[str, bytes]]:
        data = table_data(self.table)
        for raw_key, where in list(key_partitions(self.table).items()):
            if where == partition and raw_key[:1] != STATE_KEY[:1]:
                value = data.get(raw_key)
                if value is not None:
                    yield raw_key.decode() if isinstance(raw_key, bytes) else raw_key, value

    def get_state(self, partition: int) -> bytes | None:
        return table_data(self.table).get(STATE_KEY + str(partition).encode())

    def put_state(self, partition: int, value: bytes) -> None:
        self._put(partition, STATE_KEY + str(partition).encode(), value)

    def compact(self) -> None:
        compact_table(self.table)


def recovered_records(app: faust.App) -> dict[TP, int]:
    """The changelog records the latest recovery of each partition assigned here read."""
    recovery = app.tables.recovery
    read: Counter[TP] = getattr(recovery, "read", Counter())
    return {tp: count for tp, count in read.items() if tp in recovery.active_tps}


def table_data(table: faust.Table) -> Any:
    """The table's local data (the memory store's dict), read and written by ``streams.app.TableStore``."""
    return table.data.data  # type: ignore[attr-defined]


def compact_table(table: faust.Table) -> None:
    """Rebuild the table's dicts at their size, after many deletions (a dict keeps the room it grew to)."""
    store: Any = table.data
    store.data = dict(store.data)
    store._key_partition = dict(store._key_partition)


def key_partitions(table: faust.Table) -> dict:
    """Key -> the changelog partition it came from or went to. Faust's memory store keeps it for what it
    recovers (and drops the keys of partitions no longer assigned once a recovery completes); tpmon's
    own writes add theirs, so that a partition's records are found without reading the others."""
    return table.data._key_partition  # type: ignore[attr-defined]


# -- the producer ------------------------------------------------------------------------------------------
def producer(app: faust.App) -> Any:
    """The started aiokafka producer Faust configured (the outbox sends its batches through it)."""
    return app.producer._ensure_producer()  # type: ignore[attr-defined]


# -- the inputs' positions, for the watermark ----------------------------------------------------------------
FRESH = 5.0  # seconds: a fetch response older than this says nothing of where a partition ends


class ConsumerPositions:
    """``streams.handlers.Positions`` from Faust's consumer (its aiokafka consumer, in Faust's thread).

    A partition is caught up when a fetch of the last ``FRESH`` seconds gave its end offset and what
    the consumer had read when all it had read was handled (``BatchConsumer.settled``) has reached it.
    A partition never fetched, paused (not fetched while its records wait), or whose broker cannot be
    reached, has no fresh fetch: it is not caught up, so it is never idle.
    """

    def __init__(self, app: faust.App, topics: Iterable[str]) -> None:
        self.app = app
        self.topics = frozenset(topics)
        self.paused: set[TP] = set()

    def assigned(self) -> list[tuple[str, int]]:
        return [(tp.topic, tp.partition) for tp in self.app.assignor.assigned_actives() if tp.topic in self.topics]

    def known(self) -> list[tuple[str, int]]:
        known = []
        for topic in sorted(self.topics):
            count = self.app.consumer.topic_partitions(topic)
            known.extend((topic, partition) for partition in range(count or 0))
        return known

    def caught_up(self, topic: str, partition: int) -> bool:
        try:
            consumer = self.app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        except Exception:
            return False  # not started, or stopping
        tp = TP(topic, partition)
        polled = consumer.last_poll_timestamp(tp)
        end = consumer.highwater(tp)
        if polled is None or end is None or time.time() - polled / 1000 > FRESH:
            return False
        settled = self.app.consumer.settled.get(tp)  # type: ignore[attr-defined]
        return settled is not None and settled >= end

    async def pause(self, ahead: set[tuple[str, int]]) -> None:
        """Pause the inputs ahead, resume those no longer ahead (only those paused here).

        Faust's pause takes a partition out of the set its fetch in progress filters by, so that
        fetch's records of it are dropped while the consumer's position has moved past them. A
        partition resumed here is therefore first sought back to the offset it hands out next (just
        after the last message it delivered, or where it was last sought): what was dropped is
        fetched again. (Faust's read offset is not that: after a seek it is the next offset, not the
        last one read, and seeking one past it lost a message after every rebalance.)"""
        consumer: Any = self.app.consumer
        wanted = {TP(topic, partition) for topic, partition in ahead}
        pause = wanted - self.paused
        if pause:
            consumer.pause_partitions(pause)
        resume = self.paused - wanted
        self.paused = wanted
        if resume:
            for tp in resume:
                position = consumer.next_offsets.get(tp)
                if position is not None:
                    await consumer.seek(tp, position)
            consumer.resume_partitions(resume)

    def connected(self) -> bool | None:
        """Whether any of the consumer's connections to the cluster is up (None: no consumer yet). A
        running consumer always holds one (fetches, heartbeats); when the broker is gone they close, and
        each reconnection attempt fails before it is kept."""
        try:
            consumer = self.app.consumer._thread._ensure_consumer()  # type: ignore[attr-defined]
        except Exception:
            return None
        try:
            return any(conn.connected() for conn in list(consumer._client._conns.values()))
        except RuntimeError:  # the dict changed under us (Faust's consumer thread): ask again next time
            return None

    def forget(self) -> None:
        """After a rebalance Faust resumes what it keeps: pause again what is still ahead, next time."""
        self.paused = set()


# -- what a new faust-streaming or aiokafka must not change unseen ------------------------------------------
def _internals() -> dict[str, object]:
    from aiokafka import client, conn
    from aiokafka.consumer import fetcher, subscription_state
    from faust.tables.base import Collection

    return {
        "faust Consumer._drain_messages (overridden by BatchConsumer)": faust_consumer.Consumer._drain_messages,
        "faust aiokafka Consumer._new_consumer_thread (overridden)": faust_aiokafka.Consumer._new_consumer_thread,
        "faust aiokafka Consumer.verify_event_path (overridden)": faust_aiokafka.Consumer.verify_event_path,
        "faust aiokafka ConsumerThread._create_worker_consumer (extended)": (
            faust_aiokafka.AIOKafkaConsumerThread._create_worker_consumer
        ),
        "faust aiokafka ConsumerThread.on_thread_stop (extended)": faust_aiokafka.AIOKafkaConsumerThread.on_thread_stop,
        "faust aiokafka Producer._new_producer (extended)": faust_aiokafka.Producer._new_producer,
        "aiokafka Fetcher.close (raises a fetch's cancellation)": fetcher.Fetcher.close,
        "faust Consumer.getmany": faust_consumer.Consumer.getmany,
        "faust Consumer.track_message": faust_consumer.Consumer.track_message,
        "faust Consumer._add_gap": faust_consumer.Consumer._add_gap,
        "faust Consumer.ack": faust_consumer.Consumer.ack,
        "faust Consumer.pause_partitions": faust_consumer.Consumer.pause_partitions,
        "faust Consumer.resume_partitions": faust_consumer.Consumer.resume_partitions,
        "faust Consumer.seek (read offset, overridden)": faust_consumer.Consumer.seek,
        "faust Consumer.perform_seek (read offsets, overridden)": faust_consumer.Consumer.perform_seek,
        "faust Recovery.on_recovery_completed (overridden)": Recovery.on_recovery_completed,
        "faust Recovery._slurp_changelogs (fed beside: restored)": Recovery._slurp_changelogs.fun,  # type: ignore[attr-defined]
        "faust Recovery.active_remaining (offsets: restored)": Recovery.active_remaining,
        "faust Recovery.need_recovery (restored ends a recovery)": Recovery.need_recovery,
        "faust Recovery._restart_recovery (waits for signal_recovery_end)": Recovery._restart_recovery.fun,  # type: ignore[attr-defined]
        "faust memory Store.apply_changelog_batch (what restored does)": memory.Store.apply_changelog_batch,
        "faust Recovery._resume_streams (overridden)": Recovery._resume_streams,
        "faust TableManager.recovery (overridden)": TableManager.recovery.fget,  # type: ignore[attr-defined]
        "faust memory Store._create_batch_iterator (key partitions)": memory.Store._create_batch_iterator,
        "faust memory Store.on_recovery_completed (key partitions)": memory.Store.on_recovery_completed,
        "faust aiokafka Producer._ensure_producer": faust_aiokafka.Producer._ensure_producer,
        "faust aiokafka ConsumerThread._ensure_consumer": faust_aiokafka.AIOKafkaConsumerThread._ensure_consumer,
        "faust aiokafka ConsumerThread.topic_partitions": faust_aiokafka.AIOKafkaConsumerThread.topic_partitions,
        "aiokafka TopicPartitionState.consumed_to (position)": subscription_state.TopicPartitionState.consumed_to,
        "aiokafka Fetcher._proc_fetch_request (highwater, poll time)": fetcher.Fetcher._proc_fetch_request,
        "aiokafka AIOKafkaClient._get_conn (connections; extended)": client.AIOKafkaClient._get_conn,
        "aiokafka AIOKafkaConnection.connected": conn.AIOKafkaConnection.connected,
        "faust stores registry (the disk store's URL scheme added)": stores,
        "faust transports registry (tpmon's URL scheme added)": transports,
        "faust Collection._new_store (a table's store URL, unless empty)": Collection._new_store,
        "faust Collection._new_store_by_url (a table's options reach its store)": Collection._new_store_by_url,
        "faust TableManager.on_rebalance (the stores before the recovery)": TableManager.on_rebalance,
        "faust Recovery._add (persisted_offset: where a recovery starts)": Recovery._add,
        "faust Recovery._build_highwaters (extended: a checkpoint beyond the changelog)": Recovery._build_highwaters,
        "faust Recovery._build_offsets (from the persisted offset)": Recovery._build_offsets,
        "faust Recovery._seek_offsets (the persisted offset is the last one read)": Recovery._seek_offsets,
    }


def fingerprint(thing: object) -> str:
    return hashlib.sha256(inspect.getsource(thing).encode()).hexdigest()[:16]  # type: ignore[arg-type]


#: The source fingerprints of the internals above, for the pinned versions.
INTERNALS: dict[str, str] = {
    "faust Consumer._drain_messages (overridden by BatchConsumer)": "44a2500309e83c63",
    "faust aiokafka Consumer._new_consumer_thread (overridden)": "0870ec53dea75083",
    "faust aiokafka Consumer.verify_event_path (overridden)": "a17e8f0610e1abcb",
    "faust aiokafka ConsumerThread._create_worker_consumer (extended)": "c2701bfc3e6f6cad",
    "faust aiokafka ConsumerThread.on_thread_stop (extended)": "8dfc004e258b6c25",
    "faust aiokafka Producer._new_producer (extended)": "e72355c3430ed02f",
    "aiokafka Fetcher.close (raises a fetch's cancellation)": "1cd24bc1c442149e",
    "faust Consumer.getmany": "4b168d84882a70d6",
    "faust Consumer.track_message": "217d7f1399a4cd8e",
    "faust Consumer._add_gap": "4df2573ded7c1c2c",
    "faust Consumer.ack": "5fcf41cf45153475",
    "faust Consumer.pause_partitions": "27a1c94bdacd54de",
    "faust Consumer.resume_partitions": "afe6b7c02a41d63c",
    "faust Consumer.seek (read offset, overridden)": "b86a9fe05f956b30",
    "faust Consumer.perform_seek (read offsets, overridden)": "0e8c130ff4b0afd8",
    "faust Recovery.on_recovery_completed (overridden)": "6ef567acf072e46d",
    "faust Recovery._slurp_changelogs (fed beside: restored)": "7825c7e50f766d5a",
    "faust Recovery.active_remaining (offsets: restored)": "0dcc38568ad5018b",
    "faust Recovery.need_recovery (restored ends a recovery)": "fd1dc345b5d5e121",
    "faust Recovery._restart_recovery (waits for signal_recovery_end)": "6bd8a8558a2dffe4",
    "faust memory Store.apply_changelog_batch (what restored does)": "71863e3cd727aac2",
    "faust Recovery._resume_streams (overridden)": "d986a6710c1aca98",
    "faust TableManager.recovery (overridden)": "f0bf5de78b4c3d23",
    "faust memory Store._create_batch_iterator (key partitions)": "b082c8bcc0403823",
    "faust memory Store.on_recovery_completed (key partitions)": "a00bef343e139602",
    "faust aiokafka Producer._ensure_producer": "5592a4bbdf251325",
    "faust aiokafka ConsumerThread._ensure_consumer": "ff4a4c693b7ec63f",
    "faust aiokafka ConsumerThread.topic_partitions": "8e5084fa9734ed33",
    "aiokafka TopicPartitionState.consumed_to (position)": "c7b8f0f99ce9185e",
    "aiokafka Fetcher._proc_fetch_request (highwater, poll time)": "59bf948fff47eed5",
    "aiokafka AIOKafkaClient._get_conn (connections; extended)": "68ce5d8391719d33",
    "aiokafka AIOKafkaConnection.connected": "e392e7f6dadb2368",
    "faust stores registry (the disk store's URL scheme added)": "4137d02eca58fa2c",
    "faust transports registry (tpmon's URL scheme added)": "ccd832f398473b36",
    "faust Collection._new_store (a table's store URL, unless empty)": "914a2bda605d38f5",
    "faust Collection._new_store_by_url (a table's options reach its store)": "343a8125107d3f69",
    "faust TableManager.on_rebalance (the stores before the recovery)": "2d2c23a07bf54328",
    "faust Recovery._add (persisted_offset: where a recovery starts)": "1584a197b11bf835",
    "faust Recovery._build_highwaters (extended: a checkpoint beyond the changelog)": "91b4cc0d3724ae7b",
    "faust Recovery._build_offsets (from the persisted offset)": "27eec86be06cb51f",
    "faust Recovery._seek_offsets (the persisted offset is the last one read)": "19598ca63d94d250",
}


def internals_changed() -> list[str]:
    """The internals whose source differs from what this module was written against."""
    return [name for name, thing in _internals().items() if INTERNALS.get(name) != fingerprint(thing)]
