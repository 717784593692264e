"""The semantics of each kind of touchpoint (SPEC section 3), applied to events in event-time order.

A rule never sees arrival order: the engine releases its events from the buffer once the watermark has
passed them, sorted by (occurred_at, rank, event_id), and interleaves due times so that at one instant
events come before expiries (an end at exactly S + D is in time). The rank orders roles at one instant:
a deadline's start before its end (S <= E is good), a no_repeat's repeat before its trigger (T < R).
"""

from __future__ import annotations

import heapq

from ..catalog.model import Touchpoint
from .outcome import IN_TIME, JUDGED, MISSED, QUIET, REPEATED, Outcome

FIRST, SECOND = 0, 1


class WindowRule:
    """deadline and no_repeat: an instance per key, opened by one role and decided by the other or by time."""

    __slots__ = ("id", "index", "open", "outbox", "timers", "within")
    opens_rank = FIRST

    def __init__(self, index: int, touchpoint: Touchpoint, open_instances: dict, timers: list, outbox: list) -> None:
        self.index = index
        self.id = touchpoint.id
        self.within: int = touchpoint.within  # type: ignore[assignment]
        self.open = open_instances
        self.timers = timers
        self.outbox = outbox

    def release(self, rank: int, at: int, event_id: str, key: str, customer: str) -> None:
        if rank == self.opens_rank:
            # At most one open instance per key: an opener while one is open is ignored.
            if key not in self.open:
                self.open[key] = (at, customer, event_id)
                heapq.heappush(self.timers, (at + self.within, self.index, key, at))
            return
        instance = self.open.get(key)
        if instance is not None and self.closes(instance[0], at):
            del self.open[key]
            self.close(instance, at, event_id, key, customer)

    def expire(self, due: int, key: str, opened_at: int) -> None:
        instance = self.open.get(key)
        if instance is not None and instance[0] == opened_at:  # else the timer is stale
            del self.open[key]
            self.outbox.append(
                Outcome(self.id, self.good_when_quiet, self.quiet_reason, instance[1], key, due, opened_at, instance[2])
            )

    # Filled in by each kind.
    good_when_quiet: bool
    quiet_reason: str

    def closes(self, opened_at: int, at: int) -> bool:
        raise NotImplementedError

    def close(self, instance: tuple, at: int, event_id: str, key: str, customer: str) -> None:
        raise NotImplementedError


class DeadlineRule(WindowRule):
    """S opens; an E with S <= E <= S + D is good; the clock passing S + D with no E is bad."""

    __slots__ = ()
    opens_rank = FIRST
    good_when_quiet = False
    quiet_reason = MISSED

    def closes(self, opened_at: int, at: int) -> bool:
        return opened_at <= at  # an end before its start (only possible when late) matches nothing

    def close(self, instance: tuple, at: int, event_id: str, key: str, customer: str) -> None:
        opened_at = instance[0]
        in_time = at - opened_at <= self.within
        self.outbox.append(
            Outcome(
                self.id,
                in_time,
                IN_TIME if in_time else MISSED,
                instance[1],
                key,
                at,
                opened_at,
                instance[2],
                (event_id, customer),
                at - opened_at,
            )
        )


class NoRepeatRule(WindowRule):
    """T opens; the first R with T < R <= T + D is bad; the clock passing T + D with no R is good."""

    __slots__ = ()
    opens_rank = SECOND
    good_when_quiet = True
    quiet_reason = QUIET

    def closes(self, opened_at: int, at: int) -> bool:
        return opened_at < at

    def close(self, instance: tuple, at: int, event_id: str, key: str, customer: str) -> None:
        self.outbox.append(
            Outcome(self.id, False, REPEATED, instance[1], key, at, instance[0], instance[2], (event_id, customer))
        )


def judge(touchpoint_id: str, good: bool, event_id: str, customer: str, at: int) -> Outcome:
    """A condition's outcome: decided at once by its expression."""
    return Outcome(touchpoint_id, good, JUDGED, customer, event_id, at, at, event_id)
