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
