"""The semantics of each kind of touchpoint (docs/SEMANTICS.md), applied to events in event-time order.

A rule never sees arrival order. The engine keeps one queue of everything that waits for the
watermark (``engine.state``): events (``Queued``), by instant, rank and event id, and the due times of
open instances (``Due``), ranked after the events of their instant (an end at exactly S + D is in
time). The rank orders roles at one instant: a deadline's start before its end (S <= E is good), a
no_repeat's repeat before its trigger (T < R is required).

Each entry goes to ``handlers()[rank]`` of its rule: an event's handler takes (instant, event id, key,
customer, customer state), a due time's (due instant, customer, key, instance, customer state). An
open instance (``Instance``) is in its customer's ``open`` and in its rule's due line: deciding it sets
``open`` to False, so a due time whose instance was decided before is recognised without looking
anything up (see ``engine.state``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from heapq import heappush

from ..catalog.model import Match, Touchpoint
from .outcome import IN_TIME, MISSED, QUIET, REPEATED, Outcome
from .state import DUE, END, REPEAT, SEPARATOR, START, TRIGGER, CustomerState, Due, Instance, make_entry

_new = object.__new__


class WindowRule:
    """deadline and no_repeat: one open instance per key, decided by the other role or by time."""

    __slots__ = (
        "count",
        "id",
        "index",
        "line",
        "outbox",
        "pending",
        "prefix",
        "queue",
        "ranks",
        "touchpoint",
        "within",
    )
    OPENER_RANK: int
    CLOSER_RANK: int
    QUIET_IS_GOOD: bool
    QUIET_REASON: str

    def __init__(
        self,
        index: int,
        touchpoint: Touchpoint,
        queue: list,
        line: deque,
        pending: list[int],
        count: Callable[[CustomerState, int, str, bool, str, int, str], None],
        outbox: list[Outcome] | None,
    ) -> None:
        self.index = index
        self.touchpoint = touchpoint
        self.id = touchpoint.id
        self.prefix = touchpoint.id + SEPARATOR
        self.within: int = touchpoint.within  # type: ignore[assignment]
        self.queue = queue
        self.line = line
        self.pending = pending  # open instances per touchpoint, shared by the rules
        self.count = count
        self.outbox = outbox  # None when nobody reads the outcomes, only their counts
        # The ranks of the events it queues (a stored entry of another is not put back).
        self.ranks = frozenset(rank for _, rank in self.roles(touchpoint))

    def handlers(self) -> tuple[Callable | None, ...]:
        """What each rank of the queue (engine.state) does for this rule."""
        raise NotImplementedError

    def roles(self, touchpoint: Touchpoint) -> list[tuple[Match, int]]:
        """Which events are queued for this rule, at which rank."""
        return [(touchpoint.opens, self.OPENER_RANK), (touchpoint.closes, self.CLOSER_RANK)]  # type: ignore[list-item]

    def revive(self, stored: list, customer: str, key: str, state: CustomerState) -> None:
        """Put back an instance stored as [opened_at, event_id, ...] (what an SLA clock adds is not
        needed here: its touchpoint is a plain window now)."""
        opened_at = stored[0]
        self.start(self.prefix + key, Instance(opened_at, stored[1], opened_at + self.within, customer, key, state))

    def keeps(self, stored: list) -> bool:
        """Whether ``revive`` puts back an instance stored so."""
        return True

    def wake(self, stored: list) -> int | None:
        """The first instant at which this rule acts on an instance stored as ``revive`` takes it (its
        due time), or None when only an event can: a customer unloaded with it open is put back in memory
        before then (``Engine.unload``)."""
        return stored[0] + self.within

    def open(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        name = self.prefix + key
        # At most one open instance per key: an opener while one is open is ignored.
        opened = state.open
        if name in opened:
            return
        # start(), inlined, and the instance built without a call of its __init__ (an instance per
        # opener); where it is filed is schedule()'s alone
        instance = _new(Instance)
        instance.opened_at, instance.opened_by, instance.open = at, event_id, True
        instance.due = at + self.within
        instance.customer, instance.key, instance.customer_state = customer, key, state
        opened[name] = instance
        self.pending[self.index] += 1
        self.schedule(instance)

    def start(self, name: str, instance: Instance) -> None:
        """Open an instance (or put a stored one back) under its ``name`` and file its due time."""
        instance.customer_state.open[name] = instance
        self.pending[self.index] += 1
        self.schedule(instance)

    def schedule(self, instance: Instance) -> None:
        """File an instance at its due time: at the end of its line when that is not before the last
        one's, else as a due time in the heap. The due time of the line's first instance is in the heap
        too, so that the heap always holds the next one due."""
        line = self.line
        if not line:
            line.append(instance)
            heappush(self.queue, self.due_time(instance))
            return
        last = line[-1]
        if instance.due > last.due or (  # (the order of their due times in the heap, below)
            instance.due == last.due and (instance.customer, instance.key, instance) >= (last.customer, last.key, last)
        ):
            line.append(instance)
        else:
            heappush(self.queue, self.due_time(instance))

    def due_time(self, instance: Instance) -> Due:
        """The instance's due time, as the heap holds it."""
        return make_entry(
            Due, (instance.due, DUE, instance.customer, self.index, instance.key, instance, instance.customer_state)
        )

    def expire(self, due: int, customer: str, key: str, instance: Instance, state: CustomerState) -> None:
        del state.open[self.prefix + key]
        instance.open = False
        self.pending[self.index] -= 1
        self.count(state, self.index, self.id, self.QUIET_IS_GOOD, customer, due, key)
        if self.outbox is not None:
            self.outbox.append(
                Outcome(
                    self.id,
                    self.QUIET_IS_GOOD,
                    self.QUIET_REASON,
                    customer,
                    key,
                    due,
                    instance.opened_at,
                    instance.opened_by,
                )
            )


