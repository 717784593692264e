"""The live adapter without Kafka: per-customer records restore a crashed partition exactly."""

from __future__ import annotations

import dataclasses
import zlib

import orjson
import pytest

from monitor.durations import parse_duration
from monitor.events import Event, format_timestamp, parse_timestamp
from monitor.replay import Replay
from monitor.simulate import Simulation
from monitor.watermark import Report
from monitor.window import parse_window
from streams.partitions import IN_MEMORY as IN_MEMORY_DEFAULT
from streams.partitions import Item, MemoryStore, Partitions
from streams.views import Views
from tests.builders import DiskStores, MemoryStores, decode

PARTITIONS = 3
INPUT = "orders/0"


def partition_of(customer: str) -> int:
    return zlib.crc32(customer.encode()) % PARTITIONS


# The quiet customers held in memory: the default, and so few that nearly every customer is unloaded
# between its events (put back from its record at the next one): both judge alike.
IN_MEMORY = pytest.mark.parametrize(
    "in_memory", [IN_MEMORY_DEFAULT, 3], ids=["quiet customers held", "quiet customers unloaded"]
)


def new(catalog, customers, journeys, retention="24h", in_memory=IN_MEMORY_DEFAULT):  # type: ignore[no-untyped-def]
    return Partitions(catalog, customers, journeys, retention=parse_duration(retention), in_memory=in_memory)


def batches(lines: list[bytes], size: int) -> list[list[Item]]:
    """The events topic as ingest writes it, in batches: each event to its customer's partition (with
    where ingest read it: the one input, at the line's number), then a report of the input's progress
    to every partition; each message at its offset in its partition."""
    out, progress = [], None
    offsets = [0] * PARTITIONS

    def placed(partition: int, item: Event | Report, at_source: int) -> Item:
        offsets[partition] += 1
        name = None if type(item) is Report else INPUT
        return (partition, offsets[partition] - 1, item, name, at_source)

    for start in range(0, len(lines), size):
        batch: list[Item] = []
        for number, line in enumerate(lines[start : start + size], start):
            event = decode(line, "orders")
            batch.append(placed(partition_of(event.customer), event, number))
            progress = event.at if progress is None else max(progress, event.at)
        report = Report(0, {INPUT: (progress, False, 0)}, (INPUT,))
        batch.extend(placed(partition, report, -1) for partition in range(PARTITIONS))
        out.append(batch)
    return out


def reports(report: Report) -> list[Item]:
    return [(partition, None, report, None, -1) for partition in range(PARTITIONS)]


def finish(live: Partitions) -> None:
    """The end of the input, as replay's: every partition's watermark to the largest event time."""
    newest = max((engine.state.max_at or 0) for engine in live.engines.values())
    for partition in range(PARTITIONS):
        part = live.partition(partition)
        live._settle(part, part.judging.advance(newest))  # (the customers away and due put back first)


def events_counted(live: Partitions) -> dict[str, float]:
    """What the partitions counted of the events: accepted, duplicates, late."""
    found = {"accepted": 0.0, "duplicates": 0.0, "late": 0.0}
    for part in live.owned.values():
        for key, amount in part.counts.items():
            if key[0] == "events":
                found["accepted"] += amount
            elif key[0] in ("duplicates", "late"):
                found[key[0]] += amount
    return found


def replayed_counts(catalog, lines):  # type: ignore[no-untyped-def]
    replay = Replay(catalog)
    replay.feed(lines)
    summary = replay.finish()
    return {t: (r["good"], r["bad"]) for t, r in summary["touchpoints"].items()}, summary


def impacted_in_windows(catalog, lines):  # type: ignore[no-untyped-def]
    """Per touchpoint, the distinct customers with a bad outcome whose instant is in the touchpoint's
    window at the end of a replay of ``lines`` (what the live partitions say once finished)."""
    bad: list = []
    replay = Replay(catalog, on_outcome=lambda outcome: bad.append(outcome) if not outcome.good else None)
    replay.feed(lines)
    replay.finish()
    end = replay.engine.state.watermark
    found = dict.fromkeys(catalog.ids, 0)
    for t in catalog.touchpoints:
        start = t.window.start(end)
        found[t.id] = len({o.customer for o in bad if o.touchpoint == t.id and start <= o.at <= end})
    return found


