"""`tpmon report`: the reliability review from a replay (the Prometheus path is in
tests/integration/test_customer_room.py), its model, its bad input, and a real Chromium's rendering."""

from __future__ import annotations

import re
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner

from monitor.catalog import load_catalog
from monitor.conventions import BROKEN, DIFFERENTIATING, RELIABLE, UNKNOWN
from monitor.durations import parse_duration
from monitor.events import format_timestamp, parse_timestamp
from monitor.review import Evidence, Spell, TouchpointEvidence, period_start, review
from monitor.review.model import spells as spells_of
from monitor.review.model import survey_gap
from monitor.simulate import Simulation
from tests.builders import event
from tpmon.cli import main

from .browser import chromium, red_and_ink
from .conftest import ROOT

WEEK_START = "2026-11-23T00:00:00Z"  # a Monday
OUTAGE_DAY = "2026-11-26"  # the fourth day: 09:00 to 15:00 (monitor.simulate.scenarios)


def report(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["report", *args])
    return result.exit_code, result.stdout, result.stderr


def at(text: str) -> int:
    found = parse_timestamp(text)
    assert found is not None
    return found


@pytest.fixture(scope="module")
def week(tmp_path_factory) -> tuple[Path, Path, str]:
    """A simulated week with a billing outage on its fourth day, its events and its review."""
    root = tmp_path_factory.mktemp("week")
    events = root / "week.jsonl"
    run = Simulation(
        customers=6000, duration=parse_duration("7d"), seed=3, scenario="billing-outage-week", start=WEEK_START
    )
    with events.open("wb") as stream:
        for raw in run.lines():
            stream.write(raw + b"\n")
    out = root / "review.html"
    code, summary, stderr = report(str(events), "--out", str(out), "--period", "1d")
    assert code == 0, stderr
    return events, out, summary


def test_the_incident_weeks_review_names_bill_correct_broken_on_the_outage_day(week):
    _, out, summary = week
    broken = summary.split("Broken in a period:")[1].split("\n")
    bill = next(line for line in broken if line.strip().startswith("bill-correct"))
    periods = bill.split("): ", 1)[1].split(";")[0]
    assert re.fullmatch(rf"{OUTAGE_DAY} 00:00 \+00:00 \(\d+\.\d%\)", periods), bill  # broken that day, no other
    spell = re.search(r"the longest spell (\S+) (\S+) (\S+) to (\S+) (\S+) (\S+)", bill)
    assert spell, bill
    parts = spell.groups()
    start, end = (at(f"{day}T{minute}:00{offset}") for day, minute, offset in (parts[:3], parts[3:]))
    # The outage's hours, on the wall's window of an hour (which may have flickered into it just before).
    assert at(f"{OUTAGE_DAY}T06:00:00Z") <= start <= at(f"{OUTAGE_DAY}T10:00:00Z"), bill
    assert at(f"{OUTAGE_DAY}T15:00:00Z") <= end <= at(f"{OUTAGE_DAY}T16:30:00Z"), bill
    # Broken for a day of seven, it is not broken over the week: the vital few are tpmon replay's, none.
    assert "Vital few: none" in summary
    page = out.read_text()
    assert page.startswith("<!DOCTYPE html>") and '<pre class="summary">Reliability review' in page
    assert 'id="bill-correct"' in page and "owner billing" in page
    assert page.count("<svg") == 13 + 2  # a chart per touchpoint, the states at a glance, customers in and out


def test_the_review_is_self_contained_and_each_story_is_one_customers(week):
    events, out, _ = week
    page = out.read_text()
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", page), "the review fetches nothing when it opens"
    assert "<script" not in page
    customers = {orjson.loads(line)["customer_id"] for line in events.read_bytes().splitlines()}
    stories = page.split("<h2>Stories</h2>")[1]
    told = re.findall(r"<h3>(c-\d+) <span", stories)
    assert told and len(told) == len(set(told)), told
    for section, customer in zip(stories.split("<h3>")[1:], told, strict=True):
        named = set(re.findall(r"c-\d{6}", section)) & customers
        assert named == {customer}, f"the story of {customer} names {named - {customer}}"
        assert ": bad</td>" in section  # the bad outcome it was chosen for
    assert "for bill-correct" in stories.split("<h3>")[1]  # the vital few's first
    # Each event by its declared type, with what the catalog's story template says of it.
    assert re.search(r"<td>bill\.issued</td>\s*<td>bill \S+: \d+\.\d\d billed, \d+\.\d\d expected</td>", stories)


