"""The "bring your own events" example (examples/utility): four sources in three shapes, live on the
real broker, equal a replay of the same files."""

from __future__ import annotations

import orjson
import pytest

from .conftest import ROOT
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


def test_the_utility_example_live_on_its_four_sources_equals_replay(namespace):
    topics = {source: f"{namespace.name}-{source}" for source in SOURCES}
    env = {
        "TPMON_RULES": str(EXAMPLE),
        "TPMON_TOPICS": ",".join(f"{source}={topic}" for source, topic in topics.items()),
    }
    worker = namespace.worker(**env)
    for source in SOURCES:
        namespace.run("produce", str(EXAMPLE / "samples" / f"{source}.jsonl"), "--source", source, **env)
    inputs = [f"{source}={EXAMPLE / 'samples' / f'{source}.jsonl'}" for source in SOURCES]
    expected = live_equals_replay(
        namespace, [worker], None, inputs=inputs, topics=list(topics.values()), newest=newest_in(EXAMPLE), **env
    )
    assert all(good + bad > 0 for good, bad in expected.values()), expected
    # A journey holds the messages as the systems wrote them, found by the customer their shape names.
    visit = orjson.loads((EXAMPLE / "samples" / "field-visits.jsonl").read_bytes().splitlines()[0])
    journey = worker.get(f"/journeys/{visit['account']['id']}")
    assert journey is not None and visit["uuid"].encode() in journey