def crash_scenario(catalog, monkeypatch):  # type: ignore[no-untyped-def]
    """What the crash tests judge: 350 simulated customers over 30 hours in batches of 40, the catalog's
    attribution a day; and a replay's counts and summary of it."""
    catalog = dataclasses.replace(
        catalog, attribution_left=parse_duration("1d"), attribution_surveys=parse_duration("1d")
    )
    # Retention reads the customers and journeys in the store a few at a time (as it reads 20,000 of a
    # million), so that its reading of a store goes on across sweeps, deliveries and crashes.
    monkeypatch.setattr("streams.partitions.SWEEP_AT_ONCE", 5)
    lines = list(Simulation(customers=350, duration=parse_duration("30h"), seed=8).lines())
    expected, summary = replayed_counts(catalog, lines)
    return catalog, batches(lines, 40), expected, summary


@IN_MEMORY
def test_a_crash_at_any_point_loses_and_doubles_nothing(catalog, stores, in_memory, monkeypatch):
    """The stores keep a prefix of what was written (Kafka keeps a partition's order); the batch that
    was being written comes again. Customers are freed along the way (a short retention), so the
    partitions' records and the freeing of customers are cut through too. (A customer's outcomes are
    kept for the attribution window, a day here: the simulation runs for more than a day, and the retention is longer
    than a batch spans, as it must be for a batch that comes again to be recognised.)"""
    catalog, work, expected, summary = crash_scenario(catalog, monkeypatch)

    def judge(live: Partitions, mine: MemoryStores | DiskStores, numbers: range) -> None:
        """The batches ``numbers``, each delivered when the next comes, with the sweep before it if any."""
        for number in numbers:
            if number % 5 == 4:
                live.forget()  # a sweep: its writes land before the next batch's
            mine.deliver()
            live.handle_batch(work[number])

    for cut_batch in (3, 24, 49, len(work) - 2):  # 24 and 49: a sweep was being written too
        crashing = stores(PARTITIONS)
        live = new(catalog, crashing.customers, crashing.journeys, retention="1h", in_memory=in_memory)
        judge(live, crashing, range(cut_batch))
        if cut_batch % 5 == 4:
            live.forget()
        # The delivery of the batch before (and of the sweep) cut short, the broker having stored this much:
        for fraction in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99):
            mine = crashing.crashed(customers=fraction)
            live = new(catalog, mine.customers, mine.journeys, retention="1h", in_memory=in_memory)
            live.handle_batch(work[cut_batch - 1])  # not committed: it comes again
            mine.deliver()
            live.handle_batch(work[cut_batch])
            judge(live, mine, range(cut_batch + 1, len(work)))
            finish(live)
            counts = {t: tuple(c) for t, c in Views(live).counts().items()}
            assert counts == expected, (cut_batch, fraction)
            # What was read again is neither counted again nor taken for a duplicate of the stream.
            events = summary["events"]
            wanted = {"accepted": events["accepted"], "duplicates": events["duplicates"], "late": events["late"]}
            assert events_counted(live) == wanted, (cut_batch, fraction)
    assert sum(g + b for g, b in expected.values()) > 500
    freed = sum(sum(map(sum, engine.folded.values())) for engine in live.engines.values())
    assert freed > 0  # customers were freed, their counts kept
    assert sum(Views(live).pending_counts().values()) == sum(r["pending"] for r in summary["touchpoints"].values())


