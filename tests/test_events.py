"""Decoding events (docs/EVENTS.md): every malformed input has its reason, nothing raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import events
from monitor.events import (
    BAD_TIMESTAMP,
    FIRST_INSTANT,
    FUTURE_TIMESTAMP,
    LAST_INSTANT,
    MALFORMED_JSON,
    MISSING_FIELD,
    NOT_OBJECT,
    NOT_UTF8,
    TOO_LARGE,
    WRONG_TYPE,
    Event,
    Reject,
    format_timestamp,
    parse_timestamp,
)
from tests.builders import decode

VALID = {
    "event_id": "e1",
    "type": "bill.issued",
    "customer_id": "c1",
    "occurred_at": "2026-11-22T10:00:00Z",
    "bill_id": "b1",
    "amount": 12.5,
    "expected_amount": 12.5,
}


def _nested(levels: int) -> object:
    value: object = 1
    for _ in range(levels):
        value = [value]
    return value


def with_(**changes: object) -> bytes:
    data = {**VALID, **changes}
    return orjson.dumps({k: v for k, v in data.items() if v is not ...})


REJECTS = [
    ("malformed JSON", b'{"event_id": "e1",', MALFORMED_JSON),
    ("not JSON at all", b"hello", MALFORMED_JSON),
    ("empty input", b"", MALFORMED_JSON),
    ("a non-UTF-8 payload", b'{"event_id": "\xff\xfe"}', NOT_UTF8),
    ("a JSON array", b"[1, 2]", NOT_OBJECT),
    ("a JSON string", b'"event"', NOT_OBJECT),
    ("JSON null", b"null", NOT_OBJECT),
    ("no event_id", with_(event_id=...), MISSING_FIELD),
    ("an empty event_id", with_(event_id=""), MISSING_FIELD),
    ("a numeric event_id", with_(event_id=7), WRONG_TYPE),
    ("no type", with_(type=...), MISSING_FIELD),
    ("no customer_id", with_(customer_id=...), MISSING_FIELD),
    ("a null customer_id", with_(customer_id=None), MISSING_FIELD),
    ("a numeric customer_id", with_(customer_id=42), WRONG_TYPE),
    ("no occurred_at", with_(occurred_at=...), MISSING_FIELD),
    ("an occurred_at without offset", with_(occurred_at="2026-11-22T10:00:00"), BAD_TIMESTAMP),
    ("an occurred_at with a space", with_(occurred_at="2026-11-22 10:00:00Z"), BAD_TIMESTAMP),
    ("an unparseable occurred_at", with_(occurred_at="yesterday"), BAD_TIMESTAMP),
    ("a date-only occurred_at", with_(occurred_at="2026-11-22"), BAD_TIMESTAMP),
    ("an impossible date", with_(occurred_at="2026-02-30T10:00:00Z"), BAD_TIMESTAMP),
    ("an occurred_at with an empty fraction", with_(occurred_at="2026-11-22T10:00:00.Z"), BAD_TIMESTAMP),
    ("an offset without a colon", with_(occurred_at="2026-11-22T10:00:00+0100"), BAD_TIMESTAMP),
    ("an offset with seconds", with_(occurred_at="2026-11-22T10:00:00+01:00:00"), BAD_TIMESTAMP),
    ("a comma fraction", with_(occurred_at="2026-11-22T10:00:00,5Z"), BAD_TIMESTAMP),
    ("a week date", with_(occurred_at="2026-W47-1T10:00:00Z"), BAD_TIMESTAMP),
    ("a leap second", with_(occurred_at="2026-11-22T10:00:60Z"), BAD_TIMESTAMP),
    ("a numeric occurred_at", with_(occurred_at=1763805600), WRONG_TYPE),
    ("a type field missing", with_(bill_id=...), MISSING_FIELD),
    ("an amount as a string", with_(amount="12.50"), WRONG_TYPE),
    ("an amount as a boolean", with_(amount=True), WRONG_TYPE),
    (
        "a negative wait",
        orjson.dumps({**VALID, "type": "call.answered", "call_id": "k", "queue": "q", "wait_seconds": -1}),
        WRONG_TYPE,
    ),
    (
        "resolved as a string",
        orjson.dumps({**VALID, "type": "call.ended", "call_id": "k", "resolved": "yes"}),
        WRONG_TYPE,
    ),
    (
        "cancelled by someone else",
        orjson.dumps({**VALID, "type": "order.cancelled", "order_id": "o", "by": "robot"}),
        WRONG_TYPE,
    ),
    (
        "a bad promised_at",
        orjson.dumps({**VALID, "type": "order.delivered", "order_id": "o", "promised_at": "soon"}),
        BAD_TIMESTAMP,
    ),
    ("a numeric reason on customer.left", orjson.dumps({**VALID, "type": "customer.left", "reason": 3}), WRONG_TYPE),
    # Instants outside the years 1 to 9999 in UTC, though valid RFC 3339 where they were written.
    ("a last second of 9999 west of UTC", with_(occurred_at="9999-12-31T23:59:59-01:00"), BAD_TIMESTAMP),
    ("a first second of year 1 east of UTC", with_(occurred_at="0001-01-01T00:00:00+01:00"), BAD_TIMESTAMP),
    ("year 0", with_(occurred_at="0000-06-01T00:00:00Z"), BAD_TIMESTAMP),
    ("a fraction point and nothing after", with_(occurred_at="2026-11-22T10:00:00."), BAD_TIMESTAMP),
    ("a year of superscript digits", with_(occurred_at="²⁰²⁶-11-22T10:00:00Z"), BAD_TIMESTAMP),
    ("a year of fullwidth digits", with_(occurred_at="２０２６-11-22T10:00:00Z"), BAD_TIMESTAMP),  # noqa: RUF001
    (
        "a promised_at past year 9999",
        orjson.dumps({**VALID, "type": "order.delivered", "order_id": "o", "promised_at": "9999-12-31T23:00:00-05:00"}),
        BAD_TIMESTAMP,
    ),
    # What the fast decoder would skip over in an extra field is read all the same.
    ("JSON nested 20,000 levels deep", b"[" * 20_000 + b"]" * 20_000, MALFORMED_JSON),
    ("an extra field nested 101 levels", with_(extra=_nested(100)), MALFORMED_JSON),
    ("an extra field that is not UTF-8", orjson.dumps(VALID)[:-1] + b',"note":"\xff"}', NOT_UTF8),
    ("an extra number beyond a double", orjson.dumps(VALID)[:-1] + b',"n":1e400}', MALFORMED_JSON),
    ("an extra integer beyond a double", orjson.dumps(VALID)[:-1] + b',"n":' + b"9" * 400 + b"}", MALFORMED_JSON),
    ("a lone surrogate in an extra field", orjson.dumps(VALID)[:-1] + b',"note":"\\ud800"}', MALFORMED_JSON),
    ("NaN", orjson.dumps(VALID)[:-1] + b',"n":NaN}', MALFORMED_JSON),
    ("Infinity as an amount", orjson.dumps(VALID).replace(b'"amount":12.5', b'"amount":Infinity'), MALFORMED_JSON),
]


@pytest.mark.parametrize(("raw", "reason"), [r[1:] for r in REJECTS], ids=[r[0] for r in REJECTS])
def test_rejects_have_a_reason_and_keep_the_input(raw, reason):
    result = decode(raw, "bills")
    assert isinstance(result, Reject)
    assert result.reason == reason
    assert result.raw == raw
    assert result.source == "bills"
    assert result.detail


def test_too_large_is_rejected_before_parsing():
    raw = b'{"pad": "' + b"x" * 2_000_000 + b'"}'
    result = decode(raw, "orders")
    assert isinstance(result, Reject) and result.reason == TOO_LARGE


def test_a_valid_event_keeps_every_field():
    result = decode(with_(note="extra field", nested={"a": [1]}), "bills")
    assert isinstance(result, Event)
    assert (result.id, result.type, result.customer, result.kind) == ("e1", "bill.issued", "c1", "bill.issued")
    assert result.data["note"] == "extra field" and result.data["nested"] == {"a": [1]}


def test_an_unknown_type_is_accepted_as_other():
    result = decode(orjson.dumps({**VALID, "type": "loyalty.points.added"}), "orders")
    assert isinstance(result, Event)
    assert result.kind == "other" and result.type == "loyalty.points.added"


TIMES = [
    ("2026-11-22T10:00:00Z", "2026-11-22T10:00:00Z"),
    ("2026-11-22T11:00:00+01:00", "2026-11-22T10:00:00Z"),
    ("2026-11-22T04:30:00-05:30", "2026-11-22T10:00:00Z"),
    ("2026-11-22T10:00:00.5Z", "2026-11-22T10:00:00.500Z"),
    ("2026-11-22T10:00:00.123456789Z", "2026-11-22T10:00:00.123456Z"),
]


@pytest.mark.parametrize(("text", "same_as"), TIMES, ids=[t[0] for t in TIMES])
def test_timestamps_with_any_offset_and_fraction(text, same_as):
    assert parse_timestamp(text) == parse_timestamp(same_as)


SECONDS = [
    "2026-11-22T10:00:00",
    "1999-12-31T23:59:59",
    "2026-02-29T10:00:00",
    "2026-11-22T10:00:60",
    "2026-11-22 10:00:00",
]
RESTS = ["Z", ".5Z", ".123456789Z", "+01:00", "-05:30", ".25+14:00", "", "z", "+0100", ".Z", ",5Z", "+24:00", "Zjunk"]


@given(st.lists(st.tuples(st.sampled_from(SECONDS), st.sampled_from(RESTS)), min_size=1, max_size=30))
def test_remembered_halves_never_change_what_a_timestamp_means(pairs):
    """parse_timestamp remembers each valid half; any mix of halves seen before parses as the checks and
    datetime decide without them."""
    for second, rest in pairs:
        text = second + rest
        assert parse_timestamp(text) == events._parse_timestamp(text), text


@given(st.integers(FIRST_INSTANT, LAST_INSTANT), st.booleans())
def test_an_instant_is_written_as_datetime_writes_it_whatever_was_remembered_or_forgotten(micros, forget):
    """format_timestamp's dates remembered, or forgotten as a worker's sweep forgets them, never change
    the text; parse_timestamp reads it back to the same instant."""
    if forget:
        events.forget_remembered()
    moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    text = format_timestamp(micros)
    assert text == f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}Z"
    assert parse_timestamp(text) == micros == parse_timestamp(text)


def test_day_after_day_past_the_dates_kept_each_instant_is_written_as_datetime_writes_it():
    """Days in a row, more than the dates kept, twice and again a microsecond on: a date remembered is
    the date of its own day, and the remembered ones stay bounded."""
    start = parse_timestamp("2020-01-01T13:45:07Z") or 0
    for micros in [start + day * 86_400_000_000 for day in range(events._DATES_KEPT + 1_000)] * 2:
        for instant in (micros, micros + 1):
            moment = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=instant)
            fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
            assert format_timestamp(instant) == f"{moment:%Y-%m-%dT%H:%M:%S}{fraction}Z"
        assert len(events._DATES) <= events._DATES_KEPT


@pytest.mark.parametrize(
    ("micros", "text"),
    [
        (FIRST_INSTANT - 1, "0000-12-31T23:59:59.999999Z"),
        (LAST_INSTANT + 1, "10000-01-01T00:00:00Z"),
        (-74_784_556_800_000_000, "-400-03-04T00:00:00Z"),
    ],
    ids=["before year 1", "after year 9999", "a negative year"],
)
def test_an_instant_outside_the_years_events_carry_still_has_a_text(micros, text):
    """A due time may reach past the years an event carries: it is written, with a year of more than
    four digits or a sign."""
    assert format_timestamp(micros) == text


def test_forgetting_what_was_remembered_empties_it():
    parse_timestamp("2026-11-22T10:00:00.250+01:00")
    format_timestamp(parse_timestamp("2026-11-22T10:00:00Z") or 0)
    assert events._HOURS_SEEN and events._RESTS and events._DATES
    events.forget_remembered()
    assert not events._HOURS_SEEN and not events._RESTS and not events._DATES


def test_reject_records_keep_non_utf8_input_as_base64():
    record = decode(b"\xff\x00oops", "calls").record(line=3)
    assert record["reason"] == NOT_UTF8 and record["line"] == 3 and "raw_base64" in record


def test_nesting_is_counted_from_the_event_itself():
    """The event is level 1, so an extra field may nest 99 more levels; strings holding brackets do not
    count."""
    assert isinstance(decode(with_(extra=_nested(99)), "bills"), Event)
    assert isinstance(decode(with_(extra="[" * 500, other=_nested(10)), "bills"), Event)
    assert decode(with_(extra=_nested(100)), "bills").reason == MALFORMED_JSON  # type: ignore[union-attr]


def test_an_event_with_extra_fields_decodes_as_one_without():
    plain = decode(orjson.dumps(VALID), "bills")
    extra = decode(with_(note="kept", tags=["a", {"b": None}]), "bills")
    assert isinstance(plain, Event) and isinstance(extra, Event)
    assert (extra.id, extra.type, extra.kind, extra.at, extra.fields.amount) == (
        plain.id,
        plain.type,
        plain.kind,
        plain.at,
        plain.fields.amount,
    )
    assert extra.data["tags"] == ["a", {"b": None}]


def test_the_edges_of_the_range_are_events():
    for text in ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z", "0001-01-01T01:00:00+01:00"):
        decoded = decode(with_(occurred_at=text), "bills")
        assert isinstance(decoded, Event), decoded
        assert FIRST_INSTANT <= decoded.at <= LAST_INSTANT


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("9999-12-31T23:59:59-01:00", "outside the years 1 to 9999"),
        ("2026-11-22T10:00:00", "not an RFC 3339 timestamp"),
        ("2026-02-30T10:00:00Z", "not an RFC 3339 timestamp"),
    ],
    ids=["out of range", "no offset", "no such day"],
)
def test_a_bad_timestamp_says_why(text, why):
    assert why in decode(with_(occurred_at=text), "bills").detail  # type: ignore[union-attr]


def test_an_event_too_far_ahead_of_the_clock_is_future_timestamp():
    now = parse_timestamp("2026-11-22T09:00:00Z")
    hour = 3_600_000_000
    assert isinstance(decode(orjson.dumps(VALID), "bills", not_after=now + hour), Event)  # exactly 1h ahead
    late = decode(orjson.dumps(VALID), "bills", not_after=now + hour - 1)
    assert isinstance(late, Reject) and late.reason == FUTURE_TIMESTAMP
    assert "2026-11-22T10:00:00Z" in late.detail
    # An extra field or a type outside the contract takes the other path, and the same check.
    for raw in (with_(note="x"), with_(type="loyalty.points")):
        assert decode(raw, "bills", not_after=now).reason == FUTURE_TIMESTAMP  # type: ignore[union-attr]


@given(st.integers(min_value=FIRST_INSTANT, max_value=LAST_INSTANT))
def test_every_instant_of_the_range_is_written_and_read_back(micros):
    text = format_timestamp(micros)
    assert parse_timestamp(text) == micros
    assert text == datetime_text(micros)


def datetime_text(micros: int) -> str:
    from datetime import UTC, datetime, timedelta

    moment = datetime(1, 1, 1, tzinfo=UTC) + timedelta(microseconds=micros - FIRST_INSTANT)
    fraction = f".{moment.microsecond:06d}" if moment.microsecond else ""
    return f"{moment.year:04d}-{moment:%m-%dT%H:%M:%S}{fraction}Z"


@given(st.integers(min_value=-(10**20), max_value=10**20))
def test_any_instant_has_a_text(micros):
    assert format_timestamp(micros)


@given(
    st.sampled_from([*SECONDS, "9999-12-31T23:59:59", "0001-01-01T00:00:00"]),
    st.sampled_from([*RESTS, "+23:59", "-23:59"]),
)
def test_remembered_halves_never_make_an_instant_out_of_range(second, rest):
    """A minute near the edges is never remembered, so no mix of remembered halves leaves the range."""
    parse_timestamp("9999-12-31T23:59:59+23:59")  # remembered halves that would reach past year 9999
    parse_timestamp("2026-11-22T10:00:00-23:59")
    text = second + rest
    assert parse_timestamp(text) == events._parse_timestamp(text), text


def test_an_unclosed_string_of_a_megabyte_is_judged_at_once():
    """Finding the nesting once took a time growing with the square of the input (two hours for a
    megabyte of escaped quotes): one message stalled its partition. Generous bound: it takes 0.1 s."""
    import time

    raw = b"[" * 101 + b'\\"' * 500_000
    started = time.perf_counter()
    assert decode(raw, "orders").reason == MALFORMED_JSON  # type: ignore[union-attr]
    assert time.perf_counter() - started < 10
