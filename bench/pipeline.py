"""Throughput on one broker and one pre-produced set of source topics, side by side.

1. ceiling: raw aiokafka (``getmany``), orjson and a dict update per event, in this process;
2. baseline: a plain Faust agent with the same per-event work (bench/faust_agent.py);
3. tpmon: real `tpmon worker` processes, from the first event counted until every event is judged
   (the sum over the workers' /metrics). Then, untimed, the outcomes are checked: once every partition's
   watermark has passed the last event (the inputs idle), they must equal a replay of the same events
   decided up to that watermark (``Replay.finish(until)``).

Every consumer reads the same topics from the beginning in a group of its own, at the catalog's lateness:
the watermark follows the slowest input (docs/SEMANTICS.md), so a backlog read one topic ahead of another
is judged as a replay judges it.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from monitor.catalog import Catalog
from monitor.durations import parse_duration
from monitor.events import parse_timestamp
from monitor.replay import Replay
from monitor.simulate import Simulation
from streams.settings import Settings
from tpmon.broker import free_port
from tpmon.publish import Published, publish

ROOT = Path(__file__).resolve().parent.parent
TPMON = [sys.executable, "-m", "tpmon.cli"]
PARTITIONS = 4
EVENTS_PER_CUSTOMER = 7  # about, in a 36-hour simulation
SPAN = "36h"  # of the simulated events


@dataclass
class Stage:
    """The broker and the pre-produced topics every measurement reads."""

    bootstrap: str
    root: Path
    catalog: Catalog
    file: Path
    events: int
    topics: list[str]
    prefix: str = "bench"  # of every topic and consumer group of the run
    runs: int = 0

    @classmethod
    def prepare(cls, bootstrap: str, root: Path, catalog: Catalog, events: int, seed: int = 7) -> Stage:
        file = root / "events.jsonl"
        customers = max(1, events // EVENTS_PER_CUSTOMER)
        simulation = Simulation(customers=customers, duration=parse_duration(SPAN), seed=seed)
        with file.open("wb") as stream:
            for line in itertools.islice(simulation.lines(), events):
                stream.write(line + b"\n")
        lines = file.read_bytes().count(b"\n")
        prefix = f"bench-{uuid.uuid4().hex[:6]}"  # a broker given by --bootstrap may hold earlier runs' topics
        stage = cls(
            bootstrap,
            root,
            catalog,
            file,
            lines,
            [f"{prefix}-{source}" for source in catalog.contract.source_names],
            prefix,
        )
        with file.open("rb") as stream:
            publish_lines(bootstrap, (line.rstrip(b"\n") for line in stream), sources=stage.topics)
        return stage

    def expected(self, until: int) -> dict[str, tuple[int, int]]:
        """What a replay of the stage's events decides up to ``until``."""
        replay = Replay(self.catalog)
        with self.file.open("rb") as stream:
            replay.feed(stream)
        summary = replay.finish(until)
        return {t: (row["good"], row["bad"]) for t, row in summary["touchpoints"].items()}


def publish_lines(
    bootstrap: str, lines: Iterable[bytes], *, sources: list[str] | None = None, topic: str | None = None
) -> None:
    """Publish as `tpmon produce` does, keyed by customer: each line to the topic of its type's source
    (``sources``: one topic per declared source, in order), or every line to ``topic``."""

    async def stream() -> AsyncIterator[bytes]:
        for line in lines:
            yield line

    settings = Settings(bootstrap=bootstrap, partitions=PARTITIONS)
    if sources:
        settings = replace(settings, topics=",".join(sources))
    result = Published()
    asyncio.run(publish(stream(), settings, result, fixed_topic=topic))
    if result.skipped:
        raise SystemExit(f"{result.skipped} simulated lines could not be routed")


