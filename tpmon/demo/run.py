"""The demo: a local Kafka, workers, the simulator's incident day and the wall; all stopped at the end."""

from __future__ import annotations

import asyncio
import logging
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

import orjson
from prometheus_client.parser import text_string_to_metric_families
from rich.console import Console
from rich.live import Live
from rich.table import Table

from monitor.catalog import Catalog
from monitor.conventions import METRIC_WARMING_UP, METRIC_WINDOW_CUSTOMERS_IMPACTED, METRIC_WINDOW_OUTCOMES
from monitor.durations import MICROS, parse_duration
from monitor.events import format_timestamp
from monitor.observe.prometheus import rule_files, scrape_job
from monitor.observe.text import yaml_text
from monitor.observe.windows import PROFILES
from monitor.simulate import Simulation
from monitor.simulate.scenarios import SCENARIOS

from ..broker import BrokerError, LocalKafka, free_port, port_free
from ..commands.simulate import EVENTS_PER_CUSTOMER
from .room import STYLE, Journey, Room, Snapshot, story

TPMON = [sys.executable, "-m", "tpmon.cli"]


class JourneyTail(threading.Thread):
    """Reads the journeys topic in the background and hands each record to ``on_record``."""

    def __init__(self, bootstrap: str, topic: str, on_record: Callable[[dict], None]) -> None:
        super().__init__(daemon=True)
        self.bootstrap, self.topic, self.on_record = bootstrap, topic, on_record
        self.stopping = threading.Event()

    def run(self) -> None:
        asyncio.run(self._tail())

    async def _tail(self) -> None:
        from aiokafka import AIOKafkaConsumer

        consumer = AIOKafkaConsumer(self.topic, bootstrap_servers=self.bootstrap, auto_offset_reset="latest")
        with suppress(Exception):
            await consumer.start()
            try:
                while not self.stopping.is_set():
                    batches = await consumer.getmany(timeout_ms=500)
                    for messages in batches.values():
                        for message in messages:
                            if message.value:
                                with suppress(ValueError, KeyError, TypeError):  # a record it cannot read
                                    self.on_record(orjson.loads(message.value))
            finally:
                await consumer.stop()


DEMO_PROFILE = PROFILES["demo"]  # every window divided by 120: the workers' and the rules'
HISTORY = parse_duration("15d")  # the healthy past sent before the workers start (Demo._history)


def scrape(port: int) -> Snapshot | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return None
    return snapshot_of(text)


def snapshot_of(text: str) -> Snapshot:
    """What the wall takes of a worker's /metrics."""
    snapshot = Snapshot(time.monotonic())
    window: dict[str, list[int]] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == METRIC_WINDOW_OUTCOMES:
                pair = window.setdefault(sample.labels["touchpoint"], [0, 0])
                pair[0 if sample.labels["outcome"] == "good" else 1] += int(sample.value)
            elif sample.name == METRIC_WARMING_UP:
                touchpoint = sample.labels["touchpoint"]
                snapshot.warming[touchpoint] = (
                    snapshot.warming.get(touchpoint, True) and sample.value == 1
                )  # every partition
            elif sample.name == "tpmon_customers_total":
                if sample.labels["direction"] == "joined":
                    snapshot.joined += int(sample.value)
                else:
                    snapshot.left += int(sample.value)
            elif sample.name == "tpmon_journeys_broken_total":
                snapshot.journeys_broken += int(sample.value)
            elif sample.name == "tpmon_events_total":
                snapshot.events += int(sample.value)
            elif sample.name == METRIC_WINDOW_CUSTOMERS_IMPACTED:  # distinct, in its window: partitions add up
                touchpoint = sample.labels["touchpoint"]
                snapshot.impacted[touchpoint] = snapshot.impacted.get(touchpoint, 0) + int(sample.value)
            elif sample.name == "tpmon_touchpoint_left_after_bad_total":
                touchpoint = sample.labels["touchpoint"]
                snapshot.left_after_bad[touchpoint] = snapshot.left_after_bad.get(touchpoint, 0) + int(sample.value)
            elif sample.name == "tpmon_source_last_event_timestamp_seconds":
                source = sample.labels["source"]
                snapshot.last_event[source] = max(snapshot.last_event.get(source, 0.0), sample.value)
    snapshot.window = {t: (g, b) for t, (g, b) in window.items()}
    return snapshot


