from __future__ import annotations

import pytest

from monitor.durations import format_duration, parse_duration

GOOD = [
    ("2m", 120_000_000),
    ("48h", 172_800_000_000),
    ("5d", 432_000_000_000),
    ("1h30m", 5_400_000_000),
    ("500ms", 500_000),
    ("1.5s", 1_500_000),
    ("2w", 1_209_600_000_000),
]


@pytest.mark.parametrize(("text", "micros"), GOOD, ids=[g[0] for g in GOOD])
def test_parse_and_format_round_trip(text, micros):
    assert parse_duration(text) == micros
    assert parse_duration(format_duration(micros)) == micros


@pytest.mark.parametrize("text", ["", "2", "m", "2 minutes", "2m30", "-2m", "two minutes"])
def test_bad_durations_say_how_to_write_one(text):
    with pytest.raises(ValueError, match="duration"):
        parse_duration(text)