def wrong_bill(customer: str, at: int, name: str) -> tuple[int, bytes]:
    """A bill.issued line whose amount is not the expected one (bill-correct: bad)."""
    event = {"event_id": f"wrong-{name}", "type": "bill.issued", "customer_id": customer,
             "occurred_at": format_timestamp(at), "bill_id": f"b-{name}", "amount": 10, "expected_amount": 12}  # fmt: skip
    return at, orjson.dumps(event)


@IN_MEMORY
def test_distinct_customers_impacted_in_each_window_survive_crashes_and_count_nobody_twice(catalog, stores, in_memory):
    """A billing outage: customers with several wrong bills, in several buckets of the window. Live,
    each partition counts a customer once, in the bucket of its latest bad outcome; after a crash at any
    point (the batch being written comes again) and a batch delivered twice, the partitions' distinct
    customers impacted in each touchpoint's window are what a replay's outcomes give."""
    lines = list(Simulation(customers=300, duration=parse_duration("50m"), seed=3, scenario="billing-outage").lines())
    start = parse_timestamp(orjson.loads(lines[0])["occurred_at"])
    # Five customers with a wrong bill in four buckets of bill-correct's window (5 minutes each), each
    # in its place in time; and an older wrong bill of the first one last: late history.
    extra = {
        (minute, f"x{n}"): wrong_bill(f"x{n}", start + minute * 60_000_000, f"{n}-{minute}")
        for n in range(5)
        for minute in (12, 22, 33, 44)
    }
    timed = [(parse_timestamp(orjson.loads(line)["occurred_at"]), line) for line in lines]
    timed += [(at, line) for (_, _), (at, line) in extra.items()]
    timed.sort(key=lambda pair: pair[0])
    lines = [line for _, line in timed] + [wrong_bill("x0", start + 5 * 60_000_000, "late")[1]]
    work = batches(lines, 40)
    impacted = impacted_in_windows(catalog, lines)
    assert impacted["bill-correct"] > 15
    for cut_batch in (5, len(work) // 2, len(work) - 2):
        for fraction in (0.0, 0.4, 0.9):
            mine = stores(PARTITIONS)
            live = new(catalog, mine.customers, mine.journeys, in_memory=in_memory)
            for number, batch in enumerate(work):
                if number == cut_batch:  # the delivery of the batch before cut short
                    mine = mine.crashed(customers=fraction)
                    live = new(catalog, mine.customers, mine.journeys, in_memory=in_memory)
                    live.handle_batch(work[number - 1])  # not committed: it comes again
                mine.deliver()
                live.handle_batch(batch)
                if number == 3:
                    live.handle_batch(batch)  # delivered twice: accounted for already
            finish(live)
            assert Views(live).customers_impacted() == impacted, (cut_batch, fraction)
    # More bad outcomes than customers: a customer is counted once however many it had.
    assert Views(live).counts()["bill-correct"][1] > impacted["bill-correct"]


@IN_MEMORY
def test_the_same_events_again_are_duplicates_wherever_they_sit(catalog, stores, in_memory):
    """A redelivered event is a duplicate whether its first copy is decided or still queued."""
    lines = list(Simulation(customers=200, duration=parse_duration("2h"), seed=5).lines())
    mine = stores(PARTITIONS)
    live = new(catalog, mine.customers, mine.journeys, in_memory=in_memory)
    work = batches(lines, 30)
    for batch in work:
        live.handle_batch(batch)
        mine.deliver()
    on_disk = sum(part.on_disk for part in live.owned.values())
    assert on_disk > 50 if in_memory == 3 else on_disk == 0  # (unloaded, then put back by their copies)
    end = max(offset for batch in work for _, offset, *_ in batch) + 1
    for batch in work:  # the whole history once more, produced again: further on, from another input
        again = [(p, o + end, item, name and "orders/1", at) for p, o, item, name, at in batch]  # type: ignore[operator]
        assert live.handle_batch(again) == ([], [], [])
        mine.deliver()
    finish(live)
    expected, summary = replayed_counts(catalog, lines)
    assert {t: tuple(c) for t, c in Views(live).counts().items()} == expected
    assert events_counted(live)["duplicates"] == len(lines) + summary["events"]["duplicates"]


def test_a_partition_is_built_from_its_own_records_only(catalog):
    customers, journeys = MemoryStore(), MemoryStore()
    live = new(catalog, customers, journeys)
    for batch in batches(list(Simulation(customers=60, seed=3).lines()), 50):
        live.handle_batch(batch)
    read: list[int] = []
    items = customers.items

    def counted(partition):  # type: ignore[no-untyped-def]
        read.append(partition)
        return items(partition)

    customers.items = counted  # type: ignore[method-assign]
    again = new(catalog, customers, journeys)
    engine = again.engine(1)
    assert read == [1]
    assert set(engine.state.customers) == {c for c in live.engines[1].state.customers}
    assert Views(again).watermarks()[1] == Views(live).watermarks()[1] is not None


def at_watermark(live: Partitions, watermark: int) -> None:
    """Reports that bring every partition's watermark to ``watermark``, then a retention sweep."""
    report = Report(0, {INPUT: (watermark + live.lateness, False, 0)}, (INPUT,))
    live.handle_batch(reports(report))
    live.forget()


def test_records_name_their_partition_and_journeys_are_the_published_format(catalog):
    customers, journeys = MemoryStore(), MemoryStore()
    live = new(catalog, customers, journeys)
    event = decode(next(iter(Simulation(customers=1, seed=2).lines())), "orders")
    live.handle(2, event)
    record = orjson.loads(customers.get(event.customer))
    assert record["partition"] == 2 and record["seen"][0][0] == event.id
    journey = orjson.loads(journeys.get(event.customer))
    assert journey["customer_id"] == event.customer and journey["events"][0]["event_id"] == event.id


def test_journeys_beyond_the_cache_are_read_back_whole_and_still_expire(catalog):
    lines = list(Simulation(customers=200, duration=parse_duration("2h"), seed=4).lines())
    kept, cached = MemoryStore(), MemoryStore()
    day = parse_duration("24h")
    small = Partitions(catalog, MemoryStore(), kept, retention=day, journey_cache=2 * PARTITIONS, journey_age=day)
    large = Partitions(catalog, MemoryStore(), cached, retention=day, journey_age=day)
    for batch in batches(lines, 25):
        small.handle_batch(batch)
        large.handle_batch(batch)
    # The cache is the worker's, shared by the partitions it owns.
    assert len(small.owned) == PARTITIONS and all(len(part.journeys) <= 2 for part in small.owned.values())
    assert kept.data == cached.data  # every journey complete, whether it stayed in memory or not

    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in lines)
    # After everything (outcomes too, decided up to 14 days on): every journey expires, cached or not.
    at_watermark(small, newest + 40 * day)
    assert kept.data == {}


