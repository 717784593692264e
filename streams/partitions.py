"""One engine per partition, and the records that keep its state: the adapter between Faust and the core.

Nothing here knows Faust: state is read from and written to ``Store`` objects (the app gives it its
changelog-backed tables), and time comes in the inputs' reports. Each customer's part of the engine
state is one record (``customers`` store), each customer's journey another (``journeys`` store, whose
changelog is the compacted journeys topic). A record is written whole, so a crash never leaves half of
a change behind.

Each partition has one more record, small, in the customers store: its clock (the inputs' progress and
the watermark, ``monitor.watermark``), what it has counted (``monitor.counts``), the counts of the
customers it has freed, and how far it has read: the last offset of the events topic it applied, and
for each input the last source offset it judged. It is written after the partition's customer records
of a batch, in the same changelog partition, so Kafka keeps that order: when it is stored, so is
everything it accounts for. A customer with nothing open, queued or remembered is freed (``forget``,
by the watermark: retention is in event time). Its counts move into the partition's record, which is
written first, naming the customers freed, and only then are their records deleted: a partition read
back after a crash in between finishes the deletions instead of counting the freed customers twice.

Nothing is counted twice when messages are read again (docs/SEMANTICS.md, "Restarts"):

- a message of the events topic at or before the partition record's offset is accounted for: skipped;
- a customer record written after the partition record (a crash cut the batch between them) carries
  its mark (the offset its batch had reached) and what its batch counted for it (``d``): that is added
  back, and the customer's messages up to its mark are skipped;
- an event whose input's source offset was judged here already is ingest's copy of a message it read
  again (after a restart or a rebalance, ingest reads from the last commit): skipped before it is
  judged, whatever its customer holds (one erased on request since included), not counted as a
  duplicate of the stream.

No event can stop it (docs/EVENTS.md): each event's step, its journey, each customer's records and the
counts are guarded apart. ``handle_batch`` returns the events that failed (the app keeps them whole as
internal_error); failures of no event (a stored record that cannot be read back, a rule that raised
while deciding, a timer) collect in ``failures``, for the app to log and count.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from bisect import insort
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, Protocol

import orjson
from aiokafka.partitioner import murmur2

from monitor import counts as tally
from monitor.catalog import Catalog
from monitor.engine import Engine, Outcome, RuleError
from monitor.erasures import Request, Requests
from monitor.events import INTERNAL_ERROR, Event, json_bytes, parse_timestamp
from monitor.failures import JUDGE, JUDGED_STAGES, RECORD, RESTORE, TIMER, Failure
from monitor.journeys import Journey, Journeys
from monitor.judging import Judged, Judging
from monitor.watermark import History, Inputs, Report

log = logging.getLogger("tpmon.forget")  # (what requests to forget a customer do as partitions are taken)

# Journeys kept as objects per worker (shared by its partitions), the most recently used; the others are
# read back from their stored records when needed, so memory does not hold every journey twice (as
# objects and as records). (Settings.journeys_in_memory, TPMON_JOURNEYS_IN_MEMORY)
JOURNEY_CACHE = 10_000
# The latest stories kept per touchpoint (customers with a bad outcome of it), for /stories.
STORIES = 5
# Customers freed at once: the partition's record names them, so it stays small.
FREE_AT_ONCE = 10_000
# A partition's dicts are rebuilt once what they hold has fallen below half of what they held (and that
# was at least this many): a dict does not give back the room it grew to.
COMPACT_FROM = 10_000
# Customers kept in memory per worker (shared by its partitions), besides those with something waiting on
# the watermark or due soon; the others are unloaded, their records in the store, and put back at their
# next event or before their next due time (docs/ARCHITECTURE.md, "Customers on disk").
IN_MEMORY = 50_000  # (Settings.customers_in_memory, TPMON_CUSTOMERS_IN_MEMORY)
# Customers on disk read by retention at each sweep, per partition: it goes round them all in turn.
SWEEP_AT_ONCE = 20_000
# Of those, put back in memory at once to drop what is old: each piece leaves memory before the next comes,
# so that the objects of a sweep's customers are few at any moment and take the room the last piece left
# (many at once would scatter the allocator's pools, which it can then give back only once all are empty).
PUT_BACK_AT_ONCE = 500
# And at most this many per sweep, per partition (the next sweep goes on from there): their records wait
# in memory until their delivery returns, after the sweep, and the sweep holds up the partition's events.
PUT_BACK_PER_SWEEP = 2_000
STATE_VERSION = 2  # the partition's record: 2 adds counts, offset, through and rejects_through


@dataclass(slots=True)
class Refused:
    """A message of the events topic that is not an event (ingest writes none such: another writer did),
    or whose reading raised (``stage``): counted by its partition, kept whole by the caller."""

    source: str
    reason: str
    stage: str | None = None


#: What the judge takes from the events topic: (partition, offset in it or None, event, report or
#: refused message, the event's input and its offset there (None, -1 when not known: a message ingest
#: did not write)).
Item = tuple[int, "int | None", "Event | Report | Refused", "str | None", int]


class Handled(NamedTuple):
    """What ``handle_batch`` gives back: (position in the batch, failure) of each item whose processing
    raised, the positions of the events refused as too old, and (position, rule error) of each rule
    error of an event judged here (for the caller to keep whole). An event read again and not judged
    again has none: each rule error is counted, and kept, once."""

    failed: list[tuple[int, Failure]]
    too_old: list[int]
    rule_errors: list[tuple[int, RuleError]]


def _journey_last_at(value: bytes) -> int:
    """The newest instant of a stored journey (0 for one with none)."""
    newest = orjson.loads(value)["last_at"]
    return (parse_timestamp(newest) or 0) if newest else 0


def _share(part: Partition, where: str, store: Store) -> Iterator[tuple[str, bytes]]:
    """The next share (``SWEEP_AT_ONCE``) of a partition's records in ``store``, read where the sweep
    named ``where`` (an attribute of the partition) stopped; past the last, it starts again."""
    records = getattr(part, where)
    if records is None:
        records = iter(store.items(part.number))
        setattr(part, where, records)
    read = 0
    for record in itertools.islice(records, SWEEP_AT_ONCE):
        read += 1
        yield record
    if read < SWEEP_AT_ONCE:
        setattr(part, where, None)  # round them all: the next sweep starts again


def _next_life(value: bytes, freed_by: object) -> bool:
    """Whether the stored record of a customer a partition's record names as freed (its offset
    ``freed_by``) was written after that record: the customer came again before the deletion was stored.
    An unreadable one is the freed one's."""
    try:
        mark = orjson.loads(value).get("m", -1)
    except Exception:
        return False
    return type(mark) is int and type(freed_by) is int and mark > freed_by


