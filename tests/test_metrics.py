"""Metrics: docs/METRICS.md names and labels, read from a fresh registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry

from monitor.engine import Engine
from monitor.metrics import Metrics
from tests.builders import event

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


def test_names_types_and_labels_are_the_spec(catalog):
    registry = CollectorRegistry()
    metrics = Metrics(catalog, Engine(catalog), registry)
    metrics.bind_source("bills")
    metrics.journey_broken()
    metrics.customers.labels("joined")
    families = {family.name: family for family in registry.collect()}
    for name, (kind, labels) in SPEC.items():
        family = families[name]
        assert family.type == kind, name
        sample_labels = {key for sample in family.samples for key in sample.labels} - {"le"}
        assert sample_labels == labels, name


def test_outcomes_and_events_are_counted(catalog):
    registry = CollectorRegistry()
    engine = Engine(catalog)
    metrics = Metrics(catalog, engine, registry)
    for e in [
        event("order.placed", 0, order_id="o1"),
        event("order.confirmed", 30, order_id="o1"),
        event("bill.issued", 40, bill_id="b", amount=5.0, expected_amount=4.0),
        event("customer.joined", 50),
        event("loyalty.points", 60),
    ]:
        engine.step(e)
        metrics.event("bills", e.kind)
    engine.finish()
    for outcome in engine.outbox:
        metrics.outcome(outcome)
    value = registry.get_sample_value
    labels = {"touchpoint": "order-confirmed", "stage": "buy", "owner": "sales-ops", "outcome": "good"}
    assert value("tpmon_touchpoint_outcomes_total", labels) == 1
    assert (
        value(
            "tpmon_touchpoint_outcomes_total",
            {**labels, "touchpoint": "bill-correct", "stage": "pay", "owner": "billing", "outcome": "bad"},
        )
        == 1
    )
    assert value("tpmon_touchpoint_latency_seconds_count", {"touchpoint": "order-confirmed"}) == 1
    assert value("tpmon_touchpoint_latency_seconds_sum", {"touchpoint": "order-confirmed"}) == 30
    assert value("tpmon_events_total", {"source": "bills", "type": "other"}) == 1
    assert value("tpmon_customers_total", {"direction": "joined"}) == 1
    assert (
        value("tpmon_touchpoint_objective_ratio", {"touchpoint": "bill-correct"}) == catalog["bill-correct"].objective
    )


def test_latency_buckets_sit_around_each_deadline(catalog):
    metrics = Metrics(catalog, Engine(catalog), CollectorRegistry())
    bounds = metrics.latency._upper_bounds
    for seconds in (120, 4 * 3600, 24 * 3600, 48 * 3600, 5 * 86400):
        assert seconds in bounds


def test_labels_never_carry_ids(catalog):
    registry = CollectorRegistry()
    metrics = Metrics(catalog, Engine(catalog), registry)
    metrics.event("orders", "order.placed")
    for family in registry.collect():
        for sample in family.samples:
            assert not any(key.endswith("_id") for key in sample.labels)


def test_impact_is_read_from_the_engine_state(catalog):
    """Customers impacted, left after bad and the voice of the customer, as the engine tallied them."""
    registry = CollectorRegistry()
    engine = Engine(catalog)
    Metrics(catalog, engine, registry)
    wrong = {"amount": 12.0, "expected_amount": 10.0}
    for e in [
        event("bill.issued", 0, bill_id="b1", **wrong),
        event("bill.issued", 10, customer="c2", bill_id="b2"),
        event("survey.answered", 60, survey_id="s1", survey="nps", score=3),
        event("survey.answered", 60, customer="c2", survey_id="s2", survey="nps", score=10),
        event("customer.left", 90),
    ]:
        engine.step(e)
    engine.finish()
    value = registry.get_sample_value
    assert value("tpmon_customers_active_total") == 2
    assert value("tpmon_touchpoint_customers_impacted_total", {"touchpoint": "bill-correct"}) == 1
    assert value("tpmon_touchpoint_left_after_bad_total", {"touchpoint": "bill-correct"}) == 1
    bad = {"touchpoint": "bill-correct", "survey": "nps", "after": "bad"}
    assert value("tpmon_touchpoint_survey_score_sum", bad) == 3
    assert value("tpmon_touchpoint_survey_answers_total", {**bad, "class": "detractor"}) == 1
    good = {**bad, "after": "good"}
    assert value("tpmon_touchpoint_survey_score_count", good) == 1
    assert value("tpmon_touchpoint_survey_answers_total", {**good, "class": "promoter"}) == 1
    assert value("tpmon_touchpoint_survey_answers_total", {**good, "survey": "csat", "class": "all"}) == 0
