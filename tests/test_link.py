"""The worker's word on Kafka outages (streams.link) and its log's collapsed repeats (streams.logs)."""

from __future__ import annotations

import logging

from prometheus_client import CollectorRegistry

from streams.link import LOST_AFTER, KafkaLink
from streams.logs import STARTING, WINDOW, Repeats


def link() -> tuple[KafkaLink, list[str], CollectorRegistry]:
    said: list[str] = []
    registry = CollectorRegistry()
    return KafkaLink("127.0.0.1:9092", registry, said.append), said, registry


def test_an_outage_is_said_once_each_way_and_counted() -> None:
    kafka, said, registry = link()
    kafka.update(True, 0.0)
    for second in range(1, 40):
        kafka.update(False, float(second))
    assert len(said) == 1 and "lost" in said[0] and "127.0.0.1:9092" in said[0]
    assert registry.get_sample_value("tpmon_kafka_up") == 0
    for second in range(40, 45):
        kafka.update(True, float(second))
    assert len(said) == 2 and "back after 39 s" in said[1]
    assert registry.get_sample_value("tpmon_kafka_up") == 1
    assert registry.get_sample_value("tpmon_kafka_outages_total") == 1


def test_a_reconnect_within_moments_is_not_an_outage_and_unknown_changes_nothing() -> None:
    kafka, said, registry = link()
    kafka.update(False, 0.0)
    kafka.update(None, LOST_AFTER + 1)
    kafka.update(False, LOST_AFTER - 0.5)
    kafka.update(True, LOST_AFTER)
    kafka.update(False, LOST_AFTER + 1)
    kafka.update(False, LOST_AFTER + 2)
    assert said == [] and registry.get_sample_value("tpmon_kafka_up") == 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def record(name: str, message: str, level: int = logging.ERROR) -> logging.LogRecord:
    return logging.LogRecord(name, level, __file__, 1, message, (), None)


def test_the_clients_repeats_are_collapsed_and_then_counted() -> None:
    clock = Clock()
    repeats = Repeats(clock=clock)
    clock.now = STARTING + 1
    first = record("aiokafka.client", "Unable connect to node with id %s: %s")
    assert repeats.filter(first)
    assert not any(
        repeats.filter(record("aiokafka.client", "Unable connect to node with id %s: %s")) for _ in range(500)
    )
    assert repeats.filter(record("aiokafka.client", "Unable to update metadata from %r"))  # another kind
    assert repeats.filter(record("tpmon.kafka", "Kafka lost"))  # tpmon's own lines always pass
    assert repeats.filter(record("tpmon.kafka", "Kafka lost"))
    clock.now += WINDOW + 1
    again = record("aiokafka.client", "Unable connect to node with id %s: %s")
    assert repeats.filter(again)
    assert "(500 more like this in the last 61 s)" in str(again.msg)


def test_the_coordinators_absence_at_start_is_not_an_error_but_later_it_is() -> None:
    clock = Clock()
    repeats = Repeats(clock=clock)
    message = "Group Coordinator Request failed: %s"
    assert not repeats.filter(record("aiokafka.consumer.group_coordinator", message))
    clock.now = STARTING + 1
    assert repeats.filter(record("aiokafka.consumer.group_coordinator", message))


def test_a_faust_timer_running_late_is_not_shown() -> None:
    repeats = Repeats(clock=Clock())
    assert not repeats.filter(record("mode.timers", "Timer %s is overlapping (interval=%r runtime=%r)"))
