"""`tpmon report` in the catalog's time zone, bounded by --since/--until, with its figures as JSON
(docs/REVIEW.md): calendar periods across daylight saving time, times with their offset, the lines
left out counted and said, a stray line warned of, and the vital few those of `tpmon replay`."""

from __future__ import annotations

import re
import shutil
from datetime import datetime
from html import unescape
from itertools import pairwise
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import pytest
from click.testing import CliRunner

from monitor.durations import parse_duration
from monitor.events import parse_timestamp
from monitor.review.periods import bounds, parse_bound, period_start
from monitor.simulate import Simulation
from tpmon.cli import main

from .browser import red_and_ink
from .conftest import ROOT

BERLIN = ZoneInfo("Europe/Berlin")
HOUR = parse_duration("1h")
BERLIN_MONDAY = "2027-03-21T23:00:00Z"  # Monday 2027-03-22 00:00 +01:00; summer time begins on Sunday the 28th
OUTAGE_START, OUTAGE_END = "2026-11-26", "2026-11-27"  # the simulated week's fourth day (tests/test_review.py)


def at(text: str) -> int:
    found = parse_timestamp(text)
    assert found is not None, text
    return found


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args))
    return result.exit_code, result.stdout, result.stderr


def simulated(path: Path, start: str, customers: int = 3000, days: str = "7d") -> Path:
    simulation = Simulation(
        customers=customers, duration=parse_duration(days), seed=5, scenario="billing-outage-week", start=start
    )
    with path.open("wb") as stream:
        for raw in simulation.lines():
            stream.write(raw + b"\n")
    return path


@pytest.fixture(scope="module")
def berlin(tmp_path_factory) -> Path:
    """The shipped catalog, its timezone Europe/Berlin."""
    rules = tmp_path_factory.mktemp("berlin") / "rules"
    shutil.copytree(ROOT / "rules", rules)
    catalog = rules / "catalog.yaml"
    text = catalog.read_text()
    assert "\ntimezone: UTC\n" in text
    catalog.write_text(text.replace("\ntimezone: UTC\n", "\ntimezone: Europe/Berlin\n"))
    return rules


@pytest.fixture(scope="module")
def berlin_week(tmp_path_factory, berlin) -> tuple[Path, Path, dict, str]:
    """A Berlin week that ends in summer time, its review (page and figures) and its summary."""
    root = tmp_path_factory.mktemp("berlin-week")
    events = simulated(root / "week.jsonl", BERLIN_MONDAY)
    out, figures = root / "review.html", root / "review.json"
    code, summary, stderr = run(
        "report", str(events), "--rules", str(berlin), "--out", str(out), "--json", str(figures)
    )
    assert code == 0, stderr
    return events, out, orjson.loads(figures.read_bytes()), summary


# Periods: calendar periods in the zone.


@pytest.mark.parametrize(
    "instant, period, start",
    [
        ("2027-01-18T00:30:00+01:00", "1d", "2027-01-18T00:00:00+01:00"),
        ("2027-01-18T00:30:00+01:00", "1w", "2027-01-18T00:00:00+01:00"),
        ("2027-01-17T23:59:00+01:00", "1w", "2027-01-11T00:00:00+01:00"),
        ("2027-03-28T12:00:00+02:00", "1d", "2027-03-28T00:00:00+01:00"),
        ("2027-10-31T23:30:00+01:00", "1d", "2027-10-31T00:00:00+02:00"),
        ("2027-01-18T13:45:00+01:00", "1h", "2027-01-18T13:00:00+01:00"),
    ],
    ids=[
        "a Monday's first hour is its own day",
        "and its own week (from local Monday)",
        "a Sunday night is the week before",
        "the day summer time begins",
        "the day it ends",
        "an hour",
    ],
)
def test_periods_start_at_local_midnight_and_monday(instant, period, start):
    assert period_start(at(instant), parse_duration(period), BERLIN) == at(start)


