"""Quiet customers unloaded to the store (streams.partitions, "Customers on disk"): never at a moment
that would make a figure untrue."""

from __future__ import annotations

import orjson

import monitor.counts as tally
import streams.partitions as partitions_module
from monitor.durations import parse_duration
from monitor.erasures import Request
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


def freed_with_deletion_refused(catalog, monkeypatch, stores):  # type: ignore[no-untyped-def]
    """A worker that judged a bill for each of c1, c2, c3 and freed them 400 days on, c1's deletion
    refused by the store (and refused again while ``refuse`` holds it)."""
    mine = stores()
    live = new(catalog, mine.customers, mine.journeys, in_memory=10)
    live.handle_batch([(0, n, bill(c, 0, f"b{c}"), "in", n) for n, c in enumerate(("c1", "c2", "c3"))])
    mine.deliver()
    refuse, put = {"c1"}, mine.customers.put

    def failing(partition: int, key: str, value: bytes | None) -> None:
        if key in refuse and value is None:
            raise OSError("disk full")
        put(partition, key, value)

    monkeypatch.setattr(mine.customers, "put", failing)
    live.handle_batch([(0, 3, Report(0, {"in": (BASE + 400 * DAY, False, 0)}, ("in",)), None, -1)])
    live.forget()
    mine.deliver()
    assert [(failure.stage, failure.customer) for failure, _ in live.failures] == [("record", "c1")]
    assert Views(live).counts()["bill-correct"] == [0, 3] and Views(live).customers_held() == {0: 0}
    assert mine.customers.get("c1", 0) is not None  # (its record stayed)
    return mine, live, refuse


def restarted(catalog, mine):  # type: ignore[no-untyped-def]
    again = mine.crashed()
    worker = new(catalog, again.customers, again.journeys, 10)
    worker.adopt([0])
    return worker


def test_a_freed_customer_whose_deletion_failed_is_not_counted_again_at_a_restart(catalog, monkeypatch, stores):
    """Freeing folds what a customer counted into the partition's counts, then deletes its record. If the
    deletion cannot be written, the record stays: until a sweep deletes it, the partition's records
    name the customer, so that a restart deletes it rather than counting it a second time."""
    mine, live, _ = freed_with_deletion_refused(catalog, monkeypatch, stores)
    live.handle_batch([(0, 4, bill("c4", 401 * 86_400, "b4", good=True), "in", 4)])  # (a record written since)
    mine.deliver()
    again = restarted(catalog, mine)
    assert Views(again).counts()["bill-correct"] == [1, 3]  # not [1, 4]
    assert again.customers.get("c1", 0) is None and Views(again).customers_held() == {0: 1}


def test_a_freed_customer_whose_deletion_failed_comes_again_as_new(catalog, monkeypatch, stores):
    """A new event of the customer starts it afresh (its old record, folded already, is not put back), and
    its new record, written after the partition's record that names it, is its own at a restart."""
    mine, live, _ = freed_with_deletion_refused(catalog, monkeypatch, stores)
    # (no partition's record stored from here: a crash before the one that stops naming it)
    monkeypatch.setattr(mine.customers, "put_state", lambda partition, value: None)
    live.handle_batch([(0, 4, bill("c1", 401 * 86_400, "b-new", good=True), "in", 4)])
    mine.deliver()
    assert Views(live).counts()["bill-correct"] == [1, 3]
    assert live.partition(0).freeing == set()  # (its record overwritten by the new life's)
    assert orjson.loads(mine.customers.get_state(0))["freeing"] == ["c1"]
    again = restarted(catalog, mine)
    assert Views(again).counts()["bill-correct"] == [1, 3]
    assert again.partition(0).freeing == set() and Views(again).customers_held() == {0: 1}


def test_a_deletion_that_failed_is_tried_again_at_the_next_sweep(catalog, monkeypatch, stores):
    mine, live, refuse = freed_with_deletion_refused(catalog, monkeypatch, stores)
    live.forget()  # (still refused: still named)
    mine.deliver()
    assert orjson.loads(mine.customers.get_state(0))["freeing"] == ["c1"]
    refuse.clear()
    live.forget()
    mine.deliver()
    assert mine.customers.get("c1", 0) is None and live.partition(0).freeing == set()
    assert orjson.loads(mine.customers.get_state(0))["freeing"] == []
    assert Views(restarted(catalog, mine)).counts()["bill-correct"] == [0, 3]


def test_a_returning_customer_whose_journey_could_not_be_written_keeps_its_new_record(catalog, monkeypatch, stores):
    """Only the customer's own record says whether its old one is gone: its journey refused must not
    leave it named, else a restart, or the next sweep, would delete the new life's record."""
    mine, live, refuse = freed_with_deletion_refused(catalog, monkeypatch, stores)
    refuse.clear()
    put, fail = mine.journeys.put, {"on": True}

    def failing(partition: int, key: str, value: bytes | None) -> None:
        if key == "c1" and fail["on"]:
            raise OSError("journeys: disk full")
        put(partition, key, value)

    monkeypatch.setattr(mine.journeys, "put", failing)
    live.handle_batch([(0, 4, bill("c1", 401 * 86_400, "b-new", good=True), "in", 4)])
    mine.deliver()
    assert live.partition(0).freeing == set()
    fail["on"] = False
    live.forget()
    mine.deliver()
    assert mine.customers.get("c1", 0) is not None
    assert Views(restarted(catalog, mine)).counts()["bill-correct"] == [1, 3]


def test_a_request_to_forget_a_freed_customer_deletes_its_record_at_once(catalog, monkeypatch, stores):
    mine, live, refuse = freed_with_deletion_refused(catalog, monkeypatch, stores)
    refuse.clear()
    assert live.erase(7, Request("c1", "dpo", BASE)) == [0]
    mine.deliver()
    assert mine.customers.get("c1", 0) is None and live.partition(0).freeing == set()
    assert orjson.loads(mine.customers.get_state(0))["freeing"] == []


def test_a_restore_that_cannot_read_the_partitions_counts_still_deletes_the_freed(catalog, monkeypatch, stores):
    """The partition's record names the freed; read only in part, its offset is still the one to compare
    their records' marks with (else every one would look newer: a next life, counted again)."""
    mine, _, _ = freed_with_deletion_refused(catalog, monkeypatch, stores)
    again = mine.crashed()
    real, calls = tally.load, []

    def load(value):  # type: ignore[no-untyped-def]
        calls.append(value)
        if len(calls) == 1:
            raise ValueError("a counts record this version cannot read")
        return real(value)

    monkeypatch.setattr(tally, "load", load)
    worker = new(catalog, again.customers, again.journeys, 10)
    worker.adopt([0])
    assert "c1" not in worker.partition(0).engine.state.customers and worker.partition(0).on_disk == 0


def test_an_unreadable_record_of_a_freed_customer_is_deleted(catalog, monkeypatch, stores):
    mine, _, _ = freed_with_deletion_refused(catalog, monkeypatch, stores)
    again = mine.crashed()
    again.customers.put(0, "c1", b"[1]")
    worker = new(catalog, again.customers, again.journeys, 10)
    worker.adopt([0])
    assert Views(worker).counts()["bill-correct"] == [0, 3] and worker.customers.get("c1", 0) is None
