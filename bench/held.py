"""A million customers held by one worker's partitions: memory, memory once they went quiet, and rate.

Two kinds of customers (``lines``): N customers with one bill each, quiet at once and held afterwards
for their ids (duplicates, 48 h) and their outcome (attribution, 30 days); and N customers with an
order each, which leaves an instance open for 48 hours (on the disk store such a customer leaves memory
too, "away", and is put back before its instance is due). The worker's own judging path takes them
(``streams.partitions``, through the judging core, in batches of 2,000 events, each followed by a report
of the input's progress), in a fresh interpreter for each variant, side by side in one run:

- memory: the store in memory, every customer held in memory (``customers_in_memory`` unbounded);
- disk: the RocksDB store (``streams.store``), the default 50,000 customers in memory besides those due
  soon, the rest unloaded to disk and put back at their next event or before their next due time;

Reported for each: the resident memory idle (everything built, nothing judged), with the N customers
held, and after they all went quiet (the input moved 40 days on an hour at a time, retention swept as
the worker sweeps until every customer is freed, the allocator's free pages given back;
``quiet_as_left_mib``: before the bench gives them back, as the worker's own sweeps left it), and the
events per second judged. No broker: the changelog's delivery is taken as done at once (the disk store
writes a record once its delivery has returned), so that the figures are the state's, not Kafka's.

    python -m bench.held [--customers 1000000]       (bench.run runs it with the others)
"""

from __future__ import annotations

import argparse
import heapq
import itertools
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from bench.memory import resident
from monitor.conventions import FILE_SOURCE
from monitor.events import format_timestamp

PARTITIONS = 4
BATCH = 2000
INPUT = "orders/0"
HOUR = 3_600 * 1_000_000
DAY = 24 * HOUR
START = 1_795_000_000 * 1_000_000  # µs: an instant in 2026
VARIANTS = ("memory", "disk")
SCENARIOS = ("bills", "orders")


class Delivered:
    """An outbox whose every message is stored at once (no broker): a delivery returns at each batch."""

    def __init__(self) -> None:
        self.added = 0

    def add(self, topic, key, value, partition=None, headers=None) -> None:  # type: ignore[no-untyped-def]
        self.added += 1


def lines(count: int, scenario: str) -> Iterator[tuple[int, bytes]]:
    """The scenario's events in time order, customers a tenth of a second apart (made as they are read:
    a million customers' lines held at once would weigh more than their state). ``bills``: each customer
    one bill (``bill-correct``, decided at once: the customer is quiet, held for its ids and for
    attribution); ``orders``: an order placed and confirmed a minute later (``order-confirmed`` good, and
    ``service-activated`` open for 48 hours: the customer has something due)."""

    def of(kind: str, delay: int, more: dict) -> Iterator[tuple[int, bytes]]:
        for number in range(count):
            at = START + number * 100_000 + delay
            event = {"event_id": f"{kind}-{number}", "type": kind, "customer_id": f"held-{number:07d}",
                     "occurred_at": format_timestamp(at), **more(number)}  # fmt: skip
            yield at, orjson.dumps(event)

    if scenario == "bills":
        return of("bill.issued", 0, lambda n: {"bill_id": f"b-{n}", "amount": 25.0, "expected_amount": 25.0})
    placed = of("order.placed", 0, lambda n: {"order_id": f"o-{n}", "amount": 25.0, "channel": "web"})
    confirmed = of("order.confirmed", 60_000_000, lambda n: {"order_id": f"o-{n}"})
    return heapq.merge(placed, confirmed, key=lambda pair: pair[0])


