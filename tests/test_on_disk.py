"""Quiet customers unloaded to the store (streams.partitions, "Customers on disk"): never at a moment
that would make a figure untrue."""

from __future__ import annotations

import orjson

import streams.partitions as partitions_module
from monitor.durations import parse_duration
from monitor.watermark import Report
from streams.partitions import MemoryStore, Partitions
from streams.views import Views
from tests.builders import BASE, event

DAY = 86_400 * 1_000_000


def bill(customer: str, at: int, name: str, good: bool = False):  # type: ignore[no-untyped-def]
    return event("bill.issued", at, customer, bill_id=name, amount=10.0 if good else 12.0, expected_amount=10.0)


def new(catalog, customers, journeys, in_memory):  # type: ignore[no-untyped-def]
    return Partitions(catalog, customers, journeys, retention=parse_duration("24h"), in_memory=in_memory)


def test_no_customer_is_unloaded_while_retention_frees_them(catalog, monkeypatch, stores):
    """Retention frees a chunk at a time and writes each chunk; the share of memory halving meanwhile (a
    partition more) must not unload the customers the pass has not reached: it would fold the counts
    of a copy, or delete a live record."""
    monkeypatch.setattr(partitions_module, "FREE_AT_ONCE", 1)
    mine = stores()
    live = new(catalog, mine.customers, mine.journeys, in_memory=4)
    live.handle_batch([(0, n, bill(c, 0, f"b{c}"), "in", n) for n, c in enumerate(("f", "a1", "a2"))])
    mine.deliver()
    live.handle_batch([(0, 10, Report(0, {"in": (BASE + 400 * DAY, False, 0)}, ("in",)), None, -1)])
    assert Views(live).counts()["bill-correct"] == [0, 3]
    live.adopt([1])  # a partition more: the share of each halves
    live.forget()
    mine.deliver()
    assert live.failures == []
    assert Views(live).counts()["bill-correct"] == [0, 3] and Views(live).customers_held() == {0: 0, 1: 0}
    restarted = mine.crashed()  # (with nothing under way: a restart, from what the changelogs hold)
    again = new(catalog, restarted.customers, restarted.journeys, 4)
    again.adopt([0])
    assert Views(again).counts()["bill-correct"] == [0, 3]


class FailingStore(MemoryStore):
    """A store that refuses to write c1's record while ``fail`` is set."""

    fail = False

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        if self.fail and key == "c1" and value is not None:
            raise OSError("disk full")
        super().put(partition, key, value)


def test_a_customer_whose_record_could_not_be_written_stays_in_memory(catalog):
    """Its stored record says less than its state: unloaded, it would come back without what the
    record missed (the event it judged could be judged again)."""
    customers, journeys = FailingStore(), MemoryStore()
    live = new(catalog, customers, journeys, in_memory=1)
    live.handle_batch([(0, 0, bill("c1", 0, "b1"), "in", 0)])
    customers.fail = True
    second = bill("c1", 1, "b2")
    handled = live.handle_batch([(0, 1, second, "in", 1), (0, 2, bill("c2", 2, "b3", good=True), "in", 2)])
    customers.fail = False
    assert [failure.stage for _, failure in handled.failed] == ["record"]
    part = live.partition(0)
    assert "c1" in part.engine.state.customers  # not unloaded, though beyond the share
    live.handle_batch([(0, 3, second, "in2", 0)])  # the same event again, from another input: a duplicate
    assert Views(live).counts()["bill-correct"] == [1, 2]
    assert orjson.loads(customers.get("c1"))["seen"]  # written once it could be (the duplicate changed nothing)


def test_retention_puts_back_only_the_customers_on_disk_it_has_something_to_drop_from(catalog, monkeypatch, stores):
    """Retention reads the customers on disk and puts one back in memory only when ids, marks or active
    days of its record are old enough to go: a customer held for its marks stays on disk until they
    are, then is freed. (Putting back every quiet customer at each sweep, to drop nothing, would make
    memory grow and shrink with them for nothing.) They are put back a piece at a time, each piece gone
    from memory again before the next comes."""
    monkeypatch.setattr(partitions_module, "PUT_BACK_AT_ONCE", 1)
    mine = stores()
    live = new(catalog, mine.customers, mine.journeys, in_memory=1)
    live.handle_batch([(0, n, bill(c, 0, f"b{c}"), "in", n) for n, c in enumerate(("a", "b", "c"))])
    mine.deliver()
    part = live.partition(0)
    put_back: list[str] = []
    in_memory: list[int] = []  # at each put back, the customers in memory before it
    load = part.engine.load

    def spied(customer, *args, **kwargs):  # type: ignore[no-untyped-def]
        put_back.append(customer)
        in_memory.append(len(part.engine.state.customers))
        return load(customer, *args, **kwargs)

    monkeypatch.setattr(part.engine, "load", spied)

    def sweep_at(at: int) -> list[str]:
        live.handle_batch([(0, at // DAY, Report(0, {"in": (at, False, 0)}, ("in",)), None, -1)])
        mine.deliver()
        put_back.clear()
        live.forget()
        mine.deliver()
        assert live.failures == []
        return sorted(put_back)

    assert part.on_disk == 2  # (one customer in memory: the others on disk)
    assert sweep_at(BASE + 2 * DAY) == ["a", "b"]  # their ids are older than the retention: they go
    assert in_memory == [1, 1] and part.on_disk == 2  # one at a time, each back on disk after
    kept = orjson.loads(mine.customers.get("a"))
    assert kept["seen"] == [] and kept["recent"]  # held for its marks (attribution)
    assert sweep_at(BASE + 3 * DAY) == []  # nothing of theirs is old enough to go: they stay on disk
    assert Views(live).customers_held() == {0: 3}
    assert sweep_at(BASE + 400 * DAY) == ["a", "b"]  # their marks are: they are put back and freed
    assert Views(live).customers_held() == {0: 0}
    assert Views(live).counts()["bill-correct"] == [0, 3]


def test_a_sweep_puts_back_at_most_its_share_and_the_next_goes_on_from_there(catalog, monkeypatch, stores):
    """What a sweep puts back is bounded (its records wait in memory for their delivery, and the sweep
    holds up the partition's events); the next sweep reads on from where it stopped."""
    monkeypatch.setattr(partitions_module, "PUT_BACK_PER_SWEEP", 1)
    mine = stores()
    live = new(catalog, mine.customers, mine.journeys, in_memory=1)
    live.handle_batch([(0, n, bill(c, 0, f"b{c}"), "in", n) for n, c in enumerate(("a", "b", "c"))])
    live.handle_batch([(0, 3, Report(0, {"in": (BASE + 2 * DAY, False, 0)}, ("in",)), None, -1)])
    mine.deliver()
    part = live.partition(0)
    put_back: list[str] = []
    load = part.engine.load
    monkeypatch.setattr(
        part.engine, "load", lambda customer, *a, **k: (put_back.append(customer), load(customer, *a, **k))[1]
    )
    read: list[str] = []  # the stored customers the sweeps read
    get = mine.customers.get
    monkeypatch.setattr(mine.customers, "get", lambda customer, *a: (read.append(customer), get(customer, *a))[1])
    each = []
    for _ in range(3):
        live.forget()
        mine.deliver()
        each.append((len(put_back), len(read)))
    # One put back a sweep, and each record read once: the second sweep does not read the first's again.
    assert each == [(1, 1), (2, 2), (2, 2)] and sorted(put_back) == ["a", "b"] and live.failures == []
    assert [orjson.loads(mine.customers.get(c, 0))["seen"] for c in put_back] == [[], []]
