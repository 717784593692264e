"""State that does not grow for ever: a worker's memory, scrape and restart with a million customers.

Each measure runs `tpmon worker` processes on four source topics of their own, at the catalog's
lateness, and sends N customers one ``customer.joined`` each (N distinct customers):

- quiet: the events lie 40 days back; then one more customer joins, now. Time has moved on past the
  duplicate-id retention (24 h) and the journeys' age (30 days), so the next retention sweep frees
  every customer but the last. Reported: the worker's resident memory then, against
  the same worker idle before the first event (target: within 10%), and the time of a scrape of
  /metrics (target: under 50 ms);
- stored: the events lie an hour back, so each customer's record (its ids, for duplicates) and journey
  stay. Reported: the scrape time with them all stored, then the worker is stopped and a new one
  started on the same group: the time from its launch until an event sent at the launch is counted,
  and until it owns its partitions;
- backlog: days of simulated history on the four topics, read by a new worker; its resident memory,
  sampled every half second while it catches up, against its idle memory. Ingest pauses the inputs
  read too far ahead of the slowest (streams.handlers.AHEAD), so the judge holds only that much of
  them.

    python -m bench.state [--customers 1000000] [--days 10]   (bench.run runs it with the others)
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Iterator

import orjson

from bench.memory import resident
from bench.pipeline import PARTITIONS, Stage, Workers, get, publish_lines, scrape, wait
from monitor.durations import parse_duration
from monitor.events import format_timestamp
from monitor.simulate import Simulation

SCRAPES = 20  # timed per figure; the median is reported


def worker(stage: Stage) -> Workers:
    """One worker on four empty source topics of its own, at the catalog's lateness (a smoke run's: pipeline.QUICK)."""
    return Workers(stage, 1, own_sources=True)


def joined(count: int, at: int, prefix: str) -> Iterator[bytes]:
    stamp = format_timestamp(at)
    for number in range(count):
        yield orjson.dumps(
            {
                "event_id": f"{prefix}-{number:07d}",
                "type": "customer.joined",
                "customer_id": f"{prefix}-{number:07d}",
                "occurred_at": stamp,
            }
        )


def scrape_ms(port: int) -> float:
    """The median time of a scrape of /metrics, in milliseconds."""
    times = []
    for _ in range(SCRAPES):
        started = time.perf_counter()
        assert get(port, "/metrics") is not None
        times.append((time.perf_counter() - started) * 1000)
    return round(statistics.median(times), 1)


def settled(pid: int, within: float = 0.01, timeout: float = 180.0) -> int:
    """The resident memory once it has stopped falling: the sweep that freed the customers sends their
    deletions (two million records for a million customers), then gives the memory back."""
    readings = [resident(pid)]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(3)
        readings.append(resident(pid))
        last = readings[-4:]
        if len(last) == 4 and max(last) - min(last) <= within * max(last):
            break
    return readings[-1]


def stored(port: int) -> int:
    """Customers whose state the worker holds (tpmon_state_customers, summed over partitions)."""
    page = get(port, "/metrics") or b""
    total = 0.0
    for line in page.decode().splitlines():
        if line.startswith("tpmon_state_customers{"):
            total += float(line.rsplit(" ", 1)[1])
    return int(total)


def idle_worker(workers: Workers) -> tuple[int, int, int]:
    """Start the workers, wait until they own every partition; the first one's pid, port, memory."""
    workers.start()
    workers.wait_assigned(PARTITIONS)
    pid, port = workers.pids()[0], workers.ports[0]
    scrape_ms(port)  # the first scrapes build what later ones reuse
    time.sleep(2)
    return pid, port, resident(pid)


