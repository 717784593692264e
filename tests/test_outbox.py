"""The outbox on a producer of its own (streams.outbox): what the broker refuses for itself does not fail
a delivery, and no caller returns before its messages are stored."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka.errors import KafkaTimeoutError, MessageSizeTooLargeError

from streams.outbox import Outbox
from tests.builders import RecordBatch

LIMIT = 100  # bytes the fake broker takes in one message


class FakeBatch(RecordBatch):
    """A batch that takes at most ``room`` bytes of values, as aiokafka's refuses a record it has no room for."""

    def __init__(self, room: int) -> None:
        super().__init__()
        self.room = room

    def append(self, key, value, timestamp, headers):  # type: ignore[no-untyped-def]
        size = len(value or b"")
        if self.records and sum(len(v or b"") for _, v in self.records) + size > self.room:
            return None
        if not self.records and size > self.room:
            return None
        return super().append(key, value, timestamp, headers)


class FakeProducer:
    """Stores what it is sent, once ``release`` is set; refuses values over LIMIT; fails all on ``broken``."""

    def __init__(self, room: int = 1000) -> None:
        self.room = room
        self.stored: list[tuple[str, bytes | None]] = []
        self.release = asyncio.Event()
        self.release.set()
        self.broken = False

    async def partitions_for(self, topic):  # type: ignore[no-untyped-def]
        return {0, 1}

    def create_batch(self) -> FakeBatch:
        return FakeBatch(self.room)

    async def send_batch(self, batch, topic, partition):  # type: ignore[no-untyped-def]
        return asyncio.ensure_future(self._store(topic, [value for _, value in batch.records]))

    async def send(self, topic, value, key=None, partition=None, headers=None):  # type: ignore[no-untyped-def]
        return asyncio.ensure_future(self._store(topic, [value]))

    async def _store(self, topic: str, values: list) -> None:
        await self.release.wait()
        if self.broken:
            raise KafkaTimeoutError("the broker is gone")
        if any(len(v or b"") > LIMIT for v in values):
            raise MessageSizeTooLargeError("too large for the topic")
        self.stored.extend((topic, v) for v in values)


def outbox(producer: FakeProducer, refused: list) -> Outbox:
    return Outbox(lambda: producer, lambda message, error: refused.append((message[0], message[2])))


def test_a_refused_message_goes_to_on_refused_and_the_rest_is_stored():
    async def run() -> tuple[list, list]:
        producer, refused = FakeProducer(), []
        box = outbox(producer, refused)
        box.add("t", b"k1", b"small")
        box.add("t", b"k1", b"x" * 200)  # larger than the topic takes
        box.add("t", b"k1", b"also small")
        await box.deliver()
        return producer.stored, refused

    stored, refused = asyncio.run(run())
    assert sorted(v for _, v in stored) == [b"also small", b"small"]
    assert refused == [("t", b"x" * 200)]


def test_a_refused_batch_is_sent_again_one_by_one_to_find_the_message():
    async def run() -> tuple[list, list]:
        producer, refused = FakeProducer(room=10_000), []  # batches larger than the topic's limit
        box = outbox(producer, refused)
        for value in (b"a", b"x" * 150, b"b"):
            box.add("t", b"same-key", value)
        await box.deliver()
        return producer.stored, refused

    stored, refused = asyncio.run(run())
    assert [v for _, v in stored] == [b"a", b"b"] and refused == [("t", b"x" * 150)]


def test_what_on_refused_adds_is_delivered_in_the_same_call():
    async def run() -> list:
        producer = FakeProducer()
        box: Outbox

        def refused(message, error):  # type: ignore[no-untyped-def]
            box.add("dead-letters", message[1], b"kept: " + str(len(message[2])).encode())

        box = Outbox(lambda: producer, refused)
        box.add("events", b"k", b"x" * 500)
        await box.deliver()
        return producer.stored

    assert asyncio.run(run()) == [("dead-letters", b"kept: 500")]


def test_no_caller_returns_before_its_messages_are_stored_by_another_delivery():
    async def run() -> list[str]:
        producer, order = FakeProducer(), []
        box = outbox(producer, [])
        producer.release.clear()
        box.add("t", b"a", b"from the handler")
        box.add("t", b"b", b"from the timer")  # added before the handler's delivery takes everything

        async def caller(name: str) -> None:
            await box.deliver()
            order.append(f"{name} returned with {len(producer.stored)} stored")

        handler = asyncio.ensure_future(caller("handler"))
        await asyncio.sleep(0)
        timer = asyncio.ensure_future(caller("timer"))  # its message is already in the handler's delivery
        await asyncio.sleep(0.05)
        assert order == []  # neither may return: nothing is stored yet
        producer.release.set()
        await asyncio.gather(handler, timer)
        return order

    assert sorted(asyncio.run(run())) == ["handler returned with 2 stored", "timer returned with 2 stored"]


def test_a_failed_delivery_fails_every_caller_whose_messages_it_held():
    async def run() -> list[bool]:
        producer = FakeProducer()
        box = outbox(producer, [])
        producer.release.clear()
        producer.broken = True
        box.add("t", b"a", b"one")
        box.add("t", b"b", b"two")
        first = asyncio.ensure_future(box.deliver())
        await asyncio.sleep(0)
        second = asyncio.ensure_future(box.deliver())
        await asyncio.sleep(0)
        producer.release.set()
        results = await asyncio.gather(first, second, return_exceptions=True)
        return [isinstance(r, KafkaTimeoutError) for r in results]

    assert asyncio.run(run()) == [True, True]


def test_a_broker_that_is_gone_fails_the_delivery():
    async def run() -> None:
        producer = FakeProducer()
        producer.broken = True
        box = outbox(producer, [])
        box.add("t", b"a", b"one")
        await box.deliver()

    with pytest.raises(KafkaTimeoutError):
        asyncio.run(run())
