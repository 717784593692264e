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
    with its offset, once (a read that fails starts again after the last offset handled)."""

    def __init__(self, settings: Settings, on_request: Callable[[int, Request], Awaitable[None]]) -> None:
        self.settings = settings
        self.on_request = on_request
        self.caught_up = asyncio.Event()
        self.next_offset = 0

    async def run(self, stopping: Callable[[], bool]) -> None:
        while not stopping():
            try:
                await self._read(stopping)
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the broker away, say: read on from where it stopped
                log.warning(
                    "reading the forget topic %s: %s; again in %.0f s", self.settings.forget_topic, error, RETRY_AFTER
                )
                await asyncio.sleep(RETRY_AFTER)

    async def _read(self, stopping: Callable[[], bool]) -> None:
        topic = self.settings.forget_topic
        await ensure_forget_topic(self.settings)
        consumer = AIOKafkaConsumer(**self.settings.client_options(), enable_auto_commit=False, group_id=None)
        await consumer.start()
        try:
            partition = TopicPartition(topic, 0)
            consumer.assign([partition])
            consumer.seek(partition, self.next_offset)
            end = (await consumer.end_offsets([partition]))[partition]
            if self.next_offset >= end:
                self.caught_up.set()
            while not stopping():
                batches = await consumer.getmany(partition, timeout_ms=500)
                for message in batches.get(partition, ()):
                    await self._handle(message)
                if not self.caught_up.is_set() and await consumer.position(partition) >= end:
                    self.caught_up.set()
        finally:
            with contextlib.suppress(Exception):
                await consumer.stop()

    async def _handle(self, message) -> None:  # type: ignore[no-untyped-def]
        if message.value is None:
            pass  # a request withdrawn by hand: nothing to do
        else:
            try:
                request = Request.parse(message.key, message.value)
            except BadRequest as error:
                log.warning("forget topic, offset %d: not a request (%s): skipped", message.offset, error)
            else:
                await self.on_request(message.offset, request)  # (if it raises, it is read again)
        self.next_offset = message.offset + 1
