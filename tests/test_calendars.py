"""Business calendars: open time between instants and due instants, worked by hand."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor.calendars import Calendar, parse_days, parse_hours
from monitor.events import format_timestamp, parse_timestamp

H = 3_600_000_000
M = 60_000_000

# Mon-Fri 08:00-12:00 and 13:00-18:00, Sat 09:00-12:00, Europe/Berlin; Good Friday and Christmas closed.
SUPPORT = Calendar(
    "support-hours",
    ZoneInfo("Europe/Berlin"),
    (*[parse_hours("08:00-12:00, 13:00-18:00")] * 5, parse_hours("09:00-12:00"), ()),  # type: ignore[list-item]
    frozenset({date(2026, 4, 3), date(2026, 12, 25)}),
)


def at(text: str) -> int:
    instant = parse_timestamp(text)
    assert instant is not None, text
    return instant


@pytest.mark.parametrize(
    "start, within, due",
    [
        ("2026-11-25T09:00:00+01:00", 2 * H, "2026-11-25T11:00:00+01:00"),
        ("2026-11-25T11:00:00+01:00", 2 * H, "2026-11-25T14:00:00+01:00"),  # across the lunch break
        ("2026-11-25T14:00:00+01:00", 4 * H, "2026-11-25T18:00:00+01:00"),  # ends exactly at a closing
        ("2026-11-25T22:00:00+01:00", 4 * H, "2026-11-26T12:00:00+01:00"),  # a start at night
        ("2026-11-27T16:30:00+01:00", 4 * H, "2026-11-28T11:30:00+01:00"),  # Friday, on into Saturday
        ("2026-11-28T13:00:00+01:00", 4 * H, "2026-11-30T12:00:00+01:00"),  # a start on a weekend
        ("2026-12-24T17:00:00+01:00", 4 * H, "2026-12-26T12:00:00+01:00"),  # Christmas Day closed
        ("2026-04-02T17:00:00+02:00", 4 * H, "2026-04-04T12:00:00+02:00"),  # Good Friday closed
        # Clocks go forward on Sunday 29 March: Friday 17:00 CET, 1 h + Saturday 3 h + Monday 2 h
        # -> Monday 10:00 CEST (08:00Z).
        ("2026-03-27T17:00:00+01:00", 6 * H, "2026-03-30T10:00:00+02:00"),
        ("2026-03-27T16:00:00+01:00", 6 * H, "2026-03-30T09:00:00+02:00"),
        # Clocks go back on Sunday 25 October: Saturday 11:00 CEST -> Monday 10:00 CET (09:00Z).
        ("2026-10-24T11:00:00+02:00", 3 * H, "2026-10-26T10:00:00+01:00"),
        ("2026-11-25T08:00:00+01:00", 9 * H, "2026-11-25T18:00:00+01:00"),  # a whole day's hours
    ],
    ids=lambda value: value if isinstance(value, str) else f"{value // M}m",
)
def test_the_due_instant_counts_only_open_hours(start, within, due):
    assert format_timestamp(SUPPORT.advance(at(start), within)) == format_timestamp(at(due))
    assert SUPPORT.measure(at(start), at(due)) == within


@pytest.mark.parametrize(
    "start, end, hours",
    [
        ("2026-11-27T16:30:00+01:00", "2026-11-30T09:00:00+01:00", 1.5 + 3 + 1),  # Fri, Sat, Mon
        ("2026-11-25T12:00:00+01:00", "2026-11-25T13:00:00+01:00", 0),  # lunch
        ("2026-11-25T19:00:00+01:00", "2026-11-25T07:00:00+01:00", 0),  # end before start
        ("2026-10-23T18:00:00+02:00", "2026-10-26T08:00:00+01:00", 3),  # over the change back: Sat only
    ],
)
def test_open_time_between_two_instants(start, end, hours):
    assert SUPPORT.measure(at(start), at(end)) == hours * H


WEEK = Calendar("night-shift", ZoneInfo("America/New_York"), tuple([parse_hours("00:00-02:00, 22:00-24:00")] * 7))


def test_an_interval_through_the_night_the_clocks_go_forward_lasts_what_real_time_says():
    # 8 March 2026, New York: 02:00 does not exist; 00:00-02:00 is 2 h, 22:00-24:00 the day before too.
    assert WEEK.measure(at("2026-03-07T21:00:00-05:00"), at("2026-03-08T04:00:00-04:00")) == 4 * H


@given(
    start=st.integers(at("2026-01-01T00:00:00Z"), at("2027-12-31T00:00:00Z")),
    amount=st.integers(1, 200 * H),
)
def test_advance_and_measure_agree(start, amount):
    due = SUPPORT.advance(start, amount)
    assert SUPPORT.measure(start, due) == amount
    assert SUPPORT.measure(start, due - 1) < amount  # the first such instant


@pytest.mark.parametrize(
    "text, days",
    [("mon-fri", [0, 1, 2, 3, 4]), ("sat", [5]), ("fri-mon", [4, 5, 6, 0]), ("Sun", [6])],
)
def test_days_and_ranges_of_days(text, days):
    assert parse_days(text) == days


@pytest.mark.parametrize(
    "parse, text, why",
    [
        (parse_days, "monday", "'monday' is not a day"),
        (parse_days, "mon-wed-fri", "is not a day or a range of days"),
        (parse_hours, "08:00-12:00, 11:00-13:00", "overlap"),
        (parse_hours, "18:00-08:00", "ends before it starts"),
        (parse_hours, "8-12", "is not an interval HH:MM-HH:MM"),
        (parse_hours, "08:00-24:30", "is not a time of day"),
    ],
    ids=lambda value: value if isinstance(value, str) else "",
)
def test_what_is_not_a_day_or_hours_says_why(parse, text, why):
    result = parse(text)
    assert isinstance(result, str) and why in result


def test_hours_in_the_hour_the_clocks_skip_count_nothing_and_the_next_hour_whole():
    # Berlin, 29 March 2026: 02:00-03:00 does not exist.
    skipped = Calendar("g", ZoneInfo("Europe/Berlin"), tuple([parse_hours("02:30-03:00, 03:00-04:00")] * 7))
    assert skipped.measure(at("2026-03-29T00:00:00+01:00"), at("2026-03-29T06:00:00+02:00")) == H
    assert skipped.advance(at("2026-03-29T00:00:00+01:00"), H) == at("2026-03-29T04:00:00+02:00")
    # Santiago skips midnight (6 September 2026): 00:30-01:00 is empty that day, not negative.
    santiago = Calendar("s", ZoneInfo("America/Santiago"), tuple([parse_hours("00:30-01:00, 08:00-09:00")] * 7))
    day = santiago.day(date(2026, 9, 6))
    assert all(closes >= opens for opens, closes in day)
    assert santiago.measure(at("2026-09-05T23:00:00-04:00"), at("2026-09-06T10:00:00-03:00")) == H
