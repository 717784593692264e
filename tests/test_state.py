"""A touchpoint's state: its window, the evidence it needs, warming up, and a source's silence in its
own hours (docs/SEMANTICS.md, "State of a touchpoint")."""

from __future__ import annotations

import shutil
import subprocess
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from click.testing import CliRunner

from monitor.catalog import load_catalog, validate_catalog
from monitor.durations import MICROS, parse_duration
from monitor.state import judge, standing, warming_up, wilson, z_score
from monitor.window import parse_window
from tpmon.cli import main

from .conftest import ROOT

BERLIN = ZoneInfo("Europe/Berlin")


def at(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp()) * MICROS


@pytest.mark.parametrize(
    "window, instant, start",
    [
        ("1h", "2026-12-06T10:07:00+00:00", "2026-12-06T09:10:00+00:00"),  # 12 steps of 5 min, the last partial
        ("day", "2026-12-06T10:07:00+01:00", "2026-12-06T00:00:00+01:00"),
        ("week", "2026-12-06T10:07:00+01:00", "2026-11-30T00:00:00+01:00"),  # a Sunday: the Monday before
        ("month", "2026-12-06T10:07:00+01:00", "2026-12-01T00:00:00+01:00"),
        ("day", "2026-03-29T23:30:00+02:00", "2026-03-29T00:00:00+01:00"),  # the day clocks go forward: 23 h
    ],
    ids=["rolling hour", "Berlin day", "Berlin week", "Berlin month", "a day of 23 hours"],
)
def test_a_window_starts_where_people_expect(window, instant, start):
    assert parse_window(window, BERLIN).start(at(instant)) == at(start)


@pytest.mark.parametrize(
    "window, instant, moves, zone",
    [
        ("1h", "2026-12-06T10:07:00+00:00", "2026-12-06T10:10:00+00:00", "Europe/Berlin"),  # its next step of 5 minutes
        ("day", "2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", "Europe/Berlin"),  # a day of 23 hours
        (
            "day",
            "2026-10-25T23:59:59+01:00",
            "2026-10-26T00:00:00+01:00",
            "Europe/Berlin",
        ),  # the end of a day of 25 hours
        (
            "week",
            "2026-12-06T10:07:00+01:00",
            "2026-12-07T00:00:00+01:00",
            "Europe/Berlin",
        ),  # a Sunday: the next Monday
        ("month", "2026-02-01T00:00:00+01:00", "2026-03-01T00:00:00+01:00", "Europe/Berlin"),  # 28 days
        ("month", "2026-01-31T23:59:59+01:00", "2026-02-01T00:00:00+01:00", "Europe/Berlin"),
        (
            "month",
            "2026-03-01T00:00:00+01:00",
            "2026-04-01T00:00:00+02:00",
            "Europe/Berlin",
        ),  # 31 days, the clocks forward
        ("day", "2026-10-04T01:59:59+10:30", "2026-10-05T00:00:00+11:00", "Australia/Lord_Howe"),  # +30 min
        ("day", "2026-03-28T12:00:00+02:00", "2026-03-29T01:00:00+03:00", "Asia/Beirut"),  # no midnight
        ("week", "2026-04-05T12:00:00+13:45", "2026-04-06T00:00:00+12:45", "Pacific/Chatham"),
    ],
)
def test_a_window_moves_into_its_next_bucket(window, instant, moves, zone):
    """Where the buckets move on, a partition's old ones leave its counts (streams.partitions): the
    next bucket's start, with every instant before it in the bucket of the instant given."""
    parsed = parse_window(window, ZoneInfo(zone))
    assert parsed.moves(at(instant)) == at(moves)
    assert parsed.bucket(at(moves)) == at(moves)
    assert parsed.bucket(at(moves) - 1) == parsed.bucket(at(instant))


@pytest.mark.parametrize(
    "text, message",
    [
        ("fortnight", "'fortnight' is not a window: write a duration such as '1h', '1d' or '7d', or one of day, week, month"),
        ("10s", "a window of 10s is too short to judge a touchpoint on: at least 1m"),
    ],
)  # fmt: skip
def test_a_window_that_is_not_one_says_what_to_write(text, message):
    with pytest.raises(ValueError, match=message):
        parse_window(text)


def test_the_wilson_bounds_are_the_textbook_ones():
    """95% two-sided (z 1.96) for 8 of 10: (0.490, 0.943), as tables give them."""
    lower, upper = wilson(8, 10, 1.959964)
    assert (round(lower, 3), round(upper, 3)) == (0.49, 0.943)
    assert round(z_score(0.99), 3) == 2.326