def test_the_review_is_written_the_same_twice(catalog):
    """The same evidence gives the same page: no random ids in the SVG, no date but the one passed in."""
    from tpmon.report.html import page

    found = _evidence([990, 900, 995], [10, 100, 5], impacted=90)
    found.touchpoints["bill-correct"].spells = [Spell(parse_duration("1d"), parse_duration("1d") + 3600 * 10**6)]
    judged = review(catalog, found)
    assert page(judged, 0) == page(judged, 0)


@pytest.mark.slow
def test_chromium_renders_the_review_and_prints_it_on_a4(week, tmp_path):
    """A real headless Chromium (Debian's, `make deps`): the screenshot is not blank, shows the broken
    state's red and text, and the print has A4 pages."""
    from PIL import Image

    _, out, _ = week
    shot, pdf = tmp_path / "review.png", tmp_path / "review.pdf"
    red, ink = red_and_ink(out, shot)
    assert red > 200 and ink > 2000, (red, ink)  # the broken state, and text
    colours = Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)
    assert colours is not None and len(colours) > 50, "a blank or nearly blank screenshot"
    white = max(colours)[0]
    assert white < 0.95 * 900 * 1300, "the screenshot is mostly one colour"
    chromium(out, f"--print-to-pdf={pdf}", "--no-pdf-header-footer")
    printed = pdf.read_bytes()
    pages = re.findall(rb"/MediaBox\s*\[\s*0 0 ([\d.]+) ([\d.]+)\s*\]", printed)
    assert len(pages) >= 3, "the review prints on several pages"
    width, height = (float(v) for v in pages[0])
    assert abs(width - 595.3) < 2 and abs(height - 841.9) < 2, pages[0]  # A4, in points


# Bad input, each with a clear message.


def test_an_empty_file_says_there_is_nothing_to_review(tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    code, _, stderr = report(str(empty), "--out", str(tmp_path / "r.html"))
    assert code == 1 and "no event to review in" in stderr and "(nothing)" in stderr
    assert not (tmp_path / "r.html").exists()


def test_a_file_of_bad_lines_says_how_many_were_rejected(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json\n{}\n")
    code, _, stderr = report(str(bad), "--out", str(tmp_path / "r.html"))
    assert code == 1 and "2 lines, 2 rejected" in stderr


def test_events_that_decide_nothing_say_so(tmp_path):
    joined = tmp_path / "joined.jsonl"
    joined.write_bytes(event("customer.joined", 0).raw + b"\n")
    code, _, stderr = report(str(joined), "--out", str(tmp_path / "r.html"))
    assert code == 1 and "nothing was decided" in stderr


def test_a_prometheus_that_is_down_says_it_cannot_be_reached(tmp_path):
    from tpmon.broker import free_port

    url = f"http://127.0.0.1:{free_port()}"
    code, _, stderr = report("--prometheus", url, "--out", str(tmp_path / "r.html"))
    assert code == 1 and f"Prometheus at {url} cannot be reached" in stderr
    assert not (tmp_path / "r.html").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--period", "500ms"], "is too short"),
        (["--prometheus", "http://127.0.0.1:9"], "not both"),
        (["-"], "give files, not standard input"),
        (["--period", "1m"], "choose a longer --period"),
        (["--worker", "http://127.0.0.1:6066"], "--worker goes with --prometheus"),
    ],
    ids=["a period under a second", "files and Prometheus", "standard input", "too many periods", "a worker"],
)
def test_bad_options_say_what_to_do(tmp_path, args, message):
    events = tmp_path / "two-days.jsonl"  # a day apart: 1441 periods of a minute
    events.write_bytes(event("customer.joined", 0).raw + b"\n" + event("customer.joined", 86400).raw + b"\n")
    inputs = [] if "-" in args else [str(events)]
    code, _, stderr = report(*inputs, *args, "--out", str(tmp_path / "r.html"))
    assert code != 0 and message in stderr, stderr


