"""Engine state: plain data, sliced by customer, so that each customer's part can be stored on its own.

Events are partitioned by customer live, and an instance is identified by its key *within one
customer's events*, so everything an event can change belongs to its customer:

- ``CustomerState.open``: "touchpoint-id/key" (the instance's name) -> the ``Instance`` of each
  undecided instance: when and by which event it opened, and whether it is still open (an SLA
  clock's holds more, see ``engine.clock``);
- ``CustomerState.seen``: event_id -> occurred_at, for duplicates;
- ``CustomerState.queued``: the customer's events waiting in the queue for the watermark (kept only
  when the engine tracks customers);
- ``CustomerState.good`` and ``.bad``: touchpoint id -> outcomes the customer owns;
- ``CustomerState.recent``, ``.impact``, ``.days`` and ``.said``: the marks of its recent outcomes, its
  impact tallies, the UTC days it was active in lately and the leavings and answers already attributed
  (``engine.impact``).

Containers hold strings and numbers only, where they can: the garbage collector then leaves them
alone, which keeps a replay of millions of events from spending its time in collections.

What is shared is derived: the queue of what waits for the watermark, and the clock, whose largest
event time is the newest ``seen`` entry. The queue is a heap of the customers' queued events
(``Queued``) and of due times (``Due``), plus one due line per rule: its open instances, by due time.
Instances open in event-time order, so a rule's due times mostly arrive sorted and its instances join
the end of its line; only the due time of the line's first instance sits in the heap, which stays as
small as the events within the lateness instead of holding every open instance. A due time that
arrives out of order (a late event, a restored record, an SLA clock resumed) goes into the heap.
``record()`` and ``load()`` turn one customer's part into a JSON-ready record and back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NamedTuple

if TYPE_CHECKING:
    from .impact import Attributed

# Ranks in the queue, the order of what happens at one instant: a deadline's start, its pauses and
# resumes, its end (a no_repeat's repeat, then its trigger); then due times, then risk times; then the
# leavings and survey answers that are attributed to the outcomes up to their instant (engine.impact).
START, PAUSE, RESUME, END = 0, 1, 2, 3
REPEAT, TRIGGER = 0, 1
DUE = 4
RISK = 5
IMPACT = 6
ATTRIBUTION = ""  # the touchpoint id a stored impact entry names (it belongs to none)
ATTRIBUTION_RULE = -1  # the rule of a leaving or an answer in the queue (Queued.rule_index): the last handlers
RECORD_VERSION = 2  # records of version 1 ranked a deadline's end 1 and due times 2
SEPARATOR = "/"  # between a touchpoint id (which has none) and an instance key in CustomerState.open


class Instance:
    """An undecided instance of a deadline or no_repeat touchpoint, in its customer's ``open`` and in
    its rule's due line (or the heap: ``WindowRule.schedule``). Deciding it sets ``open`` to False, so
    that a due time whose instance was decided before is recognised without looking anything up."""

    __slots__ = ("customer", "customer_state", "due", "key", "open", "opened_at", "opened_by")

    def __init__(
        self, opened_at: int, opened_by: str, due: int | None, customer: str, key: str, customer_state: CustomerState
    ) -> None:
        self.opened_at = opened_at
        self.opened_by = opened_by  # the id of the event that opened it
        self.open = True
        self.due = due  # the instant it was filed at (its due time), None until it is
        self.customer = customer
        self.key = key
        self.customer_state = customer_state

    def clock_record(self) -> tuple:
        """What a stored record keeps of it beyond when and by which event it opened: nothing here, an
        SLA clock's due instant, time spent and running start (engine.clock)."""
        return ()

    # Due times compare as tuples, up to their instance only when two instances of one name are due at
    # one instant (a late start after the first was decided): then by what it holds, in order. Two
    # closed copies of one instance (its customer unloaded, put back and unloaded again: Engine.unload)
    # do nothing when their due times come, in either order: they compare by identity. (The heap asks
    # <, a due line >=; Python reflects them for > and <=.)
    def sort_key(self) -> tuple:
        return self.opened_at, self.opened_by, self.open

    def __lt__(self, other: Instance) -> bool:
        if self.open or other.open or self.opened_at != other.opened_at or self.opened_by != other.opened_by:
            return self.sort_key() < other.sort_key()
        return id(self) < id(other)

    def __ge__(self, other: Instance) -> bool:
        return not self < other


