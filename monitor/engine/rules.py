"""The semantics of each kind of touchpoint (SPEC section 3), applied to events in event-time order.

A rule never sees arrival order. The engine keeps one queue of everything that waits for the
watermark: events, by (occurred_at, rank, event_id), and due times, ranked after the events of their
instant (an end at exactly S + D is in time). The rank orders roles at one instant: a deadline's start
before its end (S <= E is good), a no_repeat's repeat before its trigger (T < R). Each queue entry is
handed to ``handlers[rank]`` of its rule as (time, event_id, key, customer or opened_at).
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush

from ..catalog.model import Touchpoint
from .outcome import IN_TIME, MISSED, QUIET, REPEATED, Outcome

DUE = 2  # the rank of a due time: after every event of the same instant


class WindowRule:
    """deadline and no_repeat: one open instance per key, decided by the other role or by time."""

    __slots__ = ("id", "index", "open_instances", "outbox", "queue", "within")
    OPENER_RANK: int
    QUIET_IS_GOOD: bool
    QUIET_REASON: str

    def __init__(self, index: int, touchpoint: Touchpoint, open_instances: dict, queue: list, outbox: list) -> None:
        self.index = index
        self.id = touchpoint.id
        self.within: int = touchpoint.within  # type: ignore[assignment]
        self.open_instances = open_instances  # key -> (opened_at, customer, event_id)
        self.queue = queue
        self.outbox = outbox

    def handlers(self) -> tuple[Callable, Callable, Callable]:
        raise NotImplementedError

    def open(self, at: int, event_id: str, key: str, customer: str) -> None:
        # At most one open instance per key: an opener while one is open is ignored.
        if key not in self.open_instances:
            self.open_instances[key] = (at, customer, event_id)
            heappush(self.queue, (at + self.within, DUE, "", self.index, key, at))

    def expire(self, due: int, _: str, key: str, opened_at: int) -> None:
        instance = self.open_instances.get(key)
        if instance is not None and instance[0] == opened_at:  # else the instance was closed before
            del self.open_instances[key]
            self.outbox.append(
                Outcome(self.id, self.QUIET_IS_GOOD, self.QUIET_REASON, instance[1], key, due, opened_at, instance[2])
            )


class DeadlineRule(WindowRule):
    """S opens; an E with S <= E <= S + D is good; the clock passing S + D with no E is bad."""

    __slots__ = ()
    OPENER_RANK = 0
    QUIET_IS_GOOD = False
    QUIET_REASON = MISSED

    def handlers(self) -> tuple[Callable, Callable, Callable]:
        return self.open, self.end, self.expire

    def end(self, at: int, event_id: str, key: str, customer: str) -> None:
        instance = self.open_instances.get(key)
        # An end before its start (possible only when late) matches nothing.
        if instance is None or at < instance[0]:
            return
        del self.open_instances[key]
        opened_at = instance[0]
        in_time = at - opened_at <= self.within  # always, unless the end itself was late
        reason = IN_TIME if in_time else MISSED
        closed_by = (event_id, customer)
        self.outbox.append(
            Outcome(self.id, in_time, reason, instance[1], key, at, opened_at, instance[2], closed_by, at - opened_at)
        )


class NoRepeatRule(WindowRule):
    """T opens; the first R with T < R <= T + D is bad; the clock passing T + D with no R is good."""

    __slots__ = ()
    OPENER_RANK = 1
    QUIET_IS_GOOD = True
    QUIET_REASON = QUIET

    def handlers(self) -> tuple[Callable, Callable, Callable]:
        return self.repeat, self.open, self.expire

    def repeat(self, at: int, event_id: str, key: str, customer: str) -> None:
        instance = self.open_instances.get(key)
        if instance is None or at <= instance[0]:
            return
        del self.open_instances[key]
        closed_by = (event_id, customer)
        self.outbox.append(Outcome(self.id, False, REPEATED, instance[1], key, at, instance[0], instance[2], closed_by))