def run(variant: str, count: int, scenario: str) -> dict:
    """One variant in this interpreter: build, judge N customers, let them go quiet; the figures."""
    from monitor.catalog import load_catalog
    from monitor.watermark import Report
    from streams.app import give_back_memory
    from streams.partitions import MemoryStore, Partitions, key_partition
    from streams.store import DiskTableStore, open_tables
    from tpmon.runtime import batch_collection

    catalog = load_catalog(Path(__file__).resolve().parent.parent / "rules")
    work = lines(count, scenario)
    outbox, folder, disks = Delivered(), None, {}
    if variant == "disk":
        folder = tempfile.TemporaryDirectory(prefix="tpmon-held-")
        disks = open_tables(Path(folder.name), ("customers", "journeys"))
        stores = [DiskTableStore(disks[name], name, outbox, PARTITIONS) for name in ("customers", "journeys")]  # type: ignore[arg-type]
        live = Partitions(catalog, *stores, retention=2 * DAY)
    else:
        live = Partitions(catalog, MemoryStore(False), MemoryStore(False), retention=2 * DAY, in_memory=10**9)
    live.adopt(range(PARTITIONS))
    decode = catalog.decoder.decode

    def delivered() -> None:
        for disk in disks.values():
            disk.delivered(outbox.added)

    def report(progress: int) -> list:
        said = Report(0, {INPUT: (progress, False, 0, True, None)}, (INPUT,))
        return [(partition, None, said, None, -1) for partition in range(PARTITIONS)]

    def sweep() -> None:
        """Retention as the worker's sweep runs it: the partitions forget, the deliveries return, then
        what the sweep gives back (the timestamps remembered, the collector, glibc's trim)."""
        live.forget()
        delivered()
        give_back_memory()

    def settled() -> int:
        give_back_memory()  # (as a sweep does)
        return resident()

    idle = settled()
    started, cpu = time.perf_counter(), time.process_time()
    events, last = 0, START
    with batch_collection():
        while True:
            batch = []
            for at, line in itertools.islice(work, BATCH):
                event = decode(line, FILE_SOURCE)
                batch.append((key_partition(event.customer.encode(), PARTITIONS), None, event, INPUT, events))
                events, last = events + 1, at
            if not batch:
                break
            live.handle_batch(batch + report(last))
            delivered()
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    counts = {partition: len(part.engine.state.customers) for partition, part in live.owned.items()}
    held_customers = sum(len(part.engine.state.customers) + part.on_disk for part in live.owned.values())
    held = settled()
    # Gone quiet: 40 days on, past the ids' retention and the attribution window, an hour per report as a
    # worker's clock moves (one report of 40 days would put back at once every customer away with an
    # instance due: a worker's watermark never leaps so), swept once a day; then until all are freed.
    for hour in range(1, 40 * 24 + 1):
        live.handle_batch(report(last + hour * HOUR))
        delivered()
        if hour % 24 == 0:
            sweep()
    for _ in range(1000):
        sweep()
        if not any(len(part.engine.state.customers) or part.on_disk for part in live.owned.values()):
            break
    left = sum(len(part.engine.state.customers) + part.on_disk for part in live.owned.values())
    as_left = resident()  # what the worker's own sweeps gave back, before the bench's collector and trim
    quiet = settled()
    good = sum(pair[0] for pair in live.owned[0].engine.counts().values())
    for disk in disks.values():
        disk.close()
    return {
        "variant": variant,
        "scenario": scenario,
        "customers": count,
        "held": held_customers,
        "in_memory": sum(counts.values()),
        "events_per_s": round(events / seconds),
        "cpu_s": round(cpu, 1),
        "idle_mib": round(idle / 2**20, 1),
        "held_mib": round(held / 2**20, 1),
        "quiet_mib": round(quiet / 2**20, 1),
        "quiet_over_idle": round(quiet / idle, 2),
        "quiet_as_left_mib": round(as_left / 2**20, 1),
        "left_after_quiet": left,
        "partition_0_good": good,
    }


def measure(count: int, scenarios: tuple[str, ...] = SCENARIOS) -> list[dict]:
    """Every variant of every scenario in a fresh interpreter of its own, side by side."""
    found = []
    for scenario, variant in itertools.product(scenarios, VARIANTS):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "bench.held",
                "--variant",
                variant,
                "--customers",
                str(count),
                "--scenario",
                scenario,
            ],
            check=True,
            capture_output=True,
            text=True,
        )
        found.append(json.loads(done.stdout.strip().splitlines()[-1]))
    return found


def table(results: list[dict]) -> str:
    rows = [
        "| customers | store | held (in memory) | events/s | idle MiB | held MiB | quiet MiB (x idle) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        rows.append(
            f"| {r['scenario']} | {r['variant']} | {r['held']:,} ({r['in_memory']:,}) | {r['events_per_s']:,} | "
            f"{r['idle_mib']} | {r['held_mib']} | {r['quiet_mib']} ({r['quiet_over_idle']}x) |"
        )
    for scenario in dict.fromkeys(r["scenario"] for r in results):
        rate = {r["variant"]: r["events_per_s"] for r in results if r["scenario"] == scenario}
        if "memory" in rate and "disk" in rate:
            rows.append(f"\n{scenario}: disk / memory store rate {rate['disk'] / rate['memory']:.2f}")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=1_000_000)
    parser.add_argument("--scenario", choices=SCENARIOS, help="only this scenario")
    parser.add_argument("--variant", choices=VARIANTS, help="run one variant here and print its figures (JSON)")
    args = parser.parse_args()
    if args.variant:
        print(json.dumps(run(args.variant, args.customers, args.scenario or SCENARIOS[0])))
        return
    print(table(measure(args.customers, (args.scenario,) if args.scenario else SCENARIOS)))


if __name__ == "__main__":
    main()
