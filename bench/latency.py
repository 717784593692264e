"""Detection latency: from due + lateness to the bad outcome in /metrics, under a steady offered load.

A worker runs the default catalog plus a probe touchpoint (``bench-probe``: an order placed with an id
starting ``probe-`` is due for confirmation within 2 s, and is never confirmed). While simulated events
stream in at the offered rate with event time now, a probe is sent every PROBE_EVERY seconds; /metrics
is read every POLL_EVERY seconds, and each new bad probe outcome is matched to the oldest undecided
probe (they fall due in the order they were sent). The latency of a probe is the time its outcome was
first seen minus (its occurred_at + 2 s + the lateness).

Two latencies are reported per probe, because the watermark follows the slowest input (docs/SEMANTICS.md):

- *from due*: from its due time + the lateness. Before that no semantics may decide it; after it, the
  worker still waits until every source partition has delivered an event past that instant (or been
  idle for the lateness), so at a low rate this includes the gap to the next event of the sparsest
  partition (a calls partition gets a few events a second at 1,000 ev/s);
- *after the inputs*: from the instant the inputs allowed it, which this benchmark knows because it
  sent every event (it routes them to their partitions itself, as Kafka's default partitioner would):
  for each source partition, the first event sent with ``occurred_at`` at or past due + lateness, or
  the moment it had been quiet for the lateness, whichever came first; the latest of these over all
  partitions. This is the pipeline's own delay (fetch, report, judge, expose), the figure a faster
  worker makes smaller.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import shutil
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import orjson
from aiokafka import AIOKafkaProducer

from bench.pipeline import PARTITIONS, ROOT, Stage, Workers
from monitor.catalog import load_catalog
from monitor.events import format_timestamp
from monitor.simulate import Simulation
from streams.partitions import key_partition
from streams.settings import Settings
from tpmon.publish import route, topic_names

PROBE_WITHIN = 2.0  # seconds, as in the probe rule below
LATENESS = 2.0  # seconds; the simulated sources emit up to 2 s out of order, as the simulator does
PROBE_EVERY = 0.1
POLL_EVERY = 0.05
SETTLE = 15.0  # seconds a probe may take past its due time + lateness before it counts as undecided
PROBE_RULE = """version: 1
touchpoints:
  - id: bench-probe
    stage: buy
    owner: bench
    description: Benchmark probe; its orders are never confirmed, and its bad outcomes time the detection.
    kind: deadline
    start: {types: [order.placed], where: 'order_id.startsWith("probe-")'}
    end: order.confirmed
    key: order_id
    within: 2s
    objective: 0.99
    differentiating: 0.999
    min_events: 20
