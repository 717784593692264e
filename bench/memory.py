"""Memory per pending instance, in the core and in a worker.

Each of N customers confirms one order (``order.confirmed``, event time now): that opens one
``service-activated`` instance (due in 48 hours) per customer, so N instances stay pending. One instance
per customer is the expensive case: the customer's own state (its record, its journey) is not shared.

- core: an engine as the worker builds it (tracking customers), in a fresh interpreter; the growth of
  its resident memory over N events, divided by the pending instances;
- worker: a `tpmon worker` on fresh topics; the growth of its resident memory from idle to every event
  counted, divided by the pending instances it reports (engine state, table records, journeys, buffers).

    python -m bench.memory core N      # prints the core figure as JSON (run by bench.run)
"""

from __future__ import annotations

import gc
import itertools
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

from bench.pipeline import PARTITIONS, ROOT, Stage, Workers, get, publish_lines, scrape, wait
from monitor.events import format_timestamp
from tpmon.publish import watermark_sentinels

TOUCHPOINT = "service-activated"


def confirmations(count: int, at: int) -> Iterator[bytes]:
    """``count`` confirmations at ``at``, then one event per partition a minute later: the watermark
    (a minute minus the lateness later) releases every confirmation, which opens its instance."""
    stamp = format_timestamp(at)
    for number in range(count):
        customer = f"cust-{number:07d}"
        yield orjson.dumps(
            {
                "event_id": f"evt-{number:07d}",
                "type": "order.confirmed",
                "customer_id": customer,
                "occurred_at": stamp,
                "order_id": f"ord-{number:07d}",
            }
        )
    yield from watermark_sentinels(PARTITIONS, "customer.joined", format_timestamp(at + 60 * 10**6))


def resident(pid: int | str = "self") -> int:
    """Resident set size in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmRSS")


def _core(count: int) -> dict:
    from monitor.catalog import load_catalog
    from monitor.engine import Engine
    from monitor.events import Event
    from tpmon.runtime import batch_collection

    catalog = load_catalog(ROOT / "rules")
    lines = list(confirmations(count, time.time_ns() // 1000))  # made before measuring
    engine = Engine(catalog, track=True)
    decode = catalog.decoder.decode
    gc.collect()
    before = resident()
    with batch_collection():
        for line in lines:
            event = decode(line, "orders")
            assert isinstance(event, Event)
            engine.step(event)
    engine.dirty.clear()
    del lines
    gc.collect()
    pending = engine.pending_counts()[TOUCHPOINT]
    return {"instances": pending, "bytes_per_instance": (resident() - before) / pending}


def core(count: int) -> dict:
    """The core figure, measured in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.memory", "core", str(count)], capture_output=True, check=True, cwd=ROOT
    )
    return json.loads(done.stdout)


def worker(stage: Stage, count: int) -> dict:
    workers = Workers(stage, 1, own_sources=True)
    workers.start()
    try:
        workers.wait_assigned(PARTITIONS)
        pid, port = workers.pids()[0], workers.ports[0]
        time.sleep(1)
        idle = resident(pid)
        # The confirmations alone: the watermark releases them once the inputs are idle (caught up, and
        # quiet for the lateness), which opens every instance.
        lines = itertools.islice(confirmations(count, time.time_ns() // 1000), count)
        publish_lines(stage.bootstrap, lines, topic=workers.sources[0])
        wait(lambda: scrape(port).get("events", 0) >= count, 1800, "every event counted", every=0.5)

        def opened() -> int:
            page = orjson.loads(get(port, "/touchpoints") or b"{}")
            return page.get("touchpoints", {}).get(TOUCHPOINT, {}).get("pending", 0) >= count and page

        wait(opened, 300, "every instance opened", every=0.5)
        time.sleep(2)  # the last batch's writes delivered
        pending = orjson.loads(get(port, "/touchpoints") or b"{}")["touchpoints"][TOUCHPOINT]["pending"]
        return {"instances": pending, "bytes_per_instance": (resident(pid) - idle) / pending}
    finally:
        workers.stop()


if __name__ == "__main__":
    if sys.argv[1:2] == ["core"]:
        print(json.dumps(_core(int(sys.argv[2]))))
