"""The customers' state on disk, on the real broker (streams.store): a worker restarted on its own disk
reads only the changelog written since its checkpoint, one on a new disk reads it whole, and either way,
and after a crash, its counters are what a replay of the same events decides."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import orjson
import pytest

from .conftest import TPMON, Namespace, Worker, finished
from .test_live_pipeline import live_equals_replay, replay_outcomes, simulate_live

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RECOVERED = "tpmon_state_recovered_records"


def on_disk(space: Namespace, data_dir: Path, **env: str) -> Worker:
    """A worker on the given data dir (the fixture gives each new worker a folder of its own)."""
    return space.worker(command=["env", f"TPMON_DATA_DIR={data_dir}", *TPMON], TPMON_LOGLEVEL="info", **env)


def recovered(worker: Worker) -> dict[str, int]:
    """Changelog records its latest recovery read, per changelog topic."""
    read: dict[str, int] = {}
    for (name, labels), value in worker.metrics().items():
        if name == RECOVERED:
            topic = dict(labels)["topic"]
            read[topic] = read.get(topic, 0) + int(value)
    return read


def changelog_records(space: Namespace) -> dict[str, int]:
    """The records a reader of each state changelog reads from its beginning (a recovery without a checkpoint)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    topics = [f"{space.name}-customers-changelog", f"{space.name}-journeys"]

    async def count() -> dict[str, int]:
        consumer = AIOKafkaConsumer(bootstrap_servers=space.bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            partitions = [
                TopicPartition(topic, p) for topic in topics for p in consumer.partitions_for_topic(topic) or ()
            ]
            if not partitions:
                await consumer._client.force_metadata_update()
                partitions = [
                    TopicPartition(topic, p) for topic in topics for p in consumer.partitions_for_topic(topic)
                ]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            read = dict.fromkeys(topics, 0)
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for tp, batch in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).items():
                    read[tp.topic] += len([record for record in batch if record.offset < ends[tp]])
            return read
        finally:
            await consumer.stop()

    return asyncio.run(count())


def metrics_equal_replay(space: Namespace, worker: Worker, events: Path, timeout: float = 60) -> dict:
    """The outcomes /metrics serves equal a replay decided up to the worker's watermark (all partitions
    at the same one, unchanged while read)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        marks = set((worker_view(worker) or {}).get("decided", {}).values())
        if len(marks) == 1 and None not in marks:
            (mark,) = marks
            expected = replay_outcomes(space, events, mark)
            served = {t: pair for t, pair in worker.outcomes().items() if any(pair)}
            if set((worker_view(worker) or {}).get("decided", {}).values()) == marks:
                last = (served, {t: pair for t, pair in expected.items() if any(pair)})
                if last[0] == last[1]:
                    return expected
        time.sleep(0.5)
    raise AssertionError(f"/metrics never equalled the replay at the worker's watermark: {last}")


def worker_view(worker: Worker) -> dict | None:
    page = worker.get("/touchpoints")
    return None if page is None else orjson.loads(page)


def test_a_restart_on_the_same_disk_reads_only_the_changelog_since_its_checkpoint_and_a_new_disk_reads_it_whole(
    namespace,
):
    disk = namespace.root / "disk"
    first = on_disk(namespace, disk)
    process, copy = simulate_live(namespace, seconds=12, rate=300, seed=81)
    finished(process, 120, "the simulator")
    expected = live_equals_replay(namespace, [first], copy)
    assert sum(g + b for g, b in expected.values()) > 100
    assert first.stop(signal.SIGTERM) == 0, first.log.read_text()[-2000:]
    written = changelog_records(namespace)

    again = on_disk(namespace, disk)  # the same disk
    read_again = recovered(again)
    metrics_equal_replay(namespace, again, copy)
    said = [line for line in again.log.read_text().splitlines() if "state recovered" in line]
    print(f"\nchangelogs {written}; the restart on its disk read {read_again}\n{said}")
    assert said and "whole" not in said[-1], said  # every partition resumed after its checkpoint
    assert sum(read_again.values()) <= 20, (read_again, written)  # what the stop did not checkpoint, at most
    assert again.stop(signal.SIGTERM) == 0, again.log.read_text()[-2000:]

    written = changelog_records(namespace)
    fresh = namespace.worker(TPMON_LOGLEVEL="info")  # a folder of its own: a new disk
    assert recovered(fresh) == written, written
    assert sum(written.values()) > 1000
    metrics_equal_replay(namespace, fresh, copy)


def test_a_worker_killed_mid_stream_and_restarted_on_its_disk_equals_replay(namespace):
    """SIGKILL while it judges: what it had written locally and not yet delivered dies with it; what its
    disk holds is what the changelog held at its checkpoint, and the restart reads the rest."""
    disk = namespace.root / "disk"
    first = on_disk(namespace, disk)
    process, copy = simulate_live(namespace, seconds=16, rate=300, seed=82)
    time.sleep(8)
    assert first.outcomes(), "the worker should be counting before it is killed"
    first.stop(signal.SIGKILL)
    second = on_disk(namespace, disk)
    finished(process, 120, "the simulator")
    said = [line for line in second.log.read_text().splitlines() if "state recovered" in line]
    print(f"\nthe restart on its disk read {recovered(second)}\n{said}")
    live_equals_replay(namespace, [second], copy)