class DeadlineRule(WindowRule):
    """S opens; an E with S <= E <= S + D is good; the clock passing S + D with no E is bad."""

    __slots__ = ()
    OPENER_RANK = START
    CLOSER_RANK = END
    QUIET_IS_GOOD = False
    QUIET_REASON = MISSED

    def handlers(self) -> tuple[Callable | None, ...]:
        return self.open, None, None, self.end, self.expire, None

    def end(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        name = self.prefix + key
        instance = state.open.get(name)
        # An end before its start (possible only when late) matches nothing.
        if instance is None or at < instance.opened_at:
            return
        # close(), inlined: the call cost a plain replay about 5% (measured side by side).
        del state.open[name]
        instance.open = False
        self.pending[self.index] -= 1
        opened_at = instance.opened_at
        in_time = at - opened_at <= self.within  # always, unless the end itself was late
        self.count(state, self.index, self.id, in_time, customer, at if in_time else opened_at + self.within, key)
        if self.outbox is not None:
            reason = IN_TIME if in_time else MISSED
            self.outbox.append(
                Outcome(
                    self.id, in_time, reason, customer, key, at, opened_at, instance.opened_by, event_id, at - opened_at
                )
            )

    def close(
        self,
        name: str,
        instance: Instance,
        in_time: bool,
        elapsed: int,
        due: int,
        at: int,
        event_id: str,
        key: str,
        customer: str,
        state: CustomerState,
    ) -> None:
        """Decide an instance at its end: ``in_time`` or not, after ``elapsed`` (what ``end`` does inline);
        the outcome's instant is the end's, or when missed the due instant, ``due``."""
        del state.open[name]
        instance.open = False
        self.pending[self.index] -= 1
        self.count(state, self.index, self.id, in_time, customer, at if in_time else due, key)
        if self.outbox is not None:
            reason = IN_TIME if in_time else MISSED
            self.outbox.append(
                Outcome(
                    self.id,
                    in_time,
                    reason,
                    customer,
                    key,
                    at,
                    instance.opened_at,
                    instance.opened_by,
                    event_id,
                    elapsed,
                )
            )


class NoRepeatRule(WindowRule):
    """T opens; the first R with T < R <= T + D is bad; the clock passing T + D with no R is good."""

    __slots__ = ()
    OPENER_RANK = TRIGGER
    CLOSER_RANK = REPEAT
    QUIET_IS_GOOD = True
    QUIET_REASON = QUIET

    def handlers(self) -> tuple[Callable | None, ...]:
        return self.repeat, self.open, None, None, self.expire, None

    def repeat(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        name = self.prefix + key
        instance = state.open.get(name)
        if instance is None or at <= instance.opened_at:
            return
        del state.open[name]
        instance.open = False
        self.pending[self.index] -= 1
        self.count(state, self.index, self.id, False, customer, at, key)
        if self.outbox is not None:
            self.outbox.append(
                Outcome(self.id, False, REPEATED, customer, key, at, instance.opened_at, instance.opened_by, event_id)
            )
