"""Dates (docs/EVENTS.md, the kind `date`; docs/CATALOG.md, "Dates"): a day of the calendar written in
its source's format, seen by expressions as its local midnight in the catalog's time zone, and the
functions that count calendar days there, right on either side of a change of the clocks."""

from __future__ import annotations

import json

import orjson
import pytest
from click.testing import CliRunner

from monitor.catalog import load_catalog, validate_catalog
from monitor.catalog.errors import ERROR, WARNING
from monitor.durations import parse_duration
from monitor.events import WRONG_TYPE, Event, Reject, format_timestamp, parse_timestamp
from monitor.replay import Replay
from tpmon.cli import main

from .conftest import ROOT

#: An insurer in Berlin: policies written flat with German dates, one field in ISO.
INSURER = """version: 1
timezone: Europe/Berlin
sources:
  - name: policies
    date: DD.MM.YYYY
events:
  - type: policy.renewal_due
    source: policies
    fields:
      policy_id: string
      expiry_date: date
  - type: renewal.notice_sent
    source: policies
    fields:
      policy_id: string
      expiry_date: date
    optional:
      signed_on: {kind: date, format: YYYY-MM-DD}
      premium: number
touchpoints:
  - id: renewal-notice-early
    stage: keep
    owner: policy
    description: The renewal notice is sent at least 30 days before the policy expires.
    kind: condition
    on: renewal.notice_sent
    good: days_between(occurred_at, expiry_date) >= 30
    objective: 0.95
  - id: renewal-notice-due
    stage: keep
    owner: policy
    description: The renewal notice is out before the 29th day before the policy expires begins.
    kind: deadline
    start: policy.renewal_due
    end: renewal.notice_sent
    key: policy_id
    due: add_days(expiry_date, -29)
    objective: 0.95
  - id: renewal-notice-for-a-policy-still-running
    stage: keep
    owner: policy
    description: A notice names a policy that has not expired yet.
    kind: condition
    on: {types: [renewal.notice_sent], where: 'date_of(occurred_at) < expiry_date'}
    good: occurred_at < add_days(expiry_date, -29)
    objective: 0.95
"""

_ids = iter(range(1, 10_000))


@pytest.fixture(scope="module")
def insurer(tmp_path_factory):
    folder = tmp_path_factory.mktemp("insurer")
    (folder / "catalog.yaml").write_text(INSURER)
    return load_catalog(folder)


def line(event_type: str, occurred_at: str, **fields: object) -> bytes:
    message = {
        "event_id": f"e-{next(_ids)}",
        "type": event_type,
        "customer_id": f"c-{fields.get('policy_id', 'x')}",
        "occurred_at": occurred_at,
        **fields,
    }
    return orjson.dumps(message)


def notice(occurred_at: str, expiry: str, policy_id: str = "p-1", **fields: object) -> bytes:
    return line("renewal.notice_sent", occurred_at, policy_id=policy_id, expiry_date=expiry, **fields)


# -- the kind -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expiry", "signed_on", "held"),
    [
        ("20.01.2027", None, "2027-01-20"),
        ("29.02.2028", None, "2028-02-29"),
        ("20.07.2027", "2026-07-20", "2027-07-20"),
    ],
    ids=["a German date", "a leap day", "a field in its own format beside the source's"],
)
def test_a_date_is_read_in_its_format_and_held_as_iso(insurer, expiry, signed_on, held):
    extra = {"signed_on": signed_on} if signed_on else {}
    event = insurer.decoder.decode(notice("2026-12-01T10:00:00+01:00", expiry, **extra), "policies")
    assert isinstance(event, Event), event
    assert event.fields.expiry_date == held
    assert event.data["expiry_date"] == held
    if signed_on:
        assert event.fields.signed_on == signed_on


