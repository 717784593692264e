"""The live adapter without Kafka: per-customer records restore a crashed partition exactly."""

from __future__ import annotations

import zlib

import orjson

from monitor.durations import parse_duration
from monitor.events import decode, parse_timestamp
from monitor.replay import Replay
from monitor.simulate import Simulation
from streams.partitions import MemoryStore, Partitions

PARTITIONS = 3


def partition_of(customer: str) -> int:
    return zlib.crc32(customer.encode()) % PARTITIONS


def new(catalog, customers, journeys):  # type: ignore[no-untyped-def]
    return Partitions(catalog, customers, journeys, retention=parse_duration("24h"))


def test_a_crash_at_any_point_loses_and_doubles_nothing(catalog):
    lines = list(Simulation(customers=600, duration=parse_duration("2h"), seed=8).lines())
    customers, journeys = MemoryStore(), MemoryStore()
    live = new(catalog, customers, journeys)
    for number, line in enumerate(lines):
        event = decode(line, "orders")
        live.handle(partition_of(event.customer), event, 0)
        if number in (100, 1700, 2500):
            # The worker dies: memory is gone, the stores (changelogs) remain; events since the last
            # commit come again.
            live = new(catalog, customers, journeys)
            for again in lines[number - 50 : number + 1]:
                event = decode(again, "orders")
                live.handle(partition_of(event.customer), event, 0)
    for partition in range(PARTITIONS):
        live.engine(partition).finish()
        live._settle(partition, live.engine(partition), {})

    replay = Replay(catalog)
    replay.feed(lines)
    summary = replay.finish()
    counts = live.counts()
    assert {t: (r["good"], r["bad"]) for t, r in summary["touchpoints"].items()} == {
        t: tuple(c) for t, c in counts.items()
    }
    assert sum(live.pending_counts().values()) == sum(r["pending"] for r in summary["touchpoints"].values())


def test_records_name_their_partition_and_journeys_are_the_published_format(catalog):
    customers, journeys = MemoryStore(), MemoryStore()
    live = new(catalog, customers, journeys)
    event = decode(next(iter(Simulation(customers=1, seed=2).lines())), "orders")
    live.handle(2, event, 0)
    record = orjson.loads(customers.get(event.customer))
    assert record["partition"] == 2 and record["seen"][0][0] == event.id
    journey = orjson.loads(journeys.get(event.customer))
    assert journey["customer_id"] == event.customer and journey["events"][0]["event_id"] == event.id


def test_journeys_beyond_the_cache_are_read_back_whole_and_still_expire(catalog):
    lines = list(Simulation(customers=200, duration=parse_duration("2h"), seed=4).lines())
    kept, cached = MemoryStore(), MemoryStore()
    small = Partitions(catalog, MemoryStore(), kept, retention=parse_duration("24h"), journey_cache=3)
    large = Partitions(catalog, MemoryStore(), cached, retention=parse_duration("24h"))
    for line in lines:
        event = decode(line, "orders")
        small.handle(partition_of(event.customer), event, 0)
        large.handle(partition_of(event.customer), event, 0)
    assert all(len(journeys) <= 3 for journeys in small.journeys.values())
    assert kept.data == cached.data  # every journey complete, whether it stayed in memory or not

    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in lines)
    small.forget(newest + 1)  # after everything: every journey expires, cached or not
    assert kept.data == {}


def test_journeys_stored_before_a_restart_still_expire(catalog):
    """A worker that takes a partition over learns its stored journeys' last activity, so retention
    expires the journeys of customers it never sees again (without it they stayed for ever)."""
    lines = list(Simulation(customers=50, duration=parse_duration("1h"), seed=8).lines())
    customers, journeys = MemoryStore(), MemoryStore()
    before = new(catalog, customers, journeys)
    for line in lines:
        event = decode(line, "orders")
        before.handle(partition_of(event.customer), event, 0)
    stored = set(journeys.data)
    assert len(stored) == 50

    after = Partitions(
        catalog, customers, journeys, retention=parse_duration("24h"), partition_of=partition_of
    )  # the restarted worker: its engines are built when each partition's next event comes
    for partition in range(PARTITIONS):
        after.engine(partition)
    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in lines)
    after.forget(newest - parse_duration("30m"))  # only the journeys quiet for the last half hour go
    left = set(journeys.data)
    assert left and left < stored
    assert all(
        parse_timestamp(orjson.loads(journeys.data[c])["last_at"]) >= newest - parse_duration("30m") for c in left
    )
    after.forget(newest + 1)
    assert journeys.data == {}
