"""Business calendars: the open hours an SLA clock counts (docs/CATALOG.md, "SLA clocks").

A calendar is a time zone, the open intervals of each day of the week (local wall-clock time) and
holidays (local dates, closed all day). Its arithmetic works an interval at a time, never minute by
minute: ``measure`` is the open time between two instants, ``advance`` the first instant at which a
given amount of open time has passed since a start. A day's intervals are turned into instants once,
through the zone, so daylight saving follows the zone's rules: an interval that spans a change lasts
what the clocks say it lasts in real time (08:00-12:00 on the night clocks go forward is still 4 h;
01:00-04:00 is 2 h), and a local time that does not exist that day (02:30 that night) is the instant
of the change.

Instants are integers of microseconds since the epoch, as everywhere in the engine.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

MICROS = 1_000_000
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_SEARCH_DAYS = 3 * 366  # a calendar closed for longer is refused when the catalog is read
_INTERVAL = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*-\s*(\d{1,2}):(\d{2})\s*$")
_CACHE_DAYS = 4096
_DAY = 86_400 * MICROS
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()

Interval = tuple[int, int]  # minutes from local midnight: [start, end)


@dataclass(frozen=True, eq=False)
class Calendar:
    """Open hours. ``week``: Monday first, each day's open intervals in minutes, sorted and disjoint."""

    name: str
    zone: ZoneInfo
    week: tuple[tuple[Interval, ...], ...]
    holidays: frozenset[date] = frozenset()
    _days: dict[int, tuple[tuple[int, int], ...]] = field(default_factory=dict, repr=False, compare=False)

    def day(self, local: date) -> tuple[tuple[int, int], ...]:
        """The open intervals of a local date, as instants [open, close)."""
        ordinal = local.toordinal()
        found = self._days.get(ordinal)
        if found is None:
            if local in self.holidays:
                found = ()
            else:
                found = tuple(
                    (self._instant(local, start), self._instant(local, end))
                    for start, end in self.week[local.weekday()]
                )
            if len(self._days) >= _CACHE_DAYS:
                self._days.clear()
            self._days[ordinal] = found
        return found

    def _instant(self, local: date, minutes: int) -> int:
        if minutes == 24 * 60:
            local, minutes = local + timedelta(days=1), 0
        moment = datetime(local.year, local.month, local.day, minutes // 60, minutes % 60, tzinfo=self.zone)
        seconds = int(moment.timestamp())
        if datetime.fromtimestamp(seconds, self.zone).replace(tzinfo=None) != moment.replace(tzinfo=None):
            seconds = self._change_after(int(moment.replace(fold=1).timestamp()), seconds)
        return seconds * MICROS

    def _change_after(self, before: int, after: int) -> int:
        """A wall-clock time the clocks skip (02:30 the night they go forward): the instant of the
        change, the first that exists after it. It lies between the time read with the offset after
        the change (``before``) and with the one before (``after``)."""
        zone = self.zone
        offset = datetime.fromtimestamp(after, zone).utcoffset()
        while after - before > 1:
            middle = (before + after) // 2
            if datetime.fromtimestamp(middle, zone).utcoffset() == offset:
                after = middle
            else:
                before = middle
        return after

    def intervals(self, start: int) -> Iterator[tuple[int, int]]:
        """The open intervals from ``start`` on, the first one cut at ``start``."""
        # From the day before start's UTC date: the local date is at most a day off, and the days
        # before start yield nothing (no zone conversion on this path: days are cached).
        ordinal = _EPOCH_ORDINAL + start // _DAY - 1
        day, fromordinal = self.day, date.fromordinal
        cached = self._days
        for _ in range(_SEARCH_DAYS):
            found = cached.get(ordinal)
            if found is None:
                found = day(fromordinal(ordinal))
            for opens, closes in found:
                if closes > start:
                    yield (opens if opens > start else start), closes
            ordinal += 1
        raise ValueError(f"calendar {self.name!r} has no open hours for {_SEARCH_DAYS} days")

    def measure(self, start: int, end: int) -> int:
        """The open time in [start, end], in microseconds."""
        total = 0
        if end <= start:
            return 0
        for opens, closes in self.intervals(start):
            if opens >= end:
                break
            total += min(closes, end) - opens
        return total

    def advance(self, start: int, amount: int) -> int:
        """The first instant t >= start at which measure(start, t) reaches ``amount``: a start outside
        the open hours begins counting at the next opening, and an amount that ends exactly at a
        closing is due at that closing."""
        left = amount
        for opens, closes in self.intervals(start):
            if left <= closes - opens:
                return opens + left
            left -= closes - opens
        raise AssertionError("unreachable: intervals() ends by raising")


@dataclass(frozen=True)
class WallClock:
    """Every instant counts: the clock of a deadline without a calendar."""

    name: str = ""

    def measure(self, start: int, end: int) -> int:
        return max(0, end - start)

    def advance(self, start: int, amount: int) -> int:
        return start + amount


WALL_CLOCK = WallClock()


# -- reading calendars as the catalog writes them ---------------------------------------------------------
def parse_days(text: str) -> list[int] | str:
    """'mon-fri' -> [0, 1, 2, 3, 4]; 'sat' -> [5]; 'fri-mon' wraps. Or why not."""
    names = [part.strip().lower() for part in text.split("-")]
    if len(names) > 2 or not all(names):
        return f"{text!r} is not a day or a range of days (such as mon-fri or sat)"
    for name in names:
        if name not in DAYS:
            return f"{name!r} is not a day: the days are {', '.join(DAYS)}"
    first, last = DAYS.index(names[0]), DAYS.index(names[-1])
    return [(first + offset) % 7 for offset in range((last - first) % 7 + 1)]


def parse_hours(text: str) -> tuple[Interval, ...] | str:
    """'08:00-12:00, 13:00-18:00' -> ((480, 720), (780, 1080)); 'closed' or '' -> (). Or why not."""
    if text.strip().lower() in ("", "closed"):
        return ()
    intervals: list[Interval] = []
    for part in text.split(","):
        found = _INTERVAL.match(part)
        if found is None:
            return f"{part.strip()!r} is not an interval HH:MM-HH:MM"
        h1, m1, h2, m2 = (int(group) for group in found.groups())
        if h1 > 23 or m1 > 59 or m2 > 59 or h2 > 24 or (h2 == 24 and m2):
            return f"{part.strip()!r} is not a time of day (00:00 to 24:00)"
        start, end = h1 * 60 + m1, h2 * 60 + m2
        if end <= start:
            return f"{part.strip()!r} ends before it starts (an interval stays within one day)"
        intervals.append((start, end))
    intervals.sort()
    for (_, end), (start, _) in itertools.pairwise(intervals):
        if start < end:
            return f"{text.strip()!r} has intervals that overlap"
    return tuple(intervals)
