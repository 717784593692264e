"""The event contract as data (docs/EVENTS.md): declared sources and shapes, decoded to the same events."""

from __future__ import annotations

import shutil

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.catalog import load_catalog
from monitor.durations import parse_duration
from monitor.events import MISSING_FIELD, WRONG_TYPE, Event, Reject, parse_timestamp
from monitor.replay import Replay
from monitor.simulate import Simulation

from .conftest import ROOT

FIELD_SERVICE = """version: 1
sources:
  - name: visits
    time: epoch_ms
    fields: {event_id: /uuid, type: /kind, customer_id: /account/id, occurred_at: /ts}
  - name: helpdesk
    format: cloudevents
events:
  - type: appointment.booked
    source: visits
    fields:
      appointment_id: string
      slot_start: {kind: timestamp, at: /slot/start}
    optional:
      priority: [low, normal, high]
  - type: visit.completed
    source: visits
    fields: {appointment_id: string}
  - type: ticket.created
    source: helpdesk
    fields: {ticket_id: string}
touchpoints:
  - id: visit-on-time
    stage: get
    owner: field-ops
    description: The technician arrives within two hours of booking.
    kind: deadline
    start: appointment.booked
    end: visit.completed
    key: appointment_id
    within: 2h
    objective: 0.95
  - id: ticket-seen
    stage: help
    owner: support
    description: Every ticket is created with an id.
    kind: condition
    on: ticket.created
    good: ticket_id != ""
    objective: 0.95
"""

MS = 1_763_805_600_000  # 2025-11-22T10:00:00Z in epoch milliseconds


@pytest.fixture(scope="module")
def field_service(tmp_path_factory):
    folder = tmp_path_factory.mktemp("field-service")
    (folder / "catalog.yaml").write_text(FIELD_SERVICE)
    return load_catalog(folder)


def booked(**changes: object) -> bytes:
    message: dict = {
        "uuid": "v-1",
        "kind": "appointment.booked",
        "account": {"id": "acct-7"},
        "ts": MS,
        "appointment_id": "a-1",
        "slot": {"start": MS + 3_600_000},
        "technician": "Ana",
    }
    message.update(changes)
    return orjson.dumps({k: v for k, v in message.items() if v is not None})


def cloudevent(**changes: object) -> bytes:
    message: dict = {
        "specversion": "1.0",
        "id": "t-1",
        "type": "ticket.created",
        "source": "/helpdesk",
        "subject": "acct-7",
        "time": "2025-11-22T10:00:00Z",
        "data": {"ticket_id": "T-1"},
    }
    message.update(changes)
    return orjson.dumps({k: v for k, v in message.items() if v is not None})


def test_a_mapped_source_is_read_by_its_pointers_and_its_time_format(field_service):
    event = field_service.decoder.decode(booked(), "visits")
    assert isinstance(event, Event), event
    assert (event.id, event.type, event.customer, event.at) == (
        "v-1",
        "appointment.booked",
        "acct-7",
        parse_timestamp("2025-11-22T10:00:00Z"),
    )
    # The rules see the contract's own shape: timestamps as RFC 3339, fields by their names.
    assert event.fields.slot_start == "2025-11-22T11:00:00Z"  # type: ignore[attr-defined]
    assert event.fields.appointment_id == "a-1"  # type: ignore[attr-defined]
    assert event.data["technician"] == "Ana"  # extra fields are kept
    assert event.raw == booked()  # and the message itself, whole


def test_a_cloudevent_takes_its_id_type_time_and_the_subject_as_customer(field_service):
    event = field_service.decoder.decode(cloudevent(), "helpdesk")
    assert isinstance(event, Event), event
    assert (event.id, event.type, event.customer, event.fields.ticket_id) == ("t-1", "ticket.created", "acct-7", "T-1")  # type: ignore[attr-defined]
    with_customer = cloudevent(data={"ticket_id": "T-1", "customer_id": "acct-9"})
    assert field_service.decoder.decode(with_customer, "helpdesk").customer == "acct-9"  # type: ignore[union-attr]
    # Any message with specversion is a CloudEvent, whatever its source.
    assert isinstance(field_service.decoder.decode(cloudevent(), "file"), Event)