@pytest.mark.parametrize(
    ("expiry", "signed_on", "detail"),
    [
        ("2027-01-20", None, "field 'expiry_date' must be a date written DD.MM.YYYY, not '2027-01-20'"),
        (
            "30.02.2027",
            None,
            "field 'expiry_date' is '30.02.2027', a day that does not exist (a date written DD.MM.YYYY)",
        ),
        ("1.2.2027", None, "field 'expiry_date' must be a date written DD.MM.YYYY, not '1.2.2027'"),
        (20012027, None, "field 'expiry_date' must be a date written DD.MM.YYYY, not a number"),
        ("20.01.2027", "20.01.2027", "field 'signed_on' must be a date written YYYY-MM-DD, not '20.01.2027'"),
        (
            "20.01.2027",
            "2027-02-30",
            "field 'signed_on' is '2027-02-30', a day that does not exist (a date written YYYY-MM-DD)",
        ),
    ],
    ids=[
        "ISO where the source writes German dates",
        "a day that does not exist",
        "a day without its leading zero",
        "a number",
        "a German date where the field says ISO",
        "the 30th of February in ISO",
    ],
)
def test_a_date_that_does_not_read_rejects_the_event_naming_the_field_and_the_format(
    insurer, expiry, signed_on, detail
):
    raw = notice("2026-12-01T10:00:00+01:00", expiry, **({"signed_on": signed_on} if signed_on else {}))
    rejected = insurer.decoder.decode(raw, "policies")
    assert isinstance(rejected, Reject)
    assert (rejected.reason, rejected.detail, rejected.raw) == (WRONG_TYPE, detail, raw)


def test_an_iso_date_is_checked_on_the_fast_path_too(tmp_path):
    # A flat RFC 3339 source whose dates are ISO is read by the structs in one pass: the date is still
    # read as a day of the calendar.
    (tmp_path / "catalog.yaml").write_text(INSURER.replace("    date: DD.MM.YYYY\n", ""))
    catalog = load_catalog(tmp_path)
    good = catalog.decoder.decode(notice("2026-12-01T10:00:00Z", "2027-01-20"), "policies")
    assert isinstance(good, Event) and good.fields.expiry_date == "2027-01-20"
    for bad in ("2027-02-30", "20.01.2027", "2027-1-20", "2027-01-20T00:00:00Z"):
        rejected = catalog.decoder.decode(notice("2026-12-01T10:00:00Z", bad), "policies")
        assert isinstance(rejected, Reject) and rejected.reason == WRONG_TYPE, bad
        assert "field 'expiry_date'" in rejected.detail and "YYYY-MM-DD" in rejected.detail


@pytest.mark.parametrize(
    ("declaration", "message"),
    [
        (
            "{kind: date, format: DD.MM.YY}",
            "events[0].fields.expiry_date.format: must be a date format of YYYY, MM and DD, each once",
        ),
        ("{kind: string, format: DD.MM.YYYY}", "events[0].fields.expiry_date.format: is the format of a date"),
        (
            "{kind: date, fromat: DD.MM.YYYY}",
            "events[0].fields.expiry_date.fromat: is not a field; did you mean 'format'?",
        ),
        ("dat", "events[0].fields.expiry_date: 'dat' is not a kind; the kinds are"),
    ],
    ids=["a two-digit year", "a format on a string", "a misspelt format", "a misspelt kind"],
)
def test_a_wrong_date_format_is_an_error_with_file_line_and_field(tmp_path, declaration, message):
    text = INSURER.replace("      expiry_date: date\n", f"      expiry_date: {declaration}\n", 1)
    (tmp_path / "catalog.yaml").write_text(text)
    catalog, problems = validate_catalog(tmp_path)
    assert catalog is None
    found = [p for p in problems if p.severity == ERROR and message in str(p)]
    assert found, problems
    assert found[0].line == 11 and found[0].file.endswith("catalog.yaml")


def test_a_source_date_format_is_checked_where_it_is_written(tmp_path):
    (tmp_path / "catalog.yaml").write_text(INSURER.replace("date: DD.MM.YYYY", "date: D.M.YYYY"))
    _, problems = validate_catalog(tmp_path)
    # The only error: the source is still declared, so its types and the rules are checked as usual.
    assert [(p.line, p.path) for p in problems] == [(5, "sources[0].date")], problems
    assert (
        problems[0].message.startswith("must be a date format of YYYY, MM and DD")
        and "'D.M.YYYY'" in problems[0].message
    )


# -- the functions, in summer and in winter ---------------------------------------------------------


