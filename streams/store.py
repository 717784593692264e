"""Customer state on local disk: one RocksDB per table, beside its changelog, which stays the truth.

Layout. One database per table (``<data dir>/v1/tables/<table>.rocksdb``), through rocksdict (the binding
Faust's own RocksDB store uses). Every key starts with its changelog partition, four bytes big-endian,
then ``DATA`` and the record's key, or ``CHECKPOINT``::

    [partition][0x00][key]   a record, as the changelog holds it (bytes)
    [partition][0x01]        the partition's checkpoint: {"offset": O, "at": seconds}

A partition is one contiguous range of keys: ``items(partition)`` reads that range and nothing else, a
batch writes the records of every partition and their checkpoints in one atomic ``WriteBatch``, and
dropping a partition is one ``DeleteRange`` that takes its checkpoint with it. (A column family per
partition would do the same with a memtable of its own for each, handles to create and open, and
no atomic drop of data and checkpoint together: nothing a prefix does not.)

Checkpoints, as Kafka Streams keeps them. A partition's checkpoint O says: the local records reflect
every record of the changelog partition up to offset O, and any local record that differs from the
changelog at O has a later record in the changelog. Recovery therefore reads the changelog after O
only, and ends with the local data equal to the changelog's. The rule that keeps it true:

- **Local data holds only what the changelog holds.** A write is kept in memory (``pending``) until the
  outbox's delivery that carried it has returned; only then is it written to RocksDB. A crash before
  that loses it locally as it was lost in Kafka: nothing written here ever claims more than the
  changelog holds.
- **The checkpoint moves only over records known to be there.** The producer tells the offsets each
  delivered batch took (``sent``). Once a partition has nothing pending, its checkpoint advances over
  those offsets as far as they follow one another from it, in the same ``WriteBatch`` as the records.
  A record not written here (another worker's, or a batch the broker appended twice) leaves a gap: the
  checkpoint stays before it until the partition is next recovered (read again from there, which
  costs time, never correctness).
- **Recovery writes what it reads with its offset**, record and checkpoint together.
- **A record the broker refused** (larger than the topic takes) was applied here but is not in the
  changelog: the partition's checkpoint is deleted, and a partition without a checkpoint is emptied
  before it is recovered (whole, from the changelog).
- **A checkpoint older than ``MAX_AGE``** is not trusted when its partition is taken again: records
  written since by another worker may include deletions, and Kafka's compaction removes a deletion's
  tombstone once it is ``delete.retention.ms`` old (streams.app sets 24 h), so reading after the
  checkpoint could miss it. The partition is emptied and read whole. A clean stop refreshes the
  checkpoints of the partitions it owned with nothing pending.
- **A checkpoint beyond the changelog's end** (the topic was deleted and created again, or cut short)
  is detected by the recovery (streams.seam), which empties the partition and reads it whole.

``DiskTable`` knows nothing of Faust or Kafka. Beside it: ``DiskTableStore``, a table on disk as
``streams.partitions.Store``; ``DiskStore``, Faust's side of it (where a recovery starts, what it reads);
and the delivery's hooks that tell it what the changelogs hold (``CheckpointingOutbox``,
``RecordingProducer``). docs/STATE.md says all this for operators.
"""

from __future__ import annotations

import contextlib
import ctypes
import itertools
import logging
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson
import rocksdict
from faust.stores import base
from faust.types import TP

from .outbox import Message, Outbox
from .partitions import key_partition

log = logging.getLogger("tpmon.store")