def merge(snapshots: list[Snapshot]) -> Snapshot:
    total = Snapshot(time.monotonic())
    for snapshot in snapshots:
        for touchpoint, (good, bad) in snapshot.window.items():
            g, b = total.window.get(touchpoint, (0, 0))
            total.window[touchpoint] = (g + good, b + bad)
        for touchpoint, warming in snapshot.warming.items():  # warming up while every partition is
            total.warming[touchpoint] = total.warming.get(touchpoint, True) and warming
        total.joined += snapshot.joined
        total.left += snapshot.left
        total.journeys_broken += snapshot.journeys_broken
        total.events += snapshot.events
        for mine, theirs in ((total.impacted, snapshot.impacted), (total.left_after_bad, snapshot.left_after_bad)):
            for touchpoint, count in theirs.items():
                mine[touchpoint] = mine.get(touchpoint, 0) + count
        for source, at in snapshot.last_event.items():
            total.last_event[source] = max(total.last_event.get(source, 0.0), at)
    return total


SCENARIO = "incident-day"
#: Seconds the wall needs after the incidents, beyond their aftermath and its window, to show the
#: recovery: the lateness (2 s) and a worker that lags on a busy machine.
RECOVERY_SLACK = 12.0
#: The least seconds the live run gives the incidents (the incident day's first hour, scaled).
INCIDENTS_LIVE = 40.0