@pytest.mark.parametrize(
    ("sent", "expiry", "good"),
    [
        ("2027-06-20T23:59:00+02:00", "20.07.2027", True),
        ("2027-06-21T00:00:00+02:00", "20.07.2027", False),
        ("2026-12-21T23:59:00+01:00", "20.01.2027", True),
        ("2026-12-22T00:00:00+01:00", "20.01.2027", False),
        ("2027-03-11T23:30:00+01:00", "10.04.2027", True),  # winter time sent, summer time expires
        ("2027-03-12T00:00:00+01:00", "10.04.2027", False),
        ("2027-09-26T23:30:00+02:00", "26.10.2027", True),  # summer time sent, winter time expires
        ("2027-09-27T00:10:00+02:00", "26.10.2027", False),
    ],
    ids=[
        "July: 30 days before, in its last minute",
        "July: 29 days before, in its first minute",
        "January: 30 days before, in its last minute",
        "January: 29 days before, in its first minute",
        "across spring forward: 30 days",
        "across spring forward: 29 days",
        "across fall back: 30 days",
        "across fall back: 29 days",
    ],
)
def test_at_least_30_days_before_expiry_counts_berlin_days_in_summer_and_winter(insurer, sent, expiry, good):
    touchpoints = {t.id: t for t in insurer.touchpoints}
    early, before = touchpoints["renewal-notice-early"], touchpoints["renewal-notice-for-a-policy-still-running"]
    event = insurer.decoder.decode(notice(sent, expiry), "policies")
    assert isinstance(event, Event), event
    assert early.good(event) is good
    # add_days keeps local midnight across the change of the clocks: both rules say the same.
    assert before.good(event) is good


@pytest.mark.parametrize(
    ("expiry", "due"),
    [
        ("20.07.2027", "2027-06-21T00:00:00+02:00"),
        ("20.01.2027", "2026-12-22T00:00:00+01:00"),
        ("10.04.2027", "2027-03-12T00:00:00+01:00"),
    ],
    ids=["July", "January", "spring forward between"],
)
def test_a_due_from_a_date_field_is_a_berlin_midnight(insurer, expiry, due):
    (deadline,) = (t for t in insurer.touchpoints if t.id == "renewal-notice-due")
    start = insurer.decoder.decode(
        line("policy.renewal_due", "2026-11-01T09:00:00+01:00", policy_id="p-1", expiry_date=expiry), "policies"
    )
    assert deadline.due(start) == parse_timestamp(due)


def test_a_where_with_date_of_compares_the_local_day_with_a_date(insurer):
    (running,) = (t for t in insurer.touchpoints if t.id == "renewal-notice-for-a-policy-still-running")
    # 23:30 UTC on the 19th is already the 20th in Berlin: the day the policy expires, not before it.
    on_the_day = insurer.decoder.decode(notice("2027-07-19T23:30:00Z", "20.07.2027"), "policies")
    the_day_before = insurer.decoder.decode(notice("2027-07-19T21:30:00Z", "20.07.2027"), "policies")
    assert running.opens.where(on_the_day) is False
    assert running.opens.where(the_day_before) is True


def test_dates_are_of_the_catalog_zone_utc_by_default(tmp_path):
    (tmp_path / "catalog.yaml").write_text(INSURER.replace("timezone: Europe/Berlin\n", ""))
    catalog = load_catalog(tmp_path)
    (deadline,) = (t for t in catalog.touchpoints if t.id == "renewal-notice-due")
    start = catalog.decoder.decode(
        line("policy.renewal_due", "2026-11-01T09:00:00Z", policy_id="p-1", expiry_date="20.07.2027"), "policies"
    )
    assert format_timestamp(deadline.due(start)) == "2027-06-21T00:00:00Z"


# -- validation -------------------------------------------------------------------------------------


def test_the_renewal_rules_validate_without_a_warning_and_strict_passes(tmp_path):
    (tmp_path / "catalog.yaml").write_text(INSURER)
    catalog, problems = validate_catalog(tmp_path)
    assert catalog is not None and problems == []
    assert CliRunner().invoke(main, ["rules", "validate", "--strict", str(tmp_path)]).exit_code == 0


@pytest.mark.parametrize(
    "expression",
    [
        'timestamp(expiry_text + "T00:00:00+01:00") <= occurred_at',
        "int(policy_id) > 3",
        'duration(policy_id) > duration("1h")',
        "has(event.channel) && event.channel == 'web'",
        'event.channel == "web"',
        "1 / (size(policy_id) - 1) > 0",
    ],
    ids=[
        "a string of the source's own date with a time appended",
        "a number written as a string",
        "a duration written as a string",
        "an extra field, guarded",
        "an extra field, unguarded",
        "a division by a count",
    ],
)
def test_a_valid_expression_never_warns_whatever_the_sample_values(tmp_path, expression):
    # Sample events hold values of the declared kinds; whether a string reads as a timestamp or a number
    # depends on the events themselves (a rule error there, when it does not), not on the expression.
    text = INSURER.replace(
        "      expiry_date: date\n    optional:", "      expiry_date: date\n      expiry_text: string\n    optional:"
    )
    text = text.replace("good: days_between(occurred_at, expiry_date) >= 30", f"good: {json.dumps(expression)}")
    (tmp_path / "catalog.yaml").write_text(text)
    catalog, problems = validate_catalog(tmp_path)
    assert catalog is not None and problems == []