PARTITION = struct.Struct(">I")
DATA = b"\x00"
CHECKPOINT = b"\x01"
# A checkpoint is trusted for this long after it was last known right (below the changelogs'
# delete.retention.ms, 24 h, by an hour for the clocks of the broker and of this machine).
MAX_AGE = 23 * 3600.0
# RocksDB's memory, one bound for a worker's tables: a block cache they share, which the tables' write
# buffers (memtables) are charged to as well. Small on purpose: the files are in the system's page cache
# (reclaimable, and not the worker's resident memory), so a block missed here costs a read from it and
# an LZ4 decompression, a few microseconds; what the cache holds stays resident for as long as the worker.
BLOCK_CACHE_BYTES = 32 * 1024 * 1024
MEMTABLES_BYTES = 16 * 1024 * 1024  # of it, at most, for the write buffers of every table
WRITE_BUFFER_BYTES = 8 * 1024 * 1024  # a table's write buffer: flushed to a file when full
# A scan (a partition's records, for its engine or a sweep) holds a RocksDB iterator for this many records
# at most: an iterator pins the memtables and files it began with, and a sweep goes on reading a share at
# a time, across minutes, so one iterator for the whole scan would keep flushed memtables in memory.
SCAN_AT_ONCE = 1000
# Once this many records were deleted (retention's sweeps free customers by the ten thousand), the memory
# they leave in RocksDB is given back (``DiskTable._shrink``).
SHRINK_AFTER = 10_000
STATE_KEY = b"\xffpartition/"  # + the partition: its own record in the customers table (not UTF-8)


class StoreUnavailable(Exception):
    """The local store cannot be opened: said at start, as a sentence, never a traceback."""


def give_back_c_heap() -> None:
    """The C heap's free pages returned to the system (glibc's malloc_trim): RocksDB frees what it held
    into it, and glibc keeps it otherwise, the worker's resident memory staying at its peak."""
    with contextlib.suppress(OSError, AttributeError):  # not glibc: the memory is reused, not returned
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def _range(partition: int) -> tuple[bytes, bytes]:
    """Every key of a partition, checkpoint included: [start, end)."""
    return PARTITION.pack(partition), PARTITION.pack(partition + 1)


def _data_key(partition: int, key: bytes) -> bytes:
    return PARTITION.pack(partition) + DATA + key


def _checkpoint_key(partition: int) -> bytes:
    return PARTITION.pack(partition) + CHECKPOINT


class Memory:
    """RocksDB's memory, shared by a worker's tables: the block cache, and the write buffer manager that
    charges their memtables to it (so that blocks and memtables together stay within the cache's size)."""

    def __init__(self, cache_bytes: int = BLOCK_CACHE_BYTES, memtables_bytes: int = MEMTABLES_BYTES) -> None:
        self.cache = rocksdict.Cache(cache_bytes)
        self.memtables = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            memtables_bytes, False, self.cache
        )
        self.cache_bytes = cache_bytes

    def drop_cached_blocks(self) -> None:
        """Empty the block cache (the memtables' share stays, held by them)."""
        self.cache.set_capacity(0)
        self.cache.set_capacity(self.cache_bytes)


def options(memory: Memory) -> rocksdict.Options:
    chosen = rocksdict.Options(raw_mode=True)
    chosen.create_if_missing(True)
    chosen.set_write_buffer_manager(memory.memtables)
    chosen.set_write_buffer_size(WRITE_BUFFER_BYTES)
    chosen.set_max_write_buffer_number(2)
    chosen.set_max_background_jobs(2)
    chosen.set_keep_log_file_num(2)
    chosen.set_compression_type(rocksdict.DBCompressionType.lz4())
    table = rocksdict.BlockBasedOptions()
    table.set_block_cache(memory.cache)
    table.set_bloom_filter(10, False)
    chosen.set_block_based_table_factory(table)
    return chosen


