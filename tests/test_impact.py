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
from monitor.engine.impact import Impact, fingerprint, voice  # noqa: E402
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


def test_an_engine_that_does_not_count_customers_active_judges_the_same():
    """A replay does without the customers active (its churn lift counts the customers of its input)."""
    events = [
        wrong_bill(0),
        event("customer.joined", HOUR, customer="c2"),
        wrong_bill(DAY + HOUR, customer="c2", bill="b2"),
        answer(DAY + 2 * HOUR, 3, customer="c2"),
        event("customer.left", 2 * DAY),
    ]
    counting, not_counting = Engine(SHIPPED, lateness=LATENESS), Engine(SHIPPED, lateness=LATENESS, count_active=False)
    for engine in (counting, not_counting):
        for e in events:
            engine.step(e)
        engine.finish()
    assert counting.impact.active_total == 4 and not_counting.impact.active_total == 0
    assert not_counting.counts() == counting.counts() and not_counting.impact.totals == counting.impact.totals
    assert all(mine.days is None for mine in not_counting.state.customers.values())


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


# -- distinct customers impacted: each customer's latest bad outcome per touchpoint (live) ----------------
def test_the_engine_says_when_a_bad_outcome_is_its_customers_latest_and_late_history_moves_nothing():
    """Live, a customer is counted in the bucket of its latest bad outcome of a touchpoint: the engine
    says (customer, touchpoint, the instant it replaces or -1, its instant) for each new latest. A later
    bad outcome moves it; an older one (late history) and one at the same instant do not."""
    engine = Engine(SHIPPED, lateness=LATENESS, track=True)
    for e in (wrong_bill(0), wrong_bill(HOUR, bill="b2"), wrong_bill(HOUR, bill="b3"), wrong_bill(2 * HOUR, "c2")):
        engine.step(e)
    engine.step(wrong_bill(MINUTE, bill="late"))  # history, older than c1's latest
    first, later = wrong_bill(0).at, wrong_bill(HOUR).at
    assert engine.latest_bad == [
        ("c1", "bill-correct", -1, first),
        ("c1", "bill-correct", first, later),
        ("c2", "bill-correct", -1, wrong_bill(2 * HOUR).at),
    ]
    assert engine.counts()["bill-correct"] == [0, 5]
    replayed = Engine(SHIPPED, lateness=LATENESS)  # a replay does without: it counts customers whole
    replayed.step(wrong_bill(0))
    assert replayed.latest_bad == []


def test_a_customers_latest_bad_outcome_is_kept_for_the_longest_window_and_a_day():
    """The shipped catalog's longest state window is 7 days: a customer's bad mark is kept 8 days at
    least (30 here, the attribution), its good ones as long as answers need them."""
    engine = Engine(SHIPPED, lateness=LATENESS)
    assert engine.impact.keep == SHIPPED.attribution_left
    import dataclasses

    from monitor.durations import parse_duration

    short = dataclasses.replace(
        SHIPPED, attribution_left=parse_duration("1d"), attribution_surveys=parse_duration("2d")
    )
    engine = Engine(short, lateness=LATENESS)
    assert engine.impact.keep == parse_duration("8d") and engine.impact.keep_good == parse_duration("2d")


# -- attribution per signal --------------------------------------------------------------------------------
def catalog_with(tmp_path, settings: str, answer_fields: str = ""):  # type: ignore[no-untyped-def]
    """The shipped catalog with ``settings`` in a file of its own (and survey.answered's optional fields)."""
    import shutil
    from pathlib import Path

    from monitor.catalog import validate_catalog

    rules = tmp_path / "rules"
    shutil.copytree(Path(__file__).resolve().parents[1] / "rules", rules)
    if answer_fields:
        events = rules / "events.yaml"
        text = events.read_text()
        declared = "optional: {comment: {kind: string, personal: true}}"  # (the shipped optional fields)
        assert declared in text
        events.write_text(text.replace(declared, f"optional: {{{answer_fields[1:-1]}, {declared[11:-1]}}}"))
    (rules / "settings.yaml").write_text(f"version: 1\n{settings}\n")
    return validate_catalog(rules)


def test_leavings_and_answers_each_have_their_attribution_window(tmp_path):
    """left: 60d, surveys: 14d. A wrong bill; 20 days on, an answer (past 14 days: no touchpoint) and
    50 days on, a leaving (within 60 days: after bad)."""
    catalog, problems = catalog_with(tmp_path, "impact: {left: 60d, surveys: 14d}")
    assert catalog is not None, problems
    assert (catalog.attribution_left, catalog.attribution_surveys) == (60 * DAY * 1_000_000, 14 * DAY * 1_000_000)
    events = [wrong_bill(0), answer(20 * DAY, 2), event("customer.left", 50 * DAY)]
    tallies = judged(events, catalog).impact.totals["bill-correct"]
    assert tallies == {"impacted": 1, "left": 1}
    shipped = judged(events).impact.totals["bill-correct"]  # 30d for both: the answer is, the leaving is not
    assert shipped == {"impacted": 1, "nps/bad/answers": 1, "nps/bad/sum": 2, "nps/bad/detractor": 1}


