"""Engine state: plain data, sliced by customer, so that each customer's part can be stored on its own.

Events are partitioned by customer live, and an instance is identified by its key *within one
customer's events*, so everything an event can change belongs to its customer:

- ``CustomerState.open``: "touchpoint-id/key" -> [opened_at, event_id, True] of each undecided instance
  (the instance's cell, see ``engine.rules``; an SLA clock's cell holds more, see ``engine.clock``);
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
event time is the newest ``seen`` entry. The queue is a heap of the customers' queued events plus one
due line per rule: the due times of its open instances, in order. Instances open in event-time order,
so a rule's due times mostly arrive sorted and join the end of its line; only the line's first entry
sits in the heap, which stays as small as the events within the lateness instead of holding every open
instance. A due time that arrives out of order (a late event, a restored record) goes into the heap.
``record()`` and ``load()`` turn one customer's part into a JSON-ready record and back.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

# Ranks in the queue, the order of what happens at one instant: a deadline's start, its pauses and
# resumes, its end (a no_repeat's repeat, then its trigger); then due times, then risk times; then the
# leavings and survey answers that are attributed to the outcomes up to their instant (engine.impact).
START, PAUSE, RESUME, END = 0, 1, 2, 3
REPEAT, TRIGGER = 0, 1
DUE = 4
RISK = 5
IMPACT = 6
ATTRIBUTION = ""  # the touchpoint id a stored impact entry names (it belongs to none)
RECORD_VERSION = 2  # records of version 1 ranked a deadline's end 1 and due times 2
SEPARATOR = "/"  # between a touchpoint id (which has none) and an instance key in CustomerState.open


class CustomerState:
    __slots__ = ("active", "bad", "days", "good", "impact", "open", "queued", "recent", "said", "seen")

    def __init__(self) -> None:
        self.open: dict[str, list] = {}
        self.seen: dict[str, int] = {}
        self.queued: set[tuple] | None = None  # None when empty, as good and bad: most customers have none
        self.good: dict[str, int] | None = None
        self.bad: dict[str, int] | None = None
        self.recent: tuple[int, ...] | None = None  # the marks of its recent outcomes (engine.impact)
        self.impact: dict[str, float] | None = None  # its impact tallies, "TOUCHPOINT/NAME" -> amount
        self.days: tuple[int, ...] | None = None  # the recent UTC days it had events in
        self.said: list[tuple] | None = None  # its leavings and answers attributed, by instant (engine.impact)
        self.active = 0  # the days it was active in (customers active), until freed

    def record(self, touchpoint_ids: tuple[str, ...]) -> dict:
        """JSON-ready, naming touchpoints by id so that a reordered catalog still reads it."""
        queued = self.queued or ()
        return {
            "v": RECORD_VERSION,
            # [touchpoint, key, opened_at, event_id], and an SLA clock's [due, spent, since] (engine.clock)
            "open": [
                [*instance.split(SEPARATOR, 1), cell[0], cell[1], *cell[3:6]] for instance, cell in self.open.items()
            ],
            "seen": [[event_id, at] for event_id, at in self.seen.items()],
            "queued": sorted(
                [
                    at,
                    rank,
                    event_id,
                    touchpoint_ids[rule] if rank != IMPACT else ATTRIBUTION,
                    list(key) if type(key) is tuple else key,
                ]
                for at, rank, event_id, rule, key, _, _ in queued
            ),
            "good": dict(self.good or {}),
            "bad": dict(self.bad or {}),
        }

    def is_empty(self) -> bool:
        return not (self.seen or self.open or self.queued or self.good or self.bad or self.recent or self.impact)


@dataclass
class EngineState:
    customers: dict[str, CustomerState] = field(default_factory=dict)
    queue: list[tuple] = field(default_factory=list)  # a heap
    due_lines: dict[int, deque[tuple]] = field(default_factory=dict)  # rule index -> its due times, sorted
    max_at: int | None = None
    min_at: int | None = None  # the first data: the earliest occurred_at judged (a state warms up from it)
    watermark: int | None = None
    # While late history is in flight, what is decided is held at this instant below the watermark
    # (None: decided up to the watermark). engine.Engine, "Late history".
    held: int | None = None
    # A replay's own history (engine.Engine): [the largest late occurred_at, max_at when the last came].
    history: list[int] | None = None