def key_partition(key: bytes, count: int) -> int:
    """The partition Kafka's default partitioner gives a key: where ingest sends a customer's events."""
    return (murmur2(key) & 0x7FFFFFFF) % count


class Store(Protocol):
    """A keyed store whose writes land in a partition of its changelog, and one record per partition."""

    def get(self, key: str, partition: int | None = None) -> bytes | None:
        """The key's record; ``partition``: where it is, when the caller knows (else found from the key)."""
        ...

    def put(self, partition: int, key: str, value: bytes | None) -> None: ...

    def items(self, partition: int) -> Iterable[tuple[str, bytes]]:
        """The records of one partition (and only those)."""
        ...

    def get_state(self, partition: int) -> bytes | None: ...

    def put_state(self, partition: int, value: bytes) -> None: ...

    def compact(self) -> None:
        """Give back the room of deleted records."""
        ...


def encoder(store: Store) -> Callable[[object], bytes]:
    """How records are encoded for ``store``: ``json_bytes`` (each in bytes of its own size) for a store
    that keeps the values it is given (in memory), orjson's own bytes for one that writes them to disk
    and drops them once delivered (``keeps_values = False``: streams.store.DiskTableStore)."""
    return json_bytes if getattr(store, "keeps_values", True) else orjson.dumps


@dataclass
class Partition:
    """An events partition this worker owns: its engine, and what is kept beside it."""

    number: int
    engine: Engine
    clock: Inputs
    history: History  # the late events' inputs: what is decided is held while their history is read
    journeys: Journeys = field(default_factory=Journeys)  # the recently used journeys (a cache)
    peak: int = 0  # the most customers held since its dicts were rebuilt
    counts: tally.Counts = field(default_factory=dict)  # what it has counted (monitor.counts)
    offset: int = -1  # the last offset of the events topic it applied
    through: dict[str, int] = field(default_factory=dict)  # input -> the last source offset judged here
    rejects_through: dict[str, int] = field(
        default_factory=dict
    )  # input -> the last source offset whose rejects are counted here
    # After a restore: customer -> the mark of a record written after the partition's record, whose
    # messages up to it are accounted for; and the largest of them (then it is emptied).
    crashed: dict[str, int] = field(default_factory=dict)
    crashed_until: int = -1
    # What those records counted, carried into the customers' next records until a partition's record
    # stores it (a second crash before then would lose it otherwise).
    carry: dict[str, tally.Counts] = field(default_factory=dict)
    # Touchpoint -> [the first data it was judged on here, or None: the partition's; its window; its
    # decision time]: a touchpoint new to the catalog, or whose window or decision time changed, warms
    # up from the instant it started being judged so, not from the partition's first data.
    since: dict[str, list] = field(default_factory=dict)
    # The offset in the forget topic of the last request applied here whose tombstones are known stored
    # (monitor.erasures): what the partition's record says. ``applied``: the last one applied, which
    # becomes ``erased`` once a delivery that carried its tombstones has returned (``confirm_erasures``).
    erased: int = -1
    applied: int = -1
    # The customers in memory that may leave it (nothing waiting on the watermark), the least recently
    # changed first: beyond the worker's share, they are unloaded (``Partitions.keep_in_memory``), those
    # with instances open only when nothing of theirs is due soon (``Engine.unload``).
    resident: dict[str, None] = field(default_factory=dict)
    on_disk: int = 0  # the customers held in the store only (unloaded, or left there at the restore)
    # The customers freed (what they counted folded into the partition's counts) whose record's deletion
    # could not be written: every partition's record names them, so that a restore deletes the record
    # rather than counting it again; each sweep tries the deletion again (``_delete_freed``). (A record
    # the customer's next life writes is kept at a restore by its mark, newer than the partition's
    # record: events without an offset, in tests, give it none newer.)
    freeing: set[str] = field(default_factory=set)
    # (low, high): what is decided may move within them without any window moving into another bucket,
    # so no old bucket is due to leave the counts (``Partitions._drop_old_windows``).
    windows_still: tuple[int, int] = (0, 0)
    sweep: Iterator[tuple[str, bytes]] | None = None  # where retention reads the customers on disk next
    journey_sweep: Iterator[tuple[str, bytes]] | None = None  # and the stored journeys
    judging: Judging | None = None  # the core that judges its events and reports (monitor.judging)
    filing: StoredJourneys | None = None  # its journeys as the core files them

    def report(self, report: Report) -> tuple[int | None, int | None]:
        """Take an inputs' report (the core's ``Watermark``): the watermark it gives, and where what is
        decided is held while history is read; the rejects it carries are counted here, each once (ingest
        sends an input's rejects to one partition: what the input's offsets say was counted is not again)."""
        self.clock.report(report)
        for name, entries in report.rejects.items():
            done = self.rejects_through.get(name, -1)
            for offset, source, reason, stage in entries:
                if offset > done:
                    tally.add(self.counts, (tally.REJECTED, source, reason))
                    if stage is not None:
                        tally.add(self.counts, (tally.INTERNAL_ERRORS, stage))
                    done = offset
            self.rejects_through[name] = done
        return self.clock.watermark(), self.history.held(self.clock)

    def late(self, name: str, at: int) -> None:
        self.history.late(name, at)

    def firsts(self) -> dict[str, int | None]:
        """Each touchpoint's first data on this partition (monitor.state.warming_up)."""
        first = self.engine.state.min_at
        return {touchpoint: mine[0] if mine[0] is not None else first for touchpoint, mine in self.since.items()}