def test_a_period_with_no_data_is_shown_as_none_not_as_broken(tmp_path):
    """Orders on the first and the third day (after its noon, so that the third is now), none on the
    second: the second has no reliability and no state (not 0%, not broken), and the review is written."""
    lines = []
    for day, start in ((0, 0), (2, 2 * 86400 + 13 * 3600)):
        for n in range(30):
            customer = f"c-{day}{n:03d}"
            lines += [
                event("order.placed", start + n * 60, customer, order_id=f"o-{day}-{n}"),
                event("order.confirmed", start + n * 60 + 30, customer, order_id=f"o-{day}-{n}"),
            ]
    events = tmp_path / "gap.jsonl"
    events.write_bytes(b"".join(e.raw + b"\n" for e in lines))
    out = tmp_path / "r.html"
    code, summary, stderr = report(str(events), "--out", str(out))
    assert code == 0, stderr
    row = next(line for line in summary.splitlines() if line.startswith("order-confirmed"))
    assert "reliable" in row and "100.0%" in row  # (30 of 30 is not confident evidence of 99%)
    catalog = load_catalog(ROOT / "rules")
    from tpmon.report.replay import evidence

    found, _ = evidence(catalog, [("file", events)], parse_duration("1d"), None, False, lambda text: None)
    assert found is not None and found.periods == 3
    confirmed = review(catalog, found).by_id["order-confirmed"]
    assert confirmed.reliability == [1.0, None, 1.0]
    assert confirmed.states == [RELIABLE, UNKNOWN, RELIABLE]  # (30 of 30: not confident evidence of 99%)
    assert confirmed.change is None  # the period before the last has nothing to compare with
    assert "<svg" in out.read_text()


# The model.


@pytest.mark.parametrize(
    "instant, period, start",
    [
        ("2026-11-26T13:45:00Z", "1d", "2026-11-26T00:00:00Z"),
        ("2026-11-26T13:45:00Z", "7d", "2026-11-23T00:00:00Z"),
        ("2026-11-23T00:00:00Z", "7d", "2026-11-23T00:00:00Z"),
        ("2026-11-22T23:59:59Z", "7d", "2026-11-16T00:00:00Z"),
        ("2026-11-26T13:45:00Z", "1h", "2026-11-26T13:00:00Z"),
    ],
    ids=["a day from midnight", "a week from its Monday", "a Monday's midnight", "a Sunday night", "an hour"],
)
def test_periods_are_aligned_to_midnight_and_mondays(instant, period, start):
    assert period_start(at(instant), parse_duration(period)) == at(start)


@pytest.mark.parametrize(
    "states, expected",
    [
        ([(1, RELIABLE), (2, BROKEN), (3, BROKEN), (4, RELIABLE)], [Spell(2, 4)]),
        ([(1, BROKEN), (2, UNKNOWN), (3, BROKEN)], [Spell(1, 2), Spell(3, None)]),
        ([(1, BROKEN), (2, None), (3, RELIABLE)], [Spell(1, 2)]),
        ([(1, RELIABLE), (2, None)], []),
    ],
    ids=["one spell", "too few outcomes ends one", "no value ends one", "none"],
)
def test_spells_run_from_the_first_broken_instant_to_the_first_that_is_not(states, expected):
    assert spells_of(states) == expected


def _evidence(good: list[int], bad: list[int], impacted: int = 0) -> Evidence:
    day = parse_duration("1d")
    return Evidence(
        "test",
        0,
        day,
        len(good) * day,
        {"bill-correct": TouchpointEvidence(good, bad, [], {"customers_impacted": impacted})},
        [0] * len(good),
        [0] * len(good),
    )


