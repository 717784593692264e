"""Decoding events (SPEC section 1): every malformed input has its reason, nothing raises."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from monitor import events
from monitor.events import (
    BAD_TIMESTAMP,
    MALFORMED_JSON,
    MISSING_FIELD,
    NOT_OBJECT,
    NOT_UTF8,
    TOO_LARGE,
    WRONG_TYPE,
    Event,
    Reject,
    decode,
    parse_timestamp,
)

VALID = {
    "event_id": "e1",
    "type": "bill.issued",
    "customer_id": "c1",
    "occurred_at": "2026-11-22T10:00:00Z",
    "bill_id": "b1",
    "amount": 12.5,
    "expected_amount": 12.5,
}


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


def test_reject_records_keep_non_utf8_input_as_base64():
    record = decode(b"\xff\x00oops", "calls").record(line=3)
    assert record["reason"] == NOT_UTF8 and record["line"] == 3 and "raw_base64" in record
