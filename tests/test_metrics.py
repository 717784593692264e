"""Metrics: docs/METRICS.md names and labels, read from a fresh registry, each a partition's stored count."""

from __future__ import annotations

import orjson
from prometheus_client import CollectorRegistry

from monitor.counts import latency_buckets
from monitor.events import format_timestamp, parse_timestamp
from monitor.metrics import Figures, Metrics
from tests.worker_helpers import Message, Worker

NOW = parse_timestamp("2026-11-22T12:00:00Z")
START = parse_timestamp("2026-11-22T10:00:00Z")

SPEC = {
    "tpmon_touchpoint_outcomes": ("counter", {"touchpoint", "stage", "owner", "outcome"}),
    "tpmon_touchpoint_pending": ("gauge", {"touchpoint"}),
    "tpmon_touchpoint_latency_seconds": ("histogram", {"touchpoint"}),
    "tpmon_touchpoint_objective_ratio": ("gauge", {"touchpoint"}),
    "tpmon_events": ("counter", {"source", "type"}),
    "tpmon_events_rejected": ("counter", {"source", "reason"}),
    "tpmon_events_duplicate": ("counter", {"source"}),
    "tpmon_events_late": ("counter", {"source"}),
    "tpmon_customers": ("counter", {"direction"}),
    "tpmon_journeys_broken": ("counter", set()),
    "tpmon_touchpoint_customers_impacted": ("counter", {"touchpoint"}),
    "tpmon_touchpoint_left_after_bad": ("counter", {"touchpoint"}),
    "tpmon_touchpoint_survey_score": ("summary", {"touchpoint", "survey", "after"}),
    "tpmon_touchpoint_survey_answers": ("counter", {"touchpoint", "survey", "after", "class"}),
}
# What the worker judged is counted per partition of the events topic (docs/METRICS.md).
PER_PARTITION = set(SPEC) - {"tpmon_touchpoint_objective_ratio"}


def line(event_id: str, kind: str, seconds: int, customer: str = "c1", **fields: object) -> bytes:
    at = format_timestamp(START + seconds * 1_000_000)
    return orjson.dumps({"event_id": event_id, "type": kind, "customer_id": customer, "occurred_at": at, **fields})


def judged(catalog, lines: list[tuple[str, bytes]]) -> Worker:  # type: ignore[no-untyped-def]
    worker = Worker(catalog)
    worker.run([Message(topic, raw) for topic, raw in lines], NOW)
    worker.ingest.tick(NOW + 3600 * 1_000_000)  # idle inputs: the watermark moves on
    worker.run([], NOW + 3600 * 1_000_000)
    return worker


EVENTS = [
    ("orders", line("p1", "order.placed", 0, order_id="o1", amount=5, channel="web")),
    ("orders", line("k1", "order.confirmed", 30, order_id="o1")),
    ("bills", line("b1", "bill.issued", 40, bill_id="b", amount=5.0, expected_amount=4.0)),
    ("orders", line("j1", "customer.joined", 50)),
    ("orders", line("x1", "loyalty.points", 60)),
    ("orders", line("p1", "order.placed", 0, order_id="o1", amount=5, channel="web")),  # again
]


def test_names_types_and_labels_are_the_spec_and_a_partition(catalog):
    worker = judged(catalog, EVENTS)
    families = {family.name: family for family in worker.registry.collect()}
    for name, (kind, labels) in SPEC.items():
        family = families[name]
        assert family.type == kind, name
        sample_labels = {key for sample in family.samples for key in sample.labels} - {"le", "quantile"}
        assert sample_labels == labels | ({"partition"} if name in PER_PARTITION else set()), name


def test_outcomes_and_events_are_counted(catalog):
    worker = judged(catalog, EVENTS)
    value = worker.sample
    labels = {"touchpoint": "order-confirmed", "stage": "buy", "owner": "sales-ops", "outcome": "good"}
    assert value("tpmon_touchpoint_outcomes_total", **labels) == 1
    bill = {"touchpoint": "bill-correct", "stage": "pay", "owner": "billing", "outcome": "bad"}
    assert value("tpmon_touchpoint_outcomes_total", **bill) == 1
    assert value("tpmon_touchpoint_latency_seconds_count", touchpoint="order-confirmed") == 1
    assert value("tpmon_touchpoint_latency_seconds_sum", touchpoint="order-confirmed") == 30
    assert value("tpmon_events_total", source="orders", type="other") == 1
    assert value("tpmon_events_duplicate_total", source="orders") == 1
    assert value("tpmon_customers_total", direction="joined") == 1
    assert value("tpmon_touchpoint_objective_ratio", touchpoint="bill-correct") == catalog["bill-correct"].objective
    # Every source's series exist from the start, at zero, so that a first increase counts.
    assert value("tpmon_events_total", source="tickets", type="ticket.opened", partition="0") == 0
    assert ("tpmon_events_total", "tickets", "ticket.opened") in {
        (s.name, s.labels.get("source"), s.labels.get("type"))
        for f in worker.registry.collect()
        for s in f.samples
        if s.labels.get("partition") == "0"
    }


