"""The live pipeline on a real Kafka broker: counters equal replay's, through crashes and rebalances."""

from __future__ import annotations

import asyncio
import shutil
import signal
import time

import orjson
import pytest
from aiokafka import AIOKafkaProducer

from monitor.events import format_timestamp, parse_timestamp

from .conftest import ROOT, Namespace, Worker, finished, group_lag, wait_committed, wait_until

pytestmark = [pytest.mark.integration, pytest.mark.slow]

PARTITIONS = 4


def total_outcomes(workers: list[Worker]) -> dict[str, tuple[int, int]]:
    totals: dict[str, list[int]] = {}
    for worker in workers:
        if worker.process.poll() is None:
            for touchpoint, (good, bad) in worker.outcomes().items():
                pair = totals.setdefault(touchpoint, [0, 0])
                pair[0] += good
                pair[1] += bad
    return {t: (g, b) for t, (g, b) in totals.items()}


def replay_outcomes(space: Namespace, events, until: str | None = None, **env: str) -> dict[str, tuple[int, int]]:  # type: ignore[no-untyped-def]
    """``events``: a file, or the list of a replay's inputs (``SOURCE=FILE``...)."""
    summary = replay_summary(space, events, until, **env)
    return {t: (row["good"], row["bad"]) for t, row in summary["touchpoints"].items()}


def replay_summary(space: Namespace, events, until: str | None = None, **env: str) -> dict:  # type: ignore[no-untyped-def]
    inputs = [str(events)] if not isinstance(events, list) else events
    args = ["replay", *inputs, "--json"] + (["--until", until] if until else [])
    return orjson.loads(space.run(*args, **env).stdout)


def impact_of(views: list[dict]) -> dict[str, tuple]:
    """Per touchpoint, what the workers attributed (summed over them): left after bad and, per survey and
    side, the answers, their score sum and promoters minus detractors (rounded: means are summed back)."""
    found: dict[str, tuple] = {}
    for touchpoint in views[0]["touchpoints"]:
        left, voice = 0, {}
        for view in views:
            impact = view["touchpoints"][touchpoint]["impact"]
            left += impact["left_after_bad"]
            for survey, sides in impact["voice"].items():
                for side, row in sides.items():
                    mine = voice.setdefault((survey, side), [0, 0.0, 0.0])
                    mine[0] += row["answers"]
                    mine[1] += (row["mean"] or 0) * row["answers"]
                    mine[2] += (row.get("nps") or 0) * row["answers"] / 100
        kept = {key: (n, round(total, 6), round(net, 6)) for key, (n, total, net) in voice.items() if n}
        found[touchpoint] = (left, kept)
    return found


def live_equals_replay(  # type: ignore[no-untyped-def]
    space: Namespace,
    workers: list[Worker],
    events,
    timeout: float = 180,
    *,
    inputs: list[str] | None = None,
    topics: list[str] | None = None,
    newest: int | None = None,
    seen: dict | None = None,
    **env: str,
) -> dict:
    """Once everything sent is consumed and every partition's watermark has passed the last event
    (the inputs idle), the workers' counters equal a replay of the same events decided up to that
    watermark (``replay --until``). Partitions read their reports a moment apart, so their
    watermarks may differ by a tick: the comparison is made when replays at the smallest and the
    largest agree (nothing falls due between), and the live counts must then be exactly that."""
    if newest is None:
        newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in events.read_bytes().splitlines())  # type: ignore[type-var]
    try:
        wait_committed(space.bootstrap, space.name, [*(topics or space.topics), f"{space.name}-events"], timeout)
    except AssertionError as error:  # what each worker says of its inputs, and the end of its log
        said = []
        for w in workers:
            view = orjson.loads(w.get("/touchpoints") or b"{}")
            said.append(
                f"worker {w.port}: partitions {view.get('partitions')}, paused {view.get('paused')}, "
                f"inputs {view.get('inputs')}\n{w.log.read_text()[-1500:]}"
            )
        raise AssertionError(f"{error}\n" + "\n".join(said)) from None
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        views = [orjson.loads(w.get("/touchpoints") or b"{}") for w in workers if w.process.poll() is None]
        marks = [at for view in views for at in view.get("decided", {}).values()]  # (below the watermark while held)
        if marks and None not in marks and min(parse_timestamp(at) for at in marks) >= newest:  # type: ignore[operator]
            low, high = min(marks, key=parse_timestamp), max(marks, key=parse_timestamp)
            summary = replay_summary(space, inputs or events, low, **env)
            expected = {t: (row["good"], row["bad"]) for t, row in summary["touchpoints"].items()}
            if high == low or replay_outcomes(space, inputs or events, high, **env) == expected:
                live: dict[str, list[int]] = {}
                for view in views:
                    for touchpoint, row in view["touchpoints"].items():
                        pair = live.setdefault(touchpoint, [0, 0])
                        pair[0] += row["good"]
                        pair[1] += row["bad"]
                last = {t: (g, b) for t, (g, b) in live.items()}
                assert last == expected, f"at watermark {low}"
                # Impact too: what customers did after their outcomes, attributed alike.
                assert impact_of(views) == impact_of([summary]), f"at watermark {low}"
                if seen is not None:
                    seen.update(views=views, summary=summary)
                return expected
        time.sleep(1)
    raise AssertionError(f"the watermarks did not pass the last event ({format_timestamp(newest)}): {last}")


