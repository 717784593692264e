"""Events a rule cannot judge are counted as rule errors, never as outcomes, and never stop anything."""

from __future__ import annotations

import shutil

import orjson
import pytest

from monitor.catalog import load_catalog
from monitor.events import parse_timestamp
from monitor.replay import Replay
from streams.partitions import key_partition
from tests.builders import event
from tests.conftest import ROOT
from tests.worker_helpers import DEAD_LETTERS, EVENTS, PARTITIONS, Message, Worker

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


# -- found: per touchpoint, kept whole with why, the same live and in replay --------------------------

TWO_ON_ONE_TYPE = """
version: 1
touchpoints:
  - id: vip-order-ok
    stage: buy
    owner: sales-ops
    description: A VIP order is placed on the web (a field some orders lack).
    kind: condition
    on: order.placed
    good: event.tier == "vip" && channel == "web"
    objective: 0.95
  - id: order-amount-ok
    stage: buy
    owner: sales-ops
    description: An order is for something.
    kind: condition
    on: order.placed
    good: amount > 0
    objective: 0.95
"""


@pytest.fixture
def two_on_one_type(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "catalog.yaml").write_text(TWO_ON_ONE_TYPE)
    shutil.copy(ROOT / "rules" / "events.yaml", tmp_path)
    return load_catalog(tmp_path)


def orders() -> list[bytes]:
    """Three orders, the second without the tier one rule reads, the third sent twice."""
    lines = []
    for number, extra in enumerate(({"tier": "vip"}, {}, {"tier": "std"}), 1):
        data = {
            "event_id": f"o{number}",
            "type": "order.placed",
            "customer_id": f"c{number}",
            "occurred_at": f"2026-11-22T10:0{number}:00Z",
            "order_id": f"order-{number}",
            "amount": 10,
            "channel": "web",
            **extra,
        }
        lines.append(orjson.dumps(data))
    return [*lines, lines[-1]]


def replayed(catalog) -> tuple[dict, list[tuple[int, dict]]]:  # type: ignore[no-untyped-def]
    kept: list[tuple[int, dict]] = []
    run = Replay(catalog, on_reject=lambda number, reject: kept.append((number, reject.record(line=number))))
    run.feed(orders(), "orders")
    return run.finish(), kept


def test_a_rule_error_is_counted_for_its_touchpoint_and_the_others_still_judge_the_event(two_on_one_type):
    summary, _ = replayed(two_on_one_type)
    assert summary["events"]["rule_errors"] == 1 and summary["events"]["accepted"] == 3
    assert summary["events"]["rejected"] == 0 and summary["events"]["duplicates"] == 1
    vip, amount = summary["touchpoints"]["vip-order-ok"], summary["touchpoints"]["order-amount-ok"]
    assert (vip["good"], vip["bad"], vip["rule_errors"]) == (1, 1, 1)
    assert (amount["good"], amount["bad"], amount["rule_errors"]) == (3, 0, 0)


def test_a_rule_error_is_kept_whole_with_its_touchpoint_and_message(two_on_one_type):
    _, kept = replayed(two_on_one_type)
    assert [number for number, _ in kept] == [2]
    record = kept[0][1]
    assert record["reason"] == "rule_error" and record["touchpoint"] == "vip-order-ok"
    assert record["source"] == "orders" and record["line"] == 2
    assert record["message"].startswith("good: ") and "tier" in record["message"]
    assert record["detail"] == f"touchpoint 'vip-order-ok' could not judge it: {record['message']}"
    assert record["raw"].encode() == orders()[1]


def test_live_counts_and_dead_letters_the_same_rule_errors_as_replay(two_on_one_type):
    summary, kept = replayed(two_on_one_type)
    worker = Worker(two_on_one_type)
    now = parse_timestamp("2026-11-22T10:10:00Z")
    letters = worker.run([Message("orders", line, offset=number) for number, line in enumerate(orders())], now)
    assert [(s.headers["reason"], s.headers["touchpoint"], s.value) for s in letters] == [
        ("rule_error", "vip-order-ok", orders()[1])
    ]
    assert letters[0].headers["message"] == kept[0][1]["message"]
    assert letters[0].headers["detail"] == kept[0][1]["detail"] and letters[0].headers["source"] == "orders"
    for touchpoint, row in summary["touchpoints"].items():
        assert worker.sample("tpmon_touchpoint_rule_errors_total", touchpoint=touchpoint) == row["rule_errors"]
        assert worker.views.touchpoints()[touchpoint]["rule_errors"] == row["rule_errors"]
    assert worker.sample("tpmon_events_rejected_total") == 0  # judged by the others: not a reject


def test_a_batch_read_again_counts_and_keeps_no_rule_error_twice(two_on_one_type):
    """After a rebalance or a restart, the events topic is read again from the last commit: what the
    partition's record accounts for is not judged again, so its rule errors are neither counted nor
    kept a second time."""
    worker = Worker(two_on_one_type)
    now = parse_timestamp("2026-11-22T10:10:00Z")
    worker.ingest([Message("orders", line, offset=number) for number, line in enumerate(orders())], now)
    forwarded = [
        Message(
            EVENTS,
            s.value,
            s.key,
            s.partition if s.partition is not None else key_partition(s.key, PARTITIONS),
            [(k, v.encode()) for k, v in s.headers.items()],
            offset=number,
        )
        for number, s in enumerate(worker.outbox.take(EVENTS))
    ]
    worker.judge(forwarded, now)
    assert len(worker.outbox.take(DEAD_LETTERS)) == 1
    worker.judge(forwarded, now)  # the same worker, the same batch again
    again = worker.restarted()  # another worker, from what this one stored
    again.judge(forwarded, now)
    assert worker.outbox.take(DEAD_LETTERS) == [] and again.outbox.take(DEAD_LETTERS) == []
    for live in (worker, again):
        live.views.publish(live.views.snapshot())
        assert live.sample("tpmon_touchpoint_rule_errors_total", touchpoint="vip-order-ok") == 1
        assert live.views.touchpoints()["vip-order-ok"]["rule_errors"] == 1
