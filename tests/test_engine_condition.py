"""Condition touchpoints: judged at once by their CEL expression."""

from __future__ import annotations

import pytest

from monitor.engine import Engine
from tests.builders import event

CASES = [
    ("bill-correct", event("bill.issued", 0, bill_id="b", amount=20.0, expected_amount=20), "good"),
    ("bill-correct", event("bill.issued", 0, bill_id="b", amount=25.5, expected_amount=20), "bad"),
    ("payment-succeeded", event("payment.succeeded", 0, bill_id="b"), "good"),
    ("payment-succeeded", event("payment.failed", 0, bill_id="b"), "bad"),
    ("call-answered", event("call.answered", 0, call_id="k", wait_seconds=60), "good"),
    ("call-answered", event("call.answered", 0, call_id="k", wait_seconds=60.5), "bad"),
    ("call-answered", event("call.abandoned", 0, call_id="k", wait_seconds=5), "bad"),
    ("call-resolved", event("call.ended", 0, call_id="k", resolved=True), "good"),
    ("call-resolved", event("call.ended", 0, call_id="k", resolved=False), "bad"),
    ("delivered-on-time", event("order.delivered", 0, order_id="o", promised_at="2026-11-22T10:00:00Z"), "good"),
    ("delivered-on-time", event("order.delivered", 0, order_id="o", promised_at="2026-11-22T11:00:00+01:00"), "good"),
    ("delivered-on-time", event("order.delivered", 1, order_id="o", promised_at="2026-11-22T10:00:00Z"), "bad"),
]


@pytest.mark.parametrize(
    ("touchpoint", "given", "expected"),
    CASES,
    ids=[f"{t}: {e.type} {e.data} is {o}" for t, e, o in CASES],
)
def test_condition(catalog, touchpoint, given, expected):
    engine = Engine(catalog)
    engine.step(given)
    decided = [o for o in engine.outbox if o.touchpoint == touchpoint]
    assert [o.outcome for o in decided] == [expected]  # decided at once, before any watermark moves


def test_a_duplicate_is_judged_once(catalog):
    engine = Engine(catalog)
    bill = event("bill.issued", 0, bill_id="b", event_id="x")
    engine.step(bill)
    engine.step(bill)
    assert len(engine.outbox) == 1


def test_a_late_event_is_still_judged(catalog):
    from monitor.engine import LATE

    engine = Engine(catalog)
    engine.step(event("customer.joined", 3600))
    assert engine.step(event("bill.issued", 0, bill_id="b")) == LATE
    assert [o.touchpoint for o in engine.outbox] == ["bill-correct"]
