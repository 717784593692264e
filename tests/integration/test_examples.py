"""The "bring your own events" example (examples/utility): four sources in three shapes, live on the
real broker, equal a replay of the same files; half the helpdesk's CloudEvents sent in Kafka's binary
mode (attributes in ce_ headers, the value is data)."""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from monitor.catalog import load_catalog
from monitor.journeys import Journeys, story
from monitor.replay import Replay
from tpmon.commands.replay import feed, open_inputs

from .conftest import ROOT, Namespace, Worker, wait_until
from .test_live_pipeline import live_equals_replay

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "utility"
SOURCES = ("field-visits", "helpdesk", "invoices", "surveys")


@dataclass
class Example:
    """An example catalog's samples, one file per source, on this test's topics."""

    folder: Path
    sources: tuple[str, ...]
    space: Namespace

    @property
    def topics(self) -> dict[str, str]:
        return {source: f"{self.space.name}-{source}" for source in self.sources}

    @property
    def env(self) -> dict[str, str]:
        renamed = ",".join(f"{source}={topic}" for source, topic in self.topics.items())
        return {"TPMON_RULES": str(self.folder), "TPMON_TOPICS": renamed}

    @property
    def files(self) -> dict[str, Path]:
        return {source: self.folder / "samples" / f"{source}.jsonl" for source in self.sources}

    def newest(self) -> int:
        """The latest occurred_at of the samples, read in each source's shape."""
        decoder = load_catalog(self.folder).decoder
        return max(
            decoder.decode(line, source).at  # type: ignore[union-attr]
            for source, file in self.files.items()
            for line in file.read_bytes().splitlines()
        )

    def live_equals_replay(self, worker: Worker) -> dict:
        inputs = [f"{source}={file}" for source, file in self.files.items()]
        topics = list(self.topics.values())
        return live_equals_replay(
            self.space, [worker], None, inputs=inputs, topics=topics, newest=self.newest(), **self.env
        )


def binary_mode(line: bytes) -> tuple[list[tuple[str, bytes]], bytes, bytes]:
    """A structured CloudEvent as Kafka binary mode: (headers, value, key by its customer)."""
    event = orjson.loads(line)
    data = event.pop("data")
    headers = [("content-type", event.pop("datacontenttype").encode())] if "datacontenttype" in event else []
    headers += [(f"ce_{name}", str(value).encode()) for name, value in event.items()]
    return headers, orjson.dumps(data), event["subject"].encode()