@pytest.mark.parametrize(
    "first, period, hours",
    [
        ("2027-03-28T12:00:00+02:00", "1d", [23]),
        ("2027-10-31T12:00:00+01:00", "1d", [25]),
        ("2027-03-24T12:00:00+01:00", "1w", [7 * 24 - 1]),
        ("2027-01-18T12:00:00+01:00", "1d", [24]),
    ],
    ids=["a spring day is 23 hours", "an autumn day 25", "a week across the change 167", "a winter day 24"],
)
def test_a_period_is_a_calendar_period_not_a_fixed_length(first, period, hours):
    found = bounds(at(first), at(first) + 1, parse_duration(period), BERLIN)
    assert [(end - start) // HOUR for start, end in pairwise(found)] == hours


@pytest.mark.parametrize(
    "text, instant",
    [
        ("2027-01-04T00:00:00+01:00", "2027-01-04T00:00:00+01:00"),
        ("2027-01-04T00:00:00Z", "2027-01-04T00:00:00Z"),
        ("2027-01-04", "2027-01-04T00:00:00+01:00"),
        ("2027-07-04", "2027-07-04T00:00:00+02:00"),
    ],
    ids=["an instant with its offset", "in UTC", "a date: its midnight in the zone", "a summer date"],
)
def test_a_bound_is_an_instant_or_a_date_in_the_catalogs_zone(text, instant):
    assert parse_bound(text).instant(BERLIN) == at(instant)


def test_a_bound_can_be_a_duration_back_and_nothing_else():
    assert parse_bound("28d").back == parse_duration("28d") and parse_bound("28d").instant(BERLIN) is None
    for wrong in ("04.01.2027", "2027-13-01", "yesterday"):
        with pytest.raises(ValueError, match="is not a time: write an RFC 3339 instant"):
            parse_bound(wrong)


# A Berlin review.


def test_a_berlin_weeks_periods_are_its_local_days_across_summer_time(berlin_week):
    _, out, figures, summary = berlin_week
    assert figures["timezone"] == "Europe/Berlin" and figures["period"] == "1d"
    starts = [period["start"] for period in figures["periods"]]
    assert starts[0] == "2027-03-22T00:00:00+01:00" and starts[6] == "2027-03-28T00:00:00+01:00"
    assert starts[7] == "2027-03-29T00:00:00+02:00"  # (the data's last hour: 00:00 to 01:00 in summer time)
    lengths = [
        (datetime.fromisoformat(p["end"]) - datetime.fromisoformat(p["start"])).total_seconds() / 3600
        for p in figures["periods"]
    ]
    assert lengths[:7] == [24, 24, 24, 24, 24, 24, 23]
    assert all(
        period["end"] == following["start"]
        for period, following in zip(figures["periods"], figures["periods"][1:], strict=False)
    )
    assert summary.startswith("Reliability review, 2027-03-22 00:00 +01:00 to 2027-03-30 00:00 +02:00 (8 periods")
    assert "Europe/Berlin" in summary.splitlines()[0]
    page = out.read_text()
    assert "Times are in Europe/Berlin" in page and "(UTC)" not in page
    assert "<td>2027-03-29 00:00 +02:00</td>" in page  # customers in and out, that day


def test_an_outcome_counts_in_its_local_day(berlin_week):
    """Every outcome of the simulated week is counted in the Berlin day that holds its instant: the
    outage (hours 9 to 15 after the start, so 09:00 to 15:00 +01:00 on Thursday) is Thursday's."""
    _, _, figures, _ = berlin_week
    bill = figures["touchpoints"]["bill-correct"]
    states = [period["state"] for period in bill["periods"]]
    assert states[3] == "broken" and states.count("broken") == 1, states
    assert bill["spells"]
    for spell in bill["spells"]:  # (the hour's window flickers at this volume: spells within the outage)
        assert "2027-03-25T09:00:00+01:00" <= spell["start"] <= spell["end"] <= "2027-03-25T16:30:00+01:00", spell


def test_the_figures_agree_with_the_page(berlin_week):
    _, out, figures, summary = berlin_week
    page = unescape(out.read_text())
    for touchpoint, row in figures["touchpoints"].items():
        section = page.split(f'id="{touchpoint}">', 1)[1]
        section = section.split("</section>", 1)[0]
        assert f'<span class="state {row["state_now"]}">' in section, touchpoint
        impact = row["impact"]
        assert f"customers impacted <b>{impact['customers_impacted']}</b>" in section
        assert f"left after bad <b>{impact['left_after_bad']}</b>" in section
        nps = impact["voice"].get("nps", {})
        for side in ("good", "bad"):
            figure = nps.get(f"after_{side}", {}).get("nps")
            shown = "-" if figure is None else f"{figure:+.0f} ({nps[f'after_{side}']['answers']} answers)"
            assert f"NPS after {side} <b>{shown}</b>" in section, (touchpoint, side)
        lift = impact.get("churn_lift")
        assert f"churn lift <b>{'-' if lift is None else f'{lift:.1f}x'}</b>" in section
        broken = [p for p in row["periods"] if p["state"] == "broken"]
        listed = summary.split("Broken in a period:")[1].split("\n")
        assert any(line.startswith(f"  {touchpoint} (") for line in listed) == bool(broken), touchpoint
    vital = page.split("<h2>The vital few</h2>")[1].split("<h2")[0]
    assert re.findall(r"<tr><td>([a-z-]+)</td>", vital) == figures["vital_few"]
    customers = page.split("<h2>Customers in and out</h2>")[1].split("<h2")[0]
    rows = re.findall(r"<tr><td>([^<]+)</td><td class=\"n\">(\d+)</td><td class=\"n\">(\d+)</td></tr>", customers)
    assert [int(joined) for _, joined, _ in rows] == figures["customers"]["joined"]
    assert [int(left) for _, _, left in rows] == figures["customers"]["left"]
    stories = page.split("<h2>Stories</h2>")[1]
    assert "<th>when (Europe/Berlin)</th>" in stories
    assert re.search(r"<td>2027-03-2\d \d\d:\d\d \+0[12]:00</td>", stories)


# Bounds.


def _lines_between(events: Path, since: int, until: int) -> tuple[bytes, int, int]:
    """The lines of [since, until), and how many events were before and after (a duplicate counts once)."""
    kept, before, after = [], set(), set()
    for line in events.read_bytes().splitlines(keepends=True):
        data = orjson.loads(line)
        instant = at(data["occurred_at"])
        if instant < since:
            before.add(data["event_id"])
        elif instant >= until:
            after.add(data["event_id"])
        else:
            kept.append(line)
    return b"".join(kept), len(before), len(after)


@pytest.fixture(scope="module")
def utc_week(tmp_path_factory) -> Path:
    return simulated(tmp_path_factory.mktemp("utc-week") / "week.jsonl", "2026-11-23T00:00:00Z", customers=6000)


def test_replay_and_report_name_the_same_vital_few(utc_week, tmp_path):
    """The whole week (bill-correct broken on one day of seven: not over the week) and its outage day
    alone (broken): report --json names the vital few replay --json names over the same lines."""
    code, replayed, stderr = run("replay", str(utc_week), "--json")
    assert code == 0, stderr
    figures = tmp_path / "week.json"
    code, _, stderr = run("report", str(utc_week), "--out", str(tmp_path / "week.html"), "--json", str(figures))
    assert code == 0, stderr
    week = orjson.loads(figures.read_bytes())
    whole = orjson.loads(replayed)
    assert week["vital_few"] == whole["vital_few"]
    for touchpoint, row in whole["touchpoints"].items():
        assert week["touchpoints"][touchpoint]["span"]["state"] == row["state"], touchpoint
        assert week["touchpoints"][touchpoint]["impact"]["customers_impacted"] == row["impact"]["customers_impacted"]

    # The outage day: the review bounded by --since/--until, and replay of only that day's lines.
    since, until = at(f"{OUTAGE_START}T00:00:00Z"), at(f"{OUTAGE_END}T00:00:00Z")
    day, before, after = _lines_between(utc_week, since, until)
    (tmp_path / "day.jsonl").write_bytes(day)
    code, replayed, stderr = run("replay", str(tmp_path / "day.jsonl"), "--json")
    assert code == 0, stderr
    bounded = tmp_path / "day.json"
    code, summary, stderr = run(
        "report", str(utc_week), "--since", OUTAGE_START, "--until", OUTAGE_END,
        "--out", str(tmp_path / "day.html"), "--json", str(bounded),
    )  # fmt: skip
    assert code == 0, stderr
    figures = orjson.loads(bounded.read_bytes())
    assert figures["vital_few"] == orjson.loads(replayed)["vital_few"] == ["bill-correct"]
    assert [p["start"] for p in figures["periods"]] == [f"{OUTAGE_START}T00:00:00+00:00"]
    assert figures["left_out"]["before"] == before and figures["left_out"]["after"] == after
    said = f"{before} events before {OUTAGE_START} 00:00 +00:00 and {after} from {OUTAGE_END} 00:00 +00:00 on"
    assert said in summary and said in figures["left_out"]["said"]
    vital = summary.split("Vital few")[1].split("\n")[1]
    assert vital.strip().startswith("bill-correct:") and "churn lift" in vital and "NPS after good" in vital


def test_since_as_a_duration_counts_back_from_the_end(utc_week, tmp_path):
    figures = tmp_path / "r.json"
    code, _, stderr = run(
        "report", str(utc_week), "--since", "2d", "--out", str(tmp_path / "r.html"), "--json", str(figures)
    )
    assert code == 0, stderr
    found = orjson.loads(figures.read_bytes())
    # The week ends on Sunday 29th before midnight: two days back, from the start of Friday 27th.
    assert [p["start"][:10] for p in found["periods"]] == ["2026-11-27", "2026-11-28", "2026-11-29"]
    assert found["left_out"]["before"] > 0 and found["left_out"]["after"] == 0


def test_a_stray_line_a_year_early_is_warned_of_with_the_bound_to_give(utc_week, tmp_path):
    stray = tmp_path / "stray.jsonl"
    first = orjson.loads(utc_week.read_bytes().splitlines()[0])
    early = {**first, "event_id": "stray-1", "occurred_at": "2025-11-20T10:00:00Z"}
    stray.write_bytes(orjson.dumps(early) + b"\n" + utc_week.read_bytes())
    figures = tmp_path / "r.json"
    code, _, stderr = run(
        "report", str(stray), "--period", "1w", "--out", str(tmp_path / "r.html"), "--json", str(figures)
    )
    assert code == 0, stderr
    assert "warning: 1 event of the input lies far before the rest" in stderr
    assert "add --since 2026-11-23" in stderr
    found = orjson.loads(figures.read_bytes())
    assert len(found["periods"]) > 50 and any("--since 2026-11-23" in note for note in found["notes"])
    code, _, stderr = run(
        "report", str(stray), "--period", "1w", "--since", "2026-11-23", "--out", str(tmp_path / "r.html"),
        "--json", str(figures),
    )  # fmt: skip
    assert code == 0 and "warning" not in stderr, stderr
    found = orjson.loads(figures.read_bytes())
    assert [p["start"] for p in found["periods"]] == ["2026-11-23T00:00:00+00:00"]
    assert found["left_out"]["before"] == 1


@pytest.mark.parametrize(
    "args, message",
    [
        (["--until", "2d"], "give an instant or a date"),
        (["--since", "2026-11-27", "--until", "2026-11-26"], "is not before --until"),
        (["--since", "26.11.2026"], "is not a time"),
        (["--since", "2030-01-01"], "no event to review between --since and --until"),
    ],
    ids=["a duration for --until", "since after until", "a German date", "a span with no event"],
)
def test_bad_bounds_say_what_to_do(utc_week, tmp_path, args, message):
    code, _, stderr = run("report", str(utc_week), *args, "--out", str(tmp_path / "r.html"))
    assert code != 0 and message in stderr, stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.slow
def test_chromium_renders_a_berlin_review(berlin_week, tmp_path):
    """A real headless Chromium renders the Berlin review: not blank, its broken red and its text."""
    _, out, _, _ = berlin_week
    red, ink = red_and_ink(out, tmp_path / "berlin.png")
    assert red > 200 and ink > 2000, (red, ink)  # the broken state, and text


def test_prometheus_periods_are_local_days_and_its_steps_start_at_local_midnight(monkeypatch, berlin):
    """query_range from local midnight, a window apart: the day summer time begins holds 23 hourly
    windows, each summed into the local day that ends it."""
    from monitor.catalog import load_catalog
    from monitor.observe.windows import PROFILES
    from tpmon.report import prometheus

    asked = []

    def answer(self, query, start, end, step):  # type: ignore[no-untyped-def]
        asked.append((query, start, end, step))
        if "good" not in query:
            return []
        values = [[t / 1e6, "1"] for t in range(start, end + 1, step)]
        return [{"metric": {"touchpoint": "bill-correct"}, "values": values}]

    monkeypatch.setattr(prometheus.Client, "range", answer)
    monkeypatch.setattr(prometheus.Client, "instant", lambda self, *args: [])
    now = at("2027-03-29T12:00:00+02:00")
    found = prometheus.evidence(
        load_catalog(berlin), "http://prometheus", parse_duration("3d"), parse_duration("1d"),
        PROFILES["production"], now, lambda text: None,
    )  # fmt: skip
    assert found.zone.key == "Europe/Berlin"
    assert found.start == at("2027-03-26T00:00:00+01:00")
    good = [query for query in asked if "good" in query[0]]
    assert good[0][1] == found.start + HOUR and good[0][3] == HOUR  # (the first window's end)
    assert found.touchpoints["bill-correct"].good == [24, 24, 23, 12]


def test_a_stray_line_a_year_late_is_warned_of_with_until(utc_week, tmp_path):
    stray = tmp_path / "stray.jsonl"
    last = orjson.loads(utc_week.read_bytes().splitlines()[-1])
    late = {**last, "event_id": "stray-2", "occurred_at": "2027-11-20T10:00:00Z"}
    stray.write_bytes(utc_week.read_bytes() + orjson.dumps(late) + b"\n")
    code, _, stderr = run("report", str(stray), "--period", "1w", "--out", str(tmp_path / "r.html"))
    assert code == 0, stderr
    assert "1 event of the input lies far after the rest, which ends 2026-11-29" in stderr
    assert "add --until 2026-11-30" in stderr