def open_db(path: Path, memory: Memory) -> rocksdict.Rdict:
    """Open (or create) the database at ``path``, or say in a sentence why it cannot be."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise StoreUnavailable(f"cannot create {path.parent}: {error.strerror}") from None
    try:
        return rocksdict.Rdict(str(path), options(memory))
    except Exception as error:  # rocksdict raises Exception itself, with RocksDB's status as text
        said = str(error)
        if "lock" in said.lower():
            raise StoreUnavailable(
                f"{path} is in use by another process (RocksDB's lock): is another worker running on the same "
                "data dir? Give each worker its own --data-dir (TPMON_DATA_DIR)"
            ) from None
        raise StoreUnavailable(f"cannot open {path}: {said}") from None


class DiskTable:
    """A table's records on disk, per changelog partition, with checkpoints (the module's rule)."""

    def __init__(self, path: Path, memory: Memory | None = None, clock: Callable[[], float] = time.time) -> None:
        self.path = path
        self.clock = clock
        self.memory = memory if memory is not None else Memory()
        self.db = open_db(path, self.memory)
        self.closed = False
        # (partition, key) -> (value or None for a deletion, the outbox's number of its message)
        self.pending: dict[tuple[int, bytes], tuple[bytes | None, int]] = {}
        self.waiting: Counter[int] = Counter()  # partition -> its records pending
        self.covered: dict[int, int] = {}  # partition -> its checkpoint's offset (-1: none)
        self.offsets: dict[int, list[tuple[int, int]]] = {}  # partition -> (first, last) offsets delivered
        self.stuck: set[int] = set()  # a gap in the offsets: no checkpoint until recovered again
        self.refused: set[int] = set()  # a refused record applied here: emptied when next taken
        self.deleted = 0  # records deleted since the memory they leave was last given back (``_shrink``)

    # -- reading ----------------------------------------------------------------------------------------
    def get(self, partition: int, key: bytes) -> bytes | None:
        waiting = self.pending.get((partition, key))
        if waiting is not None:
            return waiting[0]
        return self.db.get(_data_key(partition, key))

    def items(self, partition: int) -> Iterator[tuple[bytes, bytes]]:
        """The records of one partition, as the changelog will hold them once what is pending is stored."""
        mine = {key: value for (where, key), (value, _) in self.pending.items() if where == partition}
        start = PARTITION.pack(partition) + DATA
        skip = len(start)
        for stored, value in self._scan(start, PARTITION.pack(partition) + CHECKPOINT):
            key = stored[skip:]
            if key in mine:
                continue
            yield key, value
        for key, value in mine.items():
            if value is not None:
                yield key, value

    def _scan(self, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """The stored records in [start, end), read ``SCAN_AT_ONCE`` at a time, each share by an iterator
        of its own that is gone before the share is handed out (see ``SCAN_AT_ONCE``). A scan reads
        each block once: it leaves the block cache to the records looked up one by one."""
        while not self.closed:
            bounds = rocksdict.ReadOptions()
            bounds.set_iterate_upper_bound(end)
            bounds.fill_cache(False)
            share = list(itertools.islice(self.db.items(from_key=start, read_opt=bounds), SCAN_AT_ONCE))
            read = len(share)
            if read:
                start = share[-1][0] + b"\x00"  # the first key after the last one read
            # Given out from the end of the reversed list, which shrinks: a scan paused between sweeps
            # holds none of the records it gave out.
            share.reverse()
            while share:
                yield share.pop()
            if read < SCAN_AT_ONCE:
                return

    def checkpoint(self, partition: int) -> int:
        """The offset up to which the partition's local records reflect its changelog; -1: none."""
        found = self._stored_checkpoint(partition)
        return -1 if found is None else found[0]

    def _stored_checkpoint(self, partition: int) -> tuple[int, float] | None:
        raw = self.db.get(_checkpoint_key(partition))
        if raw is None:
            return None
        stored = orjson.loads(raw)
        return int(stored["offset"]), float(stored["at"])

    # -- writing: what the changelog will hold ------------------------------------------------------------
    def put(self, partition: int, key: bytes, value: bytes | None, number: int) -> None:
        """A record sent to the changelog as the outbox's message ``number``: kept here until delivered."""
        where = (partition, key)
        if where not in self.pending:
            self.waiting[partition] += 1
        self.pending[where] = (value, number)

    def sent(self, partition: int, first: int, last: int) -> None:
        """The changelog partition stored records of this table at offsets ``first`` to ``last``."""
        if partition not in self.stuck:
            self.offsets.setdefault(partition, []).append((first, last))

    def refuse(self, partition: int) -> None:
        """A record of the partition was refused by the broker: the local data will differ from the
        changelog, so the partition loses its checkpoint now, to be read whole when next taken."""
        self.refused.add(partition)
        self.offsets.pop(partition, None)
        if not self.closed:
            self.db.delete(_checkpoint_key(partition))

    def delivered(self, upto: int) -> None:
        """The outbox's messages numbered below ``upto`` are stored: write their records, and move the
        checkpoint of every partition with nothing pending over the offsets that follow it."""
        if self.closed:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        if self.pending:
            done = [(where, value) for where, (value, number) in self.pending.items() if number < upto]
            for (partition, key), value in done:
                del self.pending[partition, key]
                self.waiting[partition] -= 1
                if value is None:
                    batch.delete(_data_key(partition, key))
                    self.deleted += 1
                else:
                    batch.put(_data_key(partition, key), value)
            if not self.pending:  # (an emptied dict keeps the table of its largest size: a sweep's deletions)
                self.pending = {}
        for partition in [p for p in self.offsets if not self.waiting[p]]:
            self._advance(partition, batch)
        if not batch.is_empty():
            self.db.write(batch)
        if self.deleted >= SHRINK_AFTER and not self.pending:
            self._shrink()

    def _advance(self, partition: int, batch: Any) -> None:
        if partition in self.refused or partition in self.stuck:
            self.offsets.pop(partition, None)
            return
        covered = start = self.covered.get(partition, -1)
        for first, last in sorted(self.offsets.pop(partition)):
            if first > covered + 1:  # a record not written here: nothing after it can be vouched for
                self.stuck.add(partition)
                log.info(
                    "%s partition %d: records not written here follow offset %d of its changelog; its "
                    "checkpoint stays there until the partition is next recovered",
                    self.path.name,
                    partition,
                    covered,
                )
                break
            covered = max(covered, last)
        if covered > start:
            self._write_checkpoint(partition, covered, batch)

    def _write_checkpoint(self, partition: int, offset: int, batch: Any) -> None:
        self.covered[partition] = offset
        batch.put(_checkpoint_key(partition), orjson.dumps({"offset": offset, "at": self.clock()}))

    # -- recovery: what the changelog holds -----------------------------------------------------------------
    def restore(self, partition: int, records: Iterable[tuple[int, bytes, bytes | None]]) -> None:
        """Records read from the changelog partition, in order (offset, key, value or None): written
        with their checkpoint, the last offset, in one batch."""
        batch = rocksdict.WriteBatch(raw_mode=True)
        last = None
        for offset, key, value in records:
            if value is None:
                batch.delete(_data_key(partition, key))
            else:
                batch.put(_data_key(partition, key), value)
            last = offset
        if last is None:
            return
        if partition not in self.refused and last > self.covered.get(partition, -1):
            self._write_checkpoint(partition, last, batch)
        self.db.write(batch)

    def take(self, partitions: Iterable[int], newly: Iterable[int] = ()) -> None:
        """The partitions assigned here, before their recovery reads from ``checkpoint``: those without
        a checkpoint, with a refused record, or (``newly`` taken) whose checkpoint is too old, are
        emptied, to be read whole."""
        newly = set(newly)
        now = self.clock()
        for partition in partitions:
            stored = self._stored_checkpoint(partition)
            if stored is None:
                why = "no checkpoint"
            elif partition in self.refused:
                why = "a record the broker refused"
            elif partition in newly and now - stored[1] > MAX_AGE:
                why = f"a checkpoint {(now - stored[1]) / 3600:.0f} h old"
            else:
                self.covered[partition] = stored[0]
                self.stuck.discard(partition)
                continue
            self.drop(partition, why)

    def drop(self, partition: int, why: str) -> None:
        """Empty a partition (its checkpoint with it), to be read whole from its changelog."""
        start, end = _range(partition)
        if self._stored_checkpoint(partition) is not None or next(iter(self.items(partition)), None) is not None:
            log.info(
                "%s partition %d: emptied, to be read whole from its changelog (%s)", self.path.name, partition, why
            )
        self.db.delete_range(start, end)
        self.covered[partition] = -1
        self.refused.discard(partition)
        self.stuck.discard(partition)
        self.offsets.pop(partition, None)

    def touch(self, partitions: Iterable[int]) -> None:
        """Stopping, owning ``partitions``: the checkpoint of each one with nothing pending is right as of
        now (nobody else writes to it while it is owned here)."""
        if self.closed:
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for partition in partitions:
            if self.waiting[partition] or partition in self.stuck or partition in self.refused:
                continue
            if self.offsets.get(partition):
                self._advance(partition, batch)
            offset = self.covered.get(partition, -1)
            if offset >= 0 and partition not in self.stuck:
                self._write_checkpoint(partition, offset, batch)
        if not batch.is_empty():
            self.db.write(batch)

    def _shrink(self) -> None:
        """Many records were deleted (retention freed their customers): give back the memory they leave
        behind rather than hold it until it is needed again, which a worker gone quiet may not do for
        hours. The write buffer (the deletions) goes to a file, waited for: a few MiB at most; the block
        cache is emptied: it holds, above all, the blocks of the records retention read to free them."""
        self.deleted = 0
        self.flush()
        self.memory.drop_cached_blocks()
        give_back_c_heap()

    def flush(self) -> None:
        """What the write buffer holds, written to a file (waited for)."""
        if not self.closed:
            self.db.flush(True)

    def clear(self) -> None:
        """Every partition emptied (``faust reset``: the changelogs are not touched)."""
        self.db.delete_range(PARTITION.pack(0), b"\xff" * (PARTITION.size + 1))
        self.covered.clear()
        self.offsets.clear()
        self.stuck.clear()
        self.refused.clear()

    def close(self) -> None:
        if not self.closed:
            self.closed = True
            self.db.close()