class Queued(NamedTuple):
    """An event waiting in the queue for the watermark, for one rule's role (or to be attributed).

    Entries compare as tuples: by instant, then rank, then event id (then rule and key), which is the
    order the rules see them in."""

    at: int
    rank: int
    event_id: str
    rule_index: int  # in Engine.rules; ATTRIBUTION_RULE for a leaving or an answer
    # The instance key; a start whose deadline has ``due:``, (key, its due instant); an answer,
    # (survey, score, the fingerprint of the instance it is about or 0); a leaving, "".
    key: str | tuple
    customer: str
    customer_state: CustomerState


class Due(NamedTuple):
    """An open instance's due time (rank DUE), or an SLA clock's risk time (rank RISK), in the queue:
    after the events of its instant, then by customer, rule and key."""

    at: int
    rank: int
    customer: str
    rule_index: int  # in Engine.rules
    key: str
    instance: Instance
    customer_state: CustomerState


#: Builds an entry as ``make_entry(Queued, (at, rank, ...))``: a tuple of the entry's class, without the
#: Python-level ``__new__`` of a NamedTuple (half the cost, on the hot path: an entry per role an
#: event files, and per due time).
make_entry = tuple.__new__


class CustomerState:
    __slots__ = ("active", "bad", "days", "good", "impact", "open", "queued", "recent", "said", "seen")

    def __init__(self) -> None:
        self.open: dict[str, Instance] = {}
        self.seen: dict[str, int] = {}
        self.queued: set[Queued] | None = None  # None when empty, as good and bad: most customers have none
        self.good: dict[str, int] | None = None
        self.bad: dict[str, int] | None = None
        self.recent: tuple[int, ...] | None = None  # the marks of its recent outcomes (engine.impact)
        self.impact: dict[str, float] | None = None  # its impact tallies, "TOUCHPOINT/NAME" -> amount
        self.days: tuple[int, ...] | None = None  # the recent UTC days it had events in
        self.said: list[Attributed] | None = None  # its leavings and answers attributed, by instant (engine.impact)
        self.active = 0  # the days it was active in (customers active), until freed

    def record(self, touchpoint_ids: tuple[str, ...]) -> dict:
        """JSON-ready, naming touchpoints by id so that a reordered catalog still reads it."""
        queued = self.queued or ()
        return {
            "v": RECORD_VERSION,
            "open": self.open_record(),
            "seen": [[event_id, at] for event_id, at in self.seen.items()],
            "queued": sorted(
                [
                    at,
                    rank,
                    event_id,
                    touchpoint_ids[rule] if rank != IMPACT else ATTRIBUTION,
                    list(key) if type(key) is tuple else key,
                ]
                for at, rank, event_id, rule, key, _, _ in queued  # (Queued)
            ),
            "good": dict(self.good or {}),
            "bad": dict(self.bad or {}),
        }

    def open_record(self) -> list[list]:
        """Its open instances as its record keeps them: [touchpoint, key, opened_at, event_id], and an SLA
        clock's [due, spent, since] (engine.clock)."""
        return [
            [*name.split(SEPARATOR, 1), instance.opened_at, instance.opened_by, *instance.clock_record()]
            for name, instance in self.open.items()
        ]

    def is_empty(self) -> bool:
        return not (self.seen or self.open or self.queued or self.good or self.bad or self.recent or self.impact)


@dataclass
class EngineState:
    customers: dict[str, CustomerState] = field(default_factory=dict)
    queue: list[Queued | Due] = field(default_factory=list)  # a heap
    due_lines: dict[int, deque[Instance]] = field(default_factory=dict)  # rule index -> its instances, by due time
    max_at: int | None = None
    min_at: int | None = None  # the first data: the earliest occurred_at judged (a state warms up from it)
    watermark: int | None = None
    # While late history is in flight, what is decided is held at this instant below the watermark
    # (None: decided up to the watermark). engine.Engine, "Late history".
    held: int | None = None
    # A replay's own history (engine.Engine): [the largest late occurred_at, max_at when the last came].
    history: list[int] | None = None