def an_hour_judged(catalog, customers: int, seed: int, batch: int):  # type: ignore[no-untyped-def]
    """An hour of simulated events judged on memory stores that keep ids and journeys for an hour."""
    lines = list(Simulation(customers=customers, duration=parse_duration("1h"), seed=seed).lines())
    stores = MemoryStore(), MemoryStore()
    hour = parse_duration("1h")
    live = Partitions(catalog, *stores, retention=hour, journey_age=hour)
    for items in batches(lines, batch):
        live.handle_batch(items)
    return live, *stores, lines


def test_journeys_and_customers_go_by_the_watermark_not_the_wall_clock(catalog):
    """Retention is in event time: a backfill of last year keeps its ids and journeys as long as the
    watermark says, and a restarted worker expires the journeys it never sees again."""
    hour = parse_duration("1h")
    before, customers, journeys, lines = an_hour_judged(catalog, customers=50, seed=8, batch=20)
    before.forget()
    stored = set(journeys.data)
    assert len(stored) == 50 and customers.data  # nothing is older than an hour of event time

    after = Partitions(catalog, customers, journeys, retention=hour, journey_age=hour)  # restarted
    for partition in range(PARTITIONS):
        after.engine(partition)
    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in lines)
    at_watermark(after, newest + parse_duration("30m"))  # only the journeys quiet for the last half hour go
    left = set(journeys.data)
    assert left and left < stored
    assert all(
        parse_timestamp(orjson.loads(journeys.data[c])["last_at"]) >= newest - parse_duration("30m") for c in left
    )
    at_watermark(after, newest + parse_duration("40d"))  # past every due time, and an hour more
    assert journeys.data == {}
    open_left = sum(len(engine.state.customers) for engine in after.engines.values())
    assert open_left == 0 and customers.data == {}  # every customer freed: only the partitions' records stay
    assert len(customers.states) == PARTITIONS


