"""State that does not grow for ever: a worker's memory, scrape and restart with a million customers.

Each measure runs `tpmon worker` processes on four source topics of their own, at the catalog's
lateness, and sends N customers one ``customer.joined`` each (N distinct customers):

- quiet: the events lie 40 days back; then one more customer joins, now. Time has moved on past the
  duplicate-id retention (24 h) and the journeys' age (30 days), so the next retention sweep frees
  every customer but the last. Reported: the worker's resident memory then, against
  the same worker idle before the first event (target: within 10%), and the time of a scrape of
  /metrics (target: under 50 ms);
- stored, for each store side by side (``TPMON_STORE`` rocksdb and memory): the events lie an hour
  back, so each customer's record (its ids, for duplicates) and journey stay. Reported: the scrape time
  with them all stored; then the worker is stopped (SIGTERM) and started again on the same data dir,
  then stopped and started on a new one, both on the same group: the time from each launch until it
  owns its partitions and until an event sent at the launch is counted, and from its log how much of
  that was Faust's recovery (reading the changelogs: what it read) and tpmon's restore (building the
  engines from the stored records);
- backlog: days of simulated history on the four topics, read by a new worker; its resident memory,
  sampled every half second while it catches up, against its idle memory. Ingest pauses the inputs
  read too far ahead of the slowest (streams.handlers.AHEAD), so the judge holds only that much of
  them.

    python -m bench.state [--customers 1000000]   (the restart measure alone; bench.run runs them all)
"""

from __future__ import annotations

import argparse
import json
import logging
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import orjson

from bench.memory import resident
from bench.pipeline import PARTITIONS, ROOT, TPMON, Stage, Workers, get, publish_lines, scrape, wait
from monitor.catalog import load_catalog
from monitor.durations import parse_duration
from monitor.events import format_timestamp
from monitor.simulate import Simulation
from tpmon.broker import LocalKafka, free_port

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


STORES = ("rocksdb", "memory")  # TPMON_STORE, side by side


@dataclass
class OnDisk(Workers):
    """One worker on the data dir given (``Workers`` gives each start a folder of its own), logging at
    INFO: its log says how long Faust's recovery took and what it read, and how long tpmon took to build
    each partition's engine from the stored records."""

    data_dir: Path = Path()
    log: Path = Path()

    def start(self) -> None:
        port = free_port()
        self.log = self.stage.root / f"worker-{port}.log"
        env = {**self.env, "TPMON_WEB_PORT": str(port), "TPMON_DATA_DIR": str(self.data_dir), "TPMON_LOGLEVEL": "info"}
        with self.log.open("wb") as log:
            self.processes.append(subprocess.Popen([*TPMON, "worker"], env=env, stdout=log, stderr=log, cwd=ROOT))
        self.ports.append(port)


def restart(stage: Stage, count: int) -> dict:
    """Restart to the first judged event with ``count`` customers stored, for each store side by side:
    a worker judges ``count`` customers joining (an hour back, so that each customer's record and
    journey stay), is stopped (SIGTERM) and started again on the same data dir, then stopped and started
    on a new one. The figures at the top are the default store's (rocksdb) on the same disk."""
    stores = {store: restarts_of(stage, count, store) for store in STORES}
    same = stores["rocksdb"]["same_disk"]
    return {
        "customers": count,
        "stored": stores["rocksdb"]["stored"],
        "scrape_with_stored_ms": stores["rocksdb"]["scrape_with_stored_ms"],
        "restart_to_owning_s": same["to_owning_s"],
        "restart_to_first_event_s": same["to_first_event_s"],
        "stores": stores,
    }


def restarts_of(stage: Stage, count: int, store: str) -> dict:
    disk = stage.root / f"{store}-{stage.runs}"
    workers = OnDisk(stage, 1, own_sources=True, data_dir=disk)
    workers.env["TPMON_STORE"] = store
    try:
        _, port, _ = idle_worker(workers)
        at = time.time_ns() // 1000 - parse_duration("1h")
        began = time.monotonic()
        publish_lines(stage.bootstrap, joined(count, at, "kept"), topic=workers.sources[0])
        wait(lambda: scrape(port).get("events", 0) >= count, 1800, "every event counted", every=1.0)
        judged = time.monotonic() - began
        wait(lambda: stored(port) >= count, 300, "every customer stored", every=1.0)
        time.sleep(3)  # the last batch's records delivered
        held = stored(port)
        with_stored = scrape_ms(port)
        same = relaunched(stage, workers, disk, count, "probe-same")
        on_disk = sum(path.stat().st_size for path in disk.rglob("*") if path.is_file())
        new = relaunched(stage, workers, stage.root / f"{store}-{stage.runs}-new", count + 1, "probe-new")
        return {
            "store": store,
            "stored": held,
            "published_to_judged_s": round(judged, 1),
            "scrape_with_stored_ms": with_stored,
            "data_dir_mb": round(on_disk / 2**20, 1),  # (the memory store's holds nothing of the tables)
            "same_disk": same,
            "new_disk": new,
        }
    finally:
        workers.stop()


