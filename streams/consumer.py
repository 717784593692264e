"""Batch delivery: tpmon's hot topics go from each fetch straight to their handler, a list at a time.

Faust hands every message to its agents one by one: the consumer's drain loop starts two tasks per
message (the delivery, and a wait on the flow control), the conductor wraps it in an event and queues
it, and the agent's stream takes it out again with its sensors and acknowledgements. That is most of a
worker's time, twice over for tpmon's two hops (ingest, judge), and more than the judging itself.

Here the drain loop keeps Faust's bookkeeping per message (read offsets, holes as compacted offsets,
tracking for a clean rebalance) but collects the messages of the topics that have a batch handler, and
after each fetch awaits each handler once with its list; the messages are acknowledged only when the
handler has returned, i.e. when what they caused is stored. Everything else (table changelogs during
recovery, the assignor's topic) takes Faust's usual path. An error in a handler ends the drain loop as
one in Faust's own does (logged and raised), with its batch unacknowledged, hence not committed.

A rebalance that begins while a batch is collected or handled makes the batch stale: it is dropped
unacknowledged, and read again from the committed offsets once the partitions are resumed (see
streams.recovery, which seeks every resumed partition first). Messages read twice are duplicates the
engine recognises.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import Message

BatchHandler = Callable[[list[Message]], Awaitable[None]]


class BatchConsumer(faust_aiokafka.Consumer):
    """Faust's aiokafka consumer, delivering the topics of ``app.batch_handlers`` in batches."""

    async def _drain_messages(self, fetcher: Any) -> None:
        app: Any = self.app
        handlers: dict[str, BatchHandler] = app.batch_handlers
        callback = self.callback
        stopped = self._stopped.is_set
        fetcher_stopped = fetcher._stopped.is_set
        read_offsets = self._read_offset
        acks_enabled_for = app.topics.acks_enabled_for
        commit_every = self._commit_every
        try:
            while not (stopped() or fetcher_stopped()):
                generation = app.consumer_generation_id
                batches: dict[BatchHandler, list[Message]] = {}
                await self.sleep(0)
                async for tp, message in self.getmany(timeout=1.0):
                    offset = message.offset
                    last = read_offsets[tp]
                    if last is not None and offset < last:
                        continue  # delivered already: fetched again after a seek
                    if last and offset - last > 1 and acks_enabled_for(message.topic):
                        await self._add_gap(tp, last + 1, offset)  # a hole: offsets that do not exist
                    handler = handlers.get(tp.topic)
                    if handler is not None:
                        self.track_message(message)
                        batches.setdefault(handler, []).append(message)
                    else:
                        await self.wait_first(callback(message), self.suspend_flow.wait())
                    read_offsets[tp] = offset
                for handler, messages in batches.items():
                    if app.rebalancing or app.consumer_generation_id != generation or not self.flow_active:
                        self._drop(messages)
                        continue
                    await handler(messages)
                    for message in messages:
                        self.ack(message)
                if commit_every is not None and self._n_acked >= commit_every:
                    self._n_acked = 0
                    await self.commit()
        except self.consumer_stopped_errors:
            if self.transport.app.should_stop:
                return
            raise
        except Exception as exc:
            self.log.exception("Drain messages raised: %r", exc)
            raise

    def _drop(self, messages: list[Message]) -> None:
        """Forget a stale batch: unacknowledged, so not committed, and not waited for by the rebalance."""
        for message in messages:
            self._unacked_messages.discard(message)


class BatchTransport(faust_aiokafka.Transport):
    Consumer = BatchConsumer