@pytest.mark.parametrize(
    "good, bad, budget, change, now",
    [
        ([970, 1998], [30, 2], 1 - 32 / (0.03 * 3000), 0.029, DIFFERENTIATING),
        ([950, 940], [50, 60], 1 - 110 / (0.03 * 2000), -0.01, BROKEN),
        ([0, 0], [0, 0], None, None, UNKNOWN),
        ([5, 970], [0, 30], 1 - 30 / (0.03 * 1005), None, RELIABLE),
    ],
    ids=["budget partly spent", "budget overspent", "nothing decided", "the period before had too few"],
)
def test_budget_change_and_state_now(catalog, good, bad, budget, change, now):
    row = review(catalog, _evidence(good, bad)).by_id["bill-correct"]
    assert row.budget_left == pytest.approx(budget) if budget is not None else row.budget_left is None
    assert row.change == pytest.approx(change) if change is not None else row.change is None
    assert row.state_now == now


def test_the_vital_few_are_the_touchpoints_broken_over_the_span(catalog):
    broken = review(catalog, _evidence([990, 800, 995], [10, 200, 5], impacted=90))
    assert broken.vital_few == ["bill-correct"]  # though it is differentiating now
    assert broken.by_id["bill-correct"].worst == 1
    once = review(catalog, _evidence([9900, 900, 9950], [100, 100, 50], impacted=90))
    assert once.by_id["bill-correct"].was_broken and once.vital_few == []  # broken in a period, not over the span
    healthy = review(catalog, _evidence([990, 995], [10, 5], impacted=15))
    assert healthy.vital_few == []


def test_the_survey_gap_prefers_nps():
    side = {"answers": 3, "mean": 0.0}
    voice = {
        "csat": {"after_good": {**side, "mean": 4.5}, "after_bad": {**side, "mean": 2.0}},
        "nps": {"after_good": {**side, "mean": 8.0}, "after_bad": {**side, "mean": 5.5}},
    }
    assert survey_gap(voice) == ("nps", 2.5)
    assert survey_gap({"nps": {"after_good": {"answers": 0, "mean": None}, "after_bad": side}}) is None


def _replayed(tmp_path: Path, events: list, period: str = "1d", window: str = "1h"):  # type: ignore[no-untyped-def]
    from tpmon.report.replay import evidence

    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(e.raw + b"\n" for e in events))
    catalog = load_catalog(ROOT / "rules")
    found, _ = evidence(
        catalog, [("file", path)], parse_duration(period), None, False, lambda text: None, parse_duration(window)
    )
    assert found is not None
    return catalog, found


def test_weeks_start_on_mondays_in_a_replay(tmp_path):
    """A Sunday's order and a Monday's (the builders' day is Sunday 2026-11-22): two weeks."""
    orders = [
        e
        for n, seconds in enumerate((0, 86400))
        for e in (
            event("order.placed", seconds, f"c-{n}", order_id=f"o-{n}"),
            event("order.confirmed", seconds + 30, f"c-{n}", order_id=f"o-{n}"),
        )
    ]
    _, found = _replayed(tmp_path, orders, period="1w")
    assert [format_timestamp(at) for at in found.starts()] == ["2026-11-16T00:00:00Z", "2026-11-23T00:00:00Z"]
    # (The first order's outcome, in the first two minutes of the data, could stand for an order placed
    # before it: not counted, docs/SEMANTICS.md "Warming up".)
    assert found.touchpoints["order-confirmed"].good == [0, 1]


def test_a_missed_deadlines_story_ends_in_its_miss(tmp_path):
    """Orders all day, a third never confirmed: order-confirmed is broken, and the story chosen for
    it holds the customer's bad outcome, decided as the whole replay decided it (not left open
    because that customer sent nothing after)."""
    orders = []
    for n in range(60):
        customer = f"c-{n:03d}"
        orders.append(event("order.placed", n * 600, customer, order_id=f"o-{n}"))
        if n % 3:
            orders.append(event("order.confirmed", n * 600 + 30, customer, order_id=f"o-{n}"))
    catalog, found = _replayed(tmp_path, orders)
    judged = review(catalog, found)
    assert judged.by_id["order-confirmed"].was_broken and "order-confirmed" in judged.vital_few
    told = next(story for story in found.stories if story.touchpoint == "order-confirmed")
    bad = [step for step in told.steps if step.what == "order-confirmed" and step.outcome == "bad"]
    assert bad and bad[0].detail == "missed", told


