"""Deadlines on an SLA clock: a calendar's open hours, pauses, a due instant from the start, at risk.

A ``ClockRule`` judges a deadline touchpoint that sets any of ``calendar``, ``pause``/``resume``,
``due`` or ``at_risk`` (docs/SEMANTICS.md, "SLA clocks"); the plain ``DeadlineRule`` keeps the others
as fast as before. Its instance's cell holds, after the three items every cell has:

- ``DUE_AT``: the instant the instance is due while it runs (None while paused);
- ``SPENT``: the elapsed time counted before ``SINCE``;
- ``SINCE``: when it last started running (None while paused);
- ``RISK_AT``: with at_risk, the instant from which it is at risk while it runs.

The elapsed time at t is SPENT + the clock's measure of [SINCE, t] while running. A pause adds the
measure up to the pause to SPENT; a resume sets SINCE and files a new due time (and risk time). A due
time or a risk time whose instant is no longer the cell's is stale and does nothing, so nothing is
taken out of the queue when a pause comes. With ``due:`` the due instant comes from the start event
(computed when the start is queued, carried in the entry's key) and nothing pauses.
"""

from __future__ import annotations

from collections.abc import Callable
from heapq import heappush

from ..calendars import WALL_CLOCK, Calendar, WallClock
from ..catalog.model import Match, Touchpoint
from .rules import IS_OPEN, OPENED_AT, DeadlineRule
from .state import DUE, PAUSE, RESUME, RISK, CustomerState

DUE_AT, SPENT, SINCE, RISK_AT = 3, 4, 5, 6


class ClockRule(DeadlineRule):
    """S opens; E while running and at or before its due instant, or E while paused, is good; the
    clock reaching the due instant with no E is bad."""

    __slots__ = ("at_risk", "clock", "risky", "uses_due")

    def __init__(self, index: int, touchpoint: Touchpoint, *args, risky: dict, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super().__init__(index, touchpoint, *args, **kwargs)
        self.clock: Calendar | WallClock = touchpoint.calendar or WALL_CLOCK
        self.uses_due = touchpoint.due is not None
        self.at_risk: int | None = touchpoint.at_risk
        self.risky = risky  # (customer, key) -> (cell, customer state) of each instance at risk now

    def handlers(self) -> tuple[Callable | None, ...]:
        return self.open, self.pause, self.resume, self.end, self.expire, self.risk

    def roles(self, touchpoint: Touchpoint) -> list[tuple[Match, int]]:
        roles = super().roles(touchpoint)
        if touchpoint.pause is not None and touchpoint.resume is not None:
            roles += [(touchpoint.pause, PAUSE), (touchpoint.resume, RESUME)]
        return roles

    # -- opening ----------------------------------------------------------------------------------------
    def open(self, at: int, event_id: str, key, customer: str, state: CustomerState) -> None:  # type: ignore[no-untyped-def,override]
        due = None
        if self.uses_due:
            key, due = key  # the due instant, from the start event when it was queued
        instance = self.prefix + key
        if instance in state.open:
            return
        if due is None:
            due = self.clock.advance(at, self.within)
        self.start(instance, [at, event_id, True, due, 0, at, None], customer, key, state)

    def start(self, instance: str, cell: list, customer: str, key: str, state: CustomerState) -> None:
        """Open an instance (or put a stored one back) and file its due and risk times."""
        state.open[instance] = cell
        self.pending[self.index] += 1
        if cell[SINCE] is not None:
            self._file(cell, customer, key, state)

    def revive(self, stored: list, customer: str, key: str, state: CustomerState) -> None:
        """Put back a stored instance: [opened_at, event_id] and, when stored by a clock rule, [due,
        spent, since]. A cell stored before its touchpoint had a clock, or paused under a touchpoint
        that no longer resumes, runs from its opening, as the clock it has now counts."""
        opened_at, event_id, *clock = stored
        if len(clock) >= 3 and (clock[2] is not None or self.touchpoint.resume is not None):
            cell = [opened_at, event_id, True, *clock[:3], None]
        elif self.uses_due:
            return  # its due instant came from an event no longer at hand: dropped, not guessed
        else:
            cell = [opened_at, event_id, True, self.clock.advance(opened_at, self.within), 0, opened_at, None]
        self.start(self.prefix + key, cell, customer, key, state)

    def _file(self, cell: list, customer: str, key: str, state: CustomerState) -> None:
        due = cell[DUE_AT]
        self.schedule((due, DUE, customer, self.index, key, cell, state))
        if self.at_risk is not None:
            risk_at = cell[RISK_AT] = due - self.at_risk if self.uses_due else self._risk_instant(cell)
            heappush(self.queue, (risk_at, RISK, customer, self.index, key, cell, state))  # (the heap, not a line)

    def _risk_instant(self, cell: list) -> int:
        """The first instant at which at most at_risk of the running instance's time is left."""
        left = self.within - cell[SPENT] - self.at_risk  # type: ignore[operator]
        return cell[SINCE] if left <= 0 else self.clock.advance(cell[SINCE], left)

    def pause(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        cell = state.open.get(self.prefix + key)
        if cell is None or cell[SINCE] is None or at < cell[OPENED_AT]:
            return  # nothing open, already paused, or a pause from before the start
        cell[SPENT] += self.clock.measure(cell[SINCE], at)
        cell[SINCE] = cell[DUE_AT] = cell[RISK_AT] = None
        self.risky.pop((customer, key), None)

    def resume(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        cell = state.open.get(self.prefix + key)
        if cell is None or cell[SINCE] is not None:
            return  # nothing open, or running
        cell[SINCE] = at
        cell[DUE_AT] = self.clock.advance(at, self.within - cell[SPENT])  # type: ignore[operator]
        self._file(cell, customer, key, state)

    # -- deciding ---------------------------------------------------------------------------------------
    def elapsed(self, cell: list, at: int) -> int:
        if cell[SINCE] is None:
            return cell[SPENT]
        return cell[SPENT] + self.clock.measure(cell[SINCE], at)

    def left(self, cell: list, at: int) -> int:
        """The time left to a running instance at ``at`` (open hours, with a calendar)."""
        if self.uses_due:
            return cell[DUE_AT] - at
        return self.within - self.elapsed(cell, at)  # type: ignore[operator]

    def end(self, at: int, event_id: str, key: str, customer: str, state: CustomerState) -> None:
        instance = self.prefix + key
        cell = state.open.get(instance)
        if cell is None or at < cell[OPENED_AT]:
            return
        self.risky.pop((customer, key), None)
        in_time = cell[SINCE] is None or at <= cell[DUE_AT]  # an end while paused is in time
        elapsed = at - cell[OPENED_AT] if self.uses_due else self.elapsed(cell, at)
        self.close(instance, cell, in_time, elapsed, cell[DUE_AT], at, event_id, key, customer, state)

    def expire(self, due: int, customer: str, key: str, cell: list, state: CustomerState) -> None:
        if cell[DUE_AT] != due:
            return  # paused since it was filed, or resumed with another due instant
        self.risky.pop((customer, key), None)
        super().expire(due, customer, key, cell, state)

    def risk(self, risk_at: int, customer: str, key: str, cell: list, state: CustomerState) -> None:
        if cell[IS_OPEN] and cell[SINCE] is not None and cell[RISK_AT] == risk_at:
            self.risky[customer, key] = (cell, state)  # (else paused, or filed before a pause and resumed)