@pytest.mark.parametrize(
    ("expression", "severity", "message"),
    [
        ("days_between(policy_id, expiry_date) >= 30", ERROR, "found no matching overload for 'days_between'"),
        ("expiry_date > 30", ERROR, "found no matching overload"),
        ('expiry_date + "T00:00:00+01:00" > occurred_at', ERROR, "found no matching overload"),
        ("days_between(occurred_at, expiry_dat) >= 30", ERROR, "undeclared reference to 'expiry_dat'"),
        ("add_days(expiry_date, 1.5) > occurred_at", ERROR, "found no matching overload for 'add_days'"),
        ("premium + 1 > 2", ERROR, "No matching overloads found"),
        ("score > 2", WARNING, "cannot be evaluated on 'renewal.notice_sent' events: the event has no field 'score'"),
    ],
    ids=[
        "a string for a date",
        "a date compared with a number",
        "a date used as a string",
        "a misspelt field",
        "a fraction of a day",
        "a number plus an int (numbers are doubles)",
        "a field the type does not carry",
    ],
)
def test_a_wrong_expression_is_said_with_file_and_line(tmp_path, expression, severity, message):
    scored = "events:\n  - type: survey.scored\n    source: policies\n    fields: {score: number}\n"
    text = INSURER.replace("events:\n", scored, 1)
    text = text.replace("good: days_between(occurred_at, expiry_date) >= 30", f"good: {json.dumps(expression)}")
    (tmp_path / "catalog.yaml").write_text(text)
    _, problems = validate_catalog(tmp_path)
    found = [p for p in problems if message in p.message]
    assert found and found[0].severity == severity, problems
    assert found[0].path == "touchpoints[0].good" and found[0].line > 0


def test_strict_validation_passes_on_the_examples_and_no_shipped_expression_warns():
    for folder in sorted((ROOT / "examples").iterdir()):
        if (folder / "catalog.yaml").exists() or any(folder.glob("*.yaml")):
            assert CliRunner().invoke(main, ["rules", "validate", "--strict", str(folder)]).exit_code == 0, folder
    _, problems = validate_catalog(ROOT / "rules")
    assert not [p for p in problems if p.path.startswith("touchpoints")]


# -- a replay -----------------------------------------------------------------------------------------


def test_a_replay_of_renewals_judges_by_berlin_days(insurer):
    lines = [
        line("policy.renewal_due", "2027-05-01T09:00:00+02:00", policy_id="p-1", expiry_date="20.07.2027"),
        line("policy.renewal_due", "2027-05-01T09:00:00+02:00", policy_id="p-2", expiry_date="20.07.2027"),
        line("policy.renewal_due", "2026-11-01T09:00:00+01:00", policy_id="p-3", expiry_date="20.01.2027"),
        notice("2026-12-21T20:00:00+01:00", "20.01.2027", policy_id="p-3"),  # winter, 30 days: good
        notice("2027-06-20T23:59:00+02:00", "20.07.2027", policy_id="p-1"),  # summer, 30 days: good
        notice("2027-06-21T08:00:00+02:00", "20.07.2027", policy_id="p-2"),  # summer, 29 days: bad
        notice("2027-06-21T08:00:00+02:00", "2027-07-20", policy_id="p-4"),  # ISO: rejected, kept
    ]
    lines.sort(key=lambda raw: parse_timestamp(orjson.loads(raw)["occurred_at"]))
    run = Replay(insurer, lateness=parse_duration("30s"))
    run.feed(lines, "policies")
    summary = run.finish(parse_timestamp("2027-08-01T00:00:00Z"))
    figures = {tid: (t["good"], t["bad"]) for tid, t in summary["touchpoints"].items()}
    assert figures == {
        "renewal-notice-early": (2, 1),
        "renewal-notice-due": (2, 1),
        "renewal-notice-for-a-policy-still-running": (2, 1),
    }
    assert summary["events"]["rejected"] == 1 and summary["events"]["rule_errors"] == 0
