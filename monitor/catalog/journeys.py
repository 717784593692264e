"""The catalog's ``journeys:`` settings (docs/CATALOG.md): how long a journey keeps what it holds.

A journey must still hold an instance's start when its outcome is decided, or the story of that outcome
begins in the middle. So its retention covers the longest time a touchpoint of the catalog can take
from a start to its outcome, plus the lateness (``longest_spans``), and never less than 30 days:
``journeys: {retention: 90d}`` sets it; one shorter than a touchpoint's span is a warning naming it.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Final

from ..calendars import Calendar
from ..durations import format_duration, parse_duration
from .model import DEADLINE, DEFAULT_JOURNEY_RETENTION, NO_REPEAT, Touchpoint

FLOOR: Final = DEFAULT_JOURNEY_RETENTION  # the least a journey keeps (the retention before it was a setting)
# A calendar's worst case is measured from every closing of a year of its open hours, and bounded here:
# a clock that counts a few open hours a week could otherwise ask for years.
CALENDAR_BOUND: Final = parse_duration("366d")


def span(touchpoint: Touchpoint) -> int | None:
    """The longest time from an instance's start to its outcome (microseconds), or None when it cannot
    be known from the catalog (a deadline whose ``due:`` is computed from each start event). Pauses are
    not counted: a paused clock can stop for as long as its resume takes."""
    if touchpoint.kind == DEADLINE:
        if touchpoint.within is None:
            return None
        if touchpoint.calendar is not None:
            return worst_wall_time(touchpoint.calendar, touchpoint.within)
        return touchpoint.within
    if touchpoint.kind == NO_REPEAT and touchpoint.within is not None:
        return touchpoint.within
    return 0  # a condition decides on its event


def worst_wall_time(calendar: Calendar, amount: int) -> int:
    """The longest wall time ``amount`` of open time can take on the calendar, over starts at each
    closing (the worst starts: the closed stretch comes first) of a year of it (the years of its
    holidays, or 2026), bounded by ``CALENDAR_BOUND``."""
    years = sorted({holiday.year for holiday in calendar.holidays}) or [2026]
    begin = datetime(years[0], 1, 1, tzinfo=calendar.zone)
    end = datetime(min(years[-1], years[0] + 2), 12, 31, tzinfo=calendar.zone)
    worst = 0
    day = begin.date()
    while day <= end.date():
        for _, closes in calendar.day(day):
            try:
                worst = max(worst, calendar.advance(closes, amount) - closes)
            except ValueError:  # no open hours for years: bounded
                return CALENDAR_BOUND
            if worst >= CALENDAR_BOUND:
                return CALENDAR_BOUND
        day += timedelta(days=1)
    if worst == 0 and not _ever_open(calendar, begin.date()):
        return CALENDAR_BOUND
    return worst


def _ever_open(calendar: Calendar, day: date) -> bool:
    return any(calendar.day(day + timedelta(days=offset)) for offset in range(366))


def default_retention(touchpoints: tuple[Touchpoint, ...], lateness: int) -> int:
    """The longest span of the touchpoints plus the lateness, and at least ``FLOOR`` (a span that cannot
    be known counts as the floor)."""
    spans = [s for s in (span(t) for t in touchpoints) if s is not None]
    return max([FLOOR, *(s + lateness for s in spans)])


def cut_short(touchpoints: tuple[Touchpoint, ...], lateness: int, retention: int) -> list[str]:
    """What a retention shorter than some touchpoints' spans cuts: one line per touchpoint."""
    cut = []
    for touchpoint in touchpoints:
        longest = span(touchpoint)
        if longest is not None and longest + lateness > retention:
            cut.append(f"'{touchpoint.id}' ({format_duration(longest)} from start to outcome)")
    return cut
