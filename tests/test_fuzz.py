"""Fuzzing the whole path, replay and the worker's hops alike: no input, whatever its bytes, raises, stops
anything, or comes out other than once (docs/EVENTS.md).

Inputs are arbitrary bytes, and events whose contract fields take arbitrary JSON values: huge and negative
integers, floats at the limits, NaN and Infinity literals, extreme and impossible timestamps and offsets,
deep nesting, long strings, control characters, lone surrogates, duplicate keys. Every input must
become exactly one event or one reject that keeps its bytes; nothing may be an internal error (that
would be a bug the fuzzer found); what is stored (journeys, customer records) must read back.

``make test`` runs a bounded number of examples; ``make fuzz`` (TPMON_FUZZ_EXAMPLES, default 20,000)
runs the long version.
"""

from __future__ import annotations

import json
import os
from collections import Counter

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from monitor.contract.kinds import BOOLEAN, NON_NEGATIVE, NUMBER, STRING, TIMESTAMP
from monitor.contract.model import COMMON
from monitor.events import FIRST_INSTANT, LAST_INSTANT, RULE_ERROR, Event, Reject, format_timestamp, parse_timestamp
from monitor.journeys import Journey, Journeys
from monitor.replay import Replay
from tests.builders import CONTRACT, decode
from tests.worker_helpers import DEAD_LETTERS, Message, Worker

EXAMPLES = int(os.environ.get("TPMON_FUZZ_EXAMPLES", "150"))
FUZZ = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large]
)
NOW = parse_timestamp("2026-11-22T12:00:00Z")
HOUR = 3_600_000_000


# -- JSON text, written by hand so that it can hold what no encoder writes ------------------------------
class Literal(str):
    """JSON text to put in as it is (NaN, a huge number, deep brackets, a lone surrogate's escape)."""


def render(value: object) -> str:
    if isinstance(value, Literal):
        return str(value)
    if isinstance(value, str):
        return json.dumps(value)  # ensure_ascii: control characters and lone surrogates become escapes
    if isinstance(value, list) and value and isinstance(value[0], tuple):  # an object as (key, value) pairs
        return "{" + ",".join(f"{render(k)}:{render(v)}" for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(render(v) for v in value) + "]"
    return json.dumps(value)


numbers = st.one_of(
    st.integers(min_value=-(10**30), max_value=10**30),
    st.integers(min_value=-(2**64), max_value=2**64),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(
        [
            Literal("NaN"),
            Literal("Infinity"),
            Literal("-Infinity"),
            Literal("1e400"),
            Literal("-1e400"),
            Literal("1e-400"),
            Literal("9" * 400),
            Literal("-0"),
            Literal("0.0e0"),
            Literal("1.7976931348623157e308"),
            Literal("01"),
            Literal("1."),
            Literal(".5"),
        ]
    ),
)
texts = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=st.characters(codec="utf-8", categories=["Cc", "Cs", "Co", "Zs", "So"]), max_size=10),
    st.sampled_from([Literal('"\\ud800"'), Literal('"\\udc00x"'), Literal('"\\ud83d\\ude00"'), Literal('"\\u0000"')]),
    st.integers(min_value=1000, max_value=200_000).map(lambda n: "x" * n),
)


def digits(count: int, low: int = 0, high: int | None = None) -> st.SearchStrategy[str]:
    """Digits, now and then of another script (which Python reads as digits: RFC 3339 does not)."""
    high = 10**count - 1 if high is None else high
    ascii_digits = st.integers(min_value=low, max_value=high).map(lambda n: f"{n:0{count}d}")
    other = st.text(alphabet=st.characters(categories=["Nd", "No"]), min_size=count, max_size=count)
    return st.one_of(ascii_digits, ascii_digits, ascii_digits, other)


