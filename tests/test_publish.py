"""tpmon.publish after an outage, with a producer that fails as aiokafka's does when its batches expired
(tests/integration/test_outages.py runs it against the real broker)."""

from __future__ import annotations

import asyncio

from aiokafka.errors import KafkaTimeoutError

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


def test_lines_whose_batches_expired_are_sent_again_with_one_wait(monkeypatch):
    lines = [event("customer.joined", n, f"c-{n}").raw for n in range(300)]
    producer = ExpiredBatches(failing=300)
    waits: list[float] = []

    async def sleep(seconds: float) -> None:
        waits.append(seconds)

    async def no_topics(*args: object) -> None: ...

    monkeypatch.setattr(publishing, "AIOKafkaProducer", producer)
    monkeypatch.setattr(publishing, "ensure_topics", no_topics)
    monkeypatch.setattr(publishing.asyncio, "sleep", sleep)

    async def feed():  # type: ignore[no-untyped-def]
        for line in lines:
            yield line

    result = publishing.Published()
    settings = Settings(rules=str(ROOT / "rules"))
    asyncio.run(publishing.publish(feed(), settings, result))
    assert result.sent == 300 and producer.sent == lines  # all of them, in their order
    assert len(waits) == 1, f"{len(waits)} waits of a second for 300 lines"