# -- 1. the ceiling ---------------------------------------------------------------------------------------
async def _ceiling(stage: Stage) -> float:
    consumer = AIOKafkaConsumer(
        *stage.topics, bootstrap_servers=stage.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await consumer.start()
    counts: dict[str, int] = {}
    seen = 0
    first = time.perf_counter()  # the first fetch included: one fetch can bring tens of thousands of events
    try:
        while seen < stage.events:
            batches = await consumer.getmany(timeout_ms=1000)
            for records in batches.values():
                for record in records:
                    event = orjson.loads(record.value)
                    customer = event["customer_id"]
                    counts[customer] = counts.get(customer, 0) + 1
                seen += len(records)
        return stage.events / (time.perf_counter() - first)
    finally:
        await consumer.stop()


def ceiling(stage: Stage) -> float:
    """Events per second, from the first fetch to the last event."""
    return asyncio.run(_ceiling(stage))


# -- 2. the baseline --------------------------------------------------------------------------------------
def faust_baseline(stage: Stage, timeout: float = 900) -> float:
    result = stage.root / "faust-agent.json"
    result.unlink(missing_ok=True)
    agent = [sys.executable, str(ROOT / "bench" / "faust_agent.py"), stage.bootstrap, ",".join(stage.topics)]
    process = subprocess.Popen(
        [*agent, str(stage.events), str(result)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=ROOT
    )
    try:
        _, stderr = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        raise SystemExit("the plain Faust agent did not finish") from None
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    if not result.exists():
        raise SystemExit(f"the plain Faust agent failed:\n{stderr.decode()[-3000:]}")
    measured = json.loads(result.read_text())
    return measured["events"] / measured["seconds"]


# -- 3. tpmon workers -------------------------------------------------------------------------------------
def get(port: int, path: str) -> bytes | None:
    """A worker's page, or None while it cannot answer."""
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=10) as response:
            return response.read()
    except OSError:
        return None


def scrape(port: int) -> dict[str, float]:
    """The worker's counters that matter here, summed over its partitions: events counted, and outcomes
    per touchpoint and kind."""
    page = get(port, "/metrics")
    if page is None:
        return {}
    text = page.decode()
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith(("tpmon_events_total{", "tpmon_events_duplicate_total{")):
            values["events"] = values.get("events", 0.0) + float(line.rsplit(" ", 1)[1])
        elif line.startswith("tpmon_touchpoint_outcomes_total{"):
            labels = dict(part.split("=", 1) for part in line[line.index("{") + 1 : line.index("}")].split(","))
            key = f"{labels['touchpoint'].strip(chr(34))}:{labels['outcome'].strip(chr(34))}"
            values[key] = values.get(key, 0.0) + float(line.rsplit(" ", 1)[1])
    return values


#: Settings every benchmark's workers take (a smoke run's: a short lateness and sweep, so that it does
#: not wait out the catalog's 30 s where a measure waits for the watermark); empty: the catalog's.
QUICK: dict[str, str] = {}


@dataclass
class Workers:
    """`tpmon worker` processes in one group, on the stage's topics, or (``own_sources``) on four empty
    source topics of their own; each worker creates its topics."""

    stage: Stage
    count: int
    own_sources: bool = False
    env: dict[str, str] = field(default_factory=dict)
    processes: list[subprocess.Popen] = field(default_factory=list)
    ports: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.stage.runs += 1
        name = f"{self.stage.prefix}-tpmon-{self.stage.runs}"
        if self.own_sources:
            self.sources = [f"{name}-{source}" for source in self.stage.catalog.contract.source_names]
        else:
            self.sources = list(self.stage.topics)
        self.env = {
            **{name: value for name, value in os.environ.items() if name != "TPMON_LATENESS"},  # the catalog's
            "TPMON_BOOTSTRAP": self.stage.bootstrap,
            "TPMON_APP_ID": name,
            "TPMON_TOPICS": ",".join(self.sources),
            "TPMON_PARTITIONS": str(PARTITIONS),
            "TPMON_EVENTS_TOPIC": f"{name}-events",
            "TPMON_JOURNEYS_TOPIC": f"{name}-journeys",
            "TPMON_DEAD_LETTER_TOPIC": f"{name}-rejects",
            "TPMON_RULES": str(ROOT / "rules"),
            "TPMON_MAX_FUTURE": "30000d",  # the stage's simulated events may lie ahead of the clock
            **QUICK,
        }

    def start(self) -> None:
        for _ in range(self.count):
            port = free_port()
            env = {**self.env, "TPMON_WEB_PORT": str(port), "TPMON_DATA_DIR": str(self.stage.root / f"w{port}")}
            with (self.stage.root / f"worker-{port}.log").open("wb") as log:
                self.processes.append(subprocess.Popen([*TPMON, "worker"], env=env, stdout=log, stderr=log, cwd=ROOT))
            self.ports.append(port)

    def totals(self) -> dict[str, float]:
        totals: dict[str, float] = {}
        for port in self.ports:
            for key, value in scrape(port).items():
                totals[key] = totals.get(key, 0.0) + value
        return totals

    def outcomes(self, totals: dict[str, float]) -> dict[str, tuple[int, int]]:
        ids = [t.id for t in self.stage.catalog.touchpoints]
        return {t: (int(totals.get(f"{t}:good", 0)), int(totals.get(f"{t}:bad", 0))) for t in ids}

    def watermarks(self) -> list[int | None]:
        marks: list[int | None] = []
        for port in self.ports:
            page = get(port, "/touchpoints")
            if page is None:
                return [None]
            marks.extend(parse_timestamp(at) if at else None for at in orjson.loads(page)["decided"].values())
        return marks

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

    def wait_assigned(self, partitions: int, timeout: float = 120) -> None:
        """Until the workers together own ``partitions`` partitions of the events topic."""

        def owned() -> bool:
            pages = [get(port, "/touchpoints") for port in self.ports]
            return None not in pages and sum(len(orjson.loads(page)["partitions"]) for page in pages) == partitions

        wait(owned, timeout, "the workers to own every partition", every=0.2)

    def pids(self) -> list[int]:
        return [process.pid for process in self.processes]


def wait(check, timeout: float, what: str, every: float = 0.1):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = check()
        if value:
            return value
        time.sleep(every)
    raise SystemExit(f"timed out after {timeout:.0f}s waiting for {what}")


def check_outcomes(stage: Stage, workers: Workers, timeout: float = 180) -> None:
    """Once the watermarks have passed the last event, the outcomes equal a replay's up to them (when
    replays at the smallest and the largest watermark agree: nothing falls due between)."""
    with stage.file.open("rb") as stream:
        newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) or 0 for line in stream)
    deadline = time.monotonic() + timeout
    last: tuple = ()
    while time.monotonic() < deadline:
        marks = workers.watermarks()
        if marks and None not in marks and min(marks) >= newest:  # type: ignore[type-var,operator]
            live = workers.outcomes(workers.totals())
            expected = stage.expected(min(marks))  # type: ignore[arg-type]
            if expected == stage.expected(max(marks)) and live == expected:  # type: ignore[arg-type]
                return
            last = (live, expected)  # (/metrics serves what is stored: a delivery after /touchpoints)
        time.sleep(1)
    raise SystemExit(f"outcomes differ from replay's, or the watermarks did not pass the last event: {last}")


def tpmon_workers(stage: Stage, count: int, timeout: float = 1800) -> dict[str, float]:
    """Events per second through `count` workers, first event counted to every outcome visible."""
    workers = Workers(stage, count)
    launched = time.monotonic()
    workers.start()
    try:
        wait(lambda: workers.totals().get("events", 0) >= 1, 300, "the first event counted")
        first = time.monotonic()
        # (a scrape a second: /metrics is built per request, and the plain agent is never asked for it;
        # Prometheus scrapes every 15 s. The end is seen up to a second late: the rate errs low.)
        wait(lambda: workers.totals().get("events", 0) >= stage.events, timeout, "every event counted", every=1.0)
        done = time.monotonic()
        check_outcomes(stage, workers)
        return {"events_per_s": stage.events / (done - first), "startup_s": first - launched}
    finally:
        workers.stop()