def _judged_as(touchpoint) -> list:  # type: ignore[no-untyped-def]
    """What a touchpoint's warm-up depends on, as the partition's record keeps it: its window and its
    decision time (a change of either starts its warm-up again)."""
    return [touchpoint.window.text, touchpoint.within, touchpoint.calendar.name if touchpoint.calendar else None]


class StoredJourneys:
    """A partition's journeys as the core files them (``monitor.judging.Filing``): each read back from
    its stored record when it is not among the recently used, and remembered as touched until the batch
    ends (``take``), when each is written once. ``broken``: the customers whose journey an outcome of the
    batch turned broken."""

    def __init__(self, part: Partition, store: Store, catalog: Catalog, failed: Callable[[Failure], None]) -> None:
        self.part, self.store, self.decoder, self.failed = part, store, catalog.decoder, failed
        self.touched: dict[str, Journey] = {}
        self.broken: list[str] = []

    def journey(self, customer: str) -> Journey:
        journey = self.touched.get(customer)
        if journey is not None:
            self.part.journeys.touch(customer)
            return journey
        journeys = self.part.journeys
        journey = journeys.touch(customer)
        if journey is None:
            stored = self.store.get(customer, self.part.number)
            try:
                journey = (
                    Journey.from_record(orjson.loads(stored), self.decoder, journeys.drop)
                    if stored
                    else Journey(customer)
                )
            except Exception as error:  # a stored journey this version cannot read: it starts again
                self.failed(Failure(RESTORE, error, customer=customer))
                journey = Journey(customer)
            journeys.put(journey)
        self.touched[customer] = journey
        return journey

    def add_event(self, event: Event) -> None:
        self.journey(event.customer)
        self.part.journeys.add_event(event)

    def add_outcome(self, outcome: Outcome) -> None:
        journey = self.journey(outcome.customer)
        was_broken = journey.broken
        self.part.journeys.add_outcome(outcome)
        if not was_broken and journey.broken:
            self.broken.append(outcome.customer)

    def take(self) -> tuple[dict[str, Journey], list[str]]:
        """The journeys touched since the last take, and the customers turned broken; then none."""
        taken = self.touched, self.broken
        self.touched, self.broken = {}, []
        return taken


