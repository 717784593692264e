"""Customer state on disk (streams.store): records per partition, written once the changelog has them,
and checkpoints that never claim more than the changelog holds, whatever crashes in between."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from collections import namedtuple
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.partitions import key_partition
from streams.store import (
    MAX_AGE,
    SCAN_AT_ONCE,
    SHRINK_AFTER,
    CheckpointingOutbox,
    DiskTable,
    DiskTableStore,
    StoreUnavailable,
    open_tables,
)
from tests.builders import Changelog, Producer

TOPIC = "t-customers-changelog"


class Clock:
    def __init__(self, now: float = 1_000_000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def disk(tmp_path):
    table = DiskTable(tmp_path / "customers.rocksdb", clock=Clock())
    yield table
    table.close()


def reopened(table: DiskTable) -> DiskTable:
    """The same folder opened again (by a new process, after a crash or a stop)."""
    table.close()
    return DiskTable(table.path, clock=table.clock)


def wired(disk: DiskTable, changelog: Changelog, refused: list | None = None) -> DiskTableStore:
    box = CheckpointingOutbox(lambda: Producer({TOPIC: changelog}, largest=100), {TOPIC: disk})
    box.on_refused = box.refusing(lambda message, error: (refused if refused is not None else []).append(message))
    return DiskTableStore(disk, TOPIC, box, partitions=4)


def customer_in(partition: int, count: int = 4) -> str:
    """A customer id whose records live in ``partition`` (of four)."""
    return next(f"c-{n}" for n in range(10_000) if key_partition(f"c-{n}".encode(), count) == partition)


# -- records per partition ---------------------------------------------------------------------------------
def test_each_partition_reads_its_own_records_and_a_write_is_seen_before_it_is_delivered(disk):
    disk.put(0, b"a", b"1", 0)
    disk.put(1, b"b", b"2", 1)
    disk.put(0, b"c", b"3", 2)
    assert disk.get(0, b"a") == b"1" and disk.get(1, b"b") == b"2"
    assert sorted(disk.items(0)) == [(b"a", b"1"), (b"c", b"3")]
    disk.delivered(3)
    assert disk.pending == {}
    assert sorted(disk.items(0)) == [(b"a", b"1"), (b"c", b"3")]
    assert list(disk.items(1)) == [(b"b", b"2")] and list(disk.items(2)) == []
    assert disk.get(1, b"a") is None  # a key is found in its partition only


def test_a_deletion_hides_the_stored_record_before_it_is_delivered_and_removes_it_after(disk):
    disk.put(0, b"a", b"1", 0)
    disk.delivered(1)
    disk.put(0, b"a", None, 1)
    assert disk.get(0, b"a") is None and list(disk.items(0)) == []
    disk.delivered(2)
    assert disk.get(0, b"a") is None and list(disk.items(0)) == []


def memtables(table: DiskTable) -> int:
    """The bytes of every memtable the table holds, those pinned by an iterator included."""
    return table.db.property_int_value("rocksdb.size-all-mem-tables")


def test_a_long_scan_reads_every_record_once_and_pins_no_memtable_between_its_shares(disk):
    keys = [b"k%05d" % n + b"\x00" * (n % 3) for n in range(SCAN_AT_ONCE * 2 + 7)]  # (keys that prefix others)
    for number, key in enumerate(keys):
        disk.put(1, key, b"v", number)
        disk.put(0 if number % 2 else 2, key, b"other", number)
    disk.delivered(len(keys))
    scan = disk.items(1)
    first = [next(scan) for _ in range(SCAN_AT_ONCE)]
    disk.flush()  # (the sweep goes on reading a share at a time while the worker writes)
    assert memtables(disk) < 64 * 1024  # the flushed memtable is gone: no iterator holds it
    assert first + list(scan) == [(key, b"v") for key in sorted(keys)]


def test_once_many_records_are_deleted_the_memory_they_leave_in_rocksdb_is_given_back(tmp_path):
    disks = open_tables(tmp_path, ["customers", "journeys"])
    table, memory = disks["customers"], disks["customers"].memory
    assert disks["journeys"].memory is memory  # one bound for a worker's tables
    value = bytes(range(256)) * 4
    for number in range(SHRINK_AFTER):
        table.put(0, b"c%06d" % number, value, number)
    table.delivered(SHRINK_AFTER)
    table.flush()
    for number in range(0, SHRINK_AFTER, 50):  # read back, as retention does before it frees them
        assert table.get(0, b"c%06d" % number) == value
    assert memory.cache.get_usage() > 1024 * 1024
    for number in range(SHRINK_AFTER - 1):
        table.put(0, b"c%06d" % number, None, SHRINK_AFTER + number)
    table.delivered(2 * SHRINK_AFTER)
    assert memtables(table) > 64 * 1024  # one deletion short of giving it back
    table.put(0, b"c%06d" % (SHRINK_AFTER - 1), None, 2 * SHRINK_AFTER)
    table.delivered(2 * SHRINK_AFTER + 1)
    assert memtables(table) < 64 * 1024
    blocks = memory.cache.get_usage() - memory.memtables.get_usage()  # (the memtables' share, given back late)
    assert blocks < 1024 * 1024
    assert list(table.items(0)) == []
    for disk in disks.values():
        disk.close()


def test_only_the_messages_delivered_are_written_and_the_latest_write_of_a_key_wins(disk):
    disk.put(0, b"a", b"old", 0)
    disk.put(0, b"b", b"1", 1)
    disk.put(0, b"a", b"new", 2)  # the same key again, in a later message
    disk.delivered(2)  # messages 0 and 1 stored: b is; a's latest is not yet
    assert disk.db.get(b"\x00\x00\x00\x00\x00a") is None and disk.get(0, b"a") == b"new"
    assert disk.db.get(b"\x00\x00\x00\x00\x00b") == b"1"
    disk.delivered(3)
    assert disk.db.get(b"\x00\x00\x00\x00\x00a") == b"new"


def test_the_partitions_record_is_kept_apart_from_the_customers(disk):
    store = wired(disk, Changelog())
    store.put_state(2, b'{"watermark": 1}')
    store.put(2, customer_in(2), b"{}")
    assert store.get_state(2) == b'{"watermark": 1}' and store.get_state(1) is None
    assert list(store.items(2)) == [(customer_in(2), b"{}")]
    assert store.get(customer_in(2)) == b"{}" and store.get(customer_in(1)) is None


def test_records_and_checkpoints_are_there_after_a_reopen(disk):
    disk.put(3, b"a", b"1", 0)
    disk.sent(3, 0, 0)
    disk.delivered(1)
    again = reopened(disk)
    try:
        assert again.get(3, b"a") == b"1" and again.checkpoint(3) == 0 and again.checkpoint(0) == -1
    finally:
        again.close()


# -- checkpoints -----------------------------------------------------------------------------------------
def test_the_checkpoint_moves_over_the_delivered_offsets_once_the_partition_has_nothing_pending(disk):
    disk.covered[0] = -1
    disk.put(0, b"a", b"1", 0)
    disk.put(0, b"b", b"2", 1)
    disk.sent(0, 0, 0)
    disk.delivered(1)  # b not delivered yet: no checkpoint
    assert disk.checkpoint(0) == -1
    disk.sent(0, 1, 1)
    disk.delivered(2)
    assert disk.checkpoint(0) == 1


def test_a_record_not_written_here_stops_the_checkpoint_before_it_until_the_partition_is_recovered(disk):
    disk.put(0, b"a", b"1", 0)
    disk.sent(0, 0, 0)
    disk.delivered(1)
    assert disk.checkpoint(0) == 0
    disk.put(0, b"a", b"2", 1)
    disk.sent(0, 2, 2)  # offset 1 is another worker's
    disk.delivered(2)
    assert disk.checkpoint(0) == 0 and disk.get(0, b"a") == b"2"
    disk.put(0, b"a", b"3", 2)
    disk.sent(0, 3, 3)
    disk.delivered(3)
    assert disk.checkpoint(0) == 0
    disk.take([0])  # recovered from offset 0: it reads 1 to 3, then the checkpoint moves again
    disk.restore(0, [(1, b"x", b"other"), (2, b"a", b"2"), (3, b"a", b"3")])
    assert disk.checkpoint(0) == 3
    disk.put(0, b"a", b"4", 3)
    disk.sent(0, 4, 4)
    disk.delivered(4)
    assert disk.checkpoint(0) == 4


def test_a_refused_record_takes_the_checkpoint_away_and_the_partition_is_read_whole_when_next_taken(disk):
    changelog, refused = Changelog(), []
    store = wired(disk, changelog, refused)
    customer = customer_in(1)

    async def run() -> None:
        store.put(1, customer, b"small")
        await store.outbox.deliver()
        assert disk.checkpoint(1) == 0
        store.put(1, customer, b"x" * 200)
        await store.outbox.deliver()

    asyncio.run(run())
    assert [message[2] for message in refused] == [b"x" * 200]
    assert disk.checkpoint(1) == -1
    disk.take([1])
    assert list(disk.items(1)) == [] and disk.checkpoint(1) == -1


def test_recovery_writes_what_it_reads_with_its_offset(disk):
    disk.take([0])
    disk.restore(0, [(5, b"a", b"1"), (7, b"b", b"2"), (9, b"a", None)])
    assert list(disk.items(0)) == [(b"b", b"2")] and disk.checkpoint(0) == 9


def test_a_partition_taken_without_a_checkpoint_is_emptied(disk):
    disk.put(2, b"a", b"1", 0)
    disk.delivered(1)  # delivered, but its offsets never told
    assert disk.checkpoint(2) == -1 and disk.get(2, b"a") == b"1"
    disk.take([2])
    assert list(disk.items(2)) == []


@pytest.mark.parametrize(
    "hours, newly, kept",
    [(1, True, True), (MAX_AGE / 3600 + 1, True, False), (MAX_AGE / 3600 + 1, False, True)],
    ids=[
        "a checkpoint of an hour ago is resumed",
        "one older than the tombstones of its changelog last is dropped",
        "an old one of a partition owned all along is kept",
    ],
)
def test_a_partition_taken_again_resumes_from_its_checkpoint_unless_it_is_too_old(disk, hours, newly, kept):
    disk.take([0])
    disk.restore(0, [(0, b"a", b"1")])
    disk.clock.now += hours * 3600
    disk.take([0], newly=[0] if newly else [])
    assert (disk.checkpoint(0), list(disk.items(0))) == ((0, [(b"a", b"1")]) if kept else (-1, []))


def test_a_clean_stop_refreshes_the_checkpoints_of_what_it_owned_with_nothing_pending(disk):
    disk.take([0, 1])
    disk.restore(0, [(0, b"a", b"1")])
    disk.restore(1, [(0, b"b", b"1")])
    disk.put(1, b"b", b"2", 0)  # pending at the stop
    disk.clock.now += MAX_AGE - 60
    disk.touch([0, 1])
    disk.clock.now += 120
    disk.take([0, 1], newly=[0, 1])
    assert disk.checkpoint(0) == 0 and disk.checkpoint(1) == -1


# -- the outbox and its producer -----------------------------------------------------------------------------
def test_the_outbox_writes_what_it_delivered_and_checkpoints_the_offsets_the_broker_gave(disk):
    changelog = Changelog()
    store = wired(disk, changelog)
    customers = [customer_in(0), customer_in(1)]

    async def run() -> None:
        for n, customer in enumerate(customers * 3):
            store.put(key_partition(customer.encode(), 4), customer, f"v{n}".encode())
        store.put_state(0, b"{}")
        await store.outbox.deliver()

    asyncio.run(run())
    assert disk.pending == {}
    for partition in (0, 1):
        assert disk.checkpoint(partition) == len(changelog.records[partition]) - 1
        assert {k.encode(): v for k, v in store.items(partition)} == {
            k: v for k, v in changelog.state(partition).items() if not k.startswith(b"\xff")
        }


def test_a_delivery_still_under_way_is_not_written_nor_checkpointed(disk):
    changelog = Changelog()
    store = wired(disk, changelog)
    customer = customer_in(0)

    async def run() -> None:
        store.put(0, customer, b"1")
        await store.outbox.deliver()
        changelog.hold.clear()  # the broker does not answer
        store.put(0, customer, b"2")
        delivering = asyncio.ensure_future(store.outbox.deliver())
        await asyncio.sleep(0.01)
        assert disk.checkpoint(0) == 0 and disk.db.get(b"\x00\x00\x00\x00\x00" + customer.encode()) == b"1"
        assert store.get(customer) == b"2"
        changelog.hold.set()
        await delivering

    asyncio.run(run())
    assert disk.checkpoint(0) == 1


# -- any sequence of writes, deliveries, crashes and other writers ---------------------------------------------
operation = st.one_of(
    st.tuples(
        st.just("write"), st.integers(0, 1), st.sampled_from([b"a", b"b", b"c"]), st.sampled_from([b"1", b"2", None])
    ),
    st.tuples(st.just("deliver"), st.integers(0, 1)),
    st.tuples(st.just("foreign"), st.integers(0, 1), st.sampled_from([b"a", b"d"]), st.sampled_from([b"9", None])),
    st.tuples(st.just("crash")),
    st.tuples(st.just("recover")),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(operation, max_size=40))
def test_whatever_happens_recovery_from_the_checkpoint_ends_with_the_changelog(tmp_path_factory, operations):
    """Writes (sent to the changelog, applied once delivered), deliveries, records of another worker, crashes
    (what was not delivered is lost) and recoveries in any order: a recovery that reads the changelog after
    each partition's checkpoint always ends with exactly what the changelog holds."""
    path = tmp_path_factory.mktemp("disk") / "t.rocksdb"
    changelog = Changelog()
    disk = DiskTable(path, clock=Clock())
    disk.take([0, 1])
    sent: list[tuple[int, bytes, bytes | None, int]] = []  # what the outbox holds: (partition, key, value, number)
    number = 0

    def recover(table: DiskTable) -> None:
        table.take([0, 1], newly=[0, 1])
        for partition in (0, 1):
            table.restore(partition, changelog.after(partition, table.checkpoint(partition)))
            assert dict(table.items(partition)) == changelog.state(partition), partition

    try:
        for step in operations:
            if step[0] == "write":
                _, partition, key, value = step
                disk.put(partition, key, value, number)
                sent.append((partition, key, value, number))
                number += 1
            elif step[0] == "deliver" and sent:
                upto = sent[-1][3] + 1 if step[1] else sent[len(sent) // 2][3] + 1
                for partition in (0, 1):
                    mine = [(k, v) for p, k, v, n in sent if p == partition and n < upto]
                    if mine:
                        first = changelog.append(partition, mine)
                        disk.sent(partition, first, first + len(mine) - 1)
                sent = [item for item in sent if item[3] >= upto]
                disk.delivered(upto)
            elif step[0] == "foreign":
                _, partition, key, value = step
                changelog.append(partition, [(key, value)])
            elif step[0] == "crash":
                disk, sent = reopened(disk), []
                recover(disk)
            elif step[0] == "recover" and not sent:
                recover(disk)
        disk, sent = reopened(disk), []
        recover(disk)
    finally:
        disk.close()


# -- a folder that cannot hold the state ---------------------------------------------------------------------
def test_a_folder_another_process_holds_is_said_plainly(tmp_path):
    held = open_tables(tmp_path, ["customers"])
    try:
        script = f"from pathlib import Path; from streams.store import open_tables; open_tables(Path({str(tmp_path)!r}), ['journeys', 'customers'])"
        other = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, cwd=Path(__file__).parents[1]
        )
        assert other.returncode != 0 and "StoreUnavailable" in other.stderr
        assert "in use by another process (RocksDB's lock)" in other.stderr and "--data-dir" in other.stderr
    finally:
        held["customers"].close()
    assert (tmp_path / "journeys.rocksdb").exists()  # (opened first, then closed when customers failed)
    open_tables(tmp_path, ["customers", "journeys"])["customers"].close()  # free again once closed


