"""Deadlines on an SLA clock: a calendar's open hours, pauses, a due instant from the start, at risk.

A ``ClockRule`` judges a deadline touchpoint that sets any of ``calendar``, ``pause``/``resume``,
``due`` or ``at_risk`` (docs/SEMANTICS.md, "SLA clocks"); the plain ``DeadlineRule`` keeps the others
as fast as before. Its instance (``ClockInstance``) holds, beside what every instance has:

- ``due_at``: the instant the instance is due while it runs (None while paused);
- ``spent``: the elapsed time counted before ``since``;
- ``since``: when it last started running (None while paused);
- ``risk_at``: with at_risk, the instant from which it is at risk while it runs.

The elapsed time at t is spent + the clock's measure of [since, t] while running. A pause adds the
measure up to the pause to spent; a resume sets since and files a new due time (and risk time). A due
time or a risk time whose instant is no longer the instance's is stale and does nothing, so nothing is
taken out of the queue when a pause comes. With ``due:`` the due instant comes from the start event
(computed when the start is queued, carried in the entry's key) and nothing pauses.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush

from ..calendars import WALL_CLOCK, Calendar, WallClock
from ..catalog.model import Match, Touchpoint
from .rules import DeadlineRule
from .state import DUE, PAUSE, RESUME, RISK, CustomerState, Due, Instance, make_entry


class ClockInstance(Instance):
    """An instance on an SLA clock (see the module's docstring)."""

    __slots__ = ("due_at", "risk_at", "since", "spent")

    def __init__(
        self,
        opened_at: int,
        opened_by: str,
        customer: str,
        key: str,
        customer_state: CustomerState,
        due_at: int | None,
        spent: int,
        since: int | None,
    ) -> None:
        super().__init__(opened_at, opened_by, None, customer, key, customer_state)  # (due: when it is filed)
        self.due_at = due_at
        self.spent = spent
        self.since = since
        self.risk_at: int | None = None

    def clock_record(self) -> tuple:
        return self.due_at, self.spent, self.since

    def sort_key(self) -> tuple:
        return self.opened_at, self.opened_by, self.open, self.due_at, self.spent, self.since, self.risk_at


class ClockRule(DeadlineRule):
    """S opens; E while running and at or before its due instant, or E while paused, is good; the
    clock reaching the due instant with no E is bad."""

    __slots__ = ("at_risk", "calendar", "risky", "uses_due")

    def __init__(self, index: int, touchpoint: Touchpoint, *args, risky: dict, **kwargs) -> None:
        super().__init__(index, touchpoint, *args, **kwargs)
        self.calendar: Calendar | WallClock = touchpoint.calendar or WALL_CLOCK  # measures its open time
        self.uses_due = touchpoint.due is not None
        self.at_risk: int | None = touchpoint.at_risk
        self.risky = risky  # (customer, key) -> each instance at risk now

    def handlers(self) -> tuple[Callable | None, ...]:
        return self.open, self.pause, self.resume, self.end, self.expire, self.risk

    def roles(self, touchpoint: Touchpoint) -> list[tuple[Match, int]]:
        roles = super().roles(touchpoint)
        if touchpoint.pause is not None and touchpoint.resume is not None:
            roles += [(touchpoint.pause, PAUSE), (touchpoint.resume, RESUME)]
        return roles

    # -- opening ----------------------------------------------------------------------------------------
    def open(self, at: int, event_id: str, key, customer: str, state: CustomerState) -> None:
        due = None
        if self.uses_due:
            key, due = key  # the due instant, from the start event when it was queued
        name = self.prefix + key
        if name in state.open:
            return
        if due is None:
            due = self.calendar.advance(at, self.within)
        self.start(name, ClockInstance(at, event_id, customer, key, state, due, 0, at))

    def start(self, name: str, instance: ClockInstance) -> None:  # type: ignore[override]
        """Open an instance (or put a stored one back) and file its due and risk times."""
        instance.customer_state.open[name] = instance
        self.pending[self.index] += 1
        if instance.since is not None:
            self._file(instance)

    def revive(self, stored: list, customer: str, key: str, state: CustomerState) -> None:
        """Put back a stored instance: [opened_at, event_id] and, when stored by a clock rule, [due,
        spent, since]. An instance stored before its touchpoint had a clock, or paused under a touchpoint
        that no longer resumes, runs from its opening, as the clock it has now counts."""
        clock = self._running(stored)
        if clock is not None:
            opened_at, event_id, due_at, spent, since = clock
            self.start(
                self.prefix + key, ClockInstance(opened_at, event_id, customer, key, state, due_at, spent, since)
            )

    def _running(self, stored: list) -> tuple | None:
        """A stored instance as this rule runs it: (opened_at, event_id, due_at, spent, since), or None
        when it is dropped: its due instant came from an event no longer at hand (``due:``), not guessed."""
        opened_at, event_id, *clock = stored
        if len(clock) >= 3 and (clock[2] is not None or self.touchpoint.resume is not None):
            return opened_at, event_id, *clock[:3]
        if self.uses_due:
            return None
        return opened_at, event_id, self.calendar.advance(opened_at, self.within), 0, opened_at

    def keeps(self, stored: list) -> bool:
        return self._running(stored) is not None

    def wake(self, stored: list) -> int | None:
        """Its due or risk time, whichever comes first; None while paused (only an event resumes it) or
        when it is dropped."""
        clock = self._running(stored)
        if clock is None or clock[4] is None:
            return None
        _, _, due_at, spent, since = clock
        return due_at if self.at_risk is None else min(due_at, self._risk_at(due_at, spent, since))

    def _file(self, instance: ClockInstance) -> None:
        """File the running instance's due time (the first in its line, the next in the heap: once
        resumed) and, with at_risk, its risk time (the heap)."""
        due, customer, key, state = instance.due_at, instance.customer, instance.key, instance.customer_state
        if instance.due is None:
            instance.due = due
            self.schedule(instance)
        else:
            heappush(self.queue, make_entry(Due, (due, DUE, customer, self.index, key, instance, state)))
        if self.at_risk is not None:
            risk_at = instance.risk_at = self._risk_at(due, instance.spent, instance.since)
            heappush(self.queue, make_entry(Due, (risk_at, RISK, customer, self.index, key, instance, state)))

    def _risk_at(self, due_at: int, spent: int, since: int) -> int:
        """The first instant at which at most at_risk of a running instance's time is left."""
        if self.uses_due:
            return due_at - self.at_risk  # type: ignore[operator]
        left = self.within - spent - self.at_risk  # type: ignore[operator]
        return since if left <= 0 else self.calendar.advance(since, left)

    def pause(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        instance = state.open.get(self.prefix + key)
        if instance is None or instance.since is None or at < instance.opened_at:
            return  # nothing open, already paused, or a pause from before the start
        instance.spent += self.calendar.measure(instance.since, at)
        instance.since = instance.due_at = instance.risk_at = None
        self.risky.pop((customer, key), None)

    def resume(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        instance = state.open.get(self.prefix + key)
        if instance is None or instance.since is not None:
            return  # nothing open, or running
        instance.since = at
        instance.due_at = self.calendar.advance(at, self.within - instance.spent)
        self._file(instance)

    # -- deciding ---------------------------------------------------------------------------------------
    def elapsed(self, instance: ClockInstance, at: int) -> int:
        if instance.since is None:
            return instance.spent
        return instance.spent + self.calendar.measure(instance.since, at)

    def left(self, instance: ClockInstance, at: int) -> int:
        """The time left to a running instance at ``at`` (open hours, with a calendar)."""
        if self.uses_due:
            return instance.due_at - at
        return self.within - self.elapsed(instance, at)

    def end(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        name = self.prefix + key
        instance = state.open.get(name)
        if instance is None or at < instance.opened_at:
            return
        self.risky.pop((customer, key), None)
        due = instance.due_at
        in_time = instance.since is None or at <= due  # an end while paused is in time
        elapsed = at - instance.opened_at if self.uses_due else self.elapsed(instance, at)
        self.close(name, instance, in_time, elapsed, due, at, event_id, key, customer, state)

    def expire(self, due: int, customer: str, key: str, instance: ClockInstance, state: CustomerState) -> None:
        if instance.due_at != due:
            return  # paused since it was filed, or resumed with another due instant
        self.risky.pop((customer, key), None)
        super().expire(due, customer, key, instance, state)

    def risk(self, risk_at: int, customer: str, key: str, instance: ClockInstance, state: CustomerState) -> None:
        if instance.open and instance.since is not None and instance.risk_at == risk_at:
            self.risky[customer, key] = instance  # (else paused, or filed before a pause and resumed)