def relaunched(stage: Stage, workers: OnDisk, data_dir: Path, counted: int, probe: str) -> dict:
    """Stop the worker (SIGTERM), start one on ``data_dir`` on the same group and tables, and send it a
    customer joining now. Reported: from its launch to owning its partitions and to the probe counted;
    from its log, Faust's recovery (its time, the changelog records it read, when it began after the
    launch), and from its end to owning every partition: tpmon's building of the engines from the
    stored records."""
    workers.stop()
    again = OnDisk(workers.stage, 1, own_sources=True, data_dir=data_dir)
    again.env, again.sources = {**workers.env}, workers.sources
    wall, launched = time.time(), time.monotonic()
    again.start()
    workers.processes, workers.ports = again.processes, again.ports  # stopped at the end whatever happens
    publish_lines(stage.bootstrap, joined(1, time.time_ns() // 1000, probe), topic=workers.sources[0])
    port, owning = again.ports[0], [0.0]

    def judged() -> bool:
        if not owning[0]:
            page = get(port, "/touchpoints")
            if page is not None and len(orjson.loads(page)["partitions"]) == PARTITIONS:
                owning[0] = time.monotonic()
        return scrape(port).get("events", 0) >= counted + 1

    wait(judged, 1800, "the first event after the restart", every=0.1)
    first = time.monotonic()
    said = again.log.read_text(errors="replace")
    recovery = RECOVERED.findall(said)
    recovered = _logged_at(said, "state recovered in") - wall + launched  # (on the monotonic clock)
    owned = owning[0] or first
    return {
        "to_owning_s": round(owned - launched, 1),
        "to_first_event_s": round(first - launched, 1),
        "to_recovery_start_s": round(recovered - float(recovery[-1][0]) - launched, 1) if recovery else None,
        "faust_recovery_s": float(recovery[-1][0]) if recovery else None,
        "changelog_records_read": int(recovery[-1][1].replace(",", "")) if recovery else None,
        # From the recovery's end to every partition's engine built (the tick builds one at a time, the
        # judge any it is sent something for first): tpmon's restore, and the ticks between.
        "tpmon_restore_s": round(owned - recovered, 1) if recovery else None,
    }


RECOVERED = re.compile(r"state recovered in ([0-9.]+) s: ([0-9,]+) changelog records read")


def _logged_at(log: str, text: str) -> float:
    """When the last line saying ``text`` was logged (Faust's timestamps: local time, milliseconds)."""
    for line in reversed(log.splitlines()):
        if text in line and line.startswith("["):
            stamp = line[1 : line.index("]")]
            return datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S,%f").timestamp()
    return 0.0


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


def restart_table(measured: dict) -> str:
    """The restart figures of each store side by side, as markdown."""
    rows = [
        f"Restart to the first judged event, {measured['customers']:,} customers stored (seconds; "
        "recovery: Faust reading the changelogs; restore: tpmon building the engines from the stored records)",
        "",
        "| store | disk | to owning | to first event | before recovery | recovery | records read | restore |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for store, figures in measured["stores"].items():
        for disk in ("same_disk", "new_disk"):
            f = figures[disk]
            rows.append(
                f"| {store} | {disk.replace('_', ' ')} | {f['to_owning_s']} | **{f['to_first_event_s']}** | "
                f"{f['to_recovery_start_s']} | {f['faust_recovery_s']} | {f['changelog_records_read']:,} | "
                f"{f['tpmon_restore_s']} |"
            )
    rows.append("")
    rows.append(
        "judged (published to counted): "
        + ", ".join(f"{store} {figures['published_to_judged_s']} s" for store, figures in measured["stores"].items())
        + "; data dir: "
        + ", ".join(f"{store} {figures['data_dir_mb']} MB" for store, figures in measured["stores"].items())
    )
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description="Restart with customers stored, each store, same and new disk.")
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--bootstrap", help="use this Kafka instead of starting one")
    parser.add_argument("--out", type=Path, help="also write the figures as JSON")
    args = parser.parse_args()
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    root = Path(tempfile.mkdtemp(prefix="tpmon-state-"))
    broker = None if args.bootstrap else LocalKafka(root / "kafka", free_port())
    try:
        bootstrap = args.bootstrap or broker.start()  # type: ignore[union-attr]
        stage = Stage(bootstrap, root, load_catalog(ROOT / "rules"), root / "none.jsonl", 0, [])
        measured = restart(stage, args.customers)
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    if args.out:
        args.out.write_text(json.dumps(measured, indent=2) + "\n")
    print(restart_table(measured))


if __name__ == "__main__":
    main()