@pytest.mark.parametrize(
    "good, bad, state",
    [
        (28, 2, "reliable"),  # 93% of 30 against 97%: the sample could be a 97% touchpoint's
        (25, 5, "broken"),  # 83% of 30: at most 94.1%, confidently below
        (988, 12, "reliable"),  # 98.8% of 1000
        (2000, 2, "differentiating"),  # 99.9% of 2002: at least 99.6%, at or above 99.5%
        (500, 2, "reliable"),  # 99.6% of 502, but it could be 98.9%
        (10, 9, "unknown"),  # under min_events
    ],
)
def test_a_state_needs_confident_evidence(catalog, good, bad, state):
    assert judge(catalog["bill-correct"], good, bad, catalog.z).state == state


def test_the_worked_example_of_the_docs(catalog):
    """docs/SEMANTICS.md: bill-correct, 34 bills in the window, 3 wrong (91.2%): the upper bound is
    97.5%, above the objective of 97%: reliable; a 4th wrong bill of 35 (88.6%) makes it 96.1%: broken."""
    touchpoint = catalog["bill-correct"]
    three = judge(touchpoint, 31, 3, catalog.z)
    four = judge(touchpoint, 31, 4, catalog.z)
    assert (three.state, round(three.upper, 3)) == ("reliable", 0.975)
    assert (four.state, round(four.upper, 3)) == ("broken", 0.961)
    assert "between" in three.why(touchpoint) and "confidently below the objective" in four.why(touchpoint)