@pytest.mark.parametrize(
    ("raw", "source", "reason", "detail"),
    [
        (cloudevent(time=None), "helpdesk", MISSING_FIELD, "attribute 'time' (occurred_at) is missing"),
        (cloudevent(id=None), "helpdesk", MISSING_FIELD, "attribute 'id' (event_id) is missing"),
        (cloudevent(data=[1]), "helpdesk", WRONG_TYPE, "attribute 'data' must be an object, not an array"),
        (cloudevent(specversion="0.3"), "helpdesk", WRONG_TYPE, "attribute 'specversion' must be '1.0', not '0.3'"),
        (booked(slot={}), "visits", MISSING_FIELD, "field 'slot_start' (at /slot/start) is missing"),
        (
            booked(ts=str(MS)),
            "visits",
            WRONG_TYPE,
            "field 'occurred_at' (at /ts) must be a number (epoch_ms), not a string",
        ),
        (booked(account={"name": "x"}), "visits", MISSING_FIELD, "field 'customer_id' (at /account/id) is missing"),
        (
            booked(priority="urgent"),
            "visits",
            WRONG_TYPE,
            "field 'priority' must be 'low' or 'normal' or 'high', not 'urgent'",
        ),
    ],
    ids=[
        "a CloudEvent without time",
        "a CloudEvent without id",
        "data not an object",
        "another CloudEvents version",
        "a pointer to a missing field",
        "epoch milliseconds as a string",
        "the customer's pointer leads nowhere",
        "a value outside its list",
    ],
)
def test_bad_input_per_shape_is_refused_with_why_and_kept_whole(field_service, raw, source, reason, detail):
    refused = field_service.decoder.decode(raw, source)
    assert isinstance(refused, Reject)
    assert (refused.reason, refused.detail, refused.raw) == (reason, detail, raw)


def test_a_catalog_without_declarations_says_so(tmp_path):
    from monitor.catalog import validate_catalog

    (tmp_path / "catalog.yaml").write_text("version: 1\ntouchpoints: []\n")
    catalog, problems = validate_catalog(tmp_path)
    assert catalog is None
    assert any("declares no event types" in p.message for p in problems)


# -- the same events in any shape give the same outcomes ---------------------------------------------------
MAPPED = """version: 1
sources:
  - name: mapped
    time: epoch_ms
    fields: {event_id: /meta/id, type: /meta/type, customer_id: /meta/account, occurred_at: /meta/at}
"""


@pytest.fixture(scope="module")
def shapes(tmp_path_factory):
    folder = tmp_path_factory.mktemp("shapes")
    for rule in (ROOT / "rules").glob("*.yaml"):
        shutil.copy(rule, folder / rule.name)
    (folder / "mapped.yaml").write_text(MAPPED)
    return load_catalog(folder)


def as_cloudevent(line: bytes) -> bytes:
    event = orjson.loads(line)
    common = {name: event.pop(name) for name in ("event_id", "type", "customer_id", "occurred_at")}
    data = {"customer_id": common["customer_id"], **event}
    return orjson.dumps(
        {
            "specversion": "1.0",
            "id": common["event_id"],
            "type": common["type"],
            "source": "/sim",
            "time": common["occurred_at"],
            "data": data,
        }
    )


def as_mapped(line: bytes, timestamps: frozenset[str]) -> bytes:
    event = orjson.loads(line)
    meta = {
        "id": event.pop("event_id"),
        "type": event.pop("type"),
        "account": event.pop("customer_id"),
        "at": parse_timestamp(event.pop("occurred_at")) // 1000,  # type: ignore[operator]
    }
    for name in timestamps & set(event):
        event[name] = parse_timestamp(event[name]) // 1000  # type: ignore[operator]
    return orjson.dumps({"meta": meta, **event})