def open_tables(folder: Path, names: Iterable[str]) -> dict[str, DiskTable]:
    """A worker's tables on disk, ``<folder>/<name>.rocksdb``, sharing RocksDB's memory; all or none."""
    memory = Memory()
    opened: dict[str, DiskTable] = {}
    try:
        for name in names:
            opened[name] = DiskTable(folder / f"{name}.rocksdb", memory)
    except StoreUnavailable:
        for table in opened.values():
            table.close()
        raise
    return opened


class DiskTableStore:
    """A Faust table on disk as a ``streams.partitions.Store``: each write goes to the table's changelog
    through the outbox, to a chosen partition (so timers, which have no current event, write too), and to
    the disk once delivered (``DiskTable``). A customer's records are in the partition its id hashes to
    (where ingest sends its events); each partition's own record has a key no customer can have."""

    # The values it is given are kept only until delivered (then on disk): streams.partitions.encoder.
    keeps_values = False

    def __init__(self, disk: DiskTable, changelog: str, outbox: Outbox, partitions: int) -> None:
        self.disk = disk
        self.outbox = outbox
        self.changelog = changelog
        self.partitions = partitions

    def get(self, key: str, partition: int | None = None) -> bytes | None:
        raw = key.encode()
        return self.disk.get(key_partition(raw, self.partitions) if partition is None else partition, raw)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        self._put(partition, key.encode(), value)

    def _put(self, partition: int, raw_key: bytes, value: bytes | None) -> None:
        self.disk.put(partition, raw_key, value, self.outbox.added)
        self.outbox.add(self.changelog, raw_key, value, partition)

    def items(self, partition: int) -> Iterable[tuple[str, bytes]]:
        for raw_key, value in self.disk.items(partition):
            if raw_key[:1] != STATE_KEY[:1]:
                yield raw_key.decode(), value

    def get_state(self, partition: int) -> bytes | None:
        return self.disk.get(partition, STATE_KEY + str(partition).encode())

    def put_state(self, partition: int, value: bytes) -> None:
        self._put(partition, STATE_KEY + str(partition).encode(), value)

    def compact(self) -> None:
        """RocksDB gives back the room of deleted records itself, compacting in the background; the memory
        they leave behind is given back once they are written (``DiskTable.delivered``)."""