def test_a_late_outcome_reaches_each_signal_within_its_own_window(tmp_path):
    """The outcomes come after the leaving and the answer were attributed (late history): the same
    windows apply (20 days: the answer, past 14 days, is not reached; the leaving is)."""
    catalog, _ = catalog_with(tmp_path, "impact: {left: 60d, surveys: 14d}")
    engine = Engine(catalog, lateness=LATENESS)
    engine.step(answer(20 * DAY, 2))
    engine.step(event("customer.left", 20 * DAY + 1))
    engine.advance(engine.state.max_at)
    engine.step(wrong_bill(0))
    engine.finish()
    assert engine.impact.totals["bill-correct"] == {"impacted": 1, "left": 1}


@pytest.mark.parametrize(
    "settings, message",
    [
        ("impact: {left: soon}", "impact.left: 'soon' is not a duration"),
        ("impact: {surveys: 14}", "impact.surveys:"),
        ("impact: {about: [claim_id]}", "impact.about[0]: 'claim_id' is not a field of the survey answer types (survey.answered)"),
        ("impact: {about: [score]}", "impact.about[0]: 'score' must be a string field (an instance's key), not number"),
        ("impact: {about: [tiket_id]}", "impact.about[0]: 'tiket_id' is not a field of the survey answer types (survey.answered); did you mean 'ticket_id'?"),
    ],
    ids=["a left window that is no duration", "a surveys window without unit", "an about field no answer declares",
         "an about field that is a number", "a typo in an about field"],
)  # fmt: skip
def test_impact_settings_are_validated_with_their_line(tmp_path, settings, message):
    catalog, problems = catalog_with(tmp_path, settings, "{ticket_id: string}")
    assert catalog is None
    found = [f"{p.path}: {p.message}" for p in problems if p.file.endswith("settings.yaml") and p.line == 2]
    assert any(text.startswith(message) for text in found), problems


def test_the_same_impact_setting_in_two_files_must_agree(tmp_path):
    catalog, problems = catalog_with(tmp_path, "impact: {surveys: 14d}")
    (tmp_path / "rules" / "more.yaml").write_text("version: 1\nimpact: {surveys: 7d}\n")
    from monitor.catalog import validate_catalog

    catalog, problems = validate_catalog(tmp_path / "rules")
    assert catalog is None
    assert any(p.path == "impact.surveys" and "different values" in p.message for p in problems), problems


# -- keyed answers -------------------------------------------------------------------------------------
def keyed(tmp_path):  # type: ignore[no-untyped-def]
    catalog, problems = catalog_with(tmp_path, "impact: {about: [ticket_id]}", "{ticket_id: string}")
    assert catalog is not None, problems
    assert catalog.about == ("ticket_id",)
    return catalog


def keyed_event(catalog, event_type: str, seconds: float, **fields):  # type: ignore[no-untyped-def]
    import orjson

    from tests.builders import at

    data = {"event_id": f"k{event_type}{seconds}{sorted(fields.items())}", "type": event_type, "customer_id": "c1",
            "occurred_at": at(seconds), **fields}  # fmt: skip
    return catalog.decoder.decode(orjson.dumps(data), "test")


def test_an_answer_about_a_ticket_goes_to_that_tickets_touchpoints_only(tmp_path):
    """The customer's ticket t1 was resolved late (ticket-resolved bad) and a call of theirs went
    unanswered (call-answered bad). An answer about t1 goes to t1's touchpoints only, after bad; an
    answer about another ticket (t9) to none; an answer about no ticket to every touchpoint, as before."""
    catalog = keyed(tmp_path)
    e = lambda *args, **fields: keyed_event(catalog, *args, **fields)  # noqa: E731
    events = [
        e("ticket.opened", 0, ticket_id="t1", category="billing"),
        e("ticket.responded", 10 * MINUTE, ticket_id="t1"),
        e("ticket.resolved", 30 * HOUR, ticket_id="t1"),
        e("call.abandoned", HOUR, call_id="k1", queue="q", wait_seconds=300),
        e("survey.answered", 31 * HOUR, survey_id="s1", survey="csat", score=1, ticket_id="t1"),
        e("survey.answered", 31 * HOUR + 1, survey_id="s2", survey="csat", score=2, ticket_id="t9"),
        e("survey.answered", 31 * HOUR + 2, survey_id="s3", survey="csat", score=3),
    ]
    totals = judged(events, catalog).impact.totals
    answers = {t: (named.get("csat/bad/answers", 0), named.get("csat/good/answers", 0)) for t, named in totals.items()}
    assert answers["ticket-resolved"] == (2, 0)  # s1 and s3, after bad
    assert answers["ticket-responded"] == (0, 2)  # s1 and s3, after good
    assert answers["call-answered"] == (1, 0)  # s3 only: s1 is about t1, not about a call
    assert totals["ticket-resolved"]["csat/bad/sum"] == 4


