"""Events a rule cannot judge are counted as rule errors, never as outcomes, and never stop anything."""

from __future__ import annotations

import shutil

import orjson

from monitor.catalog import load_catalog
from monitor.replay import Replay
from tests.builders import event
from tests.conftest import ROOT

CATALOG = """
version: 1
touchpoints:
  - id: survey-happy
    stage: help
    owner: support
    description: The survey after a call scores at least 4 (an extra field some calls lack).
    kind: condition
    on: call.ended
    good: event.score >= 4
    objective: 0.95
  - id: vip-confirmed
    stage: buy
    owner: sales-ops
    description: VIP orders are confirmed within a minute.
    kind: deadline
    start:
      types: [order.placed]
      where: event.tier == "vip"
    end: order.confirmed
    key: order_id
    within: 1m
    objective: 0.95
"""


def test_rule_errors_are_counted_apart(tmp_path):
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    shutil.copy(ROOT / "rules" / "events.yaml", tmp_path)
    catalog = load_catalog(tmp_path)
    run = Replay(catalog)
    run.feed(
        e.raw
        for e in [
            event("call.ended", 0, call_id="k1", resolved=True, score=5),
            event("call.ended", 1, call_id="k2", resolved=True),  # no score
            event("order.placed", 2, order_id="o1", tier="vip"),
            event("order.placed", 3, order_id="o2"),  # no tier: the filter cannot be evaluated
            event("order.confirmed", 20, order_id="o1"),
        ]
    )
    summary = run.finish()
    assert summary["touchpoints"]["survey-happy"] == {**summary["touchpoints"]["survey-happy"], "good": 1, "bad": 0}
    assert summary["touchpoints"]["vip-confirmed"]["good"] == 1
    assert summary["events"]["rule_errors"] == 2
    assert orjson.dumps(summary)  # still a plain JSON summary