def test_latency_buckets_sit_around_each_deadline(catalog):
    bounds = latency_buckets(catalog)
    for seconds in (120, 4 * 3600, 24 * 3600, 48 * 3600, 5 * 86400):
        assert seconds in bounds


def test_labels_never_carry_ids(catalog):
    worker = judged(catalog, EVENTS)
    for family in worker.registry.collect():
        for sample in family.samples:
            assert not any(key.endswith("_id") for key in sample.labels)


def test_impact_is_read_from_the_engine_state(catalog):
    """Customers impacted, left after bad and the voice of the customer, as the engine tallied them."""
    wrong = {"amount": 12.0, "expected_amount": 10.0}
    worker = judged(
        catalog,
        [
            ("bills", line("b1", "bill.issued", 0, bill_id="b1", **wrong)),
            ("bills", line("b2", "bill.issued", 10, customer="c2", bill_id="b2", amount=1.0, expected_amount=1.0)),
            ("surveys", line("s1", "survey.answered", 60, survey_id="s1", survey="nps", score=3)),
            ("surveys", line("s2", "survey.answered", 60, customer="c2", survey_id="s2", survey="nps", score=10)),
            ("orders", line("l1", "customer.left", 90)),
        ],
    )
    value = worker.sample
    assert value("tpmon_customers_active_total") == 2
    assert value("tpmon_touchpoint_customers_impacted_total", touchpoint="bill-correct") == 1
    assert value("tpmon_touchpoint_left_after_bad_total", touchpoint="bill-correct") == 1
    bad = {"touchpoint": "bill-correct", "survey": "nps", "after": "bad"}
    assert value("tpmon_touchpoint_survey_score_sum", **bad) == 3
    assert value("tpmon_touchpoint_survey_answers_total", **bad, **{"class": "detractor"}) == 1
    good = {**bad, "after": "good"}
    assert value("tpmon_touchpoint_survey_score_count", **good) == 1
    assert value("tpmon_touchpoint_survey_answers_total", **good, **{"class": "promoter"}) == 1


def test_a_partition_not_recovered_has_no_series_and_comes_back_at_what_it_stored(catalog):
    """A restarted worker serves nothing of a partition until its state is read back, then exactly
    what was stored: no counter of it ever reads lower (Prometheus would take that for a reset)."""
    worker = judged(catalog, EVENTS)

    def series(registry: CollectorRegistry) -> dict:
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for f in registry.collect()
            for s in f.samples
            if s.labels.get("partition")  # (the process's own have none)
        }

    before = series(worker.registry)
    again = worker.restarted()
    assert series(again.registry) == {}  # nothing recovered yet: no series, not zeros
    again.partitions.adopt(range(4))
    again.views.publish(again.views.snapshot())
    assert series(again.registry) == before


def test_what_is_not_stored_yet_is_not_served(catalog):
    """A snapshot is served once published (after its writes are delivered), and an older one never
    replaces a newer."""
    worker = Worker(catalog)
    worker.ingest([Message("bills", line("b1", "bill.issued", 0, bill_id="b", amount=5.0, expected_amount=4.0))], NOW)
    for sent in worker.outbox.take("events"):
        from streams.partitions import key_partition

        partition = key_partition(sent.key, 4) if sent.partition is None else sent.partition
        worker.judge(
            [Message("events", sent.value, sent.key, partition, [(k, v.encode()) for k, v in sent.headers.items()])],
            NOW,
        )
    assert worker.sample("tpmon_events_total") == 0  # judged, not yet stored
    older = worker.views.snapshot()
    newer = worker.views.snapshot()
    worker.views.publish(newer)
    worker.views.publish(older)
    assert worker.sample("tpmon_events_total") == 1


def test_the_process_counts_have_no_partition(catalog):
    registry = CollectorRegistry()

    class Nothing:
        def figures(self) -> dict[int, Figures]:
            return {}

    metrics = Metrics(catalog, Nothing(), registry)
    metrics.refused("orders", "too_large")
    metrics.failed("deliver")
    # (an empty label is none to Prometheus)
    rejected = {"source": "orders", "reason": "too_large", "partition": ""}
    assert registry.get_sample_value("tpmon_events_rejected_total", rejected) == 1
    assert registry.get_sample_value("tpmon_internal_errors_total", {"stage": "deliver", "partition": ""}) == 1