class Partitions:
    def __init__(
        self,
        catalog: Catalog,
        customers: Store,
        journeys: Store,
        *,
        lateness: int | None = None,
        retention: int,
        journey_cache: int = JOURNEY_CACHE,
        journey_age: int | None = None,
        in_memory: int = IN_MEMORY,
    ) -> None:
        """``in_memory``: the customers held in memory that could leave it, over every partition owned
        (the others are unloaded to the store: ``keep_in_memory``); ``journey_cache``: the journeys held
        in memory, over every partition owned (the others are read back from the store)."""
        self.catalog = catalog
        self.in_memory = in_memory
        self.lateness = catalog.lateness if lateness is None else lateness
        self.retention = retention
        # How long journeys keep what they hold: the catalog's journeys.retention unless told.
        self.journey_age = catalog.journeys.retention if journey_age is None else journey_age
        self.customers = customers
        self.journey_store = journeys
        self.owned: dict[int, Partition] = {}
        self.owning = 0  # the partitions owned once those being adopted are (``adopt``)
        self.journey_cache = journey_cache
        self.windows = {t.id: t.window for t in catalog.touchpoints}  # each touchpoint's state window
        # Per touchpoint, its latest bad outcomes on this worker, by instant: (instant, partition, customer).
        self.stories: dict[str, list[tuple[int, int, str]]] = {t: [] for t in catalog.ids}
        # Failures of no event in particular, for the app to drain: counted in their partition when
        # they have one (the flag says so), else the process's.
        self.failures: list[tuple[Failure, bool]] = []
        # The requests to forget a customer read so far (every worker reads them all), applied to each
        # partition owned or adopted later from where its record says it stopped.
        self.requests = Requests()
        self._unconfirmed = False  # whether some partition's record may not say its last request applied

    # -- what the partitions hold ------------------------------------------------------------------
    @property
    def engines(self) -> dict[int, Engine]:
        return {number: part.engine for number, part in self.owned.items()}

    def progress(self) -> dict[str, tuple[int | None, bool]]:
        """Every input as the reports taken here say: its progress (the largest any partition knows) and
        whether it is idle."""
        view: dict[str, tuple[int | None, bool]] = {}
        for part in self.owned.values():
            for name, mine in part.clock.inputs.items():
                known = view.get(name)
                if known is None or (mine.progress is not None and (known[0] is None or mine.progress > known[0])):
                    view[name] = (mine.progress, mine.idle)
        return view

    def history_in_flight(self) -> bool:
        """Whether an input delivers history behind its own stream, as the reports taken here say."""
        return any(mine.history is not None for part in self.owned.values() for mine in part.clock.inputs.values())

    # -- partitions come and go -------------------------------------------------------------------------
    def partition(self, number: int) -> Partition:
        """The partition, rebuilt from its stored records the first time it is needed."""
        part = self.owned.get(number)
        if part is None:
            part = self._restore(number)
            self.owned[number] = part
            self._catch_up_erasures(part)
        return part

    def engine(self, number: int) -> Engine:
        return self.partition(number).engine

    def _since(self, stored: dict | None, watermark: int | None) -> dict[str, list]:
        """Each touchpoint's first data from a partition's record: the one stored if the touchpoint is
        judged as it was; the restored watermark if it is new or changed (its window or decision time);
        None, the partition's own, for a new partition or a record that keeps none (written before)."""
        found: dict[str, list] = {}
        for touchpoint in self.catalog.touchpoints:
            mine = (stored or {}).get(touchpoint.id)
            if stored is None:
                found[touchpoint.id] = [None]
            elif mine is not None and list(mine[1:]) == _judged_as(touchpoint):
                found[touchpoint.id] = [mine[0]]
            else:
                found[touchpoint.id] = [watermark]
        return found

    def _restore(self, number: int) -> Partition:
        engine = Engine(self.catalog, lateness=self.lateness, track=True, own_clock=False, retention=self.retention)
        part = Partition(number, engine, Inputs(self.lateness), History(self.lateness))
        part.journeys = Journeys.of(self.catalog, max_age=self.journey_age)
        part.filing = StoredJourneys(
            part, self.journey_store, self.catalog, lambda failure: self._failed(part, failure)
        )
        part.judging = Judging(
            engine,
            journeys=part.filing,
            watermark=part,
            per_customer=True,
            measured=True,
            stored=lambda customer: self._stored(part, customer),
        )
        part.since = self._since(None, None)
        freeing: set[str] = set()
        freed_by = -1  # the offset of the partition's record that names them
        whole = True  # the partition's record read back (else no customer record can be said newer)
        counted_already: dict[str, int] = {}
        try:
            stored = self.customers.get_state(number)
            if stored is not None:
                state = orjson.loads(stored)
                part.clock.load(state["inputs"], state.get("caught_up"))
                part.history.load(state.get("history"))
                engine.resume(state)
                part.since = self._since(state.get("since"), state["watermark"])
                freeing, freed_by = set(state["freeing"]), state.get("offset", -1)
                part.counts = tally.load(state.get("counts", ()))
                part.offset = state.get("offset", -1)
                part.through = dict(state.get("through", {}))
                part.rejects_through = dict(state.get("rejects_through", {}))
                counted_already = dict(state.get("crashed", {}))
                part.erased = part.applied = state.get("erased", -1)
        except Exception as error:  # a clock this version cannot read: it starts again from the reports
            whole = False
            part.clock, part.history, part.counts = Inputs(self.lateness), History(self.lateness), {}
            part.offset, part.through, part.rejects_through = -1, {}, {}
            self._failed(part, Failure(RESTORE, error))
        # Its share of the customers in memory, among the partitions owned once those being taken are.
        room = max(1, self.in_memory // max(len(self.owned) + 1, self.owning))
        for customer, value in list(self.customers.items(number)):
            if customer in freeing and not _next_life(value, freed_by):
                part.freeing.add(customer)  # freed, its counts folded, its deletion not yet stored
                continue
            try:
                record = orjson.loads(value)
                if len(part.resident) >= room and engine.count(customer, record):
                    part.on_disk += 1  # left on disk until it comes again (``_stored``), is due, or is swept
                else:
                    engine.load(customer, record)
                    if not record["queued"]:
                        part.resident[customer] = None
                mark = record.get("m", -1)
                if whole and mark > part.offset:  # written after the partition's record: its batch's counts
                    part.crashed[customer] = mark
                    part.crashed_until = max(part.crashed_until, mark)
                    if counted_already.get(customer) != mark:  # (not if that record counted them after a restore)
                        counted = tally.load(record.get("d", ()))
                        tally.merge(part.counts, counted)
                        part.carry[customer] = counted
            except Exception as error:  # a record this version cannot read: the others still load
                engine.state.customers.pop(customer, None)
                self._failed(part, Failure(RESTORE, error, customer=customer))
        self._delete_freed(part)
        engine.dirty.clear()
        engine.settle()  # what is at risk at the stored watermark (what it changes is stored next)
        return part

    def adopt(self, partitions: Iterable[int]) -> None:
        """Build the engines of partitions this worker owns and has recovered, even if no event has come
        for them yet: after a restart, a quiet partition's deadlines and retention run all the same."""
        partitions = list(partitions)
        self.owning = len(self.owned.keys() | set(partitions))  # (each restore's share of memory, below)
        for number in partitions:
            self.partition(number)

    def drop(self, partitions: Iterable[int]) -> None:
        """Forget partitions this worker no longer owns (their records stay in the changelog)."""
        for number in partitions:
            self.owned.pop(number, None)

    # -- the work ---------------------------------------------------------------------------------------
    def handle(self, partition: int, item: Event | Report) -> Handled:
        """One event or report of no known offset; see ``handle_batch``."""
        return self.handle_batch([(partition, None, item, None, -1)])

    def handle_batch(self, batch: list[Item]) -> Handled:
        """Judge every event of a batch and take every report (which moves the watermark), in order, each
        partition's through its core (``monitor.judging``); then write each changed record once per batch
        (a customer with ten events in the batch is written once, not ten times), and last each
        partition's own record. Returns (position in the batch, failure) for each item whose processing
        raised: not judged (stage judge: the engine is as if it never came), or judged with its journey
        or records incomplete (journey, record); and the positions of the events refused as too old, and
        the rule errors of the events judged."""
        failed: dict[int, Failure] = {}  # by position in the batch: the first failure of each item
        unapplied: set[int] = set()  # events that changed no state: duplicates, too old, read again
        judging: dict[int, list] = {}  # partition -> its items for the core: (position, event or report, input)
        for item, (number, offset, event, name, at_source) in enumerate(batch):
            try:
                part = self.partition(number)
            except Exception as error:
                failed[item] = Failure(JUDGE, error)
                continue
            mine = judging.get(number)
            if mine is None:
                mine = judging[number] = []
            if offset is not None:
                if offset <= part.offset:
                    unapplied.add(item)
                    continue  # read again after a restart: accounted for in the partition's record
                part.offset = offset
                if part.crashed and offset > part.crashed_until:
                    part.crashed.clear()  # past what the records written after the partition's had
            if type(event) is Refused:
                tally.add(part.counts, (tally.REJECTED, event.source, event.reason))
                if event.stage is not None:
                    tally.add(part.counts, (tally.INTERNAL_ERRORS, event.stage))
                continue
            if type(event) is Event:
                if offset is not None and offset <= part.crashed_until:
                    mark = part.crashed.get(event.customer)
                    if mark is not None and offset <= mark:  # its record has it, and its counts (_restore)
                        if name is not None and at_source > part.through.get(name, -1):
                            part.through[name] = at_source
                        unapplied.add(item)
                        continue
                if name is not None:
                    if at_source <= part.through.get(name, -1):
                        # Ingest's copy of a message judged here (it read it again after a restart or a
                        # rebalance): not judged again, nor counted as a duplicate of the stream. The engine
                        # would find most such copies DUPLICATE or TOO_OLD, but not those of a customer
                        # erased on request since, whatever it holds now: those would count twice, and put
                        # an event of before the request in its new journey.
                        unapplied.add(item)
                        continue
                    part.through[name] = at_source
            mine.append((item, event, name))
        too_old: list[int] = []
        rule_errors: list[tuple[int, RuleError]] = []
        taken: dict[int, tuple[Judged, dict[str, Journey]]] = {}
        for number, items in judging.items():
            part = self.owned[number]
            judged = part.judging.batch(items)  # type: ignore[union-attr]
            for item, failure in judged.failed:
                failed.setdefault(item, failure)
            unapplied.update(judged.duplicates)
            unapplied.update(judged.too_old)
            too_old += judged.too_old
            rule_errors += judged.rule_errors
            taken[number] = (judged, self._take(part, judged))

        def record_failed(number: int, failure: Failure) -> None:
            """A customer's record could not be written: its events of the batch say so (once each);
            a customer with none (decided by the clock) is a failure of no event."""
            mine = [
                item
                for item, (where, _, event, _, _) in enumerate(batch)
                if where == number
                and type(event) is Event
                and event.customer == failure.customer
                and item not in failed
                and item not in unapplied
            ]
            for item in mine:
                event = batch[item][2]
                failed[item] = Failure(RECORD, failure.error, event_id=event.id, customer=event.customer)  # type: ignore[union-attr]
            if not mine:
                self._failed(self.owned.get(number), failure)

        for number, (judged, touched) in taken.items():
            part = self.owned[number]
            # (the batch's customers all as recent: in a set's order, which a hash seed changes, they would
            # be unloaded in a different order by each process)
            self.keep_in_memory(part, sorted(self._write(part, judged, touched, record_failed)[0]))
        for item, failure in failed.items():  # counted before the partition's record stores the counts
            number, _, event, _, _ = batch[item]
            part = self.owned.get(number)
            if part is not None:
                tally.add(part.counts, (tally.INTERNAL_ERRORS, failure.stage))
                if type(event) is Event and failure.stage not in JUDGED_STAGES:  # not judged: a reject
                    tally.add(part.counts, (tally.REJECTED, event.source, INTERNAL_ERROR))
        for number in taken:
            self._write_state(self.owned[number])
        too_old.sort()
        rule_errors.sort(key=lambda pair: pair[0])
        return Handled(sorted(failed.items(), key=lambda pair: pair[0]), too_old, rule_errors)

    def _take(self, part: Partition, judged: Judged) -> dict[str, Journey]:
        """What the core judged on a partition, taken in: its counts (each customer's, merged into the
        partition's, and kept for the customer's record), its stories, the failures of no event. Returns
        the journeys it touched."""
        touched, broken = part.filing.take()  # type: ignore[union-attr]
        counts = judged.counts
        for customer in broken:
            mine = counts.get(customer)
            if mine is None:
                mine = counts[customer] = {}
            tally.add(mine, (tally.JOURNEYS_BROKEN,))
        for counted in counts.values():
            tally.merge(part.counts, counted)
        for error in judged.released_errors:  # of no step's event (a release): the partition's
            tally.add(part.counts, (tally.RULE_ERRORS, error.touchpoint))
        for failure in judged.failures:  # rules that raised while deciding
            self._failed(part, failure)
        for outcome in judged.outcomes:
            if not outcome.good:
                self._story(outcome, part.number)
        return touched

    def _story(self, outcome: Outcome, partition: int) -> None:
        """A bad outcome among its touchpoint's latest (by instant, each customer once: its newest)."""
        latest = self.stories.get(outcome.touchpoint)
        if latest is None:
            return
        customer = outcome.customer
        mine = [item for item in latest if item[2] == customer]
        if mine and mine[0][0] >= outcome.at:
            return
        for item in mine:
            latest.remove(item)
        insort(latest, (outcome.at, partition, customer))
        if len(latest) > STORIES:
            del latest[0]

    def _stored(self, part: Partition, customer: str) -> dict | None:
        """A customer not in memory: its stored record (the core puts it back), or None: a new customer,
        or a record this version cannot read (it starts again, as at a restore)."""
        if customer in part.freeing:
            return None  # freed (its record, not yet deleted, is what it counted before: folded already)
        value = self.customers.get(customer, part.number)
        if value is None:
            return None
        try:
            record = orjson.loads(value)
        except Exception as error:  # (not counted on disk at the restore either: it starts again)
            self._failed(part, Failure(RESTORE, error, customer=customer))
            return None
        if record.get("partition", part.number) != part.number:
            return None  # another partition's customer (a request to forget asks every partition)
        part.on_disk -= 1
        return record

    def keep_in_memory(self, part: Partition, customers: Iterable[str]) -> None:
        """Those of ``customers`` (changed or put back lately) with nothing waiting on the watermark
        become the most recent; then the least recently changed beyond the partition's share of
        ``in_memory`` are unloaded (their records are stored: written before this is called). One the
        engine keeps (something of it is due soon) leaves the list until it changes again."""
        held, lru = part.engine.state.customers, part.resident
        for customer in customers:
            mine = held.get(customer)
            if mine is not None and not mine.queued:
                lru.pop(customer, None)
                lru[customer] = None
        limit = self._share_of(self.in_memory)
        unload = part.engine.unload
        while len(lru) > limit:
            customer = next(iter(lru))
            del lru[customer]
            if unload(customer):
                part.on_disk += 1

    def _share_of(self, total: int) -> int:
        """A partition's share of what the worker holds in memory (customers, journeys)."""
        return max(1, total // max(1, len(self.owned)))

    def _sweep(self, part: Partition, before: int) -> Iterator[list[str]]:
        """Retention for the customers on disk, a share at each sweep: those with something old enough to
        go (an id older than ``before``, marks or active days past their keep, or nothing at all) are
        put back in memory, ``PUT_BACK_AT_ONCE`` at a time (each piece is given, and gone from memory
        again, before the next is read back), so that ``forget`` drops what is old and frees whoever is
        left with nothing."""
        if not part.on_disk:
            part.sweep = None
            return
        held, engine, loaded, put_back = part.engine.state.customers, part.engine, [], 0
        for customer, value in _share(part, "sweep", self.customers):
            if customer in held or customer in part.freeing:
                continue
            # (the sweep reads what the store held when it began: the customer may have been written since)
            value = self.customers.get(customer, part.number)  # type: ignore[assignment]
            if value is None:
                continue
            try:
                record = orjson.loads(value)
                seen = record["seen"]
                if seen and min(at for _, at in seen) >= before:
                    continue  # its ids are all younger: nothing to forget yet
                holds = record["open"] or record.get("recent") or record.get("days")
                if not seen and holds and not engine.may_prune(record):
                    continue  # held for its instances, marks or active days, none due to go: nothing to do
                engine.load(customer, record, counted=True)
            except Exception as error:
                self._failed(part, Failure(RESTORE, error, customer=customer))
                continue
            part.on_disk -= 1
            loaded.append(customer)
            put_back += 1
            if put_back >= PUT_BACK_PER_SWEEP:
                yield loaded
                return  # (the share's reader stays where it stopped)
            if len(loaded) >= PUT_BACK_AT_ONCE:
                yield loaded
                loaded = []
        if loaded:
            yield loaded

    def _expire_journeys(self, part: Partition, before: int) -> None:
        """Delete the stored journeys with nothing newer than ``before``, a share at each sweep (it goes
        round them all in turn: the journeys are read from the store, not remembered in memory)."""
        part.journeys.expire(before)
        for customer, value in _share(part, "journey_sweep", self.journey_store):
            with contextlib.suppress(Exception):  # (unreadable: read again below)
                if _journey_last_at(value) >= before:
                    continue
            # (the sweep reads what the store held when it began: the journey may have been written since)
            value = self.journey_store.get(customer, part.number)
            if value is None:
                continue
            try:
                if _journey_last_at(value) >= before:
                    continue
            except Exception as error:  # a stored journey this version cannot read: it goes
                self._failed(part, Failure(RESTORE, error, customer=customer))
            part.journeys.by_customer.pop(customer, None)
            self.journey_store.put(part.number, customer, None)

    def _settle(self, part: Partition, judged: Judged | None = None) -> tuple[set[str], set[str]]:
        """What the engine decided or changed outside a batch (retention), taken in and written; returns
        what ``_write`` does."""
        judged = part.judging.settle(judged)  # type: ignore[union-attr]
        return self._write(part, judged, self._take(part, judged))

    def _write(
        self,
        part: Partition,
        judged: Judged,
        touched: dict[str, Journey],
        record_failed: Callable[[int, Failure], None] | None = None,
    ) -> tuple[set[str], set[str]]:
        """Write every changed record: the customers' the core says changed, and the journeys touched. A
        record that cannot be written is reported (to ``record_failed``, else in ``failures``) and the
        others are written. Returns the customers changed or put back whose records are stored, and those
        whose records could not be written (they stay in memory: ``keep_in_memory`` is given the others)."""
        deltas = judged.counts
        writes = [(customer, self._write_customer) for customer in judged.changed]
        writes += [(customer, self._write_journey) for customer in touched]
        unwritten = set()
        freeing = part.freeing
        for customer, write in writes:
            try:
                write(part, customer, touched, deltas)
            except Exception as error:
                unwritten.add(customer)
                if write == self._write_customer and customer not in part.engine.state.customers:
                    freeing.add(customer)  # gone from memory, its record's deletion not written: named
                part.resident.pop(customer, None)  # (its record says less than its state: never unloaded so)
                failure = Failure(RECORD, error, customer=customer)
                if record_failed is None:
                    self._failed(part, failure)
                else:
                    record_failed(part.number, failure)
            else:
                if freeing and write == self._write_customer:
                    freeing.discard(customer)  # its record deleted, or its next life's written over it
        part.journeys.keep_recent(self._share_of(self.journey_cache))
        return {*judged.changed, *judged.loaded} - unwritten, unwritten

    def _failed(self, part: Partition | None, failure: Failure) -> None:
        """A failure of no message: for the app to log; counted in its partition, when it has one."""
        if part is not None:
            tally.add(part.counts, (tally.INTERNAL_ERRORS, failure.stage))
        self.failures.append((failure, part is not None))

    def forget(self) -> bool:
        """Retention, in event time: each partition forgets event ids older than its watermark minus the
        retention, frees the customers left with nothing, and deletes journeys quiet for their age.
        Returns whether it rebuilt dicts."""
        compacted = False
        for part in list(self.owned.values()):
            engine = part.engine
            watermark = engine.state.watermark
            if watermark is None:
                continue
            high = max(part.peak, len(engine.state.customers))
            before = watermark - self.retention
            try:
                self._delete_freed(part)
                stored, unwritten = self._forget_among(part, before)
                for piece in self._sweep(part, before):
                    # Put back only to drop what is old: those left go back to disk at once, not counted as
                    # recently changed (they would push the customers active lately out of memory).
                    unwritten |= self._forget_among(part, before, piece)[1]
                    for customer in piece:
                        if customer in unwritten or customer not in engine.state.customers:
                            continue  # (its record could not be written: it stays; or it was freed)
                        if engine.unload(customer):
                            part.on_disk += 1
                        else:  # (something of it due soon: the engine keeps it)
                            stored.add(customer)
                self._expire_journeys(part, watermark - self.journey_age)
                self._write_state(part)
                held = engine.state.customers  # (the freed leave the list: rebuilt, it shrinks with them)
                part.resident = {customer: None for customer in part.resident if customer in held}
                self.keep_in_memory(part, sorted(stored - unwritten))
                now = len(engine.state.customers)
                if high >= COMPACT_FROM and now < high // 2:
                    engine.compact()
                    part.journeys.compact()
                    high, compacted = now, True
                part.peak = high
            except Exception as error:
                self._failed(part, Failure(TIMER, error))
        if compacted:
            try:
                self.customers.compact()
                self.journey_store.compact()
            except Exception as error:
                self._failed(None, Failure(TIMER, error))
        return compacted

    def _forget_among(
        self, part: Partition, before: int, customers: list[str] | None = None
    ) -> tuple[set[str], set[str]]:
        """One pass of retention over the partition's customers in memory (or only ``customers``), a chunk
        of freed at a time, each written; returns what ``_write`` does, over the chunks. None is unloaded
        while the pass goes on (the caller's, after it)."""
        stored: set[str] = set()
        unwritten: set[str] = set()
        for _, freed in part.engine.forget_in_chunks(before, FREE_AT_ONCE, customers):
            if freed:  # the counts first, naming whom they come from; then the deletions
                part.freeing.update(freed)
                self._write_state(part)
            written, failed = self._settle(part)
            stored |= written
            unwritten |= failed
        return stored, unwritten

    def _delete_freed(self, part: Partition, customers: Iterable[str] | None = None) -> None:
        """Try again to delete the records of the customers freed whose deletion could not be written (the
        partition's record names them until it is: ``Partition.freeing``), or of those of ``customers``."""
        for customer in sorted(part.freeing if customers is None else part.freeing.intersection(customers)):
            try:
                self.customers.put(part.number, customer, None)
            except Exception as error:
                self._failed(part, Failure(RECORD, error, customer=customer))
            else:
                part.freeing.discard(customer)

    # -- forgetting a customer on request (docs/SECURITY.md) ---------------------------------------------
    def erase(self, offset: int, request: Request) -> list[int]:
        """A request read from the forget topic at ``offset``: the customer is erased from every
        partition owned here that holds it, and every owned partition's record says it is applied.
        Returns the partitions that held the customer."""
        if offset > self.requests.last:
            self.requests.add(offset, request)
            if self.requests.end is not None:
                self.requests.end = max(self.requests.end, offset + 1)
        held = []
        for part in list(self.owned.values()):
            if part.applied < offset:
                self._unconfirmed = True
                part.applied = offset  # the record says so once the tombstones are stored (confirm_erasures)
                if self._erase(part, request.customer):
                    held.append(part.number)
                    self._write_state(part)  # (no longer naming it as freeing)
        return held

    def forget_topic_end(self, end: int, restarted: bool = False) -> None:
        """The forget topic ends at ``end`` (its reader says so at each start). Below an offset read
        already (``restarted``: its reader saw so), it was deleted and created again (the reader reads it
        again from its first message): every owned partition applies its requests again, their offsets
        taken as restarted."""
        if restarted or end <= self.requests.last:
            self.requests = Requests()
            for part in list(self.owned.values()):
                part.erased = part.applied = -1
                self._write_state(part)
        self.requests.end = max(self.requests.end or 0, end)

    def _catch_up_erasures(self, part: Partition) -> None:
        """A partition just taken (restored from its records): the requests read here that its record
        does not say were applied (its owner before had not read them, or stopped before their
        tombstones were stored: a request is applied again until its record says it is)."""
        if self.requests.end is not None and part.erased >= self.requests.end:
            log.error(
                "partition %d: its record says it applied the request at offset %d of the forget topic, which "
                "ends at %d: the topic was deleted and created again. Every request in it is applied again here "
                "(its offsets taken as restarted)",
                part.number,
                part.erased,
                self.requests.end,
            )
            part.erased = part.applied = -1
        waiting = self.requests.after(part.erased)
        if not waiting:
            return
        erased = [request.customer for _, request in waiting if self._erase(part, request.customer)]
        part.applied = waiting[-1][0]
        self._unconfirmed = True
        self._write_state(part)
        for customer in erased:
            log.info("forget: customer %s erased from partition %d as this worker took it", customer, part.number)

    def erasures_applied(self) -> list[tuple[Partition, int]]:
        """The partitions whose record does not say yet the last request applied to them, with its
        offset: taken before a delivery, given to ``confirm_erasures`` once it has returned."""
        if not self._unconfirmed:  # (each batch asks: nothing to look through, most of the time)
            return []
        found = [(part, part.applied) for part in self.owned.values() if part.applied > part.erased]
        self._unconfirmed = bool(found)
        return found

    def confirm_erasures(self, applied: list[tuple[Partition, int]]) -> bool:
        """A delivery that started after ``applied`` was taken has returned: the tombstones of those
        requests are stored, so the partitions' records may say they are applied (each writes its
        record, for the next delivery). The record never says so before: a crash in between, or a new
        owner, applies the request again (docs/SECURITY.md). Returns whether a record was written."""
        written = False
        for part, offset in applied:
            if self.owned.get(part.number) is part and offset > part.erased:
                part.erased = offset
                self._write_state(part)
                written = True
        return written

    def _erase(self, part: Partition, customer: str) -> bool:
        """Erase the customer from one partition: its engine state, its record (a tombstone in the
        customers changelog), its journey (a tombstone in the journeys topic) and its stories. What it
        counted stays, in the partition's record, which names it as freeing until its record is gone
        (as ``forget`` frees a customer: a crash in between finishes the deletion)."""
        stored = None if customer in part.engine.state.customers else self._stored(part, customer)
        if stored is not None:  # on disk: put back, to be erased as one in memory is
            part.engine.load(customer, stored, counted=True)
        # (one freed whose record's deletion is not yet written counts: its deletion is written now)
        held = customer in part.freeing or customer in part.engine.state.customers
        held = held or part.journeys.by_customer.get(customer) is not None
        held = held or self.journey_store.get(customer, part.number) is not None
        if not held:
            return False
        try:
            # The journey first: the partition's record, which may say the request is applied, comes after.
            part.journeys.by_customer.pop(customer, None)
            self.journey_store.put(part.number, customer, None)
            if part.engine.erase(customer):  # what it counted stays, in the record naming it
                part.engine.dirty.discard(customer)
                part.freeing.add(customer)
                self._write_state(part)
            self._delete_freed(part, (customer,))
            for latest in self.stories.values():
                for item in [item for item in latest if item[2] == customer]:
                    latest.remove(item)
        except Exception as error:
            self._failed(part, Failure(RECORD, error, customer=customer))
        return True

    def _drop_old_windows(self, part: Partition) -> None:
        """Each touchpoint's state window buckets before a window back from the one of what is decided
        leave its counts: the window at what is decided does not sum them, nor at what is decided held
        back by up to a window for late history. Before each of the partition's records, once what is
        decided has moved into another bucket, so that the record stays a couple of windows of buckets
        long, not as long as a backfill's history read between two sweeps. (An outcome counted in a
        bucket older than that, decided long after its instant, leaves at the next move. History held
        back further than a window finds the buckets of its time holding its own outcomes only:
        docs/SEMANTICS.md.)"""
        mark = part.engine.mark()
        low, high = part.windows_still
        windows = self.windows
        if mark is None or low <= mark < high or not windows:
            return
        tally.drop_windows_before(
            part.counts, {t: window.start(window.start(mark) - 1) for t, window in windows.items()}
        )
        part.windows_still = (
            max(window.bucket(mark) for window in windows.values()),
            min(window.moves(mark) for window in windows.values()),
        )

    def _write_state(self, part: Partition) -> None:
        engine = part.engine
        try:
            self._drop_old_windows(part)
            state = {
                "version": STATE_VERSION,
                **engine.saved(),  # its clock and what its freed customers counted
                "since": {
                    touchpoint: [mine[0], *_judged_as(self.catalog[touchpoint])]
                    for touchpoint, mine in part.since.items()
                },
                "inputs": part.clock.record(),
                "caught_up": part.clock.caught_up_record(),  # (apart: a worker of before reads "inputs")
                "history": part.history.record(),  # (the inputs' late history: not the engine's own)
                "freeing": sorted(part.freeing),
                "counts": tally.record(part.counts),
                "offset": part.offset,
                "through": part.through,
                "rejects_through": part.rejects_through,
                # The customer records newer than this one whose counts it holds already (_restore).
                "crashed": {customer: mark for customer, mark in part.crashed.items() if mark > part.offset},
                "erased": part.erased,
            }
            self.customers.put_state(part.number, encoder(self.customers)(state))
            part.carry.clear()  # stored with the partition's counts from now on
        except Exception as error:
            self._failed(part, Failure(RECORD, error))

    def _write_customer(
        self, part: Partition, customer: str, touched: dict[str, Journey], deltas: dict[str, tally.Counts]
    ) -> None:
        record = part.engine.record(customer)
        if record is None:
            self.customers.put(part.number, customer, None)
        else:
            record["partition"] = part.number
            record["m"] = part.offset  # what the batch had reached, and what it counted for the customer
            delta = deltas.get(customer)
            carried = part.carry.get(customer)
            if carried:  # what its record before counted, no partition's record stores yet
                delta = {**carried}
                tally.merge(delta, deltas.get(customer) or {})
            if delta:
                record["d"] = [[*key, amount] for key, amount in delta.items()]
            self.customers.put(part.number, customer, encoder(self.customers)(record))

    def _write_journey(
        self, part: Partition, customer: str, touched: dict[str, Journey], deltas: dict[str, tally.Counts]
    ) -> None:
        journey = touched[customer]
        self.journey_store.put(part.number, customer, encoder(self.journey_store)(journey.record()))


class MemoryStore:
    """A Store in dicts, for tests and for replaying a partition by hand. ``writes`` keeps every write in
    order (a partition's record as the key None), as a changelog would (``changelog=False``: none, for a
    long run)."""

    def __init__(self, changelog: bool = True) -> None:
        self.data: dict[str, bytes] = {}
        self.partition_of: dict[str, int] = {}
        self.states: dict[int, bytes] = {}
        self.writes: list[tuple[int, str | None, bytes | None]] = []
        self.changelog = changelog

    def get(self, key: str, partition: int | None = None) -> bytes | None:
        return self.data.get(key)

    def put(self, partition: int, key: str, value: bytes | None) -> None:
        if self.changelog:
            self.writes.append((partition, key, value))
        if value is None:
            self.data.pop(key, None)
            self.partition_of.pop(key, None)
        else:
            self.data[key] = value
            self.partition_of[key] = partition

    def items(self, partition: int) -> Iterable[tuple[str, bytes]]:
        return [(key, self.data[key]) for key, where in self.partition_of.items() if where == partition]

    def get_state(self, partition: int) -> bytes | None:
        return self.states.get(partition)

    def put_state(self, partition: int, value: bytes) -> None:
        if self.changelog:
            self.writes.append((partition, None, value))
        self.states[partition] = value

    def compact(self) -> None:
        self.data, self.partition_of = dict(self.data), dict(self.partition_of)

    @classmethod
    def replayed(cls, writes: list[tuple[int, str | None, bytes | None]]) -> MemoryStore:
        """The store a changelog holding ``writes`` gives back (a crash may have cut them short)."""
        store = cls()
        for partition, key, value in writes:
            if key is None:
                store.put_state(partition, value)  # type: ignore[arg-type]
            else:
                store.put(partition, key, value)
        return store