def summary(catalog, lines, source="file"):
    run = Replay(catalog, lateness=parse_duration("30s"))
    run.feed(lines, source)
    return run.finish()


@settings(max_examples=5, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000))
def test_simulated_days_give_the_same_summary_flat_as_cloudevents_and_mapped(shapes, seed):
    lines = list(Simulation(customers=150, duration=parse_duration("2d"), seed=seed).lines())
    timestamps = frozenset(
        name
        for declared in shapes.contract.events
        for name, kind in shapes.contract.fields_of(declared.type).items()
        if kind.name == "timestamp" and name != "occurred_at"
    )
    flat = summary(shapes, lines)
    assert flat["events"]["rejected"] == 0 and flat["events"]["accepted"] > 0
    assert summary(shapes, [as_cloudevent(line) for line in lines]) == flat
    assert summary(shapes, [as_mapped(line, timestamps) for line in lines], "mapped") == flat


@pytest.mark.parametrize(
    ("line", "why"),
    [
        (b'{"event_id": "e1", "customer_id": "c1"}', "field 'type' is missing"),
        (b'{"type": "appointment.booked", "customer_id": "c1"}', "type 'appointment.booked' is not declared"),
        (b"[1]", "not a JSON object"),
        (b"{cut", "not a JSON object"),
    ],
    ids=["no type", "an undeclared type", "not an object", "unreadable"],
)
def test_produce_says_which_field_keeps_a_line_from_its_topic(line, why):
    from tests.builders import CONTRACT
    from tpmon.publish import route

    topic, _, said = route(line, {"orders": "orders"}, None, CONTRACT)
    assert topic is None and said.startswith(why)
    assert route(b'{"type": "order.placed", "customer_id": "c1"}', {"orders": "o"}, None, CONTRACT) == ("o", b"c1", "")


@pytest.mark.parametrize(
    ("line", "key"),
    [
        (b'{"event_id": "e1", "type": "order.placed"}', None),
        (b'{"event_id": "e1", "type": "order.placed", "customer_id": ""}', None),
        (b'{"specversion": "1.0", "type": "order.placed", "subject": "c9", "data": {}}', b"c9"),
        (b'{"specversion": "1.0", "type": "order.placed", "data": {"customer_id": "c8"}}', b"c8"),
    ],
    ids=["no customer", "an empty customer", "a CloudEvent's subject", "a CloudEvent's data's customer"],
)
def test_produce_sends_a_line_of_a_known_topic_it_cannot_key_unkeyed_and_says_so(line, key):
    from tests.builders import CONTRACT
    from tpmon.publish import route

    topic, keyed, said = route(line, {"orders": "o"}, None, CONTRACT)
    assert (topic, keyed) == ("o", key)
    assert ("no customer_id to key it by: sent unkeyed" in said) == (key is None)


def test_the_worker_reads_the_declared_sources_under_their_names_or_as_tpmon_topics_renames_them():
    from streams.settings import Settings

    sources = ("orders", "bills", "visits")
    assert Settings().topics_of(sources) == {"orders": "orders", "bills": "bills", "visits": "visits"}
    assert Settings(topics="a,b,c").topics_of(sources) == {"orders": "a", "bills": "b", "visits": "c"}
    assert Settings(topics="visits=fs-visits").topics_of(sources)["visits"] == "fs-visits"
    with pytest.raises(ValueError, match="names 2 topics for the catalog's 3 sources"):
        Settings(topics="a,b").topics_of(sources)
    with pytest.raises(ValueError, match="'visitz' is not a source"):
        Settings(topics="visitz=x").topics_of(sources)


