"""The review's periods: calendar periods in the catalog's time zone (docs/REVIEW.md, "Periods").

A period of whole days starts at local midnight, a period of whole weeks at local Monday 00:00; across
a change of daylight saving time such a day is 23 or 25 hours long: periods are calendar periods, not
fixed lengths, so they are given by their bounds, never as a start plus an index times a length. A
period shorter than a day (or not a whole number of days) is that long, counted from the local
midnight of the day that holds the first instant. Several days (``2d``) and weeks (``2w``) are counted
from 1970-01-01 and Monday 1970-01-05, so that the same instant always falls in the same period.

Instants are integers of microseconds since the epoch, as everywhere in the core.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from ..durations import MICROS, parse_duration
from ..events import parse_timestamp

UTC_ZONE = ZoneInfo("UTC")
DAY = parse_duration("1d")
WEEK = parse_duration("7d")
_EPOCH_DAY = date(1970, 1, 1).toordinal()
_EPOCH_MONDAY = date(1970, 1, 5).toordinal()


def _midnight(day: date, zone: ZoneInfo) -> int:
    """The first instant of a local day (where midnight is skipped, the instant the day begins)."""
    return int(datetime(day.year, day.month, day.day, tzinfo=zone).timestamp()) * MICROS


def _local_day(at: int, zone: ZoneInfo) -> date:
    return datetime.fromtimestamp(at // MICROS, zone).date()


def period_start(at: int, period: int, zone: ZoneInfo = UTC_ZONE) -> int:
    """The start of the period of ``period`` that holds ``at``, in ``zone``."""
    day = _local_day(at, zone)
    if period % DAY == 0:
        days = period // DAY
        origin = _EPOCH_MONDAY if period % WEEK == 0 else _EPOCH_DAY
        first = day - timedelta(days=(day.toordinal() - origin) % days)
        start = _midnight(first, zone)
        return start if start <= at else _midnight(first - timedelta(days=days), zone)
    midnight = _midnight(day, zone)
    return midnight + (at - midnight) // period * period


def following(start: int, period: int, zone: ZoneInfo = UTC_ZONE) -> int:
    """The start of the period after the one that starts at ``start``."""
    if period % DAY:
        return start + period
    day = _local_day(start, zone) + timedelta(days=period // DAY)
    return _midnight(day, zone)


def bounds(first: int, end: int, period: int, zone: ZoneInfo = UTC_ZONE) -> list[int]:
    """The bounds of the periods that hold [first, end): each period's start, then the last one's end
    (at least one period)."""
    found = [period_start(first, period, zone)]
    while True:
        found.append(following(found[-1], period, zone))
        if found[-1] >= end:
            return found


def index(bounds_: list[int], at: int) -> int:
    """The index of the period that holds ``at`` (-1 before the first; len - 1 from the last's end)."""
    return bisect_right(bounds_, at) - 1


@dataclass(frozen=True)
class Bound:
    """A bound of the review (``--since``, ``--until``) as written: an instant, a local date (its
    midnight in the catalog's zone) or, for ``--since``, a duration back from the end."""

    text: str
    at: int | None = None
    day: date | None = None
    back: int | None = None

    def instant(self, zone: ZoneInfo) -> int | None:
        """The instant it names in ``zone`` (None for a duration back from an end not known yet)."""
        if self.at is not None:
            return self.at
        if self.day is not None:
            return _midnight(self.day, zone)
        return None


def parse_bound(text: str) -> Bound:
    """'2027-01-04T00:00:00+01:00' (RFC 3339), '2027-01-04' (a date in the catalog's zone) or '28d';
    ValueError with a readable message otherwise."""
    written = text.strip()
    at = parse_timestamp(written) if "T" in written else None
    if at is not None:
        return Bound(written, at=at)
    if len(written) == 10 and written[4] == "-":
        try:
            return Bound(written, day=date.fromisoformat(written))
        except ValueError:
            pass
    try:
        return Bound(written, back=parse_duration(written))
    except ValueError:
        raise ValueError(
            f"'{text}' is not a time: write an RFC 3339 instant (2027-01-04T00:00:00+01:00), a date "
            "(2027-01-04, midnight in the catalog's time zone) or a duration back from the end (28d)"
        ) from None
