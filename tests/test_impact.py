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
        "'comment.left' must declare the fields survey (which survey: nps, csat, ces...) and score (a number) to be an answer"
        in messages
    )
    assert "'nps.givn' is not a declared event type; did you mean 'nps.given'?" in messages