async def send_half_binary(bootstrap: str, topic: str, lines: list[bytes]) -> None:
    """Every other line in binary mode, the rest structured, in the file's order."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=True)
    await producer.start()
    try:
        for number, line in enumerate(lines):
            headers, value, key = binary_mode(line)
            if number % 2 == 0:
                headers, value = [], line
            await producer.send_and_wait(topic, value, key=key, headers=headers)
    finally:
        await producer.stop()


def test_the_utility_example_live_on_its_four_sources_equals_replay(namespace):
    example = Example(EXAMPLE, SOURCES, namespace)
    worker = namespace.worker(**example.env)
    files = example.files
    for source in SOURCES:
        if source != "helpdesk":
            namespace.run("produce", str(files[source]), "--source", source, **example.env)
    helpdesk = files["helpdesk"].read_bytes().splitlines()
    asyncio.run(send_half_binary(namespace.bootstrap, example.topics["helpdesk"], helpdesk))
    expected = example.live_equals_replay(worker)
    assert all(good + bad > 0 for good, bad in expected.values()), expected
    # A journey holds the messages as the systems wrote them, found by the customer their shape names;
    # a binary-mode message is kept in structured form, with every attribute.
    # (A journey is written to its table as its batch ends, and the web view may answer slowly under
    # load: asked until it answers.)
    visit = orjson.loads(files["field-visits"].read_bytes().splitlines()[0])
    journey = wait_until(lambda: worker.get(f"/journeys/{visit['account']['id']}"), 30, "the visit's journey")
    assert visit["uuid"].encode() in journey  # type: ignore[operator]
    ticket = orjson.loads(helpdesk[1])  # sent in binary mode
    journey = orjson.loads(wait_until(lambda: worker.get(f"/journeys/{ticket['subject']}"), 30, "the journey"))  # type: ignore[arg-type]
    (kept,) = [e for e in journey["events"] if e["event_id"] == ticket["id"]]
    assert kept["raw"] == ticket, kept
    # Beside it, the contract's view: the declared type and fields, whatever the shape.
    assert kept["type"] == "ticket.created" and kept["customer_id"] == ticket["subject"]
    assert kept["source"] == "helpdesk" and kept["fields"] == ticket["data"]
    stories_are_told_in_the_catalogs_terms(worker, example)
    missed = orjson.loads(wait_until(lambda: worker.get("/stories/technician-on-time"), 10, "stories"))["stories"]  # type: ignore[arg-type]
    journey = orjson.loads(worker.get(missed[0]["journey"]) or b"{}")
    booked = [e for e in journey["events"] if e["type"] == "appointment.booked"]
    # The slot, epoch ms at the source, is RFC 3339 in the view, as the story template shows it.
    assert booked and booked[0]["fields"]["slot_start"].endswith("Z") and isinstance(booked[0]["raw"]["ts"], int)


def stories_are_told_in_the_catalogs_terms(
    worker: Worker, example: Example, raw: tuple[str, ...] = ("uuid", "kind", "subject", "specversion", "1795")
) -> None:
    """/stories answers for every touchpoint of a catalog in its own shapes, each story naming the
    declared types with what its story: templates say, never the source's own fields: the same line
    a replay of the same files tells of that customer."""
    catalog = load_catalog(example.folder)
    journeys = Journeys.of(catalog)
    run = Replay(catalog, journeys=journeys)
    with contextlib.ExitStack() as stack:
        feed(run, open_inputs(stack, list(example.files.items())), False)
    run.finish()
    told = 0
    for touchpoint in catalog.ids:
        with urllib.request.urlopen(f"http://127.0.0.1:{worker.port}/stories/{touchpoint}", timeout=10) as answer:
            assert answer.status == 200
            stories = orjson.loads(answer.read())["stories"]
        for entry in stories:
            line = entry["story"]
            assert line == story(journeys.get(entry["customer_id"]), {touchpoint}, catalog.contract)  # type: ignore[arg-type]
            assert not any(mark in line for mark in ("?", *raw)), line
            told += 1
    assert told >= 3


def test_the_insurer_live_equals_replay_and_tells_its_stories_in_its_own_words(namespace):
    """examples/insurer: nested epoch-ms webhooks, CloudEvents naming the policyholder in subject, flat
    events with Berlin offsets and German dates, NPS answers about claims; seven weeks as a backfill.
    Live equals replay, outcomes and impact (answers about a claim attributed to its touchpoints only),
    and the worker tells its stories with the catalog's templates."""
    example = Example(INSURER, INSURER_SOURCES, namespace)
    for source, file in example.files.items():
        namespace.run("produce", str(file), "--source", source, **example.env)
    worker = namespace.worker(**example.env)
    expected = example.live_equals_replay(worker)
    assert expected["renewal-notice-30d"] == (388, 29) and expected["call-answered-60s"] == (824, 139)
    stories_are_told_in_the_catalogs_terms(worker, example, ("occurredAtMillis", "policyHolder", "delivery"))
    told = orjson.loads(wait_until(lambda: worker.get("/stories/call-answered-60s"), 10, "stories"))["stories"]  # type: ignore[arg-type]
    assert told and all(" queue answered after " in entry["story"] for entry in told)
    # A renewal notice: the German date as the policy system wrote it, and as the contract reads it.
    # (The last one: journeys keep a month, by the catalog's retention, and these are seven weeks.)
    lines = example.files["policies"].read_bytes().splitlines()
    sent = next(e for e in map(orjson.loads, reversed(lines)) if e["type"] == "policy.renewal_notice_sent")
    journey = orjson.loads(wait_until(lambda: worker.get(f"/journeys/{sent['customer_id']}"), 30, "the journey"))  # type: ignore[arg-type]
    (notice,) = [e for e in journey["events"] if e["event_id"] == sent["event_id"]]
    day, month, year = sent["expiry_date"].split(".")
    assert notice["raw"] == sent and notice["fields"]["expiry_date"] == f"{year}-{month}-{day}"
    assert notice["occurred_at"] == sent["occurred_at"]  # with its Berlin offset, as written


INSURER = ROOT / "examples" / "insurer"
INSURER_SOURCES = ("claims", "contact-centre", "policies", "surveys")
SUPPORT = ROOT / "examples" / "support-hours"


def test_sla_clocks_live_equal_replay_across_the_change_to_summer_time(namespace):
    # Business hours in Berlin, tickets waiting on the customer (pauses), technicians due by their
    # slot (due:), six days across 29 March 2026.
    example = Example(SUPPORT, ("tickets", "visits"), namespace)
    # Both sources' six days are there when the worker starts, as a backfill: had visits come after
    # tickets had been read, they would be late history, and older than the ids a worker remembers.
    for source, file in example.files.items():
        namespace.run("produce", str(file), "--source", source, **example.env)
    worker = namespace.worker(**example.env)
    expected = example.live_equals_replay(worker)
    assert all(good + bad > 0 for good, bad in expected.values()), expected
    assert expected["first-response"][0] > 50  # the waits did not count against them
    view = orjson.loads(worker.get("/touchpoints") or b"{}")
    assert isinstance(view["at_risk"], list) and "at_risk" in view["touchpoints"]["first-response"]
    assert set(view["sources"]) == {"tickets", "visits"} and not view["touchpoints"]["first-response"]["silent"]
