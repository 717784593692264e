"""Expressions: two timestamps compared without the evaluator give what the evaluator gives."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitor.catalog.expressions import Environment, Expression
from monitor.events import FIRST_INSTANT, LAST_INSTANT, Event, format_timestamp

COMPARISONS = ["<=", ">=", "<", ">", "==", "!="]
DAY = 86_400_000_000


def _text(micros: int, offset_minutes: int, digits: int) -> str:
    """The instant written with an offset and a fraction of ``digits`` digits (0: none)."""
    local = format_timestamp(micros + offset_minutes * 60_000_000)[:19]
    fraction = f"{micros % 1_000_000:06d}000"[:digits]
    if not offset_minutes:
        zone = "Z"
    else:
        sign = "+" if offset_minutes > 0 else "-"
        zone = f"{sign}{abs(offset_minutes) // 60:02d}:{abs(offset_minutes) % 60:02d}"
    return local + ("." + fraction if digits else "") + zone


def _order(catalog, occurred_at: str, promised_at: str | None) -> Event:
    fields = {
        "event_id": "e-1",
        "type": "order.delivered",
        "customer_id": "c-1",
        "occurred_at": occurred_at,
        "order_id": "o-1",
    }
    if promised_at is not None:
        fields["promised_at"] = promised_at
    event = catalog.decoder.decode(orjson.dumps(fields), "orders")
    assert type(event) is Event, (event, fields)
    return event


@pytest.fixture(scope="module")
def environment(catalog):
    return Environment(catalog.contract)


def test_only_two_timestamps_compared_are_compared_without_the_evaluator(environment):
    assert Expression("occurred_at <= promised_at", environment)._compared is not None
    assert Expression("  promised_at>occurred_at ", environment)._compared is not None
    assert Expression("occurred_at <= promised_at || false", environment)._compared is None
    assert Expression("amount <= expected_amount", environment)._compared is None
    assert Expression("occurred_at", environment, instant=True)._compared is None


instants = st.integers(FIRST_INSTANT + 2 * DAY, LAST_INSTANT - 2 * DAY)
nearby = st.one_of(st.sampled_from([0, 1, -1, 999, 1000, -1000, 3_600_000_000]), st.integers(-10 * DAY, 10 * DAY))
offsets = st.sampled_from([0, 60, -330, 840, -720, 345])
digits = st.sampled_from([0, 1, 3, 6, 9])


@settings(max_examples=300)
@given(instants, nearby, offsets, offsets, digits, digits, st.sampled_from(COMPARISONS))
def test_two_timestamps_compare_as_the_evaluator_compares_them(
    catalog, environment, at, apart, first_offset, second_offset, first_digits, second_digits, comparison
):
    """Instants a microsecond apart or the same, in other offsets, with fractions finer than microseconds."""
    occurred_at = _text(at, first_offset, first_digits)
    promised_at = _text(min(max(at + apart, FIRST_INSTANT + DAY), LAST_INSTANT - DAY), second_offset, second_digits)
    event = _order(catalog, occurred_at, promised_at)
    for text in (f"occurred_at {comparison} promised_at", f"promised_at {comparison} occurred_at"):
        expression = Expression(text, environment)
        assert expression._compared is not None
        assert expression._evaluate(event) == expression._evaluate_values(event), (text, occurred_at, promised_at)


SECOND_EDGES = st.sampled_from([0, 1, 999_999, 500_000, 999_000])
# From 1970 to 2^31 seconds on: the instants compared without the evaluator.
exact = st.integers(0, 2**31 * 1_000_000 - 1)


@settings(max_examples=300)
@given(exact, SECOND_EDGES, nearby, offsets, offsets, st.sampled_from(COMPARISONS))
def test_instants_at_a_second_s_edges_compare_as_the_evaluator_compares_them(
    catalog, environment, at, fraction, apart, first_offset, second_offset, comparison
):
    """Fractions a microsecond from a whole second, where a float of seconds could round up."""
    at = at - at % 1_000_000 + fraction
    occurred_at = _text(at, first_offset, 6)
    promised_at = _text(min(max(at + apart, 0), 2**31 * 1_000_000 - 1), second_offset, 6)
    event = _order(catalog, occurred_at, promised_at)
    expression = Expression(f"occurred_at {comparison} promised_at", environment)
    assert expression._compare_instants(event) is not None
    assert expression._evaluate(event) == expression._evaluate_values(event), (occurred_at, promised_at)


def test_instants_the_evaluator_reads_through_a_rounded_float_are_left_to_it(catalog, environment):
    """At year 2973 the evaluator puts 20:59:59.999999 after 21:00:00: what it says is what counts."""
    event = _order(catalog, "2973-09-30T20:59:59.999999Z", "2973-09-30T21:00:00Z")
    expression = Expression("occurred_at <= promised_at", environment)
    assert expression._compare_instants(event) is None
    assert expression._evaluate(event) == expression._evaluate_values(event)


def test_a_field_absent_goes_to_the_evaluator(catalog, environment):
    expression = Expression("occurred_at <= promised_at", environment)
    placed = catalog.decoder.decode(
        orjson.dumps(
            {
                "event_id": "e-2",
                "type": "order.placed",
                "customer_id": "c-1",
                "occurred_at": "2026-11-22T10:00:00Z",
                "order_id": "o-1",
                "amount": 1.0,
                "channel": "shop",
            }
        ),
        "orders",
    )
    assert type(placed) is Event
    verdict, why = expression._evaluate(placed)
    assert verdict is None and why and (verdict, why) == expression._evaluate_values(placed)
    assert expression(placed) is None and expression.last_error == why