def test_inputs_split_by_source_replay_merged_in_event_time_to_the_same_summary(tmp_path):
    """Each source's file in its own order, merged by event time: the same outcomes as one file, at the
    catalog's lateness (read one after the other, every later file's deadlines would be decided early)."""
    from click.testing import CliRunner

    from tests.builders import CONTRACT, SHIPPED
    from tpmon.cli import main

    lines = list(Simulation(customers=300, duration=parse_duration("3d"), seed=5).lines())
    whole = tmp_path / "all.jsonl"
    whole.write_bytes(b"\n".join(lines) + b"\n")
    by_source: dict[str, list[bytes]] = {}
    for line in lines:
        by_source.setdefault(CONTRACT.source_of_type(orjson.loads(line)["type"]), []).append(line)  # type: ignore[arg-type]
    args = []
    for source, mine in sorted(by_source.items()):
        (tmp_path / f"{source}.jsonl").write_bytes(b"\n".join(mine) + b"\n")
        args.append(f"{source}={tmp_path / f'{source}.jsonl'}")
    one = Replay(SHIPPED)
    one.feed(lines)
    merged = Replay(SHIPPED)
    merged.feed_merged([(source, mine) for source, mine in sorted(by_source.items())])
    assert merged.finish() == one.finish()

    runner = CliRunner()
    single = runner.invoke(main, ["replay", str(whole), "--json"])
    several = runner.invoke(main, ["replay", *args, "--json"])
    assert single.exit_code == several.exit_code == 0, several.output
    assert orjson.loads(several.stdout) == orjson.loads(single.stdout)
    assert orjson.loads(several.stdout)["events"]["late"] == 0
    wrong = runner.invoke(main, ["replay", f"order={tmp_path / 'orders.jsonl'}"])
    assert wrong.exit_code == 2 and "'order' is not a declared source; did you mean 'orders'?" in wrong.output


def test_produce_as_a_source_keys_each_line_by_the_customer_its_shape_says(field_service):
    from tpmon.publish import route_as

    topics = {"visits": "fs-visits", "helpdesk": "helpdesk"}
    assert route_as(booked(), "visits", topics, field_service.decoder) == ("fs-visits", b"acct-7", "")
    assert route_as(cloudevent(), "helpdesk", topics, field_service.decoder) == ("helpdesk", b"acct-7", "")
    for line, why in [
        (booked(account={}), "field 'customer_id' (at /account/id) is missing"),
        (b"{cut", "malformed JSON"),
    ]:
        topic, key, said = route_as(line, "visits", topics, field_service.decoder)
        assert (topic, key) == ("fs-visits", None)  # sent unkeyed: the worker dead-letters it
        assert said.startswith(why) and said.endswith("sent unkeyed, for the worker to keep in its dead letters")


def test_a_flat_source_field_declared_at_a_pointer_is_read_there(tmp_path):
    (tmp_path / "catalog.yaml").write_text(
        """version: 1
sources: [{name: meters}]
events:
  - type: meter.read
    source: meters
    fields: {meter_id: {kind: string, at: /meter/id}, litres: number>=0}
touchpoints:
  - id: reading-plausible
    stage: pay
    owner: billing
    description: A reading is below 10,000 litres.
    kind: condition
    on: meter.read
    good: litres < 10000.0
    objective: 0.9
    alerts: {page: [6, 3]}
"""
    )
    catalog = load_catalog(tmp_path)
    line = b'{"event_id":"r1","type":"meter.read","customer_id":"c1","occurred_at":"2026-01-01T00:00:00Z","meter":{"id":"M-1"},"litres":12}'
    event = catalog.decoder.decode(line, "meters")
    assert isinstance(event, Event) and event.fields.meter_id == "M-1"  # type: ignore[attr-defined]
    missing = catalog.decoder.decode(line.replace(b'"meter":{"id":"M-1"},', b""), "meters")
    assert isinstance(missing, Reject) and missing.detail == "field 'meter_id' (at /meter/id) is missing"
