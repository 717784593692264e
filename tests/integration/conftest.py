"""Real components for integration tests: one Kafka broker per session, workers as processes.

Each test gets its own topics and consumer group (a namespace), so tests share the broker safely.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson
import pytest
from prometheus_client.parser import text_string_to_metric_families

from monitor.catalog import load_catalog
from tpmon.broker import LocalKafka, free_port

ROOT = Path(__file__).resolve().parents[2]
TPMON = [sys.executable, "-m", "tpmon.cli"]
SHIPPED_SOURCES = load_catalog(ROOT / "rules").contract.source_names


@pytest.fixture(scope="session")
def broker(tmp_path_factory) -> Iterator[LocalKafka]:
    """The session's one broker (a test that stops it starts it again on the same port and data)."""
    local = LocalKafka(tmp_path_factory.mktemp("kafka"), free_port())
    started = time.monotonic()
    address = local.start()
    print(f"\nKafka at {address} in {time.monotonic() - started:.1f}s")
    yield local
    local.stop()


@pytest.fixture
def kafka(broker) -> str:
    if broker.running_pid() is None:  # a test stopped it and failed before starting it again
        broker.start()
    return broker.bootstrap


def wait_until(check: Callable[[], object], timeout: float, what: str, every: float = 0.2) -> object:
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(every)


def finished(process: subprocess.Popen, timeout: float, what: str = "the command") -> str:
    """Wait for a started command to end with 0 and return what it wrote on stderr. Its pipes are read
    meanwhile, so a command that says much cannot block on a full pipe; one still running after
    ``timeout`` is interrupted (Ctrl-C, as a user would), and the failure shows what it said."""
    try:
        _, said = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.send_signal(signal.SIGINT)
        try:
            _, said = process.communicate(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
            _, said = process.communicate()
        raise AssertionError(
            f"{what} did not end within {timeout:.0f} s; interrupted, it said:\n{said.decode()[-3000:]}"
        ) from None
    assert process.returncode == 0, f"{what} exited with {process.returncode}:\n{said.decode()[-3000:]}"
    return said.decode()


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
    """A started command stopped with ``sig`` (killed if still running after ``timeout``), its pipes
    read meanwhile; its exit code."""
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.communicate()
    return process.returncode


@dataclass
class Worker:
    process: subprocess.Popen
    port: int
    log: Path

    def get(self, path: str) -> bytes | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}{path}", timeout=2) as response:
                return response.read()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return None

    def metrics(self) -> dict[tuple[str, tuple], float]:
        """The samples of /metrics ({} if it does not answer, after a few tries over a couple of seconds:
        a scrape that a busy machine made slow is not an empty one)."""
        for _ in range(4):
            text = self.get("/metrics")
            if text is not None or self.process.poll() is not None:
                break
            time.sleep(0.5)
        if text is None:
            return {}
        samples = {}
        for family in text_string_to_metric_families(text.decode()):
            for sample in family.samples:
                samples[sample.name, tuple(sorted(sample.labels.items()))] = sample.value
        return samples

    def outcomes(self) -> dict[str, tuple[int, int]]:
        """Per touchpoint, (good, bad) summed over the partitions this worker serves."""
        counts: dict[str, list[int]] = {}
        for (name, labels), value in self.metrics().items():
            if name == "tpmon_touchpoint_outcomes_total":
                label = dict(labels)
                counts.setdefault(label["touchpoint"], [0, 0])[0 if label["outcome"] == "good" else 1] += int(value)
        return {t: (g, b) for t, (g, b) in counts.items()}

    def ready(self) -> bool:
        """Judging, every partition assigned to it recovered (/ready), and at least one assigned."""
        body = self.get("/ready")
        return body is not None and bool(orjson.loads(body).get("partitions"))

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        return stop(self.process, sig, timeout)