offsets = st.one_of(
    st.sampled_from(
        ["Z", "z", "", "+00:00", "-00:00", "+23:59", "-23:59", "+24:00", "+0100", "+01", "+01:00:00", " Z"]
    ),
    st.tuples(st.sampled_from("+-"), digits(2), digits(2)).map(lambda t: f"{t[0]}{t[1]}:{t[2]}"),
)
timestamps = st.one_of(
    st.integers(min_value=FIRST_INSTANT, max_value=LAST_INSTANT).map(format_timestamp),
    st.tuples(
        st.one_of(digits(4), st.sampled_from(["0000", "0001", "9999", "10000", "-001"])),
        digits(2, 0, 19),
        digits(2, 0, 39),
        st.sampled_from("T Tt"),
        digits(2, 0, 29),
        digits(2, 0, 69),
        digits(2, 0, 69),
        st.one_of(st.just(""), st.integers(min_value=0, max_value=25).map(lambda n: "." + "7" * n)),
        offsets,
    ).map(lambda p: f"{p[0]}-{p[1]}-{p[2]}{p[3]}{p[4]}:{p[5]}:{p[6]}{p[7]}{p[8]}"),
    st.sampled_from(["9999-12-31T23:59:59-01:00", "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59Z", "2026-11-22"]),
)
nested = st.integers(min_value=1, max_value=1200).map(lambda n: Literal("[" * n + "]" * n))
values = st.recursive(
    st.one_of(st.none(), st.booleans(), numbers, texts, timestamps, nested),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.lists(st.tuples(st.text(max_size=5), inner), min_size=1, max_size=3)
    ),
    max_leaves=6,
)

near_now = st.integers(min_value=NOW - 6 * HOUR, max_value=NOW + 2 * HOUR).map(format_timestamp)
PLAUSIBLE = {
    STRING: st.text(min_size=1, max_size=6),
    NUMBER: st.one_of(st.integers(-1000, 1000), st.floats(-1e6, 1e6)),
    NON_NEGATIVE: st.one_of(st.integers(0, 300), st.floats(0, 300)),
    BOOLEAN: st.booleans(),
    TIMESTAMP: st.one_of(near_now, timestamps),
}
TYPES = sorted(CONTRACT.types)


def plausible(kind):
    return st.sampled_from(kind.allowed) if kind.allowed else PLAUSIBLE[kind]


@st.composite
def fuzzed_events(draw: st.DrawFn) -> bytes:
    """An event of a type of the contract with plausible fields, then a few of them (or none) given
    arbitrary values or left out, extra fields, a key twice, in any order."""
    event_type = draw(st.one_of(st.sampled_from(TYPES), st.just("loyalty.points.added")))
    fields = CONTRACT.fields_of(event_type) if event_type in CONTRACT.types else dict(COMMON)
    fields.pop("type")
    pairs: list[tuple[str, object]] = [("type", event_type)]
    for name, kind in fields.items():
        if name == "customer_id":
            pairs.append((name, draw(st.sampled_from(["c1", "c2", "c3"]))))
        elif name == "occurred_at":
            pairs.append((name, draw(near_now)))
        else:
            pairs.append((name, draw(plausible(kind))))
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2, 3]))):
        position = draw(st.integers(0, len(pairs) - 1))
        if draw(st.integers(0, 4)) == 0:
            del pairs[position]
            if not pairs:
                break
        else:
            pairs[position] = (pairs[position][0], draw(values))
    for _ in range(draw(st.integers(0, 2))):
        pairs.append((draw(st.text(max_size=6)), draw(values)))
    pairs = draw(st.permutations(pairs))
    if pairs and draw(st.integers(0, 5)) == 0:
        pairs.append(
            draw(st.sampled_from(pairs)) if draw(st.booleans()) else (pairs[0][0], draw(values))
        )  # a key twice
    return render(pairs).encode("utf-8", "surrogatepass")


