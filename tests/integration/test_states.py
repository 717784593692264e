"""A touchpoint's state live, on the real broker, against a replay of the same events: a week's window
at a handful of outcomes a day, and a backfill with a declared source that never sends."""

from __future__ import annotations

import random
import shutil
import time
from pathlib import Path

import orjson
import pytest

from monitor.catalog import load_catalog
from monitor.durations import parse_duration
from monitor.events import format_timestamp, parse_timestamp
from monitor.window import STEPS
from tpmon.report.replay import evidence

from .conftest import ROOT, Namespace, wait_committed, wait_until
from .test_live_pipeline import live_equals_replay, replay_outcomes

pytestmark = [pytest.mark.integration, pytest.mark.slow]
DAY = parse_duration("1d")


def week_window_catalog(root: Path) -> Path:
    """The shipped catalog, bill-correct judged over the last 7 days."""
    folder = root / "rules"
    shutil.copytree(ROOT / "rules", folder)
    pay = folder / "pay.yaml"
    text = pay.read_text()
    pay.write_text(text.replace("    min_events: 20\n", "    min_events: 20\n    window: 7d\n", 1))
    return folder


def quiet_bills(path: Path, days: int, per_day: int, wrong_day: int) -> int:
    """``per_day`` bills a day over the last ``days`` days, up to a minute ago; on day ``wrong_day`` (from
    the end) two in three wrong, else about 1 in 100. Returns the instant of the last."""
    rng = random.Random(7)
    now = time.time_ns() // 1000 - parse_duration("1m")
    lines, last = [], 0
    for n in range(days * per_day):
        at = now - days * DAY + n * (days * DAY // (days * per_day))
        day_from_end = (now - at) // DAY
        wrong = rng.random() < (0.67 if day_from_end == wrong_day else 0.01)
        lines.append(
            {"event_id": f"qb-{n}", "type": "bill.issued", "customer_id": f"q-{n}", "occurred_at": format_timestamp(at),
             "bill_id": f"qb-{n}", "amount": 31.0 if wrong else 29.0, "expected_amount": 29.0}
        )  # fmt: skip
        last = at
    path.write_bytes(b"".join(orjson.dumps(line) + b"\n" for line in lines))
    return last


def test_a_week_window_at_fifteen_outcomes_a_day_has_its_state_live_and_in_replay(namespace: Namespace):
    """Ten days of 15 bills a day, a bad day three days ago: bill-correct, judged over 7 days, is broken
    live (/touchpoints, with n and the bounds) and in the review's "now" of a replay, on the same counts.
    Over the wall's old hour it would hold one bill: never a state."""
    rules = week_window_catalog(namespace.root)
    bills = namespace.root / "bills.jsonl"
    quiet_bills(bills, days=10, per_day=15, wrong_day=3)
    namespace.run("produce", str(bills))
    worker = namespace.worker(TPMON_RULES=str(rules))
    live_equals_replay(namespace, [worker], bills, TPMON_RULES=str(rules))
    catalog = load_catalog(rules)
    found, _ = evidence(catalog, [("file", bills)], DAY, None, False, lambda text: None)
    assert found is not None
    replayed = found.touchpoints["bill-correct"].now
    view = orjson.loads(worker.get("/touchpoints") or b"{}")["touchpoints"]["bill-correct"]
    print(f"\nlive: {view['state']}, {view['why']}; replay: {replayed}")
    assert view["window"]["span"] == "7d" and view["state"] == "broken", view
    assert (view["window"]["good"], view["window"]["bad"], view["state"]) == (
        replayed.good,
        replayed.bad,
        replayed.state,
    )
    # A rolling 7d moves in twelfths (14 h buckets on the epoch): it holds the last 6d10h to 7d of bills,
    # so at least 96 of the 105 of a week, whatever the hour (the wall's old hour held one bill).
    assert view["window"]["good"] + view["window"]["bad"] >= 15 * 7 * (STEPS - 1) // STEPS
    # A restart reads the window back with the partitions' state: the same outcomes, the same state.
    worker.stop()
    again = namespace.worker(TPMON_RULES=str(rules))
    back = orjson.loads(again.get("/touchpoints") or b"{}")["touchpoints"]["bill-correct"]
    assert (back["window"]["good"], back["window"]["bad"], back["state"]) == (
        view["window"]["good"],
        view["window"]["bad"],
        view["state"],
    ), back


def test_a_backfill_beside_a_source_that_never_sent_is_decided_within_a_minute(namespace: Namespace):
    """Twenty days across four sources (surveys, declared, sends nothing), with a lateness of 10
    minutes: within a minute of reading the last event, the worker has decided as far as the sources
    that sent allow (their slowest partition's progress minus the lateness), exactly as a replay decides
    up to there; the surveys' silence holds nothing back (it held the clock for 600 s of wall time). A
    partition that sent and stopped holds it for the lateness, as docs/SEMANTICS.md says."""
    simulated = namespace.root / "simulated.jsonl"
    namespace.run(
        "simulate", "--out", str(simulated), "--duration", "20d", "--customers", "600", "--seed", "41",
        "--start", "2026-10-01T00:00:00Z",
    )  # fmt: skip
    history = namespace.root / "history.jsonl"
    lines = simulated.read_bytes().splitlines(keepends=True)
    history.write_bytes(b"".join(line for line in lines if b'"survey.answered"' not in line))
    namespace.run("produce", str(history))
    worker = namespace.worker(TPMON_LATENESS="10m")
    topics = [topic for source, topic in zip(namespace.sources, namespace.topics, strict=True) if source != "surveys"]
    wait_committed(namespace.bootstrap, namespace.name, [*topics, f"{namespace.name}-events"], 300)
    read = time.monotonic()
    lateness = parse_duration("10m")

    def behind() -> tuple[int, int] | None:
        """(the smallest decided mark, the slowest progress of a partition that sent), once every
        partition has decided that far."""
        view = orjson.loads(worker.get("/touchpoints") or b"{}")
        marks = list(view.get("decided", {}).values())
        progress = [
            parse_timestamp(mine["progress"])
            for inputs in view.get("inputs", {}).values()
            for name, mine in inputs.items()
            if not name.startswith("surveys") and mine.get("progress")
        ]
        if not marks or None in marks or not progress:
            return None
        low = min(parse_timestamp(at) for at in marks)  # type: ignore[type-var]
        return (low, min(progress) - lateness) if low >= min(progress) - lateness else None  # type: ignore[return-value]

    wait_until(behind, 60, "the backfill to be decided as far as the sources that sent allow")
    took = time.monotonic() - read

    def still() -> tuple[int, dict[str, tuple[int, int]]] | None:
        """The decided mark and the outcomes, each the same read before and after the other: the worker
        may still be deciding (an input's last report on its way, or one settling), and the outcomes
        must be compared with a replay up to the mark they were decided to."""
        first = behind()
        outcomes = worker.outcomes()
        again = behind()
        if first is None or again != first or worker.outcomes() != outcomes:
            return None
        return first[0], outcomes

    low, live = wait_until(still, 60, "the decided mark and the outcomes to hold still")  # type: ignore[misc]
    marks = orjson.loads(worker.get("/touchpoints") or b"{}")["decided"].values()
    assert len(set(marks)) == 1, marks  # every partition follows the same slowest input
    # What is decided by then: a deadline or a no_repeat waits for the watermark (its events queue in
    # event-time order), so the live counts are a replay of the events up to it; a condition is judged
    # as its event is read, so the live counts are the whole history's.
    upto = namespace.root / "upto.jsonl"
    upto.write_bytes(b"".join(line for line in history.read_bytes().splitlines(keepends=True)
                              if parse_timestamp(orjson.loads(line)["occurred_at"]) <= low))  # fmt: skip
    queued = replay_outcomes(namespace, upto, format_timestamp(low))
    whole = replay_outcomes(namespace, history)
    catalog = load_catalog(ROOT / "rules")
    expected = {t.id: (whole if t.kind == "condition" else queued)[t.id] for t in catalog.touchpoints}
    assert live == expected
    print(f"\ndecided to {format_timestamp(low)} {took:.1f}s after the last event was read")
    assert took < 60, took