def quiet(stage: Stage, count: int, allocator: str | None = None) -> dict:
    """``allocator``: PYTHONMALLOC for the worker (None: Python's own)."""
    workers = worker(stage)
    if allocator:
        workers.env["PYTHONMALLOC"] = allocator
    try:
        pid, port, idle = idle_worker(workers)
        idle_scrape = scrape_ms(port)
        at = time.time_ns() // 1000 - parse_duration("40d")
        publish_lines(stage.bootstrap, joined(count, at, "quiet"), topic=workers.sources[0])
        wait(lambda: scrape(port).get("events", 0) >= count, 1800, "every event counted", every=1.0)
        peak = resident(pid)
        # Time moves on: one customer joins now. A backfill's watermark moves with its events (an idle
        # input adds only its quiet time), so this is what takes the others past their retention.
        publish_lines(stage.bootstrap, joined(1, time.time_ns() // 1000, "now"), topic=workers.sources[0])
        wait(lambda: stored(port) == 1, 600, "every customer but the last freed", every=1.0)
        after = settled(pid)
        return {
            "customers": count,
            "allocator": allocator or "python",
            "idle_rss_mb": round(idle / 2**20, 1),
            "rss_after_freed_mb": round(after / 2**20, 1),
            "ratio_to_idle": round(after / idle, 3),
            "rss_all_counted_mb": round(peak / 2**20, 1),
            "scrape_idle_ms": idle_scrape,
            "scrape_after_freed_ms": scrape_ms(port),
        }
    finally:
        workers.stop()


def restarted(stage: Stage, workers: Workers) -> tuple[Workers, float]:
    """Stop the workers (SIGTERM) and start one on the same group, topics and tables; send it an event
    (a customer joining now). Returns the new worker and when it was launched (``time.monotonic``)."""
    workers.stop()
    again = worker(stage)
    again.env = {**workers.env}
    launched = time.monotonic()
    again.start()
    workers.processes = again.processes  # stopped at the end whatever happens
    publish_lines(stage.bootstrap, joined(1, time.time_ns() // 1000, "probe"), topic=workers.sources[0])
    return again, launched


def restart(stage: Stage, count: int) -> dict:
    workers = worker(stage)
    try:
        _, port, _ = idle_worker(workers)
        at = time.time_ns() // 1000 - parse_duration("1h")
        publish_lines(stage.bootstrap, joined(count, at, "kept"), topic=workers.sources[0])
        wait(lambda: scrape(port).get("events", 0) >= count, 1800, "every event counted", every=1.0)
        wait(lambda: stored(port) >= count, 300, "every customer stored", every=1.0)
        time.sleep(3)  # the last batch's records delivered
        with_stored = scrape_ms(port)
        again, launched = restarted(stage, workers)
        owning = [0.0]

        def counted() -> bool:
            if not owning[0]:
                page = get(again.ports[0], "/touchpoints")
                if page is not None and len(orjson.loads(page)["partitions"]) == PARTITIONS:
                    owning[0] = time.monotonic()
            return scrape(again.ports[0]).get("events", 0) >= count + 1  # (the counts continue: and the probe)

        wait(counted, 1800, "the first event after the restart", every=0.2)
        first = time.monotonic()
        return {
            "customers": count,
            "stored": stored(again.ports[0]),
            "scrape_with_stored_ms": with_stored,
            "restart_to_owning_s": round((owning[0] or first) - launched, 1),
            "restart_to_first_event_s": round(first - launched, 1),
        }
    finally:
        workers.stop()


def restart_held(stage: Stage, customers: int, compacted: bool = True) -> dict:
    """A restart with ``customers`` held, as a day of operations leaves them: a simulated day of them
    (each with its orders, bills, calls and tickets, written to the changelogs batch after batch), read
    by a worker, which goes on running until Kafka has compacted its changelogs (``compacted``: the
    changelogs' segments close after 5 minutes, streams.app.STATE_TOPIC_CONFIG), and is stopped
    (SIGTERM); then a new worker on the same group. Reported: the records of its customers changelog
    (before and after compaction), and the time from its launch until it is ready (/ready) and has
    judged an event sent at its launch."""
    workers = worker(stage)
    try:
        workers.start()
        workers.wait_assigned(PARTITIONS)
        port = workers.ports[0]
        day = parse_duration("1d")
        start = time.time_ns() // 1000 - day - parse_duration("1h")
        simulated = Simulation(customers=customers, duration=day, seed=17, prefix="held", start=format_timestamp(start))
        lines = list(simulated.lines())
        publish_lines(stage.bootstrap, lines, sources=workers.sources)
        wait(lambda: scrape(port).get("events", 0) >= len(lines) * 0.99, 3600, "the day judged", every=1.0)
        time.sleep(5)  # the last batch's records delivered
        held = stored(port)
        app_id = workers.env["TPMON_APP_ID"]
        written = changelog_records(stage.bootstrap, app_id)
        records = written
        if compacted:  # the worker's sweeps write each minute: the segment closes, the cleaner runs
            deadline = time.monotonic() + 900
            while records > 1.5 * held and time.monotonic() < deadline:
                time.sleep(30)
                records = changelog_records(stage.bootstrap, app_id)
        again, launched = restarted(stage, workers)
        marks: dict[str, float] = {}

        def judged() -> bool:
            if "ready" not in marks and get(again.ports[0], "/ready") is not None:
                marks["ready"] = time.monotonic()
            return scrape(again.ports[0]).get("events", 0) >= len(lines) * 0.99 + 1

        wait(judged, 1800, "the first event after the restart", every=0.1)
        first = time.monotonic()
        return {
            "customers": customers,
            "events": len(lines),
            "held": held,
            "changelog_records_written": written,
            "changelog_records": records,
            "restart_to_ready_s": round(marks.get("ready", first) - launched, 1),
            "restart_to_first_event_s": round(first - launched, 1),
        }
    finally:
        workers.stop()


def changelog_records(bootstrap: str, app_id: str) -> int:
    """The records in the customers table's changelog now: what a recovery reads (after compaction, the
    latest of each key and what is not compacted yet)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition

    async def count() -> int:
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
        await consumer.start()
        try:
            topic = f"{app_id}-customers-changelog"
            partitions = [TopicPartition(topic, partition) for partition in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            read = 0
            while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
                for batch in (await consumer.getmany(timeout_ms=1000, max_records=10_000)).values():
                    read += len(batch)
            return read
        finally:
            await consumer.stop()

    return asyncio.run(count())


def backlog(stage: Stage, days: int, customers: int) -> dict:
    workers = worker(stage)
    try:
        pid, port, idle = idle_worker(workers)
        start = format_timestamp(time.time_ns() // 1000 - parse_duration(f"{days + 1}d"))
        simulation = Simulation(customers=customers, duration=parse_duration(f"{days}d"), seed=11, start=start)
        lines = list(simulation.lines())
        publish_lines(stage.bootstrap, lines, sources=workers.sources)
        peak, began = idle, time.monotonic()

        def done() -> bool:
            nonlocal peak
            peak = max(peak, resident(pid))
            return scrape(port).get("events", 0) >= len(lines)

        wait(done, 1800, "the backlog read", every=0.5)
        return {
            "days": days,
            "events": len(lines),
            "seconds": round(time.monotonic() - began, 1),
            "idle_rss_mb": round(idle / 2**20, 1),
            "peak_rss_mb": round(peak / 2**20, 1),
            "end_rss_mb": round(resident(pid) / 2**20, 1),
        }
    finally:
        workers.stop()
