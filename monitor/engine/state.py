"""Engine state: plain data, sliced by customer, so that each customer's part can be stored on its own.

Events are partitioned by customer live, and an instance is identified by its key *within one
customer's events*, so everything an event can change belongs to its customer:

- ``CustomerState.open``: (touchpoint index, key) -> (opened_at, event_id) of each undecided instance;
- ``CustomerState.seen``: event_id -> occurred_at, for duplicates;
- ``CustomerState.queued``: the customer's events waiting in the queue for the watermark;
- ``CustomerState.counts``: touchpoint id -> [good, bad] of the outcomes the customer owns.

What is shared is derived: the queue (a heap of the customers' queued events and of the due times of
their open instances) and the clock, whose largest event time is the newest ``seen`` entry.
``record()`` and ``load()`` turn one customer's part into a JSON-ready record and back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

DUE = 2  # the rank of a due time in the queue: after every event of the same instant


@dataclass(slots=True)
class CustomerState:
    open: dict[tuple[int, str], tuple[int, str]] = field(default_factory=dict)
    seen: dict[str, int] = field(default_factory=dict)
    queued: set[tuple] = field(default_factory=set)
    counts: dict[str, list[int]] = field(default_factory=dict)

    def record(self, touchpoint_ids: tuple[str, ...]) -> dict:
        """JSON-ready, naming touchpoints by id so a reordered catalog still reads it."""
        return {
            "open": [[touchpoint_ids[rule], key, at, event_id] for (rule, key), (at, event_id) in self.open.items()],
            "seen": [[event_id, at] for event_id, at in self.seen.items()],
            "queued": sorted(
                [at, rank, event_id, touchpoint_ids[rule], key] for at, rank, event_id, rule, key, _ in self.queued
            ),
            "counts": {touchpoint: list(pair) for touchpoint, pair in self.counts.items()},
        }


@dataclass
class EngineState:
    customers: dict[str, CustomerState] = field(default_factory=dict)
    queue: list[tuple] = field(default_factory=list)
    max_at: int | None = None
    watermark: int | None = None
    last_arrival: int | None = None  # wall clock, microseconds; None in replay