class DiskStore(base.Store):
    """Faust's side of a ``DiskTable``: a table whose ``store`` is ``tpmon-rocksdb://`` (registered in
    Faust's store registry by streams.seam) and whose ``options`` carry its ``DiskTable``. Faust's
    recovery starts each partition from ``persisted_offset``, after ``on_rebalance`` has emptied the
    partitions that cannot resume. Faust's mapping view of the table stays empty: tpmon reads and
    writes through ``DiskTableStore``, and streams.seam puts what recovery reads into ``restore``."""

    def __init__(self, url: Any, app: Any, table: Any, **kwargs: Any) -> None:
        super().__init__(url, app, table, **kwargs)
        self.disk: DiskTable = (self.options or {})["disk"]
        self.data: dict = {}
        self.owned: list[int] = []

    def persisted_offset(self, tp: TP) -> int:
        return self.disk.checkpoint(tp.partition)

    def set_persisted_offset(self, tp: TP, offset: int) -> None:
        """Faust's own changelog sends would set it; tpmon's go through the outbox (``delivered``)."""

    async def need_active_standby_for(self, tp: TP) -> bool:
        return True

    def apply_changelog_batch(self, batch: Iterable[Any], to_key: Any, to_value: Any) -> None:
        records: dict[int, list[tuple[int, bytes, bytes | None]]] = {}
        for event in batch:
            message = event.message
            records.setdefault(message.partition, []).append((message.offset, message.key, message.value))
        for partition, read in records.items():
            self.disk.restore(partition, read)

    def reset_state(self) -> None:
        self.disk.clear()

    async def backup_partition(self, tp: Any, flush: bool = True, purge: bool = False, keep: int = 1) -> None:
        """No backups: the changelog is the copy (a new disk reads it whole)."""

    def restore_backup(self, tp: Any, latest: bool = True, backup_id: int = 0) -> None:
        """No backups: the changelog is the copy."""

    async def on_rebalance(
        self, assigned: set[TP], revoked: set[TP], newly_assigned: set[TP], generation_id: int = 0
    ) -> None:
        topic = self.table.changelog_topic.get_topic_name()
        self.owned = sorted(tp.partition for tp in assigned if tp.topic == topic)
        self.disk.take(self.owned, [tp.partition for tp in newly_assigned if tp.topic == topic])

    async def on_stop(self) -> None:
        self.disk.touch(self.owned)