"""


@dataclass
class Detection:
    offered: int  # events per second
    generated: float  # events per second the load actually sent (this process may not reach the offer)
    achieved: float  # events per second the worker counted during the window
    probes: int
    undecided: int  # probes not decided SETTLE seconds after their due time + lateness
    p50: float  # from due + lateness
    p99: float
    worst: float
    after_inputs_p50: float  # from the instant the inputs allowed the decision
    after_inputs_p99: float
    after_inputs_worst: float


#: What was sent to each source partition: (topic, partition) -> the occurred_at (µs) of each event, in
#: the order sent (event time is the wall clock at sending, so they are sorted).
Sent = dict[tuple[str, int], list[int]]


def probe_catalog(root: Path) -> Path:
    folder = root / "probe-catalog"
    folder.mkdir(exist_ok=True)
    for rule in (ROOT / "rules").glob("*.yaml"):
        shutil.copy(rule, folder / rule.name)
    (folder / "probe.yaml").write_text(PROBE_RULE)
    return folder


def _now() -> int:
    return time.time_ns() // 1000


async def _send(producer: AIOKafkaProducer, topic: str, key: bytes, raw: bytes, at: int, sent: Sent) -> None:
    partition = key_partition(key, PARTITIONS)
    await producer.send(topic, raw, key=key, partition=partition)
    bisect.insort(sent.setdefault((topic, partition), []), at)  # the probes and the load interleave


async def _load(
    producer: AIOKafkaProducer, topics: dict[str, str], rate: int, until: float, sent_count: list[int], log: Sent
) -> None:
    """Simulated events at ``rate`` per second (or as fast as this process can), event time now, sent
    in slices of 10 ms; ``sent_count[0]`` counts what was handed to the producer."""
    lines = Simulation(customers=10**6, seed=3).lines()
    contract = load_catalog(ROOT / "rules").contract
    step, started, sent = 0.01, time.monotonic(), 0
    while time.monotonic() < until:
        due = int((time.monotonic() - started) * rate)
        at = _now()
        stamp = format_timestamp(at)
        for line in itertools.islice(lines, max(0, due - sent)):
            event = orjson.loads(line)
            event["occurred_at"] = stamp
            raw = orjson.dumps(event)
            topic, key, _ = route(raw, topics, None, contract)
            if topic is not None and key is not None:
                await _send(producer, topic, key, raw, at, log)
                sent_count[0] += 1
        sent = max(sent, due)
        await asyncio.sleep(step)


async def _probe(producer: AIOKafkaProducer, topic: str, until: float, sent_at: list[int], sent: Sent) -> None:
    number = 0
    while time.monotonic() < until:
        number += 1
        at = _now()
        event = {
            "event_id": f"probe-{number}",
            "type": "order.placed",
            "customer_id": f"probe-{number}",
            "occurred_at": format_timestamp(at),
            "order_id": f"probe-{number}",
            "amount": 1.0,
            "channel": "bench",
        }
        await _send(producer, topic, event["customer_id"].encode(), orjson.dumps(event), at, sent)
        sent_at.append(at)
        await asyncio.sleep(PROBE_EVERY)


async def _watch(port: int, sent_at: list[int], probing: asyncio.Task, until: float) -> tuple[list[float], float]:
    """When (wall clock, s) each probe's bad outcome was first visible, polling until every probe sent
    is decided; and the events/s the worker counted meanwhile."""
    url = f"http://127.0.0.1:{port}/metrics"
    seen_at: list[float] = []
    samples: list[tuple[float, float]] = []
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < until and not (probing.done() and len(seen_at) >= len(sent_at)):
            async with session.get(url) as response:
                text = await response.text()
            now = time.time()
            bad = counted = 0.0
            for line in text.splitlines():
                if line.startswith("tpmon_touchpoint_outcomes_total{") and 'touchpoint="bench-probe"' in line:
                    if 'outcome="bad"' in line:  # (summed over the worker's partitions)
                        bad += float(line.rsplit(" ", 1)[1])
                elif line.startswith("tpmon_events_total{"):
                    counted += float(line.rsplit(" ", 1)[1])
            samples.append((now, counted))
            seen_at.extend([now] * (int(bad) - len(seen_at)))
            await asyncio.sleep(POLL_EVERY)
    (t0, c0), (t1, c1) = samples[len(samples) // 4], samples[-1]
    return seen_at, (c1 - c0) / (t1 - t0) if t1 > t0 else 0.0


async def _measure(stage: Stage, port: int, topics: dict[str, str], rate: int, seconds: float) -> Detection:
    producer = AIOKafkaProducer(bootstrap_servers=stage.bootstrap, linger_ms=5)
    await producer.start()
    sent_at: list[int] = []
    sent: Sent = {}
    try:
        until = time.monotonic() + seconds
        settle = PROBE_WITHIN + LATENESS + SETTLE  # the last probe's due time, and room to fall behind
        sent_count = [0]
        load = asyncio.create_task(_load(producer, topics, rate, until + settle, sent_count, sent))
        probes = asyncio.create_task(_probe(producer, topics["orders"], until, sent_at, sent))
        started = time.monotonic()
        seen_at, achieved = await _watch(port, sent_at, probes, until + settle)
        generated = sent_count[0] / (time.monotonic() - started)
        for task in (load, probes):  # a load that failed would make every figure meaningless
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise RuntimeError("the benchmark's load failed") from task.exception()
        load.cancel()
    finally:
        await producer.stop()
    # A probe still undecided when the watch ends counts as infinitely late: the worker fell behind.
    decided = list(zip(sent_at, seen_at, strict=False))
    undecided = [math.inf] * (len(sent_at) - len(decided))
    due = sorted([seen - (at / 1e6 + PROBE_WITHIN + LATENESS) for at, seen in decided] + undecided)
    after = sorted(
        [seen - allowed(at + int((PROBE_WITHIN + LATENESS) * 1e6), sent) / 1e6 for at, seen in decided] + undecided
    )
    return Detection(
        offered=rate,
        generated=generated,
        achieved=achieved,
        probes=len(due),
        undecided=len(undecided),
        p50=statistics.median(due),
        p99=_p99(due),
        worst=due[-1],
        after_inputs_p50=statistics.median(after),
        after_inputs_p99=_p99(after),
        after_inputs_worst=after[-1],
    )


def _p99(ordered: list[float]) -> float:
    return ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]


def allowed(instant: int, sent: Sent, lateness: float = LATENESS) -> int:
    """When (wall clock, µs) the inputs let the watermark reach ``instant`` minus the lateness: when
    every source partition had delivered an event at or past ``instant``, or had been quiet for the
    lateness (idle). For each partition the earlier of the two, the latest over the partitions. Event
    time is the wall clock at sending, and a partition sent nothing before ``instant`` had been quiet
    since the worker began."""
    quiet = int(lateness * 1e6)
    latest = instant
    for stamps in sent.values():
        at = bisect.bisect_left(stamps, instant)
        arrives = stamps[at] if at < len(stamps) else math.inf
        idle = max(instant, stamps[at - 1] + quiet) if at else instant
        latest = max(latest, min(arrives, idle))  # type: ignore[call-overload]
    return latest


def detection(stage: Stage, rate: int, seconds: float = 20.0) -> Detection:
    """Run one worker on fresh topics under ``rate`` events/s and time the probes' detection."""
    workers = Workers(stage, 1, own_sources=True)
    workers.env.update(TPMON_RULES=str(probe_catalog(stage.root)), TPMON_LATENESS=f"{LATENESS:g}s")
    settings = Settings(bootstrap=stage.bootstrap, topics=",".join(workers.sources), partitions=PARTITIONS)
    workers.start()
    try:
        port = workers.ports[0]
        workers.wait_assigned(PARTITIONS)
        return asyncio.run(_measure(stage, port, topic_names(settings, stage.catalog.contract), rate, seconds))
    finally:
        workers.stop()