def test_a_keyed_answer_reaches_a_late_outcome_of_its_instance_only(tmp_path):
    """The ticket's outcome comes after the answer about it (late history), and so does a call's: the
    answer about t1 reaches the ticket's touchpoint then, never the call's."""
    catalog = keyed(tmp_path)
    e = lambda *args, **fields: keyed_event(catalog, *args, **fields)  # noqa: E731
    engine = Engine(catalog, lateness=LATENESS)
    engine.step(e("survey.answered", 2 * DAY, survey_id="s1", survey="csat", score=1, ticket_id="t1"))
    engine.advance(engine.state.max_at)
    for late in (
        e("ticket.opened", 0, ticket_id="t1", category="billing"),
        e("ticket.responded", MINUTE, ticket_id="t1"),
        e("call.abandoned", HOUR, call_id="k1", queue="q", wait_seconds=300),
    ):
        engine.step(late)
    engine.finish()
    totals = engine.impact.totals
    assert totals["ticket-responded"].get("csat/good/answers") == 1
    assert "csat/bad/answers" not in totals.get("call-answered", {})
    record = engine.record("c1")
    assert record["said"][0][-1] == fingerprint("t1")  # what it was about, stored with it
    restored = Engine(catalog, lateness=LATENESS)
    restored.load("c1", record)
    assert restored.record("c1") == record


def test_keyed_marks_cost_four_bytes_more():
    """A mark is a 60-bit int (32 bytes); with a 16-bit instance fingerprint, 76 bits (36 bytes)."""
    import sys

    from monitor.engine.impact import Impact

    at = wrong_bill(0).at
    plain, keyed_ = Impact(SHIPPED.ids, DAY, True), Impact(SHIPPED.ids, DAY, True, keyed=True)
    assert sys.getsizeof(plain.mark(at, True, 12)) == 32
    assert sys.getsizeof(keyed_.mark(at, True, 12, fingerprint("t1"))) == 36
    assert keyed_.parts(keyed_.mark(at, True, 12, 7)) == (at, True, 12, 7)


# -- churn lift ----------------------------------------------------------------------------------------------
def test_the_churn_lift_compares_the_churn_after_bad_with_everyones():
    """Four customers: two with a wrong bill, one of whom leaves; and one more who leaves. Churn after
    bill-correct's bad outcomes: 1 of 2; everyone's: 2 leavings of 4 customers: a lift of 1.0; a
    touchpoint with no customer impacted has none."""
    import orjson

    from monitor.replay import Replay
    from tests.builders import at

    def line(event_type: str, customer: str, seconds: float, **fields: object) -> bytes:
        data = {"event_id": f"{event_type}-{customer}", "type": event_type, "customer_id": customer}
        return orjson.dumps({**data, "occurred_at": at(seconds), **fields})

    bill = {"amount": 12.0, "expected_amount": 10.0}
    replay = Replay(SHIPPED)
    replay.feed([
        line("bill.issued", "a", 0, bill_id="b1", **bill), line("bill.issued", "b", 0, bill_id="b2", **bill),
        line("customer.left", "a", HOUR), line("bill.issued", "c", 0, bill_id="b3", amount=1.0, expected_amount=1.0),
        line("customer.left", "d", HOUR),
    ])  # fmt: skip
    summary = replay.finish()
    bills = summary["touchpoints"]["bill-correct"]["impact"]
    assert (bills["customers_impacted"], bills["left_after_bad"], bills["churn_lift"]) == (2, 1, 1.0)
    assert summary["touchpoints"]["call-answered"]["impact"]["churn_lift"] is None


@pytest.mark.parametrize(
    "figures, lift",
    [((3, 10, 5, 100), pytest.approx(6.0)), ((0, 0, 5, 100), None), ((1, 2, 0, 100), None), ((1, 2, 5, 0), None)],
    ids=["3 of 10 hurt left, 5 of 100 in all: 6x", "nobody hurt", "nobody left", "nobody active"],
)
def test_churn_lift(figures, lift):
    from monitor.engine.impact import churn_lift

    assert churn_lift(*figures) == lift


def test_a_stored_customer_is_worth_putting_back_exactly_when_prune_would_drop_something():
    """Retention reads a customer back from disk only when ``may_prune`` says its record has something to
    go: it must agree with what ``prune`` drops in memory, bad marks kept longer than good ones, and a
    mark of a touchpoint the catalog no longer has (``load`` drops it) counting for nothing."""
    from monitor.engine.state import CustomerState

    day = 86_400 * 1_000_000  # (instants in µs)
    impact = Impact(("a", "b"), left_window=10 * day, marks_good=True, survey_window=2 * day)
    at = 100 * day
    for bad in (False, True):
        for age in (1, 3, 5, 11, 12):
            state = CustomerState()
            state.recent = (impact.mark(at, bad, 0),)
            record = impact.record(state)
            watermark = at + age * day + 1
            assert impact.may_prune(record, watermark) == impact.prune(state, watermark), (bad, age)
    gone = {"recent": [["removed", at << 1 | 1]], "days": []}
    assert not impact.may_prune(gone, at + 100 * DAY)
