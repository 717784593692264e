"""Impact (issue 15, first part): customers impacted per touchpoint and the vital few."""

from __future__ import annotations

import pytest

from monitor.state import vital_few

CASES = [
    ("nothing broken: none", {"a": "reliable"}, {"a": 9}, []),
    ("one broken: it", {"a": "broken", "b": "reliable"}, {"a": 3, "b": 50}, ["a"]),
    ("the most customers first, cut at 80%", {"a": "broken", "b": "broken", "c": "broken"}, {"a": 10, "b": 80, "c": 10}, ["b"]),
    ("the shortest prefix covering 80%", {"a": "broken", "b": "broken", "c": "broken"}, {"a": 30, "b": 40, "c": 30}, ["b", "a", "c"]),
    ("ties by id", {"b": "broken", "a": "broken"}, {"a": 5, "b": 5}, ["a", "b"]),
    ("broken with no customer impacted still ranks", {"a": "broken"}, {}, ["a"]),
]  # fmt: skip


@pytest.mark.parametrize("states, impacted, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_vital_few(states, impacted, expected):
    assert vital_few(states, impacted) == expected


def test_answers_must_be_declared_with_a_survey_and_a_score(tmp_path):
    from monitor.catalog import validate_catalog

    (tmp_path / "c.yaml").write_text(
        """version: 1
sources: [{name: s}]
events:
  - {type: nps.given, source: s, fields: {survey: [nps], score: number}}
  - {type: comment.left, source: s, fields: {text: string}}
surveys: [nps.given, comment.left, nps.givn]
touchpoints:
  - {id: t, stage: help, owner: o, description: d, kind: condition, on: nps.given, good: score >= 9,
     objective: 0.5, alerts: {page: [1.5, 1], ticket: [1, 1]}}
"""
    )
    catalog, problems = validate_catalog(tmp_path)
    messages = [p.message for p in problems if p.severity == "error"]
    assert catalog is None
    assert (
        "'comment.left' must declare the fields survey (which survey, one of a list: [nps, csat, ces]) and score "
        "(a number) to be an answer" in messages
    )
    assert "'nps.givn' is not a declared event type; did you mean 'nps.given'?" in messages


# -- attribution in the engine ---------------------------------------------------------------------------
from monitor.engine import Engine  # noqa: E402
from monitor.engine.impact import voice  # noqa: E402
from tests.builders import BASE, DAY, HOUR, MINUTE, SHIPPED, event  # noqa: E402

LATENESS = 30_000_000


def judged(events, catalog=SHIPPED) -> Engine:  # type: ignore[no-untyped-def]
    engine = Engine(catalog, lateness=LATENESS)
    for e in events:
        engine.step(e)
    engine.finish()
    return engine


def wrong_bill(seconds: float, customer: str = "c1", bill: str = "b1"):  # type: ignore[no-untyped-def]
    return event("bill.issued", seconds, customer=customer, bill_id=bill, amount=12.0, expected_amount=10.0)


def answer(seconds: float, score: float, customer: str = "c1", survey: str = "nps"):  # type: ignore[no-untyped-def]
    return event("survey.answered", seconds, customer=customer, survey_id=f"s{seconds}", survey=survey, score=score)


def test_a_customer_who_leaves_after_a_bad_outcome_is_counted_once_per_touchpoint():
    engine = judged([wrong_bill(0), wrong_bill(MINUTE, bill="b2"), event("customer.left", HOUR)])
    assert engine.impact.totals["bill-correct"] == {"impacted": 1, "left": 1}


def test_leaving_before_the_outcome_or_after_the_attribution_window_is_not_after_bad():
    engine = judged([event("customer.left", 0), wrong_bill(MINUTE), event("customer.left", 31 * DAY, event_id="x")])
    assert engine.impact.totals["bill-correct"] == {"impacted": 1}


def test_a_missed_deadline_happens_at_its_due_instant():
    """An order placed at 0 and never confirmed is missed at 2 minutes: a leaving at 1 minute is not
    after it, one at 3 minutes is; whatever the order they arrive in."""
    placed = event("order.placed", 0, order_id="o1")
    before = event("customer.left", MINUTE, customer="c1")
    after = event("customer.left", 3 * MINUTE, customer="c1")
    for order in ([placed, before, after], [placed, after, before]):
        engine = judged(order)
        assert engine.impact.totals["order-confirmed"] == {"impacted": 1, "left": 1}


def test_answers_are_after_bad_when_one_outcome_of_the_window_is_bad():
    good_bill = event("bill.issued", 0, customer="happy", bill_id="b1")
    events = [good_bill, answer(HOUR, 10, "happy"), wrong_bill(0, "hurt"), answer(HOUR, 3, "hurt")]
    events += [wrong_bill(0, "mixed"), event("bill.issued", MINUTE, customer="mixed", bill_id="b2")]
    events += [answer(HOUR, 7, "mixed"), answer(HOUR, 4, "hurt", survey="csat")]
    tallies = judged(events).impact.totals["bill-correct"]
    assert voice(tallies) == {
        "csat": {"after_good": {"answers": 0, "mean": None}, "after_bad": {"answers": 1, "mean": 4.0}},
        "nps": {
            "after_good": {"answers": 1, "mean": 10.0, "nps": 100.0},
            "after_bad": {"answers": 2, "mean": 5.0, "nps": -50.0},  # a detractor (3) and a passive (7)
        },
    }


def test_an_answer_with_no_outcome_in_its_window_goes_to_no_touchpoint():
    engine = judged([event("bill.issued", 0, bill_id="b1"), answer(31 * DAY, 9)])
    assert "nps/good/answers" not in engine.impact.totals.get("bill-correct", {})


def test_customers_impacted_counts_a_customer_once_per_utc_day():
    """10:00 and 11:00 on one day, 01:00 the next (the builders' day starts at 10:00 UTC)."""
    engine = judged([wrong_bill(0), wrong_bill(HOUR, bill="b2"), wrong_bill(15 * HOUR, bill="b3")])
    assert engine.impact.totals["bill-correct"]["impacted"] == 2


def test_what_attribution_needs_expires_and_the_customer_is_freed():
    engine = Engine(SHIPPED, lateness=LATENESS)
    engine.step(wrong_bill(0))
    engine.step(event("customer.left", HOUR))
    engine.advance(engine.state.max_at)
    assert engine.record("c1")["recent"] == [["bill-correct", wrong_bill(0).at << 1 | 1]]  # its instant, bad
    # (Leaving opened a win-back call, missed 48 hours later: its mark goes 30 days after that.)
    engine.advance(engine.state.max_at + 2 * DAY * 1_000_000 + SHIPPED.attribution_left + 1)
    assert engine.forget(engine.state.watermark) == (["c1"], ["c1"])
    assert engine.impact.folded["bill-correct"] == {"impacted": 1, "left": 1}
    assert engine.impact.folded["winback-call"] == {"impacted": 1}
    assert engine.impact.totals == engine.impact.folded


def test_the_attribution_window_is_a_catalog_setting_validated_with_its_line(tmp_path):
    import shutil
    from pathlib import Path

    from monitor.catalog import validate_catalog

    shutil.copytree(Path(__file__).resolve().parents[1] / "rules", tmp_path / "rules")
    settings = tmp_path / "rules" / "settings.yaml"
    settings.write_text("version: 1\nimpact: {attribution: 3d}\n")
    catalog, _ = validate_catalog(tmp_path / "rules")
    assert catalog is not None and catalog.attribution_left == catalog.attribution_surveys == 3 * DAY * 1_000_000
    for text, message in (
        ("impact: {attribution: forever}", "impact.attribution: 'forever' is not a duration"),
        ("impact: {window: 3d}", "impact.window: is not a field; allowed here: about, attribution, left, surveys"),
    ):
        settings.write_text(f"version: 1\n{text}\n")
        catalog, problems = validate_catalog(tmp_path / "rules")
        assert catalog is None
        assert any(p.line == 2 and f"{p.path}: {p.message}".startswith(message) for p in problems), problems


def test_an_outcome_judged_ahead_of_the_watermark_does_not_push_out_a_mark_a_queued_leaving_needs():
    """A wrong bill at 0; the customer leaves just inside the window (30 days less 10 s); a good bill
    10 s after the window is judged on arrival, before the watermark reaches the leaving."""
    window = SHIPPED.attribution_left // 1_000_000
    events = [wrong_bill(0), event("customer.left", window - 10), event("bill.issued", window + 10, bill_id="b2")]
    assert judged(events).impact.totals["bill-correct"]["left"] == 1


def test_what_a_customer_holds_for_impact_stays_small_however_long_it_stays_active():
    """An event every 12 hours for 100 days, each a bill (an outcome): the days it was active in and
    its marks stay bounded, and it is counted active once a day."""
    engine = Engine(SHIPPED, lateness=LATENESS)
    for half_day in range(200):
        engine.step(event("bill.issued", half_day * 12 * HOUR, bill_id=f"b{half_day}"))
        engine.forget(engine.state.watermark - DAY * 1_000_000)
    mine = engine.state.customers["c1"]
    assert len(mine.days) <= 2 and len(mine.recent) <= 2 * 16
    assert engine.impact.active_total == 100


def test_a_customer_freed_and_back_the_same_day_is_counted_active_once():
    """With a retention of an hour, a customer with nothing else is held until its day is over."""
    engine = Engine(SHIPPED, lateness=LATENESS)
    engine.step(event("customer.joined", 0))
    engine.advance(engine.state.max_at + 2 * HOUR * 1_000_000)
    engine.forget(engine.state.watermark - HOUR * 1_000_000)
    engine.step(event("call.outbound", 4 * HOUR, call_id="k1"))
    assert engine.impact.active_total == 1


# -- history that comes after what it precedes was attributed ---------------------------------------------
def ordered_and_late(first, late):  # type: ignore[no-untyped-def]
    """Two engines: one reads ``first + late`` sorted by event time, the other ``first``, then an event
    of another customer an hour past the end (the watermark passes everything first holds: it is
    attributed), then ``late`` (late history)."""
    in_order = judged(sorted([*first, *late], key=lambda e: e.at))
    engine = Engine(SHIPPED, lateness=LATENESS)
    for e in first:
        engine.step(e)
    engine.step(event("customer.joined", (max(e.at for e in first) - BASE) / 1_000_000 + 2 * HOUR, "other"))
    assert not engine.state.queue or engine.state.queue[0][0] > max(e.at for e in first)
    for e in late:
        assert engine.step(e) == 2  # LATE
    engine.finish()
    return in_order, engine


def test_a_bad_outcome_that_comes_after_the_leaving_it_precedes_counts_it_left_after_bad():
    in_order, late = ordered_and_late([event("customer.left", HOUR)], [wrong_bill(0)])
    assert in_order.impact.totals["bill-correct"] == {"impacted": 1, "left": 1}
    assert late.impact.totals["bill-correct"] == in_order.impact.totals["bill-correct"]
    # once per touchpoint per leaving, whatever comes later still
    late.step(wrong_bill(MINUTE, bill="b2"))
    assert late.impact.totals["bill-correct"]["left"] == 1


def test_an_outcome_after_the_window_or_after_the_leaving_does_not_count():
    window = SHIPPED.attribution_left // 1_000_000
    in_order, late = ordered_and_late(
        [event("customer.left", window + HOUR)], [wrong_bill(0), event("bill.issued", window + 2 * HOUR, bill_id="b2")]
    )
    assert "left" not in late.impact.totals["bill-correct"]
    assert late.impact.totals == in_order.impact.totals


def test_an_outcome_that_comes_after_an_answer_is_attributed_the_answer_on_its_side():
    first = [answer(HOUR, 3), answer(HOUR, 10, "c2")]
    history = [wrong_bill(0), event("bill.issued", MINUTE, bill_id="b2"), event("bill.issued", 0, "c2", bill_id="b3")]
    in_order, late = ordered_and_late(first, history)
    assert (
        voice(late.impact.totals["bill-correct"])
        == voice(in_order.impact.totals["bill-correct"])
        == {
            "nps": {
                "after_good": {"answers": 1, "mean": 10.0, "nps": 100.0},
                "after_bad": {"answers": 1, "mean": 3.0, "nps": -100.0},
            }
        }
    )


def test_an_answer_counted_after_good_stays_there_when_a_bad_outcome_comes_late():
    """The one case an ordered read differs: a counter never goes down (docs/SEMANTICS.md)."""
    in_order, late = ordered_and_late([event("bill.issued", 0, bill_id="b1"), answer(HOUR, 8)], [wrong_bill(MINUTE)])
    assert voice(in_order.impact.totals["bill-correct"])["nps"]["after_bad"]["answers"] == 1
    assert voice(late.impact.totals["bill-correct"])["nps"]["after_good"]["answers"] == 1


def test_what_was_attributed_is_stored_with_the_customer_and_forgotten_with_its_ids():
    engine = Engine(SHIPPED, lateness=LATENESS)
    engine.step(event("customer.left", HOUR))
    engine.advance(engine.state.max_at + 1)
    record = engine.record("c1")
    assert record["said"] == [[event("customer.left", HOUR).at, "", 0, [], []]]
    again = Engine(SHIPPED, lateness=LATENESS)
    again.load("c1", record)
    again.advance(engine.state.watermark)
    assert again.step(wrong_bill(0)) == 2
    assert again.impact.totals["bill-correct"] == {"impacted": 1, "left": 1}
    assert again.record("c1")["said"][0][3:] == [["bill-correct"], ["bill-correct"]]
    again.forget(again.state.watermark + 1)
    assert again.state.customers.get("c1") is None or again.state.customers["c1"].said is None


def test_attributions_made_out_of_order_are_reached_by_the_outcomes_of_their_windows():
    """A leaving read late is attributed after a later answer (live: once the partition no longer holds
    for it); what is remembered stays in event-time order, and late bad outcomes reach both, once."""
    window = SHIPPED.attribution_left // 1_000_000
    engine = Engine(SHIPPED, lateness=LATENESS)
    engine.step(answer(window + 2 * HOUR, 5))
    engine.step(event("customer.joined", window + 4 * HOUR, "other"))
    engine.step(event("customer.left", window + HOUR))  # late: attributed after the answer, once not held
    engine.advance(engine.state.watermark)
    assert [entry[0] for entry in engine.state.customers["c1"].said] == sorted(
        entry[0] for entry in engine.state.customers["c1"].said
    )
    engine.step(wrong_bill(2 * HOUR))
    engine.step(wrong_bill(HOUR + MINUTE, bill="b2"))
    engine.advance(engine.state.watermark)
    totals = engine.impact.totals["bill-correct"]
    assert totals["left"] == 1 and totals["nps/bad/answers"] == 1