class Demo:
    def __init__(
        self, catalog: Catalog, rules: Path, duration: float, workers: int, rate: float, data: Path, console: Console
    ) -> None:
        self.catalog, self.rules, self.duration, self.workers_wanted = catalog, rules, duration, workers
        self.rate, self.data, self.console = rate, data, console
        self.processes: list[tuple[str, subprocess.Popen]] = []
        self.broker: LocalKafka | None = None
        self.worker_ports: list[int] = []
        # The workers run the demo profile: an hour's state window in 30 s, as the rules' windows.
        self.room = Room(catalog.scaled(DEMO_PROFILE.scale), window=DEMO_PROFILE.seconds("1h"))
        self.picture = ""  # the wall as SVG, at its most broken moment
        self._most_broken = -1
        self._picture_from = math.inf  # the wall is kept once its window has passed the history sent at once
        self.history, self.sent = data / "history.jsonl", data / "live.jsonl"  # what it sent (live: the review's)
        self.live = 0.0  # seconds of the live run

    @property
    def recovery(self) -> float:
        """Seconds the live run keeps after the last incident ends, for the wall to show the recovery:
        the incidents' aftermath (callers who queued in the overload hang up or are answered up to a
        minute after it), the wall's window and the slack. (With the last incident at 40% of the run,
        a 90 s demo's wall still showed the overload at its end.)"""
        return SCENARIOS[SCENARIO].aftermath / MICROS + self.room.window + RECOVERY_SLACK

    @property
    def shortest_live(self) -> float:
        """The live run's least length, however long setting up took."""
        return self.recovery + INCIDENTS_LIVE

    def say(self, text: str) -> None:
        self.console.print(text, soft_wrap=True, highlight=False)

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = (self.data / f"{name}.log").open("wb")
        process = subprocess.Popen(
            args, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
        )
        self.processes.append((name, process))
        return process

    def run(self) -> bool:
        """Run the demo; return False when it was interrupted."""
        started = time.monotonic()
        if self.data.exists():
            shutil.rmtree(self.data)
        self.data.mkdir(parents=True)
        port = 19092 if port_free(19092) and port_free(19093) else free_port()
        self.broker = LocalKafka(self.data / "kafka", port)
        self.say("starting Kafka (the first start fetches its jars with Maven, once)...")
        bootstrap = self.broker.start()
        env = {
            **os.environ,
            # The demo's workers serve this machine only, without a web configuration: the demo and its
            # Prometheus read them plainly, whatever the environment says of a real worker's web port.
            "TPMON_WEB_HOST": "127.0.0.1",
            "TPMON_WEB_CONFIG": "",
            "TPMON_BOOTSTRAP": bootstrap,
            "TPMON_RULES": str(self.rules),
            "TPMON_LATENESS": "2s",
            "TPMON_SESSION_TIMEOUT": "6",
            "TPMON_APP_ID": "tpmon-demo",
            "TPMON_PROFILE": DEMO_PROFILE.name,
        }
        self._history(env)
        for index in range(self.workers_wanted):
            web = free_port()
            self.worker_ports.append(web)
            self._spawn(
                f"worker-{index}",
                [*TPMON, "worker"],
                {**env, "TPMON_WEB_PORT": str(web), "TPMON_DATA_DIR": str(self.data / f"worker-{index}")},
            )
        self.say(f"Kafka on {bootstrap}; starting {self.workers_wanted} worker(s)...")
        deadline = time.monotonic() + 90
        while not all(scrape(p) is not None for p in self.worker_ports):
            for name, process in self.processes:
                if process.poll() is not None:
                    raise BrokerError(f"{name} stopped during start-up; see {self.data / (name + '.log')}")
            if time.monotonic() > deadline:
                raise BrokerError("the workers did not start within 90 s")
            time.sleep(0.5)
        for web in self.worker_ports:
            self.say(
                f"worker metrics: http://127.0.0.1:{web}/metrics   touchpoints: http://127.0.0.1:{web}/touchpoints   journeys: http://127.0.0.1:{web}/journeys/<customer_id>"
            )
        self._prometheus()

        remaining = max(self.shortest_live, self.duration - (time.monotonic() - started))
        self.live = remaining
        scale = SCENARIOS[SCENARIO].end / MICROS / (remaining - self.recovery)  # its incidents end in time
        self._spawn(
            "simulator",
            [
                *TPMON,
                "simulate",
                "--bootstrap",
                bootstrap,
                "--rate",
                str(self.rate),
                "--duration",
                f"{int(remaining)}s",
                "--scenario",
                SCENARIO,
                "--time-scale",
                f"{scale:.2f}",
                "--out",
                str(self.sent),
            ],
            env,
        )
        self._picture_from = time.monotonic() + self.room.window + 5
        self.say(
            f"simulating an incident day in {remaining:.0f} s: a billing outage, then an overloaded contact center, then recovery"
        )

        def on_record(record: dict) -> None:
            broken = {t for t, s in self.room.states().items() if s == "broken"}
            line = story(Journey.from_record(record, self.catalog.decoder), broken, self.catalog.contract)
            if line:
                self.room.stories.append(line)

        logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # the topic appears with the workers' first records
        tail = JourneyTail(bootstrap, "tpmon-journeys", on_record)
        tail.start()
        try:
            return self._watch(started, time.monotonic() + remaining)
        finally:
            tail.stopping.set()

    def _history(self, env: dict[str, str]) -> None:
        """A healthy past in the topics before the workers start: a fortnight, a month ago to a fortnight
        ago, of customers who came in its first week, twice as many as the live run will have. Touchpoints decided days after they open (a ticket that stays resolved for two weeks)
        then have outcomes from the start; the workers read it as a backfill, in event time (their
        customers, h-000001..., are not the live run's)."""
        customers = max(1, round(2 * self.rate * self.duration / EVENTS_PER_CUSTOMER))  # (rare touchpoints: enough)
        begin = format_timestamp(time.time_ns() // 1000 - 2 * HISTORY)
        path = self.history
        with path.open("wb") as stream:
            # (Arriving over its first half, so that what they do is over before it ends: a dispute
            # resolved after the end would be a miss that never was.)
            past = Simulation(customers, HISTORY, 2, "healthy", begin, prefix="h", arrive_within=HISTORY // 2)
            for line in past.lines():
                stream.write(line + b"\n")
        self.say(f"sending a healthy fortnight of a month ago first ({customers:,} customers)...")
        producer = self._spawn("history", [*TPMON, "produce", str(path)], env)
        if producer.wait() != 0:
            raise BrokerError(f"the history could not be sent; see {self.data / 'history.log'}")
        self.processes.remove(("history", producer))  # done: nothing to stop, nor to watch

    def _prometheus(self) -> None:
        prometheus = shutil.which("prometheus")
        if prometheus is None:
            self.say("(Prometheus is not installed: the demo runs without it)")
            return
        folder = self.data / "prometheus"
        folder.mkdir()
        for name, content in rule_files(self.catalog, DEMO_PROFILE).items():
            (folder / name).write_text(yaml_text(content, "demo"))
        port = free_port()
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},  # (5m is 2.5 s here)
            "rule_files": [str(folder / "recording.yml"), str(folder / "touchpoints.yml")],
            "scrape_configs": [scrape_job([f"127.0.0.1:{p}" for p in self.worker_ports])],
        }
        (folder / "prometheus.yml").write_text(yaml_text(config, "demo"))
        self._spawn(
            "prometheus",
            [
                prometheus,
                f"--config.file={folder / 'prometheus.yml'}",
                f"--storage.tsdb.path={folder / 'tsdb'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            dict(os.environ),
        )
        self.say(f"Prometheus (rules with windows divided by {DEMO_PROFILE.scale}): http://127.0.0.1:{port}/alerts")

    def _watch(self, started: float, until: float) -> bool:
        live = self.console.is_terminal
        last_line = 0.0
        told: set[str] = set()
        view = Live(console=self.console, refresh_per_second=2, screen=False) if live else None
        try:
            if view is not None:
                view.start()
            while time.monotonic() < until:
                snapshots = [s for s in (scrape(p) for p in self.worker_ports) if s is not None]
                if snapshots:
                    self.room.add(merge(snapshots))
                elapsed = time.monotonic() - started
                self._keep_picture()
                if view is not None:
                    view.update(
                        self.room.render(f"Customer Room  -  {elapsed:.0f}s of {self.duration:.0f}s  (Ctrl-C stops)")
                    )
                elif elapsed - last_line >= 5:
                    self.say(self.room.line(elapsed))
                    for line in [line for line in self.room.stories if line not in told][-2:]:
                        self.say(f"    story: {line}")
                    told.update(self.room.stories)
                    last_line = elapsed
                time.sleep(1)
            return True
        except KeyboardInterrupt:
            return False
        finally:
            if view is not None:
                view.stop()

    def _keep_picture(self) -> None:
        broken = sum(1 for state in self.room.states().values() if state == "broken")
        if broken > self._most_broken and time.monotonic() >= self._picture_from:
            self._most_broken = broken
            recorder = Console(record=True, width=150, file=open(os.devnull, "w"))  # noqa: SIM115
            recorder.print(self.room.render("Customer Room"))
            self.picture = recorder.export_svg(title="tpmon demo: the Customer Room")
            recorder.file.close()

    def stop(self) -> None:
        """Stop everything the demo started, newest first, and the broker last. Interrupted again
        (a second Ctrl-C, or a SIGTERM from a parent that is going away), it kills what is left at once
        instead of leaving it running."""
        try:
            self._stop(grace=20.0)
        except KeyboardInterrupt:
            self._stop(grace=0.0)

    def _stop(self, grace: float) -> None:
        first = signal.SIGTERM if grace else signal.SIGKILL
        for _, process in reversed(self.processes):
            if process.poll() is None:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, first)
        for _, process in reversed(self.processes):
            try:
                process.wait(grace or None)
            except subprocess.TimeoutExpired:
                with suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        if self.broker is not None:
            self.broker.stop(timeout=30.0 if grace else 0.0)

    def summary(self) -> Table:
        table = Table(title="What the demo saw", title_justify="left")
        for heading in ("touchpoint", "owner", "worst state", "times broken", "state at the end"):
            table.add_column(heading)
        final = self.room.states()
        for touchpoint in self.catalog.touchpoints:
            worst = self.room.worst.get(touchpoint.id, "unknown")
            table.add_row(
                touchpoint.id,
                touchpoint.owner,
                f"[{STYLE[worst]}]{worst}[/]",
                str(self.room.broken_spells.get(touchpoint.id, 0)),
                f"[{STYLE[final[touchpoint.id]]}]{final[touchpoint.id]}[/]",
            )
        return table