# -- the delivery's hooks: what tells the disk what the changelogs hold -------------------------------------
class RecordingProducer:
    """The outbox's producer, telling ``sent(topic, partition, first, last)`` the offsets each record
    batch took once the broker has it (aiokafka's public producer API; everything else passes through)."""

    def __init__(self, producer: Any, sent: Callable[[str, int, int, int], None]) -> None:
        self._producer = producer
        self._sent = sent

    def __getattr__(self, name: str) -> Any:
        return getattr(self._producer, name)

    async def send_batch(self, batch: Any, topic: str, *, partition: int) -> Any:
        count = batch.record_count()
        future = await self._producer.send_batch(batch, topic, partition=partition)
        future.add_done_callback(lambda done: self._stored(topic, done, count))
        return future

    async def send(self, topic: str, value: Any = None, **kwargs: Any) -> Any:
        future = await self._producer.send(topic, value, **kwargs)
        future.add_done_callback(lambda done: self._stored(topic, done, 1))
        return future

    def _stored(self, topic: str, future: Any, count: int) -> None:
        if future.cancelled() or future.exception() is not None:
            return
        metadata = future.result()
        if metadata is not None and metadata.offset is not None and metadata.offset >= 0:
            self._sent(topic, metadata.partition, metadata.offset, metadata.offset + count - 1)


class CheckpointingOutbox(Outbox):
    """The outbox of a worker whose tables are on disk: after each delivery, the disk tables write the
    records it stored (``DiskTable.delivered``); its producer tells them the offsets they took."""

    def __init__(self, producer: Callable[[], Any], tables: dict[str, DiskTable]) -> None:
        super().__init__(lambda: RecordingProducer(producer(), self._sent))
        self.tables = tables  # changelog topic -> its table

    def _sent(self, topic: str, partition: int, first: int, last: int) -> None:
        table = self.tables.get(topic)
        if table is not None:
            table.sent(partition, first, last)

    async def deliver(self) -> None:
        upto = self.added
        await super().deliver()  # every message added before the call is stored (or it raised)
        for table in self.tables.values():
            table.delivered(upto)

    def refusing(self, keep: Callable[[Message, Exception], None]) -> Callable[[Message, Exception], None]:
        """``keep`` (the dead letters) for refused messages, after telling the table of a refused record."""

        def refused(message: Message, error: Exception) -> None:
            topic, _, _, partition, _ = message
            table = self.tables.get(topic)
            if table is not None and partition is not None:
                table.refuse(partition)
            keep(message, error)

        return refused