@pytest.mark.parametrize(
    "window, longest", [("1h", "1h"), ("1m", "5m")], ids=["the wall's hour", "the test profile's minute"]
)
def test_spells_follow_the_window_of_the_profile(tmp_path, window, longest):
    """Five minutes of wrong bills among right ones, one every two seconds: broken for the outage and
    about the window after it."""
    bills = [
        event("bill.issued", n * 2, f"c-{n:04d}", bill_id=f"b-{n}", amount=12.0 if 3600 <= n * 2 < 3900 else 10.0)
        for n in range(4000)
    ]
    _, found = _replayed(tmp_path, bills, window=window)
    spells = found.touchpoints["bill-correct"].spells
    assert len(spells) == 1, spells
    assert spells[0].length(found.end) >= parse_duration(longest)
    assert spells[0].length(found.end) <= parse_duration(longest) + parse_duration("10m")
    assert found.window == parse_duration(window)


class FakePrometheus:
    """Answers as Prometheus would for one touchpoint: a good outcome an hour (the rate rule times the
    window is 1 for each window), reliable but broken for the hour ending at ``broken``."""

    def __init__(self, broken: int) -> None:
        self.broken, self.asked = broken, []

    def range(self, query: str, start: int, end: int, step: int) -> list:
        self.asked.append((query, start, end, step))
        stamps = range(start, end + 1, step)
        if "good" in query:
            return [{"metric": {"touchpoint": "bill-correct"}, "values": [[t / 1e6, "1"] for t in stamps]}]
        if "state" in query:
            state = lambda t: "1" if self.broken - 3600 * 10**6 < t <= self.broken else "2"  # noqa: E731
            return [{"metric": {"touchpoint": "bill-correct"}, "values": [[t / 1e6, state(t)] for t in stamps]}]
        return []

    def instant(self, query: str, at: int) -> list:
        return []


def test_prometheus_samples_are_summed_into_the_periods_that_end_at_them(monkeypatch):
    from monitor.observe.windows import PROFILES
    from tpmon.report import prometheus

    now, broken = at("2026-11-30T03:00:17Z"), at("2026-11-28T12:00:00Z")  # a Monday, three days back
    fake = FakePrometheus(broken)
    monkeypatch.setattr(prometheus.Client, "range", lambda self, *args: fake.range(*args))
    monkeypatch.setattr(prometheus.Client, "instant", lambda self, *args: fake.instant(*args))
    monkeypatch.setattr(prometheus, "MAX_POINTS", 40)  # the state's steps in several query_range calls
    catalog = load_catalog(ROOT / "rules")
    found = prometheus.evidence(
        catalog, "http://prometheus", parse_duration("3d"), parse_duration("1d"), PROFILES["production"], now, print
    )
    assert (
        format_timestamp(found.start) == "2026-11-27T00:00:00Z"
        and format_timestamp(found.end) == "2026-11-30T03:00:00Z"
    )
    assert found.touchpoints["bill-correct"].good == [24, 24, 24, 3]  # the window ending at midnight is the day before
    states = sorted({(start, end, step) for query, start, end, step in fake.asked if "state" in query})
    assert len(states) > 1
    stamps = [t for start, end, step in states for t in range(start, end + 1, step)]
    assert len(stamps) == len(set(stamps)) and stamps == list(range(found.start, found.end + 1, states[0][2]))
    (spell,) = found.touchpoints["bill-correct"].spells
    assert broken - parse_duration("1h") < spell.start <= broken - parse_duration("1h") + states[0][2]
    assert broken < spell.end <= broken + states[0][2]