def test_a_backfill_between_two_sweeps_keeps_two_windows_of_buckets_in_the_partitions_record(catalog):
    """A backfill judges days of history between two sweeps (a minute of the wall clock): each record
    of a partition keeps its state windows' buckets from a window before the one of what is decided
    on, not the whole history read so far (a fortnight's made the demo's record 665 KB, written at
    every batch). What the windows sum is that of a replay all the same."""
    lines = list(Simulation(customers=150, duration=parse_duration("3d"), seed=5).lines())
    customers = MemoryStore()
    live = Partitions(catalog, customers, MemoryStore(), retention=parse_duration("24h"))
    oldest_kept = {}
    for items in batches(lines, 100):
        live.handle_batch(items)
        for part in live.owned.values():
            mark = part.engine.mark()
            for key in orjson.loads(customers.states[part.number])["counts"]:
                if key[0] in ("window", "impacted"):
                    window = catalog[key[1]].window
                    assert int(key[2]) >= window.start(window.start(mark) - 1), key
                    oldest_kept[key[1]] = min(oldest_kept.get(key[1], float("inf")), mark - int(key[2]))
    spans = {t.id: t.window.span for t in catalog.touchpoints}
    assert any(spans[t] < parse_duration("1d") for t in oldest_kept)  # (windows the three days pass many times)
    assert all(oldest_kept[t] <= 3 * spans[t] for t in oldest_kept if spans[t] is not None)
    finish(live)
    assert Views(live).customers_impacted() == impacted_in_windows(catalog, lines)


def test_dicts_are_rebuilt_once_most_of_their_customers_are_freed(catalog, monkeypatch):
    """A dict keeps the room it grew to: once a partition holds less than half of the most it held,
    its dicts (and the stores') are rebuilt, so memory follows the customers held, not the peak."""
    monkeypatch.setattr("streams.partitions.COMPACT_FROM", 10)
    live, customers, journeys, lines = an_hour_judged(catalog, customers=200, seed=9, batch=50)
    assert live.forget() is False  # nothing freed yet: nothing rebuilt
    held = {partition: engine.state.customers for partition, engine in live.engines.items()}
    cached = {partition: part.journeys.by_customer for partition, part in live.owned.items()}
    data = customers.data
    newest = max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in lines)
    report = Report(0, {INPUT: (newest + parse_duration("40d") + live.lateness, False, 0)}, (INPUT,))
    live.handle_batch(reports(report))
    assert live.forget() is True
    assert all(live.engines[partition].state.customers is not mine for partition, mine in held.items())
    assert all(live.owned[partition].journeys.by_customer is not mine for partition, mine in cached.items())
    assert customers.data is not data and customers.data == {} and journeys.data == {}
    assert Views(live).customers_held() == dict.fromkeys(range(PARTITIONS), 0)