inputs = st.one_of(
    fuzzed_events(),
    fuzzed_events(),
    fuzzed_events(),
    st.binary(max_size=300),
    values.map(lambda v: render(v).encode("utf-8", "surrogatepass")),
    fuzzed_events().map(lambda raw: raw[: len(raw) // 2]),  # cut short
)


def good(customer: str, number: int) -> bytes:
    return orjson.dumps(
        {
            "event_id": f"g-{customer}-{number}",
            "type": "order.placed",
            "customer_id": customer,
            "occurred_at": format_timestamp(NOW - HOUR + number * 1_000_000),
            "order_id": f"o-{number}",
            "amount": 1,
            "channel": "web",
        }
    )


# -- the properties --------------------------------------------------------------------------------------
@FUZZ
@given(inputs)
def test_decoding_any_input_gives_an_event_or_a_reject_that_keeps_it(raw):
    decoded = decode(raw, "orders")
    if isinstance(decoded, Reject):
        assert decoded.raw is raw and decoded.reason and decoded.detail
        orjson.dumps(decoded.record())  # a reject can always be written out
        return
    assert isinstance(decoded, Event)
    assert FIRST_INSTANT <= decoded.at <= LAST_INSTANT
    assert parse_timestamp(format_timestamp(decoded.at)) == decoded.at
    assert decoded.data == orjson.loads(raw)  # whoever reads an event's bytes can
    assert isinstance(decoded.id, str) and decoded.id and isinstance(decoded.customer, str) and decoded.customer


@FUZZ
@given(st.lists(inputs, min_size=1, max_size=12))
def test_replay_of_any_lines_counts_each_once_and_writes_what_reads_back(lines):
    lines = [good("c1", 0), *lines, good("c2", 1)]
    rejects: list[tuple[int, Reject]] = []
    failures: list = []
    journeys = Journeys()
    run = Replay(
        _catalog(),
        journeys=journeys,
        on_reject=lambda n, r: rejects.append((n, r)),
        on_failure=lambda n, f: failures.append(f),
    )
    run.feed(lines)
    summary = run.finish()
    assert failures == [], [f.traceback() for f in failures]
    events = summary["events"]
    blank = sum(1 for line in lines if not line.strip())
    assert events["accepted"] + events["rejected"] + events["duplicates"] == len(lines) - blank
    # Every line rejected is kept; so is each event a rule could not judge (accepted, kept with reason rule_error).
    assert events["rejected"] == sum(1 for _, reject in rejects if reject.reason != RULE_ERROR)
    assert events["rule_errors"] == sum(1 for _, reject in rejects if reject.reason == RULE_ERROR)
    for number, reject in rejects:
        assert reject.raw == lines[number - 1].rstrip(b"\r\n")
    for record in journeys.records():
        text = orjson.dumps(record)
        assert Journey.from_record(orjson.loads(text)).customer == record["customer_id"]


@FUZZ
@given(st.lists(inputs, min_size=1, max_size=12))
def test_the_worker_takes_any_messages_and_each_comes_out_once(messages):
    worker = Worker(_catalog())
    raws = [good("c1", 0), *messages, good("c2", 1)]
    dead = worker.run([Message("orders", raw, key=b"k") for raw in raws], NOW)
    assert worker.sample("tpmon_internal_errors_total", stage="decode") == 0
    failures = [s for s in dead if s.headers.get("reason") == "internal_error"]
    assert failures == [], failures
    judged = worker.judged()
    accepted = Counter(raw for raw in raws if isinstance(decode(raw, "orders", not_after=NOW + HOUR), Event))
    # Every message comes out once: passed on to be judged, or whole in the dead letters.
    assert Counter(d.value for d in dead) + accepted == Counter(raws)
    assert {"g-c1-0", "g-c2-1"} <= judged
    assert worker.outbox.take(DEAD_LETTERS) == []
    # What the worker stored reads back: a new worker on the same stores restores every partition.
    again = worker.restarted()
    for partition in range(4):
        again.partitions.engine(partition)
    assert again.partitions.failures == []
    assert again.judged() == judged
    for value in worker.journeys.data.values():
        Journey.from_record(orjson.loads(value))


def test_the_extremes_one_by_one():
    """What a fuzzer might take long to reach, each once: through decode, replay and the worker."""
    extremes = [
        b"[" * 20_000 + b"]" * 20_000,
        b'{"a":' * 3000 + b"1" + b"}" * 3000,
        good("c1", 5)[:-1] + b',"pad":"' + b"x" * 1_100_000 + b'"}',
        good("c1", 6)[:-1] + b',"deep":' + b"[" * 98 + b"]" * 98 + b"}",
        good("c1", 7)[:-1] + b',"deep":' + b"[" * 99 + b"]" * 99 + b"}",
        good("c1", 8).replace(b'"event_id"', b'"event_id":"dup","event_id"'),
        good("c1", 9) + b"\n",
        b"\xef\xbb\xbf" + good("c1", 10),
        good("c1", 11).replace(b'"c1"', b'"' + b"c" * 100_000 + b'"'),
        b"[" * 101 + b'\\"' * 100_000,  # an unclosed string of escaped quotes (once quadratic)
        good("c1", 12).replace(b'"occurred_at":"', b'"occurred_at":"2026-11-22T10:00:00.","x":"'),
        good("c1", 13).replace(b'"occurred_at":"2', '"occurred_at":"²'.encode()),
    ]
    test_replay_of_any_lines_counts_each_once_and_writes_what_reads_back.hypothesis.inner_test(extremes)
    test_the_worker_takes_any_messages_and_each_comes_out_once.hypothesis.inner_test(extremes)
    for raw in extremes:
        test_decoding_any_input_gives_an_event_or_a_reject_that_keeps_it.hypothesis.inner_test(raw)


_CATALOG = []


def _catalog():  # type: ignore[no-untyped-def]
    if not _CATALOG:
        from monitor.catalog import load_catalog
        from tests.conftest import ROOT

        _CATALOG.append(load_catalog(ROOT / "rules"))
    return _CATALOG[0]
