"""Engine state: plain data (dicts, lists, tuples of str and int) that serialises to JSON and back.

- ``open``: per touchpoint, key -> (opened_at, customer, event_id) of the undecided instance;
- ``queue``: a heap of what waits for the watermark, so that every rule sees its events in event-time
  order whatever order they arrived in: events as (at, rank, event_id, rule, key, customer) and due
  times as (due, DUE, "", rule, key, opened_at); due times derive from ``open`` and are rebuilt on
  restore;
- the clock (largest event time, watermark, wall time of the last arrival) and the duplicate filter.
"""

from __future__ import annotations

import heapq
from collections import deque
from dataclasses import dataclass, field

from .rules import DUE


@dataclass
class EngineState:
    open: list[dict[str, tuple[int, str, str]]]
    queue: list[tuple] = field(default_factory=list)
    max_at: int | None = None
    watermark: int | None = None
    last_arrival: int | None = None  # wall clock, microseconds; None in replay
    seen: set[str] = field(default_factory=set)
    seen_order: deque[tuple[int, str]] = field(default_factory=deque)  # (at, id), for retention

    @classmethod
    def empty(cls, touchpoints: int) -> EngineState:
        return cls(open=[{} for _ in range(touchpoints)])

    def to_dict(self) -> dict:
        return {
            "version": 1,
            "open": [{key: list(value) for key, value in instances.items()} for instances in self.open],
            "queue": [list(entry) for entry in self.queue if entry[1] != DUE],
            "max_at": self.max_at,
            "watermark": self.watermark,
            "last_arrival": self.last_arrival,
            "seen": [list(entry) for entry in self.seen_order] if self.seen_order else sorted(self.seen),
        }

    @classmethod
    def from_dict(cls, data: dict, within: list[int | None]) -> EngineState:
        """Restore; ``within`` gives each touchpoint's window, to rebuild the timers."""
        state = cls(open=[{key: tuple(value) for key, value in instances.items()} for instances in data["open"]])
        state.queue = [tuple(entry) for entry in data["queue"]]
        for rule, instances in enumerate(state.open):
            window = within[rule]
            if window is None:
                continue
            for key, (opened_at, _, _) in instances.items():
                state.queue.append((opened_at + window, DUE, "", rule, key, opened_at))
        heapq.heapify(state.queue)
        state.max_at, state.watermark, state.last_arrival = data["max_at"], data["watermark"], data["last_arrival"]
        for entry in data["seen"]:
            if isinstance(entry, list):
                state.seen_order.append((entry[0], entry[1]))
                state.seen.add(entry[1])
            else:
                state.seen.add(entry)
        return state