def test_the_latest_stories_of_a_touchpoint_are_its_latest_customers_hurt(catalog):
    """/stories/TOUCHPOINT: the latest customers with a bad outcome of it, newest first, each once, with
    its story and where its journey is."""
    from tests.builders import event

    live = new(catalog, MemoryStore(), MemoryStore())
    wrong = {"amount": 12.0, "expected_amount": 10.0}
    bills = [
        event("bill.issued", 0, customer="ann", bill_id="b1", **wrong),
        event("bill.issued", 10, customer="bob", bill_id="b2", **wrong),
        event("bill.issued", 20, customer="cat", bill_id="b3"),  # a good one: no story
        event("bill.issued", 30, customer="ann", bill_id="b4", **wrong),
    ]
    live.handle_batch([(partition_of(e.customer), None, e, None, -1) for e in bills])
    stories = Views(live).latest_stories("bill-correct")
    assert [s["customer_id"] for s in stories] == ["ann", "bob"]
    assert stories[0]["journey"] == "/journeys/ann" and stories[0]["story"].endswith("=> bill-correct BAD")
    assert "bill.issued (bill b1: 12.00 billed, 10.00 expected)" in stories[0]["story"]  # the catalog's story:
    assert Views(live).latest_stories("call-answered") == []


def test_what_ingest_reads_again_is_not_a_duplicate_of_the_stream(catalog, stores):
    """After a restart or a rebalance ingest reads an input again from its last commit: the copies it
    sends (further on in the events topic, from the same input offsets) change nothing and count
    nothing; the stream's own duplicates still count, once."""
    lines = list(Simulation(customers=100, duration=parse_duration("1h"), seed=6).lines())
    mine = stores(PARTITIONS)
    live = new(catalog, mine.customers, mine.journeys)
    work = batches(lines, 25)
    for batch in work:
        live.handle_batch(batch)
        mine.deliver()
    end = max(offset for batch in work for _, offset, *_ in batch) + 1
    for batch in work[len(work) // 2 :]:  # the second half read again by ingest
        assert live.handle_batch([(p, o + end, item, name, at) for p, o, item, name, at in batch]) == ([], [], [])
        mine.deliver()
    finish(live)
    expected, summary = replayed_counts(catalog, lines)
    assert {t: tuple(c) for t, c in Views(live).counts().items()} == expected
    wanted = {key: summary["events"][key] for key in ("accepted", "duplicates", "late")}
    assert events_counted(live) == wanted and summary["events"]["duplicates"] > 0


@IN_MEMORY
def test_a_late_history_beside_a_live_stream_is_judged_as_history(catalog, stores, in_memory):
    """A stream judged as it comes (its reports' wall clock following event time), then a fortnight of
    other customers' history produced into the same input at once: every late start waits for the
    events that came with it, so the history reaches what a replay of it reaches, the stream keeps
    its own outcomes, and nothing is decided bad for the passage of time alone."""
    live_lines = list(Simulation(customers=300, duration=parse_duration("2h"), seed=11).lines())
    old = Simulation(customers=300, duration=parse_duration("14d"), seed=12, prefix="h", start="2026-11-06T08:00:00Z")
    history = list(old.lines())
    mine = stores(PARTITIONS)
    live = new(catalog, mine.customers, mine.journeys, retention="30d", in_memory=in_memory)  # (ids kept to judge it)
    offsets = [0] * PARTITIONS
    progress = history_progress = None

    def send(lines: list[bytes], now: int, first: int, caught_up: bool = True, history: bool = False) -> None:
        nonlocal progress, history_progress
        batch: list[Item] = []
        for number, line in enumerate(lines, first):
            event = decode(line, "orders")
            partition = partition_of(event.customer)
            batch.append((partition, offsets[partition], event, INPUT, number))
            offsets[partition] += 1
            if history:  # as ingest says: history behind the input's own stream
                history_progress = event.at if history_progress is None else max(history_progress, event.at)
            else:
                progress = event.at if progress is None else max(progress, event.at)
        report = Report(now, {INPUT: (progress, False, now, caught_up, history_progress)}, (INPUT,))
        for partition in range(PARTITIONS):
            batch.append((partition, offsets[partition], report, None, -1))
            offsets[partition] += 1
        live.handle_batch(batch)
        mine.deliver()

    for start in range(0, len(live_lines), 50):  # the stream, as it happens
        chunk = live_lines[start : start + 50]
        send(chunk, max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in chunk), start)
    now = progress
    for start in range(0, len(history), 500):  # the history, all at once: a backlog until its last batch
        last = start + 500 >= len(history)
        send(history[start : start + 500], now, len(live_lines) + start, caught_up=last, history=True)
        assert all(part.engine.mark() < now - parse_duration("1h") for part in live.owned.values())
    history_progress = None  # read, and quiet of it for the lateness: no history delivered any more
    send([], now + 2 * live.lateness, 0)
    assert all(part.engine.state.held is None for part in live.owned.values())
    finish(live)
    everything = sorted(live_lines + history, key=lambda line: orjson.loads(line)["occurred_at"])
    expected, _ = replayed_counts(catalog, everything)
    assert {t: tuple(c) for t, c in Views(live).counts().items()} == expected
    assert sum(g + b for g, b in expected.values()) > 2000
    assert events_counted(live)["late"] > len(history) * 0.9  # late, all the same: judged as history