def simulate_live(space: Namespace, seconds: int, rate: int, seed: int, out: str = "sent.jsonl"):  # type: ignore[no-untyped-def]
    copy = space.root / out
    process = space.start(
        "simulate",
        "--bootstrap",
        space.bootstrap,
        "--rate",
        str(rate),
        "--duration",
        f"{seconds}s",
        "--seed",
        str(seed),
        "--out",
        str(copy),
    )
    return process, copy


def test_counters_equal_replay_touchpoint_by_touchpoint(namespace):
    worker = namespace.worker()
    started = time.monotonic()
    process, copy = simulate_live(namespace, seconds=12, rate=300, seed=21)
    first = wait_until(lambda: sum(sum(pair) for pair in worker.outcomes().values()), 60, "the first outcome")
    print(f"first outcome {time.monotonic() - started:.1f}s after the simulator started ({first} so far)")
    finished(process, 120, "the simulator")
    expected = live_equals_replay(namespace, [worker], copy)
    assert sum(g + b for g, b in expected.values()) > 100  # decided by the watermark: due within the run
    # Everything is committed, and the worker's own lag gauge says so, per partition it consumes.
    lag = {labels: value for (name, labels), value in worker.metrics().items() if name == "tpmon_consumer_lag"}
    topics = {dict(labels)["topic"] for labels in lag}
    simulated = {
        topic for source, topic in zip(namespace.sources, namespace.topics, strict=True) if source != "surveys"
    }
    assert topics == {*simulated, f"{namespace.name}-events"}, lag  # (the simulator sends no surveys: no commit)
    # The sources are all committed; on the events topic, the reports of idle inputs keep coming.
    assert all(value == 0 for labels, value in lag.items() if not dict(labels)["topic"].endswith("-events")), lag


def test_a_killed_worker_resumes_without_losing_or_doubling(namespace):
    """Both workers hold few quiet customers in memory: the others wait in the store, are left there by
    the restart, and are put back at their next event."""
    few = {"TPMON_CUSTOMERS_IN_MEMORY": "40"}
    first = namespace.worker(**few)
    process, copy = simulate_live(namespace, seconds=16, rate=300, seed=22)
    time.sleep(8)
    assert first.outcomes(), "the worker should be counting before it is killed"
    first.stop(signal.SIGKILL)
    second = namespace.worker(**few)
    finished(process, 120, "the simulator")
    live_equals_replay(namespace, [second], copy)
    gauges = second.metrics()
    held, in_memory = (
        sum(value for (name, _), value in gauges.items() if name == family)
        for family in ("tpmon_state_customers", "tpmon_state_customers_in_memory")
    )
    assert in_memory < held, (in_memory, held)  # some were judged from the store


