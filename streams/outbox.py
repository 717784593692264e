"""The outbox: messages for Kafka, handed to the producer together and awaited together.

Handlers and timers add what a batch produced (repartitioned events, dead letters, changelog records),
then ``deliver``: it returns once the broker has every message, so a batch's source messages are
acknowledged only after what they caused is stored. Messages go into one record batch per topic
partition (the partition a key hashes to with Kafka's default partitioner, as Faust's own sends
would), not through a send per message: Faust's and the client's per-message machinery cost more
than the work itself. Deliveries hand their batches to the producer one at a time, in the order the
messages were added, so a record written twice lands in its changelog in that order.

A message the broker refuses for itself (larger than the topic takes, say) must not fail the delivery:
the batch would be handed back unacknowledged, read again, refused again, for ever. Such a message goes
to ``on_refused`` (the app dead-letters it, or logs what cannot be kept) and the rest is delivered. A
message larger than a producer batch travels alone, so with topics that take at least a batch (512 KiB;
Kafka's default is 1 MiB) a refusal never holds back other messages. Every other error (the broker is
gone, say) fails the delivery, as before: nothing is acknowledged.

A delivery takes every message added so far, a timer's and a handler's alike. So that no caller
acknowledges its input before its messages are stored, ``deliver`` also waits for the deliveries under
way that took some of them, and fails when one of those failed.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka.errors import CorruptRecordException, MessageSizeTooLargeError, RecordTooLargeError

from .partitions import key_partition

#: Errors the broker (or the client, before sending) gives for one message's own size or shape.
REFUSALS = (MessageSizeTooLargeError, RecordTooLargeError, CorruptRecordException)

Message = tuple[str, bytes | None, bytes | None, int | None, list | None]  # topic, key, value, partition, headers


class Outbox:
    def __init__(
        self, producer: Callable[[], Any], on_refused: Callable[[Message, Exception], None] | None = None
    ) -> None:
        self.producer = producer  # gives the started aiokafka producer
        self.on_refused = on_refused or _raise  # set by whoever keeps refused messages (streams.handlers)
        self.messages: list[Message] = []
        self.lock = asyncio.Lock()
        self.spread = 0  # round robin for messages without key or partition
        # Messages are numbered as they are added; a delivery takes all there are. A caller's messages
        # may be taken by another's delivery (a timer's, say), so each delivery under way is kept with
        # the number of the first message it took, for callers to wait for (see ``deliver``).
        self.added = 0
        self.taken = 0
        self.deliveries: list[tuple[int, asyncio.Future]] = []
        self.written = 0  # messages the broker has (or refused for themselves)

    def add(
        self,
        topic: str,
        key: bytes | None,
        value: bytes | None,
        partition: int | None = None,
        headers: list | None = None,
    ) -> None:
        self.messages.append((topic, key, value, partition, headers))
        self.added += 1

    async def deliver(self) -> None:
        """Return once every message added before the call is stored (or raise what failed)."""
        mine = self.added
        # What on_refused adds goes out too: a dead letter for a refused event, and if that is refused,
        # a shorter one in its place. Never more rounds: a refusal in the last is only reported.
        for _ in range(3):
            if not self.messages:
                break
            await self._deliver_once()
        waiting = [outcome for first, outcome in self.deliveries if first < mine]
        if waiting:
            await asyncio.gather(*waiting)  # another's delivery that took some of them: its failure is ours
        # A failed delivery stays: every later caller fails as well, and none acknowledges its input.
        self.deliveries = [(first, outcome) for first, outcome in self.deliveries if not succeeded(outcome)]

    async def _deliver_once(self) -> None:
        async with self.lock:
            messages, self.messages = self.messages, []
            first, self.taken = self.taken, self.taken + len(messages)
            producer = self.producer()
            counts: dict[str, int] = {}
            batches: dict[tuple[str, int], tuple[Any, list[Message]]] = {}
            sent: list[tuple[asyncio.Future, list[Message]]] = []
            for message in messages:
                topic, key, value, partition, headers = message
                if partition is None:
                    count = counts.get(topic)
                    if count is None:
                        count = counts[topic] = len(await producer.partitions_for(topic))
                    if key is None:
                        self.spread += 1
                        partition = self.spread % count
                    else:
                        partition = key_partition(key, count)
                batch, held = batches.get((topic, partition)) or (None, [])
                if batch is None:
                    batch = producer.create_batch()
                    batches[topic, partition] = (batch, held)
                while batch.append(key=key, value=value, timestamp=None, headers=headers or []) is None:
                    if not batch.record_count():  # a message larger than a batch: on its own
                        try:
                            future = await producer.send(topic, value, key=key, partition=partition, headers=headers)
                        except REFUSALS as error:  # larger than the producer may send at all
                            self.on_refused((topic, key, value, partition, headers), error)
                        else:
                            sent.append((future, [(topic, key, value, partition, headers)]))
                        break
                    batch.close()
                    sent.append((await producer.send_batch(batch, topic, partition=partition), held))
                    batch, held = producer.create_batch(), []
                    batches[topic, partition] = (batch, held)
                else:
                    held.append((topic, key, value, partition, headers))
            for (topic, partition), (batch, held) in batches.items():
                if batch.record_count():
                    batch.close()
                    sent.append((await producer.send_batch(batch, topic, partition=partition), held))
            outcome = asyncio.ensure_future(self._stored(sent))
            self.deliveries.append((first, outcome))
        await outcome
        self.written += len(messages)

    def unwritten(self) -> int:
        """Messages added and not yet stored: waiting, or in a delivery under way or failed."""
        return self.added - self.written

    async def _stored(self, sent: list[tuple[asyncio.Future, list[Message]]]) -> None:
        results = await asyncio.gather(*(future for future, _ in sent), return_exceptions=True)
        for (_, held), result in zip(sent, results, strict=True):
            if isinstance(result, REFUSALS):
                await self._one_by_one(held, result)
            elif isinstance(result, BaseException):
                raise result

    async def _one_by_one(self, held: list[Message], error: Exception) -> None:
        """A refused batch: alone, it was the message; else send each alone to find which."""
        if len(held) == 1:
            self.on_refused(held[0], error)
            return
        producer = self.producer()
        for message in held:
            topic, key, value, partition, headers = message
            try:
                await (await producer.send(topic, value, key=key, partition=partition, headers=headers))
            except REFUSALS as refusal:
                self.on_refused(message, refusal)


def succeeded(outcome: asyncio.Future) -> bool:
    """Done, and neither cancelled nor failed (a send's future, or a delivery's)."""
    return outcome.done() and not outcome.cancelled() and outcome.exception() is None


def _raise(message: Message, error: Exception) -> None:
    raise error