@IN_MEMORY
def test_a_late_history_in_two_topics_waits_for_the_topic_read_last(catalog, stores, in_memory):
    """A fortnight of history produced at once into two topics, orders and calls, beside a live stream:
    orders' part is read whole, then calls' backlog takes minutes of wall clock to read. The win-back
    calls that end the history's leavers are in that backlog, so nothing of the history is decided
    until calls has caught up too: it reaches what a replay of every event in time order reaches, and
    no leaver is missed for the minutes its calls waited in Kafka."""
    live_lines = list(Simulation(customers=300, duration=parse_duration("2h"), seed=11).lines())
    history = list(
        Simulation(
            customers=600, duration=parse_duration("14d"), seed=13, prefix="h", start="2026-11-06T08:00:00Z"
        ).lines()
    )
    calls = [line for line in history if orjson.loads(line)["type"].startswith("call.")]
    orders = [line for line in history if not orjson.loads(line)["type"].startswith("call.")]
    mine = stores(PARTITIONS)
    live = new(catalog, mine.customers, mine.journeys, retention="30d", in_memory=in_memory)  # (ids kept to judge it)
    names = ("orders/0", "calls/0")
    offsets = [0] * PARTITIONS
    progress: dict[str, int | None] = {name: None for name in names}
    behind: dict[str, int | None] = {name: None for name in names}  # the history each delivers
    first = 0

    def send(lines: list[tuple[str, bytes]], now: int, caught_up: dict[str, bool], late: bool = False) -> None:
        nonlocal first
        batch: list[Item] = []
        for name, line in lines:
            event = decode(line, name.split("/")[0])
            partition = partition_of(event.customer)
            batch.append((partition, offsets[partition], event, name, first))
            offsets[partition] += 1
            first += 1
            mark = behind if late else progress
            mark[name] = event.at if mark[name] is None else max(mark[name], event.at)  # type: ignore[type-var]
        said = {name: (progress[name], False, now, caught_up[name], behind[name]) for name in names}
        for partition in range(PARTITIONS):
            batch.append((partition, offsets[partition], Report(now, said, names), None, -1))
            offsets[partition] += 1
        live.handle_batch(batch)
        mine.deliver()

    both = {name: True for name in names}
    for start in range(0, len(live_lines), 50):  # the stream, as it happens, each type from its topic
        chunk = live_lines[start : start + 50]
        tagged = [(names[orjson.loads(line)["type"].startswith("call.")], line) for line in chunk]
        send(tagged, max(parse_timestamp(orjson.loads(line)["occurred_at"]) for line in chunk), both)
    now = max(p for p in progress.values() if p is not None)
    reading = {"orders/0": False, "calls/0": False}
    for start in range(0, len(orders), 500):  # orders' part, all at once; calls waits its turn
        reading["orders/0"] = start + 500 >= len(orders)
        send([("orders/0", line) for line in orders[start : start + 500]], now, reading, late=True)
    behind["orders/0"] = None
    for _ in range(4):  # four minutes pass, orders caught up and quiet of history; calls still behind
        now += 60 * 1_000_000
        send([], now, reading)
    assert all(part.engine.mark() < parse_timestamp("2026-11-07T00:00:00Z") for part in live.owned.values())
    for start in range(0, len(calls), 500):
        reading["calls/0"] = start + 500 >= len(calls)
        send([("calls/0", line) for line in calls[start : start + 500]], now, reading, late=True)
    behind["calls/0"] = None
    send([], now + 2 * live.lateness, both)
    assert all(part.engine.state.held is None for part in live.owned.values())
    finish(live)
    everything = sorted(live_lines + history, key=lambda line: orjson.loads(line)["occurred_at"])
    expected, _ = replayed_counts(catalog, everything)
    assert {t: tuple(c) for t, c in Views(live).counts().items()} == expected
    assert sum(expected["winback-call"]) > 5


