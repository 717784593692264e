"""The forget topic, read whole by every worker (docs/SECURITY.md, "Forgetting a customer").

Its own aiokafka consumer, outside the consumer group (no group id, nothing committed): every worker
reads every request, from the first, at each start, so a restarted worker knows the requests made
while it was away, and a worker taking a partition later applies those its owner had not
(``streams.partitions``). ``caught_up`` is set once it has read what the topic held when it started:
the worker judges and serves nothing before (a journey read back from the changelog of a customer
forgotten meanwhile must not be served, nor grow). The work is ``on_request``'s: this only reads.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from prometheus_client import CollectorRegistry, Gauge

from monitor.conventions import METRIC_FORGET_LAST_REQUEST, METRIC_FORGET_READER_UP
from monitor.erasures import BadRequest, Request

from .settings import Settings

log = logging.getLogger("tpmon.forget")

# Compacted: the latest request of each customer is kept for ever, so that a worker started any time
# later still erases what a changelog may hold of it. One partition: requests are few, read in order.
FORGET_TOPIC_CONFIG = {"cleanup.policy": "compact"}
RETRY_AFTER = 2.0  # seconds before reading again after the broker failed the reader


async def ensure_forget_topic(settings: Settings) -> None:
    """Create the forget topic if it is missing (one partition, compacted), with the settings'
    security options; a broker out of reach raises ConnectionError."""
    admin = AIOKafkaAdminClient(**settings.client_options())
    try:
        await admin.start()
    except KafkaError:
        with contextlib.suppress(Exception):
            await admin.close()
        raise ConnectionError(f"cannot reach Kafka at {settings.bootstrap}") from None
    try:
        if settings.forget_topic not in await admin.list_topics():
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics([NewTopic(settings.forget_topic, 1, 1, topic_configs=FORGET_TOPIC_CONFIG)])
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


class ErasureReader:
    """Reads the forget topic from its first message, for ever; each request goes to ``on_request``
    with its offset, once (a read that fails starts again after the last offset handled), which
    returns whether it erased anything held here. ``on_end`` is told the offset the topic ends at
    at each (re)start of the read, and whether the topic was created again (``Partitions.forget_topic_end``).

    Offsets: a position the broker no longer has (an offset out of range) reads from the first message
    there is (``auto_offset_reset="earliest"``), never skipping a request. A topic that ends below the
    offset read already was deleted and created again: said as an error, and read again from its first
    message, its offsets taken as restarted (docs/SECURITY.md).

    The log: the requests the topic held when the worker started (read at every start) at DEBUG, then
    one line saying how many; each request made since at INFO (``on_request`` says it, ``new``). A read that fails is
    said once (an error once caught up: requests are not applied here meanwhile) and when it reads
    again; ``tpmon_forget_reader_up`` says the same on /metrics."""

    def __init__(
        self,
        settings: Settings,
        on_request: Callable[[int, Request], Awaitable[bool]],
        on_end: Callable[[int, bool], None] | None = None,
        registry: CollectorRegistry | None = None,
    ) -> None:
        self.settings = settings
        self.on_request = on_request
        self.on_end = on_end or (lambda end, restarted: None)
        self.caught_up = asyncio.Event()
        self.next_offset = 0
        self.held_at_start: int | None = None  # where the topic ended when this worker started
        self.read = 0  # requests read of those it held then
        self.applied = 0  # of those, the ones that erased something held here
        self.failing = False
        self.up = Gauge(
            METRIC_FORGET_READER_UP,
            "1 while the worker reads the forget topic, 0 while it cannot (requests are not applied meanwhile).",
            registry=registry,
        )
        self.last = Gauge(
            METRIC_FORGET_LAST_REQUEST,
            "The offset in the forget topic of the last request this worker has applied (-1: none yet).",
            registry=registry,
        )
        self.last.set(-1)

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            try:
                await self._read(stopping)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker away, say: read on from where it stopped
                self.up.set(0)
                if not self.failing:
                    self.failing = True
                    say = log.error if self.caught_up.is_set() else log.warning
                    say(
                        "cannot read the forget topic %s (%s): requests to forget customers are not applied "
                        "here until it can; trying again every %.0f s",
                        self.settings.forget_topic,
                        error,
                        RETRY_AFTER,
                    )
                else:
                    log.debug("reading the forget topic %s: %s", self.settings.forget_topic, error)
                await asyncio.sleep(RETRY_AFTER)

    async def _read(self, stopping: Callable[[], bool]) -> None:
        topic = self.settings.forget_topic
        await ensure_forget_topic(self.settings)
        consumer = AIOKafkaConsumer(
            **self.settings.client_options(), enable_auto_commit=False, group_id=None, auto_offset_reset="earliest"
        )
        await consumer.start()
        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            end = (await consumer.end_offsets([partition]))[partition]
            restarted = end < self.next_offset
            if restarted:
                log.error(
                    "the forget topic %s ends at offset %d, below the %d read already: it was deleted and "
                    "created again. Its requests are read again from its first, their offsets taken as "
                    "restarted (each partition applies them all again)",
                    topic,
                    end,
                    self.next_offset,
                )
                self.next_offset = 0
            consumer.seek(partition, self.next_offset)
            if self.held_at_start is None:
                self.held_at_start = end
            self.on_end(end, restarted)
            self._reading()
            if self.next_offset >= end:
                self._caught_up()
            while not stopping():
                batches = await consumer.getmany(partition, timeout_ms=500)
                for message in batches.get(partition, ()):
                    await self._handle(message)
                self._reading()
                newest = consumer.highwater(partition)  # (from the last fetch: a request another reads first)
                if newest is not None and newest > end:
                    end = newest
                    self.on_end(end, False)
                if not self.caught_up.is_set() and await consumer.position(partition) >= end:
                    self._caught_up()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    def new(self, offset: int) -> bool:
        """Whether the request at ``offset`` was made since this worker started (the others, read at
        every start, are said at DEBUG, then counted in one line)."""
        return self.held_at_start is not None and offset >= self.held_at_start

    def _reading(self) -> None:
        if self.failing:
            self.failing = False
            log.info("reading the forget topic %s again", self.settings.forget_topic)
        self.up.set(1)

    def _caught_up(self) -> None:
        self.caught_up.set()
        log.info(
            "forget: read %d request%s to forget customers in %s; %d erased something held here (a partition "
            "taken from now on applies those its record does not say applied)",
            self.read,
            "" if self.read == 1 else "s",
            self.settings.forget_topic,
            self.applied,
        )

    async def _handle(self, message) -> None:  # type: ignore[no-untyped-def]
        if message.value is None:
            pass  # a request withdrawn by hand: nothing to do
        else:
            try:
                request = Request.parse(message.key, message.value)
            except BadRequest as error:
                log.warning("forget topic, offset %d: not a request (%s): skipped", message.offset, error)
            else:
                held = await self.on_request(message.offset, request)  # (if it raises, it is read again)
                self.last.set(message.offset)
                if not self.new(message.offset):
                    self.read += 1
                    self.applied += bool(held)
        self.next_offset = message.offset + 1
