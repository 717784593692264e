"""The "bring your own events" example (examples/utility): four sources in three shapes, live on the
real broker, equal a replay of the same files; half the helpdesk's CloudEvents sent in Kafka's binary
mode (attributes in ce_ headers, the value is data)."""

from __future__ import annotations

import asyncio

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from monitor.events import parse_timestamp

from .conftest import ROOT, wait_until
from .test_live_pipeline import live_equals_replay

pytestmark = pytest.mark.integration

EXAMPLE = ROOT / "examples" / "utility"
SOURCES = ("field-visits", "helpdesk", "invoices", "surveys")


def newest_in(catalog_dir) -> int:  # type: ignore[no-untyped-def]
    from monitor.catalog import load_catalog

    catalog = load_catalog(catalog_dir)
    newest = 0
    for source in SOURCES:
        for line in (EXAMPLE / "samples" / f"{source}.jsonl").read_bytes().splitlines():
            event = catalog.decoder.decode(line, source)
            newest = max(newest, event.at)  # type: ignore[union-attr]
    return newest


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
    topics = {source: f"{namespace.name}-{source}" for source in SOURCES}
    env = {
        "TPMON_RULES": str(EXAMPLE),
        "TPMON_TOPICS": ",".join(f"{source}={topic}" for source, topic in topics.items()),
    }
    worker = namespace.worker(**env)
    files = {source: EXAMPLE / "samples" / f"{source}.jsonl" for source in SOURCES}
    for source in SOURCES:
        if source != "helpdesk":
            namespace.run("produce", str(files[source]), "--source", source, **env)
    helpdesk = files["helpdesk"].read_bytes().splitlines()
    asyncio.run(send_half_binary(namespace.bootstrap, topics["helpdesk"], helpdesk))
    inputs = [f"{source}={file}" for source, file in files.items()]
    expected = live_equals_replay(
        namespace, [worker], None, inputs=inputs, topics=list(topics.values()), newest=newest_in(EXAMPLE), **env
    )
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
    (kept,) = [e for e in journey["events"] if e.get("id") == ticket["id"]]
    assert kept == ticket, kept


SUPPORT = ROOT / "examples" / "support-hours"


def test_sla_clocks_live_equal_replay_across_the_change_to_summer_time(namespace):
    # Business hours in Berlin, tickets waiting on the customer (pauses), technicians due by their
    # slot (due:), six days across 29 March 2026.
    sources = ("tickets", "visits")
    topics = {source: f"{namespace.name}-{source}" for source in sources}
    env = {
        "TPMON_RULES": str(SUPPORT),
        "TPMON_TOPICS": ",".join(f"{source}={topic}" for source, topic in topics.items()),
    }
    worker = namespace.worker(**env)
    files = {source: SUPPORT / "samples" / f"{source}.jsonl" for source in sources}
    for source, file in files.items():
        namespace.run("produce", str(file), "--source", source, **env)
    newest = max(
        parse_timestamp(orjson.loads(line)["occurred_at"])
        for file in files.values()
        for line in file.read_bytes().splitlines()
    )
    expected = live_equals_replay(
        namespace,
        [worker],
        None,
        inputs=[f"{source}={file}" for source, file in files.items()],
        topics=list(topics.values()),
        newest=newest,
        **env,
    )
    assert all(good + bad > 0 for good, bad in expected.values()), expected
    assert expected["first-response"][0] > 50  # the waits did not count against them
    view = orjson.loads(worker.get("/touchpoints") or b"{}")
    assert isinstance(view["at_risk"], list) and "at_risk" in view["touchpoints"]["first-response"]
    assert set(view["sources"]) == {"tickets", "visits"} and not view["touchpoints"]["first-response"]["silent"]