def test_a_data_dir_that_is_a_file_is_said_plainly(tmp_path):
    (tmp_path / "taken").write_text("not a folder")
    with pytest.raises(StoreUnavailable, match=r"cannot create .*taken"):
        open_tables(tmp_path / "taken" / "tables", ["customers"])


@pytest.mark.parametrize(
    "env, store",
    [({}, "rocksdb"), ({"TPMON_STORE": "memory"}, "memory"), ({"TPMON_STORE": "disk"}, None)],
    ids=["rocksdb unless told", "memory when told", "anything else refused"],
)
def test_the_store_setting(env, store):
    from streams.settings import Settings

    if store is None:
        with pytest.raises(ValueError, match="TPMON_STORE must be one of rocksdb, memory"):
            Settings.load(env)
    else:
        assert Settings.load(env).store == store


# -- as Faust sees it ----------------------------------------------------------------------------------------
def test_a_table_on_disk_is_faust_s_store_of_it_and_recovery_starts_from_its_checkpoints(tmp_path):
    """The worker's tables (streams.app) name tpmon's store by URL; Faust's recovery asks it where each
    partition starts, tells it the partitions taken (before it asks), and hands it what it reads."""
    from faust.types import TP

    from streams.store import DiskStore

    disks, table = disk_table(tmp_path)
    store = table.data
    assert isinstance(store, DiskStore) and store.disk is disks["customers"]
    topic = table.changelog_topic.get_topic_name()
    mine, other = TP(topic, 0), TP("t-events", 0)
    asyncio.run(store.on_rebalance({mine, other}, set(), {mine, other}))
    assert store.owned == [0] and table.persisted_offset(mine) == -1

    class Event:
        def __init__(self, offset: int, key: bytes, value: bytes | None) -> None:
            self.message = namedtuple("M", "partition offset key value")(0, offset, key, value)

    store.apply_changelog_batch([Event(0, b"a", b"1"), Event(1, b"b", b"2"), Event(2, b"a", None)], None, None)
    assert table.persisted_offset(mine) == 2 and list(store.disk.items(0)) == [(b"b", b"2")]
    disks["customers"].close()