@IN_MEMORY
def test_two_crashes_in_a_row_lose_and_double_nothing(catalog, stores, in_memory):
    """A crash cuts a batch's writes; the worker that takes over reads it again together with the next
    batch (one fetch), and a second crash cuts that: what the first crash's records counted is carried
    into the records written after it, and counted once whatever survives."""
    lines = list(Simulation(customers=200, duration=parse_duration("3h"), seed=9).lines())
    work = batches(lines, 30)
    expected, summary = replayed_counts(catalog, lines)
    wanted = {key: summary["events"][key] for key in ("accepted", "duplicates", "late")}
    for first, second in ((0.5, 0.5), (0.9, 0.3), (0.2, 0.95)):
        mine = stores(PARTITIONS)
        live = new(catalog, mine.customers, mine.journeys, in_memory=in_memory)
        cut_at = len(work) // 2
        for number, batch in enumerate(work):
            if number == cut_at:  # (the journeys' changelog keeps every write: the customers' are cut)
                mine = mine.crashed(customers=first, journeys=1.0)
                live = new(catalog, mine.customers, mine.journeys, in_memory=in_memory)
                live.handle_batch(work[number - 1] + batch)  # read again, with the next, in one fetch
                mine = mine.crashed(customers=second, journeys=1.0)
                live = new(catalog, mine.customers, mine.journeys, in_memory=in_memory)
                live.handle_batch(work[number - 1] + batch)
                mine.deliver()
                continue
            mine.deliver()
            live.handle_batch(batch)
        finish(live)
        assert {t: tuple(c) for t, c in Views(live).counts().items()} == expected, (first, second)
        assert events_counted(live) == wanted, (first, second)


def test_a_touchpoint_new_or_changed_warms_up_from_when_it_is_judged_so(catalog):
    """A restart keeps each touchpoint's first data; one whose window changed (or that is new to the
    catalog) counts it from the restored watermark, not from the partition's first data: its window
    holds nothing older (and a new no_repeat would hold only its misses)."""
    customers, journeys = MemoryStore(), MemoryStore()
    live = new(catalog, customers, journeys)
    for batch in batches(list(Simulation(customers=60, seed=3).lines()), 50):
        live.handle_batch(batch)
    first = live.engines[1].state.min_at
    assert first is not None and live.partition(1).firsts()["bill-correct"] == first
    again = new(catalog, customers, journeys)
    again.engine(1)
    assert again.partition(1).firsts()["bill-correct"] == first  # read back, not moved to now
    week = dataclasses.replace(catalog["bill-correct"], window=parse_window("7d"))
    changed = dataclasses.replace(
        catalog, touchpoints=tuple(week if t.id == "bill-correct" else t for t in catalog.touchpoints)
    )
    moved = new(changed, customers, journeys)
    moved.engine(1)
    firsts = moved.partition(1).firsts()
    assert firsts["bill-correct"] == live.engines[1].state.watermark > first
    assert firsts["order-confirmed"] == first
