"""Journeys and stories in the catalog's own terms: each event kept in the contract's view beside the
message as sent, whatever its shape; stories told by the declarations' story: templates; journeys
written by the previous version still read; the journeys' retention a catalog setting."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from monitor.catalog import load_catalog
from monitor.catalog.errors import WARNING
from monitor.catalog.journeys import FLOOR, worst_wall_time
from monitor.catalog.load import validate_catalog
from monitor.contract.kinds import NUMBER, STRING, TIMESTAMP
from monitor.contract.story import compile_template
from monitor.durations import parse_duration
from monitor.events import Event
from monitor.journeys import Journey, Journeys, current, describe, story
from monitor.review.replayed import story as review_story
from streams.partitions import MemoryStore, Partitions
from tests.builders import event

from .conftest import ROOT

UTILITY = ROOT / "examples" / "utility"
VISIT = (
    b'{"uuid":"fv-1","kind":"appointment.booked","account":{"id":"acct-1"},"ts":1795419500676,'
    b'"appointment":{"id":"apt-1","slot_start":1795423100676},"work":"leak-repair","crew":"crew-1"}'
)
TICKET = (
    b'{"specversion":"1.0","id":"hd-1","type":"ticket.created","source":"/helpdesk/eu","subject":"acct-1",'
    b'"time":"2026-11-23T09:49:19.800+01:00","data":{"ticket_id":"T-1","channel":"phone"}}'
)
INVOICE = (
    b'{"event_id":"inv-1","type":"invoice.sent","customer_id":"acct-1","occurred_at":"2026-11-23T10:03:12.771Z",'
    b'"invoice_id":"INV-1","amount":130,"metered_amount":120.5,"note":"kept"}'
)
LINES = (("field-visits", VISIT), ("helpdesk", TICKET), ("invoices", INVOICE))


@pytest.fixture(scope="module")
def utility():  # type: ignore[no-untyped-def]
    return load_catalog(UTILITY)


def decoded(catalog, source: str, raw: bytes) -> Event:  # type: ignore[no-untyped-def]
    found = catalog.decoder.decode(raw, source)
    assert isinstance(found, Event), found
    return found


def utility_journey(catalog) -> Journey:  # type: ignore[no-untyped-def]
    journeys = Journeys()
    for source, raw in LINES:
        journeys.add_event(decoded(catalog, source, raw))
    return journeys.get("acct-1")  # type: ignore[return-value]


# -- the contract's view -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "source, raw, view",
    [
        (
            "field-visits",
            VISIT,
            {
                "type": "appointment.booked",
                "occurred_at": "2026-11-23T07:38:20.676000Z",
                "customer_id": "acct-1",
                "event_id": "fv-1",
                "source": "field-visits",
                "fields": {
                    "appointment_id": "apt-1",
                    "slot_start": "2026-11-23T08:38:20.676000Z",
                    "work": "leak-repair",
                },
            },
        ),
        (
            "helpdesk",
            TICKET,
            {
                "type": "ticket.created",
                "occurred_at": "2026-11-23T09:49:19.800+01:00",
                "customer_id": "acct-1",
                "event_id": "hd-1",
                "source": "helpdesk",
                "fields": {"ticket_id": "T-1", "channel": "phone"},
            },
        ),
        (
            "invoices",
            INVOICE,
            {
                "type": "invoice.sent",
                "occurred_at": "2026-11-23T10:03:12.771Z",
                "customer_id": "acct-1",
                "event_id": "inv-1",
                "source": "invoices",
                "fields": {"invoice_id": "INV-1", "amount": 130.0, "metered_amount": 120.5},
            },
        ),
    ],
    ids=["nested, epoch ms: fields found by pointers, times RFC 3339", "a CloudEvent: its data", "flat"],
)
def test_a_journey_keeps_the_contracts_view_beside_the_message(utility, source, raw, view):
    journeys = Journeys()
    journeys.add_event(decoded(utility, source, raw))
    (kept,) = orjson.loads(orjson.dumps(journeys.get("acct-1").record()))["events"]
    assert kept == {**view, "raw": orjson.loads(raw)}


def test_an_undeclared_type_keeps_its_own_type_and_no_fields(catalog):
    journeys = Journeys()
    journeys.add_event(event("loyalty.points", 0, points=3))
    (kept,) = orjson.loads(orjson.dumps(journeys.get("c1").record()))["events"]
    assert kept["type"] == "loyalty.points" and kept["fields"] == {} and kept["raw"]["points"] == 3


def test_the_size_bound_counts_what_a_journey_keeps(utility):
    journey = utility_journey(utility)
    record = orjson.dumps(journey.record())
    events = orjson.dumps(orjson.loads(record)["events"])
    assert journey.event_bytes == sum(len(kept) for _, _, kept in journey.events)
    assert len(events) == journey.event_bytes + len(journey.events) + 1  # the commas and brackets
    small = Journeys(max_bytes=journey.event_bytes - 1)
    for source, raw in LINES:
        small.add_event(decoded(utility, source, raw))
    assert len(small.get("acct-1").events) == 2 and small.get("acct-1").dropped_events == 1


# -- journeys of the previous version ----------------------------------------------------------------


def old_record(*raws: bytes) -> dict:
    """A record as the previous version wrote it: each event the message alone."""
    return {
        "customer_id": "acct-1",
        "first_at": None,
        "last_at": None,
        "broken": True,
        "events": [orjson.loads(raw) for raw in raws],
        "outcomes": [
            {"touchpoint": "invoice-matches-meter", "outcome": "bad", "reason": "judged", "customer_id": "acct-1"}
            | {"key": "inv-1", "at": "2026-11-23T10:03:12.771Z", "opened_at": "2026-11-23T10:03:12.771Z"}
        ],
        "dropped": {"events": 2, "outcomes": 0},
    }


def test_a_journey_of_the_previous_version_is_read_into_the_contracts_view(utility):
    journey = Journey.from_record(old_record(VISIT, TICKET, INVOICE), utility.decoder)
    fresh = utility_journey(utility)
    assert [view for _, view in journey.views()] == [view for _, view in fresh.views()]
    assert journey.dropped_events == 2 and len(journey.outcomes) == 1
    again = Journey.from_record(orjson.loads(orjson.dumps(journey.record())), utility.decoder)
    assert orjson.dumps(again.record()) == orjson.dumps(journey.record())  # (and this version's as it is)


def test_an_old_event_the_catalog_no_longer_reads_keeps_what_it_can_and_one_without_a_time_is_dropped(utility):
    unknown = b'{"event_id":"x-1","type":"meter.read","occurred_at":"2026-11-23T08:00:00Z","reading":7}'
    timeless = b'{"uuid":"fv-9","kind":"technician.arrived"}'
    journey = Journey.from_record(old_record(unknown, timeless))  # no decoder at all
    (view,) = [view for _, view in journey.views()]
    assert view["type"] == "meter.read" and view["event_id"] == "x-1" and view["raw"]["reading"] == 7
    assert journey.dropped_events == 3


def test_a_worker_upgraded_over_old_journeys_rewrites_them_in_the_view(utility):
    journeys = MemoryStore()
    journeys.put(0, "acct-1", orjson.dumps(old_record(VISIT, TICKET)))
    live = Partitions(utility, MemoryStore(), journeys, retention=parse_duration("1d"))
    live.handle_batch([(0, None, decoded(utility, "invoices", INVOICE), None, -1)])
    record = orjson.loads(journeys.get("acct-1"))  # type: ignore[arg-type]
    assert [e["type"] for e in record["events"]] == ["appointment.booked", "ticket.created", "invoice.sent"]
    assert record["events"][0]["fields"]["work"] == "leak-repair" and record["events"][0]["raw"]["crew"] == "crew-1"


# -- stories -----------------------------------------------------------------------------------------

KINDS = {"bill_id": STRING, "amount": NUMBER, "expected_amount": NUMBER, "due": TIMESTAMP, "type": STRING}


@pytest.mark.parametrize(
    "template, values, text",
    [
        ("bill {bill_id}: {amount:.2f} billed", {"bill_id": "b-1", "amount": 54.2}, "bill b-1: 54.20 billed"),
        ("{amount} and {expected_amount}", {"amount": 39.0, "expected_amount": 39.5}, "39 and 39.5"),
        ("{amount:.2f}", {"amount": 12}, "12.00"),
        ("{amount:.2f}x", {"amount": "n/a"}, "n/ax"),
        ("{{literal}} {bill_id}", {"bill_id": "b"}, "{literal} b"),
        ("bill {bill_id}, due {due}", {"bill_id": "b"}, "bill b, due -"),
    ],
    ids=[
        "a field and a number format",
        "whole numbers as integers, without a format",
        "a JSON integer takes a float's format",
        "a value its format does not fit is written plainly",
        "braces doubled",
        "an optional field absent",
    ],
)
def test_a_template_renders_fields(template, values, text):
    compiled = compile_template(template, "bill.issued", KINDS)
    assert not isinstance(compiled, str), compiled
    assert compiled.render(values) == text


@pytest.mark.parametrize(
    "template, problem",
    [
        ("{amonut}", "'{amonut}' is not a field of 'bill.issued'; did you mean 'amount'?"),
        ("{bill_id:.2f}", "'{bill_id:.2f}': '.2f' is not a format for 'bill_id' (a string)"),
        ("{bill_id!r}", "'{bill_id!r}': a template substitutes fields, without conversions"),
        (
            "{bill_id.upper}",
            "'{bill_id.upper}' is not a field name: a template substitutes fields, without '.' or '[]'",
        ),
        ("{amount:{bill_id}}", "'{amount:{bill_id}}': a format cannot hold a field"),
        ("{}", "has an empty field '{}': name a field, such as '{amount}'"),
        ("bill {bill_id", "is not a valid template (expected '}' before end of string); write a brace as '{{' or '}}'"),
    ],
    ids=[
        "a misspelt field",
        "a format its kind cannot take",
        "a conversion",
        "an attribute",
        "a nested field",
        "empty",
        "unbalanced",
    ],
)
def test_a_template_that_says_more_than_fields_is_refused(template, problem):
    assert compile_template(template, "bill.issued", KINDS) == problem


def test_a_story_names_declared_types_with_what_the_catalog_says(utility):
    journey = utility_journey(utility)
    told = {view["type"]: describe(view, utility.contract) for _, view in journey.views()}
    assert told == {
        "appointment.booked": "leak-repair apt-1, slot at 2026-11-23T08:38:20.676000Z",  # its story: template
        "ticket.created": "ticket_id T-1, channel phone",  # none: a few declared fields
        "invoice.sent": "invoice INV-1: 130.00 invoiced, 120.50 metered",
    }


def test_the_reviews_story_and_the_line_tell_the_same_in_the_catalogs_terms(utility):
    journey = Journey.from_record(old_record(VISIT, TICKET, INVOICE), utility.decoder)
    told = review_story(journey, "invoice-matches-meter", utility.contract)
    events = [step for step in told.steps if step.outcome is None]
    assert [step.what for step in events] == ["appointment.booked", "ticket.created", "invoice.sent"]
    assert events[2].detail == "invoice INV-1: 130.00 invoiced, 120.50 metered"
    text = " ".join(f"{step.what} {step.detail}" for step in told.steps)
    assert "?" not in text and "uuid" not in text and "1795419500676" not in text and "specversion" not in text
    line = story(journey, {"invoice-matches-meter"}, utility.contract)
    assert line == (
        "acct-1: appointment.booked (leak-repair apt-1, slot at 2026-11-23T08:38:20.676000Z) -> "
        "ticket.created (ticket_id T-1, channel phone) -> "
        "invoice.sent (invoice INV-1: 130.00 invoiced, 120.50 metered)  => invoice-matches-meter BAD"
    )


def test_the_shipped_catalog_tells_its_own_types(catalog):
    journeys = Journeys()
    journeys.add_event(event("bill.issued", 0, bill_id="b-1", amount=54.21, expected_amount=39.0))
    journeys.add_event(event("call.answered", 60, call_id="k-1", queue="billing", wait_seconds=95.4))
    said = [describe(view, catalog.contract) for _, view in journeys.get("c1").views()]
    assert said == ["bill b-1: 54.21 billed, 39.00 expected", "call k-1 in billing: waited 95 s"]
    assert all(d.story is not None for d in catalog.contract.events if d.required)


# -- how long journeys keep ---------------------------------------------------------------------------


def catalog_with(tmp_path: Path, touchpoint: str, settings: str = "") -> Path:
    (tmp_path / "events.yaml").symlink_to(ROOT / "rules" / "events.yaml")
    (tmp_path / "catalog.yaml").write_text(
        "version: 1\n" + settings + "touchpoints:\n  - {id: t, stage: help, owner: care, description: d, "
        "objective: 0.95, " + touchpoint + "}\n"
    )
    return tmp_path


@pytest.mark.parametrize(
    "touchpoint, settings, retention",
    [
        ("kind: deadline, start: ticket.opened, end: ticket.resolved, key: ticket_id, within: 4h", "", "30d"),
        (
            "kind: no_repeat, trigger: ticket.resolved, repeat: ticket.reopened, key: ticket_id, within: 45d",
            "",
            "45d30s",
        ),
        (
            "kind: no_repeat, trigger: ticket.resolved, repeat: ticket.reopened, key: ticket_id, within: 45d",
            "lateness: 1h\n",
            "45d1h",
        ),
        (
            "kind: deadline, start: ticket.opened, end: ticket.resolved, key: ticket_id, within: 40d",
            "journeys: {retention: 90d}\n",
            "90d",
        ),
        (
            "kind: deadline, start: ticket.opened, end: ticket.resolved, key: ticket_id, due: 'timestamp(\"2027-01-01T00:00:00Z\")'",
            "",
            "30d",
        ),
    ],
    ids=[
        "the floor: 30 days",
        "a no_repeat's window, plus the lateness",
        "the catalog's lateness",
        "as set",
        "a due: cannot be known: the floor",
    ],
)
def test_journey_retention_covers_the_longest_start_to_outcome(tmp_path, touchpoint, settings, retention):
    catalog = load_catalog(catalog_with(tmp_path, touchpoint, settings))
    assert catalog.journeys.retention == parse_duration(retention)


def test_on_a_calendar_the_retention_covers_the_worst_wall_time(tmp_path):
    calendars = "calendars:\n  office: {timezone: Europe/Berlin, hours: {mon-fri: '09:00-17:00'}}\n"
    touchpoint = (
        "kind: deadline, start: ticket.opened, end: ticket.resolved, key: ticket_id, within: 200h, calendar: office"
    )
    catalog = load_catalog(catalog_with(tmp_path, touchpoint, calendars))
    # 200 open hours are 25 working days: five weeks from a Friday's close, and a bit over 35 days.
    assert parse_duration("35d") <= catalog.journeys.retention - catalog.lateness <= parse_duration("36d")
    # Friday 17:00 to Monday 17:00, an hour longer over the last weekend of October:
    assert worst_wall_time(catalog.calendars["office"], parse_duration("8h")) == parse_duration("3d1h")


def test_a_retention_shorter_than_a_touchpoint_takes_is_a_warning_naming_it(tmp_path):
    touchpoint = "kind: no_repeat, trigger: ticket.resolved, repeat: ticket.reopened, key: ticket_id, within: 14d"
    catalog, problems = validate_catalog(catalog_with(tmp_path, touchpoint, "journeys:\n  retention: 7d\n"))
    assert catalog is not None and catalog.journeys.retention == parse_duration("7d")
    (warning,) = [p for p in problems if p.path == "journeys.retention"]
    assert warning.severity == WARNING and warning.line == 3 and "'t' (14d from start to outcome)" in warning.message


def test_replay_and_the_worker_keep_journeys_for_the_catalogs_retention(catalog):
    assert catalog.journeys.retention == FLOOR
    live = Partitions(catalog, MemoryStore(), MemoryStore(), retention=parse_duration("1d"))
    assert live.journey_age == FLOOR and live.partition(0).journeys.max_age == FLOOR


@pytest.mark.parametrize(
    "settings, problem",
    [
        ("journeys: 30d\n", "journeys: must be a mapping of settings, such as {retention: 90d}, not '30d'"),
        ("journeys: {retention: 0s}\n", "journeys.retention: must be more than 0, such as 90d, not '0s'"),
        ("journeys: {retention: soon}\n", "journeys.retention: 'soon' is not a duration"),
        ("journeys: {retentoin: 9d}\n", "journeys.retentoin: is not a field; did you mean 'retention'?"),
    ],
    ids=["not a mapping", "zero", "not a duration", "a misspelt key"],
)
def test_a_wrong_journeys_setting_is_an_error_with_its_line(tmp_path, settings, problem):
    touchpoint = "kind: condition, on: bill.issued, good: amount == expected_amount"
    catalog, problems = validate_catalog(catalog_with(tmp_path, touchpoint, settings))
    (error,) = [p for p in problems if p.path.startswith("journeys")]
    assert catalog is None and error.line == 2 and f"{error.path}: {error.message}".startswith(problem)


def test_a_stored_record_is_served_in_this_versions_form(utility):
    old = orjson.dumps(old_record(VISIT, INVOICE))
    served = orjson.loads(current(old, utility.decoder))
    assert [e["type"] for e in served["events"]] == ["appointment.booked", "invoice.sent"]
    assert served["events"][0]["raw"] == orjson.loads(VISIT)
    assert current(orjson.dumps(served), utility.decoder) == orjson.dumps(served)  # (this version's, as it is)
