"""tpmon.publish after an outage, with a producer that fails as aiokafka's does when its batches expired
(tests/integration/test_outages.py runs it against the real broker)."""

from __future__ import annotations

import asyncio
import gc

from aiokafka.errors import KafkaTimeoutError, OutOfOrderSequenceNumber

from streams.settings import Settings
from tests.builders import event
from tpmon import publish as publishing

from .conftest import ROOT


class ExpiredBatches:
    """A producer whose first ``failing`` sends fail together, as the batches a long outage expires."""

    def __init__(self, failing: int) -> None:
        self.failing, self.sent, self.pending = failing, [], []

    def __call__(self, **options: object) -> ExpiredBatches:
        return self

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def flush(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.failing:
            self.failing -= 1
            self.pending.append(future)
            if not self.failing:  # the outage ends: every batch it held fails at once
                for waiting in self.pending:
                    waiting.set_exception(KafkaTimeoutError())
        else:
            self.sent.append(value)
            future.set_result(None)
        return future


class LostSequence:
    """Producers of which the first loses its sequence in an outage, as aiokafka's does: the broker
    answers the first batch after it with out-of-order-sequence, and stopping fails all the others."""

    def __init__(self, holding: int) -> None:
        self.holding, self.made, self.sent = holding, 0, []

    def __call__(self, **options: object) -> _Producer:
        self.made += 1
        return _Producer(self, lost=self.made == 1)


class _Producer:
    def __init__(self, maker: LostSequence, lost: bool) -> None:
        self.maker, self.lost, self.pending = maker, lost, []

    async def start(self) -> None: ...

    async def flush(self) -> None: ...

    async def stop(self) -> None:
        for waiting in self.pending:
            if not waiting.done():
                waiting.set_exception(OutOfOrderSequenceNumber())
        self.pending = []

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        future = asyncio.get_running_loop().create_future()
        if self.lost:
            self.pending.append(future)
            if len(self.pending) == self.maker.holding:
                self.pending[0].set_exception(OutOfOrderSequenceNumber())
        else:
            self.maker.sent.append(value)
            future.set_result(None)
        return future


def run_publish(
    monkeypatch, producer: object, lines: list[bytes], **options
) -> tuple[publishing.Published, list, list]:  # type: ignore[no-untyped-def]
    """publish ``lines`` through ``producer`` without waiting; (result, the waits, what the event loop
    was told of futures whose failure nobody retrieved)."""
    waits: list[float] = []
    unretrieved: list = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def no_topics(*args: object) -> None: ...

    monkeypatch.setattr(publishing, "AIOKafkaProducer", producer)
    monkeypatch.setattr(publishing, "ensure_topics", no_topics)
    monkeypatch.setattr(publishing.asyncio, "sleep", sleep)

    async def feed():  # type: ignore[no-untyped-def]
        for line in lines:
            yield line

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, context: unretrieved.append(context))
        await publishing.publish(feed(), Settings(rules=str(ROOT / "rules")), result, **options)
        gc.collect()  # a future is reported when it is collected

    result = publishing.Published()
    asyncio.run(main())
    return result, waits, unretrieved


def test_lines_whose_batches_expired_are_sent_again_with_one_wait(monkeypatch):
    lines = [event("customer.joined", n, f"c-{n}").raw for n in range(300)]
    producer = ExpiredBatches(failing=300)
    result, waits, _ = run_publish(monkeypatch, producer, lines)
    assert result.sent == 300 and producer.sent == lines  # all of them, in their order
    assert len(waits) == 1, f"{len(waits)} waits of a second for 300 lines"


def test_a_producer_that_lost_its_sequence_is_replaced_quietly(monkeypatch):
    """The window is sent again by a new producer; the old one's failures are tpmon's to report, not
    asyncio's: a thousand "Future exception was never retrieved" tracebacks on stderr filled the pipe
    of a test's simulator, which then blocked for ever writing the next."""
    lines = [event("customer.joined", n, f"c-{n}").raw for n in range(300)]
    producer = LostSequence(holding=300)
    result, _, unretrieved = run_publish(monkeypatch, producer, lines)
    assert result.sent == 300 and producer.sent == lines and producer.made == 2
    assert not unretrieved, f"{len(unretrieved)} failures nobody retrieved: {unretrieved[0]}"


class Keeps:
    """A producer that takes every line at once, keeping (topic, key, value)."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes]] = []

    def __call__(self, **options: object) -> Keeps:
        return self

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    async def flush(self) -> None: ...

    async def send(self, topic: str, value: bytes, key: bytes | None = None) -> asyncio.Future:
        self.sent.append((topic, key, value))
        future = asyncio.get_running_loop().create_future()
        future.set_result(None)
        return future


def test_produce_sends_what_it_cannot_key_unkeyed_and_skips_what_has_no_topic(monkeypatch):
    good = event("customer.joined", 0, "c-1").raw
    no_customer = b'{"event_id": "x", "type": "customer.joined", "occurred_at": "2026-11-22T10:00:00Z"}'
    lines = [good, no_customer, b"{cut", b'{"type": "nobody.knows", "customer_id": "c"}']
    said: list[tuple[str, int, str]] = []
    producer = Keeps()
    result, _, _ = run_publish(
        monkeypatch,
        producer,
        lines,
        on_skip=lambda number, why: said.append(("skipped", number, why)),
        on_unkeyed=lambda number, why: said.append(("unkeyed", number, why)),
    )
    assert producer.sent == [("orders", b"c-1", good), ("orders", None, no_customer)]
    assert (result.sent, result.unkeyed, result.skipped) == (2, 1, 2)
    assert [(what, number) for what, number, _ in said] == [("unkeyed", 2), ("skipped", 3), ("skipped", 4)]


def test_produce_as_a_source_sends_every_line_there_and_unkeyed_what_is_not_an_event(monkeypatch):
    good = event("customer.joined", 0, "c-1").raw
    lines = [good, b"{cut", b'{"event_id": "x", "type": "customer.joined", "occurred_at": "2026-11-22T10:00:00Z"}']
    unkeyed: list[tuple[int, str]] = []
    producer = Keeps()
    result, _, _ = run_publish(
        monkeypatch, producer, lines, source="orders", on_unkeyed=lambda n, why: unkeyed.append((n, why))
    )
    assert [(topic, key) for topic, key, _ in producer.sent] == [("orders", b"c-1"), ("orders", None), ("orders", None)]
    assert (result.sent, result.unkeyed, result.skipped) == (3, 2, 0)
    assert [number for number, _ in unkeyed] == [2, 3]
    assert unkeyed[0][1].startswith("malformed JSON") and "'customer_id' is missing" in unkeyed[1][1]
