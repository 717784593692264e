"""The semantics of each kind of touchpoint (SPEC section 3), applied to events in event-time order.

A rule never sees arrival order. The engine keeps one queue of everything that waits for the
watermark: events, by (occurred_at, rank, event_id), and the due times of open instances, ranked after
the events of their instant (an end at exactly S + D is in time). The rank orders roles at one
instant: a deadline's start before its end (S <= E is good), a no_repeat's repeat before its trigger
(T < R is required). Queue entries are (time, rank, event_id, rule, key, customer) for events and
(due, DUE, customer, rule, key, opened_at) for due times; each goes to ``handlers()[rank]`` of its
rule with the last four items. A rule files its due times in its due line (see ``engine.state``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappush

from ..catalog.model import Touchpoint
from .outcome import IN_TIME, MISSED, QUIET, REPEATED, Outcome
from .state import DUE, SEPARATOR, CustomerState


class WindowRule:
    """deadline and no_repeat: one open instance per key, decided by the other role or by time."""

    __slots__ = ("customers", "decide", "id", "index", "line", "pending", "prefix", "queue", "within")
    OPENER_RANK: int
    QUIET_IS_GOOD: bool
    QUIET_REASON: str

    def __init__(
        self,
        index: int,
        touchpoint: Touchpoint,
        customers: dict[str, CustomerState],
        queue: list,
        line: deque,
        pending: list[int],
        decide: Callable[[Outcome, CustomerState], None],
    ) -> None:
        self.index = index
        self.id = touchpoint.id
        self.prefix = touchpoint.id + SEPARATOR
        self.within: int = touchpoint.within  # type: ignore[assignment]
        self.customers = customers
        self.queue = queue
        self.line = line
        self.pending = pending  # open instances per touchpoint, shared by the rules
        self.decide = decide

    def handlers(self) -> tuple[Callable, Callable, Callable]:
        raise NotImplementedError

    def open(self, at: int, event_id: str, key: str, customer: str) -> None:
        state = self.customers[customer]
        instance = self.prefix + key
        # At most one open instance per key: an opener while one is open is ignored.
        if instance not in state.open:
            state.open[instance] = (at, event_id)
            self.pending[self.index] += 1
            self.schedule((at + self.within, DUE, customer, self.index, key, at))

    def schedule(self, due: tuple) -> None:
        """File a due time: at the end of the line when it is not before the last one, else in the heap.
        The line's first entry is in the heap too, so that the heap always holds the next one due."""
        line = self.line
        if not line:
            line.append(due)
            heappush(self.queue, due)
        elif due >= line[-1]:
            line.append(due)
        else:
            heappush(self.queue, due)

    def expire(self, due: int, customer: str, key: str, opened_at: int) -> None:
        state = self.customers.get(customer)
        if state is None:
            return
        instance = state.open.get(self.prefix + key)
        if instance is not None and instance[0] == opened_at:  # else it was decided before
            del state.open[self.prefix + key]
            self.pending[self.index] -= 1
            outcome = Outcome(
                self.id, self.QUIET_IS_GOOD, self.QUIET_REASON, customer, key, due, opened_at, instance[1]
            )
            self.decide(outcome, state)


class DeadlineRule(WindowRule):
    """S opens; an E with S <= E <= S + D is good; the clock passing S + D with no E is bad."""

    __slots__ = ()
    OPENER_RANK = 0
    QUIET_IS_GOOD = False
    QUIET_REASON = MISSED

    def handlers(self) -> tuple[Callable, Callable, Callable]:
        return self.open, self.end, self.expire

    def end(self, at: int, event_id: str, key: str, customer: str) -> None:
        state = self.customers[customer]
        instance = state.open.get(self.prefix + key)
        # An end before its start (possible only when late) matches nothing.
        if instance is None or at < instance[0]:
            return
        del state.open[self.prefix + key]
        self.pending[self.index] -= 1
        opened_at = instance[0]
        in_time = at - opened_at <= self.within  # always, unless the end itself was late
        reason = IN_TIME if in_time else MISSED
        outcome = Outcome(self.id, in_time, reason, customer, key, at, opened_at, instance[1], event_id, at - opened_at)
        self.decide(outcome, state)


class NoRepeatRule(WindowRule):
    """T opens; the first R with T < R <= T + D is bad; the clock passing T + D with no R is good."""

    __slots__ = ()
    OPENER_RANK = 1
    QUIET_IS_GOOD = True
    QUIET_REASON = QUIET

    def handlers(self) -> tuple[Callable, Callable, Callable]:
        return self.repeat, self.open, self.expire

    def repeat(self, at: int, event_id: str, key: str, customer: str) -> None:
        state = self.customers[customer]
        instance = state.open.get(self.prefix + key)
        if instance is None or at <= instance[0]:
            return
        del state.open[self.prefix + key]
        self.pending[self.index] -= 1
        self.decide(Outcome(self.id, False, REPEATED, customer, key, at, instance[0], instance[1], event_id), state)