def test_two_workers_share_the_partitions(namespace):
    """One worker on each store (RocksDB, the default, and memory): the partitions move between them
    in the rebalance, and together they equal replay."""
    # One listens on every address: the other reaches it at this machine's name, not at 0.0.0.0.
    workers = [
        namespace.worker(TPMON_WEB_HOST="0.0.0.0", TPMON_INSECURE_WEB="1"),
        namespace.worker(TPMON_STORE="memory"),
    ]
    wait_until(
        lambda: all(
            len(orjson.loads(w.get("/touchpoints") or b'{"partitions": []}')["partitions"]) < PARTITIONS
            for w in workers
        ),
        90,
        "a rebalance over both workers",
    )
    process, copy = simulate_live(namespace, seconds=12, rate=300, seed=23)
    finished(process, 120, "the simulator")
    live_equals_replay(namespace, workers, copy)
    # Each worker answers for any customer's journey, whichever owns it (the other's are forwarded).
    customers = sorted({orjson.loads(line)["customer_id"] for line in copy.read_bytes().splitlines()})[:12]
    for worker in workers:
        for customer in customers:
            journey = orjson.loads(worker.get(f"/journeys/{customer}") or b"{}")
            assert journey.get("customer_id") == customer, (customer, worker.log.read_text()[-2000:])


def _events_counted(worker: Worker) -> float:
    return sum(value for (name, _), value in worker.metrics().items() if name == "tpmon_events_total")


def deadline_catalog(tmp_path, touchpoint: str, within: str):  # type: ignore[no-untyped-def]
    """A catalog of one deadline (an order confirmed within ``within``), with a lateness of 1 s."""
    rules = tmp_path / "rules"
    rules.mkdir()
    shutil.copy(ROOT / "rules" / "events.yaml", rules)  # the shipped declarations
    (rules / "catalog.yaml").write_text(
        "version: 1\nlateness: 1s\ntouchpoints:\n"
        f"  - {{id: {touchpoint}, stage: buy, owner: sales-ops, description: Confirmed in {within}., kind: deadline,\n"
        f"     start: order.placed, end: order.confirmed, key: order_id, within: {within}, objective: 0.95,"
        " min_events: 1}\n"
    )
    return rules


def place_an_order_now(namespace: Namespace) -> float:
    """Send one order.placed that occurs as it is sent; return when (wall clock, seconds). The producer
    is started first, so that what is measured from then on is the worker, not a client's start-up
    (a `tpmon produce` process took a second to start on a busy machine)."""

    async def send() -> float:
        producer = AIOKafkaProducer(bootstrap_servers=namespace.bootstrap)
        await producer.start()
        try:
            placed_at = time.time()
            event = {
                "event_id": "p1",
                "type": "order.placed",
                "customer_id": "c1",
                "occurred_at": format_timestamp(round(placed_at * 1_000_000)),
                "order_id": "o1",
                "amount": 5,
                "channel": "web",
            }
            await producer.send_and_wait(namespace.topics[0], orjson.dumps(event), key=b"c1")
        finally:
            await producer.stop()
        return placed_at

    return asyncio.run(send())


