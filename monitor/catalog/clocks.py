"""The catalog's ``calendars:``, read from any file into ``Calendar`` values, every problem reported
with its file, line and field path (the rest of the catalog is checked all the same)."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable
from datetime import date
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from ..calendars import DAYS, Calendar, Interval, parse_days, parse_hours

Path_ = tuple[str | int, ...]
Say = Callable[[Path_, str], None]
_NAME = re.compile(r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$")


@cache
def _zones() -> tuple[str, ...]:
    return tuple(sorted(available_timezones()))


def _zone(say: Say, path: Path_, name: object) -> ZoneInfo | None:
    if not isinstance(name, str) or not name.strip():
        say(path, "must name an IANA time zone, such as Europe/Berlin or America/New_York")
        return None
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError, OSError):  # (OSError: a folder of zones, such as Europe)
        hint = difflib.get_close_matches(name.strip(), _zones(), n=1)
        say(path, f"{name!r} is not an IANA time zone" + (f"; did you mean {hint[0]!r}?" if hint else ""))
        return None


def _week(say: Say, path: Path_, hours: object) -> tuple[tuple[Interval, ...], ...] | None:
    if not isinstance(hours, dict) or not hours:
        say(path, "must map days to open hours, such as mon-fri: '08:00-18:00'")
        return None
    week: list[tuple[Interval, ...] | None] = [None] * 7
    valid = True
    for written, text in hours.items():
        where = (*path, written)
        days = parse_days(written)
        if isinstance(days, str):
            say(where, days)
            valid = False
            continue
        intervals = parse_hours(text) if isinstance(text, str) else f"{text!r} is not open hours ('08:00-18:00')"
        if isinstance(intervals, str):
            say(where, intervals)
            valid = False
            continue
        for day in days:
            if week[day] is not None:
                say(where, f"gives the hours of {DAYS[day]} a second time")
                valid = False
            week[day] = intervals
    if not valid:
        return None
    complete = tuple(day or () for day in week)
    if not any(complete):
        say(path, "has no open hours on any day: a clock on it would never run")
        return None
    return complete


def _holidays(say: Say, path: Path_, written: object) -> frozenset[date] | None:
    if written is None:
        return frozenset()
    if not isinstance(written, list):
        say(path, "must be a list of dates (YYYY-MM-DD)")
        return None
    found: set[date] = set()
    valid = True
    for index, item in enumerate(written):
        if isinstance(item, date):
            found.add(item)
            continue
        try:
            found.add(date.fromisoformat(str(item).strip()))
        except ValueError:
            say((*path, index), f"{item!r} is not a date (YYYY-MM-DD)")
            valid = False
    return frozenset(found) if valid else None


def read_calendars(data: object, say: Say) -> dict[str, tuple[Calendar, Path_]]:
    """The calendars one file defines, by name, with the path of each (for messages)."""
    if data is None:
        return {}
    if not isinstance(data, dict):
        say(("calendars",), "must map calendar names to their time zone, hours and holidays")
        return {}
    found: dict[str, tuple[Calendar, Path_]] = {}
    for name, spec in data.items():
        path: Path_ = ("calendars", name)
        if not _NAME.match(name):
            say(path, f"{name!r} is not a calendar name (lower case letters, digits, - and _)")
            continue
        if not isinstance(spec, dict):
            say(path, "must have a timezone and hours (holidays optional)")
            continue
        unknown = sorted(set(spec) - {"timezone", "hours", "holidays"})
        for key in unknown:
            hint = difflib.get_close_matches(key, ["timezone", "hours", "holidays"], n=1)
            say((*path, key), "is not a calendar setting" + (f"; did you mean '{hint[0]}'?" if hint else ""))
        if "timezone" not in spec:
            say(path, "has no timezone (an IANA name, such as Europe/Berlin)")
        if "hours" not in spec:
            say(path, "has no hours (such as mon-fri: '08:00-18:00')")
        zone = _zone(say, (*path, "timezone"), spec.get("timezone")) if "timezone" in spec else None
        week = _week(say, (*path, "hours"), spec.get("hours")) if "hours" in spec else None
        holidays = _holidays(say, (*path, "holidays"), spec.get("holidays"))
        if zone is None or week is None or holidays is None or unknown:
            continue
        found[name] = (Calendar(name, zone, week, holidays), path)
    return found