def test_a_touchpoint_warms_up_while_its_window_or_its_due_time_reaches_before_the_data(catalog):
    first = at("2026-12-01T00:00:00+00:00")
    hour, fortnight = parse_duration("1h"), parse_duration("14d")
    bill, stays = catalog["bill-correct"], catalog["ticket-stays-resolved"]  # a condition; a 14-day no_repeat
    assert warming_up(bill, first - hour // 2, first)  # its hour began before the data
    assert not warming_up(bill, first + hour, first)
    assert warming_up(stays, first + hour, first)  # good outcomes come 14 days late
    assert warming_up(stays, first + fortnight - hour, first)
    assert not warming_up(stays, first + fortnight, first)
    assert not warming_up(bill, first, None)  # no data: nothing to warm up from (unknown)


def test_partitions_add_up_and_one_with_history_speaks_for_the_touchpoint(catalog):
    """Two partitions: one with a day of data, one fresh (warming up). The touchpoint is not warming up,
    and its window holds both partitions' outcomes."""
    from monitor import counts as tally

    now = at("2026-12-06T12:00:00+00:00")
    bucket = catalog["bill-correct"].window.bucket(now - parse_duration("10m"))
    old = {
        (tally.WINDOW, "bill-correct", str(bucket), "good"): 40,
        (tally.WINDOW, "bill-correct", str(bucket), "bad"): 1,
    }
    fresh = {(tally.WINDOW, "bill-correct", str(bucket), "good"): 10}
    day, minutes = {"bill-correct": now - parse_duration("1d")}, {"bill-correct": now - parse_duration("20m")}
    found = standing(catalog, [(old, now, day), (fresh, now, minutes)])
    assert (found["bill-correct"].good, found["bill-correct"].bad, found["bill-correct"].state) == (50, 1, "reliable")
    alone = standing(catalog, [(fresh, now, minutes)])
    assert alone["bill-correct"].state == "warming up"


def _catalog(tmp_path: Path, settings: str, touchpoint: str = "", sources: str = "") -> Path:
    """The shipped catalog with settings, a touchpoint's extra lines, or extra source lines."""
    folder = tmp_path / "rules"
    folder.mkdir()
    for file in (ROOT / "rules").glob("*.yaml"):
        text = file.read_text()
        if file.name == "catalog.yaml":  # the settings given replace the shipped ones
            given = {line.split(":")[0] for line in settings.splitlines() if ":" in line and not line.startswith(" ")}
            text = "".join(line for line in text.splitlines(True) if line.split(":")[0] not in given) + settings
        if file.name == "pay.yaml" and touchpoint:
            text = text.replace("    min_events: 20\n", f"    min_events: 20\n{touchpoint}", 1)
        if file.name == "events.yaml" and sources:
            text = text.replace("  - name: bills\n", f"  - name: bills\n{sources}", 1)
        (folder / file.name).write_text(text)
    return folder


def test_windows_timezone_and_confidence_come_from_the_catalog(tmp_path):
    folder = _catalog(tmp_path, "window: 1d\ntimezone: Europe/Berlin\nconfidence: 0.95\n", "    window: week\n")
    catalog = load_catalog(folder)
    assert catalog["bill-correct"].window.period == "week" and catalog["bill-correct"].window.zone == BERLIN
    assert catalog["order-confirmed"].window.span == parse_duration("1d")
    assert catalog.confidence == 0.95 and round(catalog.z, 3) == 1.645


@pytest.mark.parametrize(
    "settings, touchpoint, where, message",
    [
        ("timezone: Europe/Berlinn\n", "", "catalog.yaml:{end}: timezone", "'Europe/Berlinn' is not an IANA time zone name"),
        ("", "    window: fortnight\n", "pay.yaml:13: touchpoints[0].window", "'fortnight' is not a window"),
        ("confidence: 99\n", "", "catalog.yaml:{end}: confidence", "must be a level between 0.5 and 1"),
    ],
    ids=["time zone", "window", "confidence"],
)  # fmt: skip
def test_a_bad_setting_is_said_with_its_file_and_line(tmp_path, settings, touchpoint, where, message):
    folder = _catalog(tmp_path, settings, touchpoint)
    done = CliRunner().invoke(main, ["rules", "validate", str(folder)])
    assert done.exit_code == 1
    where = where.format(end=len((folder / "catalog.yaml").read_text().splitlines()))
    assert where in done.output and message in done.output, done.output


CALENDAR = """calendars:
  office:
    timezone: Europe/Berlin
    hours:
      mon-fri: "08:00-18:00"
"""


def test_a_source_with_a_calendar_is_not_silent_outside_its_hours(tmp_path):
    folder = _catalog(tmp_path, CALENDAR, sources="    calendar: office\n")
    catalog = load_catalog(folder)
    friday_evening = at("2026-12-04T17:50:00+01:00") / MICROS
    saturday = at("2026-12-05T11:00:00+01:00") / MICROS
    monday = at("2026-12-07T08:20:00+01:00") / MICROS
    assert catalog.silence("bills", friday_evening, saturday) == 600  # ten minutes of Friday's hours
    assert "bills" not in catalog.silent_sources({"bills": friday_evening}, saturday)
    assert "bills" in catalog.silent_sources({"bills": friday_evening}, monday)  # 10 + 20 min > 15m
    assert "orders" in catalog.silent_sources({"orders": friday_evening}, saturday)  # no calendar: wall time


def test_a_source_calendar_that_is_not_one_is_said(tmp_path):
    folder = _catalog(tmp_path, CALENDAR, sources="    calendar: ofice\n")
    catalog, problems = validate_catalog(folder)
    assert catalog is None
    assert any("'ofice' is not a calendar of the catalog; did you mean 'office'?" in p.message for p in problems)


# -- a held-out healthy stream, from a handful an hour at night to a few hundred by day ----------------
DAY_START = at("2026-11-30T00:00:00+00:00")  # a Monday
INCIDENT = (DAY_START + parse_duration("1d10h"), parse_duration("3h"))  # day 2, 10:00 to 13:00, 40% wrong


def _volume(hour: int) -> int:
    """Bills an hour: 2 at night, rising to 300 in the afternoon."""
    import math

    return max(2, round(300 * max(0.0, math.sin(math.pi * (hour % 24 - 6) / 16)) ** 1.5))


def _bills(seed: int, days: int = 3) -> bytes:
    """Bills of three days, 98.8% right (bill-correct's objective is 97%), 40% wrong in the incident;
    payments 97.8% successful (payment-succeeded's objective is 95%)."""
    import random

    import orjson

    rng = random.Random(seed)
    lines = []
    for hour in range(24 * days):
        for n in range(_volume(hour)):
            instant = DAY_START + hour * parse_duration("1h") + rng.randrange(parse_duration("1h"))
            onset, length = INCIDENT
            wrong_share = 0.4 if onset <= instant < onset + length else 0.012
            customer, bill = f"c-{hour:03d}-{n:03d}", f"b-{hour:03d}-{n:03d}"
            wrong = rng.random() < wrong_share
            stamp = datetime.fromtimestamp(instant / MICROS, ZoneInfo("UTC")).isoformat().replace("+00:00", "Z")
            lines.append(
                {"event_id": f"{bill}-i", "type": "bill.issued", "customer_id": customer, "occurred_at": stamp,
                 "bill_id": bill, "amount": 31.0 if wrong else 29.0, "expected_amount": 29.0}
            )  # fmt: skip
            paid = "payment.failed" if rng.random() < 0.022 else "payment.succeeded"
            lines.append(
                {"event_id": f"{bill}-p", "type": paid, "customer_id": customer, "occurred_at": stamp, "bill_id": bill}
            )
    lines.sort(key=lambda line: line["occurred_at"])
    return b"".join(orjson.dumps(line) + b"\n" for line in lines)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_healthy_stream_shows_no_broken_hour_and_an_incident_breaks_in_its_first(tmp_path, catalog, seed):
    """Hourly periods and the wall's state over time: bill-correct broken only in the incident's hours,
    from within its first hour; payment-succeeded (97.8% against 95%) never broken."""
    from monitor.review import review
    from tpmon.report.replay import evidence

    path = tmp_path / "bills.jsonl"
    path.write_bytes(_bills(seed))
    found, _ = evidence(catalog, [("file", path)], parse_duration("1h"), None, False, lambda text: None)
    judged = review(catalog, found).by_id
    onset, length = INCIDENT
    starts = found.starts()
    broken = [starts[i] for i, state in enumerate(judged["bill-correct"].states) if state == "broken"]
    assert broken and all(onset <= hour < onset + length for hour in broken), broken
    assert "broken" not in judged["payment-succeeded"].states
    spells = judged["bill-correct"].spells  # the wall's state over its window (1h), every five minutes
    assert len(spells) == 1 and onset < spells[0].start <= onset + parse_duration("1h"), spells
    assert judged["payment-succeeded"].spells == []


def test_a_source_with_a_calendar_says_its_silence_in_open_hours_and_sourcesilent_reads_it(tmp_path):
    """The worker serves tpmon_source_silent_open_seconds for a source with a calendar (as of each
    scrape); the rendered SourceSilent and the state rule read it for that source, wall time for others."""
    from prometheus_client import CollectorRegistry
    from ruamel.yaml import YAML

    from monitor.metrics import Metrics
    from monitor.observe.prometheus import rule_files

    folder = _catalog(tmp_path, CALENDAR, sources="    calendar: office\n")
    catalog = load_catalog(folder)

    class Nothing:
        def figures(self) -> dict:
            return {}

    registry = CollectorRegistry()
    metrics = Metrics(catalog, Nothing(), registry)
    friday_evening = at("2026-12-04T17:50:00+01:00") / MICROS
    now = [at("2026-12-05T11:00:00+01:00") / MICROS]  # Saturday
    metrics.watch_source("bills", friday_evening, lambda: now[0])
    assert registry.get_sample_value("tpmon_source_silent_open_seconds", {"source": "bills"}) == 600
    now[0] = at("2026-12-07T08:20:00+01:00") / MICROS  # Monday, 20 minutes after opening
    assert registry.get_sample_value("tpmon_source_silent_open_seconds", {"source": "bills"}) == 1800
    groups = rule_files(catalog)["touchpoints.yml"]["groups"]
    pipeline = next(g["rules"] for g in groups if g["name"] == "tpmon-pipeline")
    silent = {r["labels"]["source"]: r["expr"] for r in pipeline if r["alert"] == "SourceSilent"}
    assert silent["bills"] == 'min by (source) (tpmon_source_silent_open_seconds{source="bills"}) > 900'
    assert silent["orders"].startswith("time() - max by (source)")
    state = next(g["rules"][0]["expr"] for g in groups if g["name"] == "tpmon-bill-correct")
    assert 'tpmon_source_silent_open_seconds{source="bills"}' in state
    with (tmp_path / "touchpoints.yml").open("w") as stream:
        YAML().dump(rule_files(catalog)["touchpoints.yml"], stream)
    promtool = shutil.which("promtool")
    assert promtool, "`make deps` installs Debian's prometheus (promtool)"
    checked = subprocess.run([promtool, "check", "rules", str(tmp_path / "touchpoints.yml")], capture_output=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_outcomes_kept_apart_count_once_late_history_moves_the_first_data_back(catalog):
    """A replay reading an unordered file: a repeat counted apart as too early becomes fair once an
    earlier event shows the data began a fortnight sooner; one before the new horizon stays apart."""
    from monitor.engine.fair import Fair

    fair = Fair(catalog.touchpoints)
    first = at("2026-12-01T00:00:00+00:00")
    fair.first(first)
    fair.add("ticket-stays-resolved", False, first + parse_duration("1d"))
    fair.add("ticket-stays-resolved", True, first + parse_duration("15d"))
    assert fair.counts["ticket-stays-resolved"] == [1, 0]  # the good one, after 14 days of data
    fair.first(first - parse_duration("14d"))
    assert fair.counts["ticket-stays-resolved"] == [1, 1]
    assert fair.early["ticket-stays-resolved"] == {}