def test_a_deadline_is_decided_while_the_source_is_silent(namespace, tmp_path):
    worker = namespace.worker(TPMON_RULES=str(deadline_catalog(tmp_path, "quick-confirm", "2s")))
    # The source is silent on a running worker: one event of another customer first, consumed, so that
    # what is measured is the detection, not the first fetch after the worker joined its group.
    warm_up = {
        "event_id": "w1",
        "type": "customer.joined",
        "customer_id": "c0",
        "occurred_at": format_timestamp(time.time_ns() // 1000),
    }
    (tmp_path / "warm-up.jsonl").write_bytes(orjson.dumps(warm_up) + b"\n")
    namespace.run("produce", str(tmp_path / "warm-up.jsonl"))
    wait_until(lambda: _events_counted(worker) >= 1, 30, "the warm-up event")
    placed_at = place_an_order_now(namespace)
    due = placed_at + 2 + 1  # due time plus lateness
    wait_until(lambda: worker.outcomes().get("quick-confirm") == (0, 1), 30, "the missed deadline", every=0.05)
    decided = time.time()
    print(f"decided {decided - due:+.2f}s after due + lateness")
    assert decided - due <= 1.0


def test_a_deadline_open_when_a_worker_restarts_is_decided_with_no_further_event(namespace, tmp_path):
    """The instance is stored, the worker stops, and nothing arrives for its partition any more: the
    worker that takes the partition over decides the deadline from the stored record alone."""
    rules = deadline_catalog(tmp_path, "slow-confirm", "25s")
    first = namespace.worker(TPMON_RULES=str(rules))
    placed_at = place_an_order_now(namespace)
    wait_until(lambda: _events_counted(first) >= 1, 30, "the order to be counted")
    wait_committed(namespace.bootstrap, namespace.name, [*namespace.topics, f"{namespace.name}-events"], 30)
    assert first.stop() == 0 and time.time() < placed_at + 25, "the worker should stop before the deadline"
    stopped = time.time()
    second = namespace.worker(TPMON_RULES=str(rules))
    ready = time.time()
    # Quiet time counts from the new worker's first tick: decided late by the time nobody owned it.
    wait_until(lambda: second.outcomes().get("slow-confirm") == (0, 1), 60, "the missed deadline", every=0.2)
    late = time.time() - (placed_at + 26)
    print(f"decided {late:+.2f}s after due + lateness; no worker for {ready - stopped:.1f}s")


def test_a_backfill_of_days_across_every_source_equals_replay_and_again_changes_no_count(namespace):
    """Twenty days of history in all four topics, produced before the worker starts: Kafka hands out one
    topic far ahead of the others, and the watermark follows the slowest (docs/SEMANTICS.md). Then the
    whole history produced again: not one count changes. What is older than the remembered ids (48 h
    behind the watermark) is refused as too old and kept whole; the rest is duplicates; the worker is
    still up, and its duplicates and too old add up to the copy, as a replay of what Kafka holds says."""
    history = namespace.root / "history.jsonl"
    namespace.run(
        "simulate", "--out", str(history), "--duration", "20d", "--customers", "900", "--seed", "31",
        "--start", "2026-11-01T00:00:00Z",
    )  # fmt: skip
    namespace.run("produce", str(history))
    worker = namespace.worker()
    expected = live_equals_replay(namespace, [worker], history)
    assert sum(g + b for g, b in expected.values()) > 3000

    def counted(name: str, **labels: str) -> float:
        return sum(
            value
            for (metric, found), value in worker.metrics().items()
            if metric == name and all(dict(found).get(k) == v for k, v in labels.items())
        )

    before = {t: worker.outcomes()[t] for t in expected}
    duplicates_before = counted("tpmon_events_duplicate_total")
    namespace.run("produce", str(history))
    twice = namespace.root / "twice.jsonl"
    twice.write_bytes(history.read_bytes() * 2)
    live_equals_replay(namespace, [worker], twice)  # what Kafka holds: the history twice
    assert worker.outcomes() == before
    lines = len(history.read_bytes().splitlines())
    too_old = counted("tpmon_events_rejected_total", reason="too_old")
    duplicates = counted("tpmon_events_duplicate_total") - duplicates_before
    replayed = replay_summary(namespace, twice)["events"]["duplicates"]
    print(f"\nthe copy: {too_old:.0f} too old, {duplicates:.0f} duplicates (replay: {replayed} duplicates)")
    assert too_old > 0.8 * lines and too_old + duplicates + duplicates_before == replayed
    kept = namespace.run("rejects", "--reason", "too_old", "--raw", "--out", str(namespace.root / "old.jsonl"))
    assert len((namespace.root / "old.jsonl").read_bytes().splitlines()) == too_old, kept.stderr.decode()
    assert worker.process.poll() is None


def test_an_incident_day_live_shows_what_replay_shows_the_vital_few_churn_and_the_voice(namespace):
    """A day of a billing outage (hours 1 to 4), produced and judged live: the worker's impact (left after
    bad, the survey answers after good and bad, the churn lift) is a replay's, and it tells the story:
    bill-correct first in the replay's vital few, its customers leave more than others and answer lower.
    Customers impacted are distinct over each touchpoint's window, live (its /metrics gauge, and
    /touchpoints) as in a replay's outcomes over the same window; the vital few are one function's.
    (One UTC day: the live churn lift, customers counted once a day, is then the replay's.)"""
    day = namespace.root / "incident-day.jsonl"
    namespace.run(
        "simulate", "--out", str(day), "--duration", "1d", "--customers", "3000", "--seed", "41",
        "--scenario", "billing-outage-day", "--start", "2026-11-22T00:00:00Z",
    )  # fmt: skip
    namespace.run("produce", str(day))
    worker = namespace.worker()
    seen: dict = {}
    live_equals_replay(namespace, [worker], day, seen=seen)
    view, summary = seen["views"][0], seen["summary"]
    assert summary["vital_few"][0] == "bill-correct"
    bills = summary["touchpoints"]["bill-correct"]["impact"]
    churn = summary["customers"]["left"] / summary["journeys"]["total"]
    assert bills["churn_lift"] == pytest.approx(bills["left_after_bad"] / bills["customers_impacted"] / churn)
    assert view["touchpoints"]["bill-correct"]["impact"]["churn_lift"] == pytest.approx(bills["churn_lift"])
    nps = bills["voice"]["nps"]
    print(
        f"\nbill-correct: {bills['customers_impacted']} customers impacted, churn lift {bills['churn_lift']:.1f}; "
        f"nps mean {nps['after_good']['mean']:.2f} after good, {nps['after_bad']['mean']:.2f} after bad"
    )
    assert bills["churn_lift"] > 1 and nps["after_bad"]["mean"] < nps["after_good"]["mean"]
    window_customers_equal_replay(namespace, worker, day)


def window_customers_equal_replay(space: Namespace, worker: Worker, events) -> None:  # type: ignore[no-untyped-def]
    """The worker's distinct customers impacted in each touchpoint's window, as /touchpoints and its
    gauge tpmon_touchpoint_window_customers_impacted (summed over partitions) say them, are the
    distinct customers of a replay's bad outcomes whose instant is in that window, ending where each
    customer's partition has decided to; and /touchpoints' vital few is monitor.state.vital_few of its
    own states and figures. (The windows move with the watermark: asked until a view holds still.)"""
    from monitor.catalog import load_catalog
    from monitor.state import vital_few
    from streams.partitions import key_partition

    catalog = load_catalog(ROOT / "rules")
    journeys = space.root / "journeys.jsonl"

    def stable() -> tuple[dict, dict] | None:
        first = orjson.loads(worker.get("/touchpoints") or b"{}")
        gauge: dict[str, float] = {}
        for (name, labels), value in worker.metrics().items():
            if name == "tpmon_touchpoint_window_customers_impacted":
                touchpoint = dict(labels)["touchpoint"]
                gauge[touchpoint] = gauge.get(touchpoint, 0) + value
        then = orjson.loads(worker.get("/touchpoints") or b"{}")
        figures = {t: row["impact"]["customers_impacted"] for t, row in then.get("touchpoints", {}).items()}
        before = {t: row["impact"]["customers_impacted"] for t, row in first.get("touchpoints", {}).items()}
        if figures and figures == before == {t: round(gauge.get(t, 0)) for t in figures}:
            return then, figures
        return None

    view, figures = wait_until(stable, 60, "a view whose windows hold still")  # type: ignore[misc]
    decided = {int(p): parse_timestamp(at) for p, at in view["decided"].items()}
    space.run("replay", str(events), "--journeys", str(journeys), "--until", format_timestamp(max(decided.values())))
    bad: dict[str, set[str]] = {t: set() for t in catalog.ids}
    for line in journeys.read_bytes().splitlines():
        journey = orjson.loads(line)
        customer = journey["customer_id"]
        mark = decided[key_partition(customer.encode(), len(decided))]
        for outcome in journey["outcomes"]:
            t = catalog[outcome["touchpoint"]]
            at = parse_timestamp(outcome["at"])
            if outcome["outcome"] == "bad" and t.window.start(mark) <= at <= mark:  # type: ignore[operator]
                bad[t.id].add(customer)
    expected = {t: len(customers) for t, customers in bad.items()}
    print(f"distinct customers impacted in each window: {expected}")
    assert figures == expected
    assert sum(expected.values()) > 20  # (41 here: the windows end at midnight, after the outage)
    states = {t: row["state"] for t, row in view["touchpoints"].items()}
    assert view["vital_few"] == vital_few(states, figures)


@pytest.mark.longest
def test_a_worker_stopped_for_twice_the_lateness_then_restarted_equals_replay(namespace):
    """A live paced stream (event time = now) while the only worker is down for more than twice the
    default lateness (30 s): on its return the sources have a backlog, so none is idle, and nothing
    falls due before the backlog is read; every deadline comes out as a replay decides it."""
    first = namespace.worker()
    process, copy = simulate_live(namespace, seconds=70, rate=100, seed=23)
    wait_until(lambda: sum(sum(pair) for pair in first.outcomes().values()), 60, "the first outcome")
    assert first.stop(signal.SIGTERM) == 0
    stopped = time.monotonic()
    time.sleep(61)
    second = namespace.worker()
    print(f"the worker was down {time.monotonic() - stopped:.0f} s")
    finished(process, 180, "the simulator")
    expected = live_equals_replay(namespace, [second], copy)
    assert sum(g + b for g, b in expected.values()) > 300  # 774 in a run at 80 events/s here


def test_two_workers_one_killed_during_a_backfill_equals_replay(namespace):
    """Ten days of history waiting in Kafka when two workers start; they share the partitions, and
    one is killed in the middle of the backlog. The other takes its partitions over from the
    changelogs and the committed offsets and reads again what the killed one had not committed:
    nothing lost, nothing counted twice."""
    history = namespace.root / "history.jsonl"
    namespace.run(
        "simulate", "--out", str(history), "--duration", "10d", "--customers", "20000", "--seed", "32",
        "--start", "2026-11-01T00:00:00Z",
    )  # fmt: skip
    namespace.run("produce", str(history))
    victim, survivor = namespace.worker(wait=False), namespace.worker(wait=False)

    def sharing() -> bool:
        pages = [orjson.loads(w.get("/touchpoints") or b'{"partitions": []}') for w in (victim, survivor)]
        return all(len(page["partitions"]) == PARTITIONS // 2 for page in pages)

    wait_until(sharing, 90, "both workers to share the partitions", every=0.1)
    wait_until(lambda: _events_counted(victim) >= 2000, 120, "the victim to be judging the backlog", every=0.05)
    victim.stop(signal.SIGKILL)
    behind = group_lag(namespace.bootstrap, namespace.name, namespace.topics)
    print(f"killed with {behind:,} messages not committed")
    assert behind > 0, "the victim should die in the middle of the backlog"
    expected = live_equals_replay(namespace, [survivor], history)
    assert sum(g + b for g, b in expected.values()) > 10_000


def test_a_late_fortnight_beside_a_paced_stream_is_judged_as_history(namespace):
    """A paced live stream, and meanwhile a fortnight of other customers' history produced at once
    into the same topics: every history event is late (the stream's watermark is two weeks past it),
    yet it reaches what a replay of the events in time order reaches, starts and ends together; no
    late start is decided bad for the time that passed before it arrived, and the stream keeps its own
    outcomes (docs/SEMANTICS.md, "Late history"). The ids are kept long enough to judge it."""
    worker = namespace.worker(TPMON_DEDUP_RETENTION="20d")
    process, copy = simulate_live(namespace, seconds=40, rate=150, seed=51)
    wait_until(lambda: sum(sum(pair) for pair in worker.outcomes().values()), 60, "the first outcome")
    history = namespace.root / "history.jsonl"
    start = format_timestamp(time.time_ns() // 1000 - 15 * 86_400 * 10**6)
    namespace.run(
        "simulate", "--out", str(history), "--duration", "14d", "--customers", "1500", "--seed", "52",
        "--prefix", "h", "--start", start,
    )  # fmt: skip
    namespace.run("produce", str(history))
    finished(process, 180, "the simulator")
    lines = [*copy.read_bytes().splitlines(), *history.read_bytes().splitlines()]
    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in lines)
    seen: dict = {}
    expected = live_equals_replay(namespace, [worker], copy, inputs=[str(copy), str(history)], newest=newest, seen=seen)
    late = sum(v for (name, _), v in worker.metrics().items() if name == "tpmon_events_late_total")
    print(f"\n{late:.0f} events late of {len(history.read_bytes().splitlines())} in the history; replay: {expected}")
    assert late >= 0.9 * len(history.read_bytes().splitlines())
    # The history's deadlines are mostly met, as in its own replay: none was decided for want of its end.
    good, bad = expected["order-confirmed"]
    assert good > 1000 and bad < 0.05 * good