def test_a_checkpoint_beyond_its_changelog_s_end_empties_the_partition_to_be_read_whole(tmp_path):
    """The changelog was cut short, or deleted and created again: the local copy may hold what it does
    not. Faust would stop the worker (ConsistencyError); the recovery empties the partition instead."""
    from faust.types import TP

    from streams import seam

    disks, table = disk_table(tmp_path, TableManager=seam.SeekFirstTableManager)
    disk = disks["customers"]
    disk.take([0, 1])
    disk.restore(0, [(0, b"a", b"1"), (41, b"b", b"2")])
    disk.restore(1, [(7, b"c", b"3")])
    topic = table.changelog_topic.get_topic_name()
    cut, kept = TP(topic, 0), TP(topic, 1)
    recovery = table.app.tables.recovery
    for tp in (cut, kept):
        recovery.tp_to_table[tp] = table
        recovery.active_offsets[tp] = table.persisted_offset(tp)

    class Consumer:
        async def highwaters(self, *tps):  # type: ignore[no-untyped-def]
            return {cut: 3, kept: 20}  # end offsets: partition 0 holds 3 records, not 42

    asyncio.run(recovery._build_highwaters(Consumer(), {cut, kept}, recovery.active_highwaters, "active"))
    assert recovery.active_offsets[cut] == -1 and list(disk.items(0)) == [] and disk.checkpoint(0) == -1
    assert recovery.active_offsets[kept] == 7 and list(disk.items(1)) == [(b"c", b"3")]
    disk.close()


def disk_table(tmp_path, **app_options):  # type: ignore[no-untyped-def]
    """A Faust table named customers on the disk store, in a folder of the test's own."""
    import faust

    from streams import seam  # registers the store's URL scheme

    disks = open_tables(tmp_path, ["customers"])
    app = faust.App("t", store="memory://", **app_options)
    table = app.Table(
        "customers",
        key_type=bytes,
        value_type=bytes,
        store=f"{seam.DISK_STORE}://customers",
        options={"disk": disks["customers"]},
    )
    return disks, table