@dataclass
class Namespace:
    """Topics and a group of one test, and the commands that use them."""

    bootstrap: str
    root: Path
    name: str = field(default_factory=lambda: f"t{uuid.uuid4().hex[:8]}")
    workers: list[Worker] = field(default_factory=list)
    started: list[subprocess.Popen] = field(default_factory=list)  # the other commands started (``start``)

    @property
    def sources(self) -> tuple[str, ...]:
        """The shipped catalog's sources, in the order it declares them."""
        return SHIPPED_SOURCES

    @property
    def topics(self) -> list[str]:
        """This test's topic of each source (TPMON_TOPICS, in the same order)."""
        return [f"{self.name}-{source}" for source in self.sources]

    @property
    def dead_letters(self) -> str:
        return f"{self.name}-rejects"

    def env(self, **extra: str) -> dict[str, str]:
        return {
            **os.environ,
            "TPMON_BOOTSTRAP": self.bootstrap,
            "TPMON_APP_ID": self.name,
            "TPMON_TOPICS": ",".join(self.topics),
            "TPMON_EVENTS_TOPIC": f"{self.name}-events",
            "TPMON_JOURNEYS_TOPIC": f"{self.name}-journeys",
            "TPMON_DEAD_LETTER_TOPIC": self.dead_letters,
            "TPMON_FORGET_TOPIC": f"{self.name}-forget",
            "TPMON_RULES": str(ROOT / "rules"),
            "TPMON_SESSION_TIMEOUT": "8",  # a killed worker's partitions move on quickly
            **extra,
        }

    def worker(
        self, wait: bool = True, command: list[str] | None = None, port: int | None = None, **extra: str
    ) -> Worker:
        """A worker process; ``command`` runs another entry point with tpmon's arguments (a test's own);
        ``port``: its web port (a restarted worker keeps its address), else a free one."""
        port = port or free_port()
        index = len(self.workers)
        log = self.root / f"worker-{index}.log"
        env = self.env(TPMON_WEB_PORT=str(port), TPMON_DATA_DIR=str(self.root / f"worker-{index}"), **extra)
        process = subprocess.Popen(
            [*(command or TPMON), "worker"], env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT, cwd=self.root
        )
        worker = Worker(process, port, log)
        self.workers.append(worker)
        if wait:
            try:
                wait_until(lambda: worker.ready() or process.poll() is not None, 90, "the worker to start")
            finally:
                if process.poll() is not None:
                    raise AssertionError(f"the worker exited:\n{log.read_text()[-3000:]}")
        return worker

    def run(self, *args: str, expect: int = 0, **extra: str) -> subprocess.CompletedProcess:
        """A tpmon command run to its end, which must exit ``expect``."""
        result = subprocess.run([*TPMON, *args], env=self.env(**extra), capture_output=True, cwd=self.root, timeout=300)
        assert result.returncode == expect, result.stderr.decode()[-3000:]
        return result

    def start(self, *args: str) -> subprocess.Popen:
        process = subprocess.Popen(
            [*TPMON, *args], env=self.env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=self.root
        )
        self.started.append(process)
        return process


def group_offsets(bootstrap: str, group: str, topics: list[str]) -> tuple[dict, dict]:
    """The end offset and the group's committed offset (0 if none) of every partition of ``topics``,
    asked of the broker itself."""
    import asyncio

    from aiokafka import AIOKafkaConsumer, TopicPartition
    from aiokafka.admin import AIOKafkaAdminClient

    async def measure() -> tuple[dict, dict]:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
        await admin.start()
        await consumer.start()
        try:
            # The consumer's own metadata knows only the topics it reads: ask the cluster (a topic not
            # created yet has nothing in it).
            described = await admin.describe_topics(topics)
            partitions = [TopicPartition(t["topic"], p["partition"]) for t in described for p in t["partitions"]]
            ends = await consumer.end_offsets(partitions) if partitions else {}
            committed = await admin.list_consumer_group_offsets(group)
            done = {tp: max(0, committed[tp].offset) if tp in committed else 0 for tp in ends}
            return ends, done
        finally:
            await consumer.stop()
            await admin.close()

    return asyncio.run(measure())


def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Messages in ``topics`` not yet committed by the consumer group."""
    ends, committed = group_offsets(bootstrap, group, topics)
    return sum(max(0, end - committed[tp]) for tp, end in ends.items())


def wait_committed(bootstrap: str, group: str, topics: list[str], timeout: float) -> None:
    """Until the group has committed every message that was in ``topics`` when called. (The events
    topic never stays still: the reports of idle inputs keep coming; what matters is what is there.)"""
    ends, _ = group_offsets(bootstrap, group, topics)

    behind: list[str] = []

    def done() -> bool:
        _, committed = group_offsets(bootstrap, group, topics)
        behind[:] = [
            f"{tp.topic}/{tp.partition} {committed.get(tp, 0)} of {end}"
            for tp, end in sorted(ends.items())
            if committed.get(tp, 0) < end
        ]
        return not behind

    try:
        wait_until(done, timeout, "everything sent to be committed", every=0.5)
    except AssertionError as error:  # say which partitions stayed behind: the workers' logs tell why
        raise AssertionError(f"{error}; behind: {', '.join(behind)}") from None


def delete_topics(bootstrap: str, prefix: str) -> None:
    """Every topic whose name starts with ``prefix`` deleted, so that the session's broker does not keep
    each test's data on disk to the end (a changelog of a backfill is hundreds of MB)."""
    import asyncio

    from aiokafka.admin import AIOKafkaAdminClient

    async def delete() -> None:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=10_000)
        await admin.start()
        try:
            mine = [topic for topic in await admin.list_topics() if topic.startswith(prefix)]
            if mine:
                await admin.delete_topics(mine, timeout_ms=10_000)
        finally:
            await admin.close()

    asyncio.run(delete())


@pytest.fixture
def namespace(broker, kafka, tmp_path) -> Iterator[Namespace]:
    space = Namespace(kafka, tmp_path)
    yield space
    for worker in space.workers:
        worker.stop()
    for process in space.started:  # (a producer left running, by a test that failed, would create them again)
        stop(process, timeout=10)
    if broker.running_pid() is not None:  # (a test that stopped it and failed leaves its topics)
        try:
            delete_topics(space.bootstrap, f"{space.name}-")
        except Exception as error:  # the topics stay to the session's end: the test's outcome stands
            warnings.warn(f"the topics of {space.name} could not be deleted: {error!r}", stacklevel=1)
