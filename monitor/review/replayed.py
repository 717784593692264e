"""The review's evidence from a replay: ``Tracker`` is fed the replay's outcomes and events as they
are decided and read, and gives the ``Evidence`` at the end.

Outcomes are counted in small buckets of event time; the periods sum them, and the spells come from
the state over the live wall's window (1h) at the end of each bucket, as the state recording rule
computes it live (touchpoint:tpmon_touchpoint_state:value), so a replay's spells are the live ones.
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import orjson

from ..catalog.model import Catalog
from ..durations import parse_duration
from ..engine.outcome import Outcome
from ..events import Event
from ..journeys import Journey
from ..observe.windows import STATE_WINDOW
from ..state import touchpoint_state
from .model import Evidence, Spell, Step, Story, TouchpointEvidence, TouchpointReview, period_start, spells

BUCKET = parse_duration("5m")
STORIES = 3  # customers' journeys in a review: one per touchpoint, the vital few first
BAD_KEPT = 2  # the first bad outcomes of each touchpoint in each bucket, to choose a story from
ENVELOPE = {"event_id", "id", "type", "time", "occurred_at", "customer_id", "source", "specversion", "subject"}
DETAIL = 120  # characters of an event's fields in a story


class Tracker:
    """Counts a replay's outcomes by touchpoint and bucket, and customers in and out."""

    def __init__(self, catalog: Catalog, period: int, window: int = parse_duration(STATE_WINDOW)) -> None:
        self.catalog, self.period, self.window = catalog, period, window
        self.bucket = math.gcd(BUCKET, period, window)
        self.counts: dict[str, dict[int, list[int]]] = {t.id: {} for t in catalog.touchpoints}
        # The first bad outcomes of each touchpoint in each bucket, (at, customer): a story is chosen among them.
        self.bad: dict[tuple[str, int], list[tuple[int, str]]] = {}  # by (touchpoint, bucket)
        self.joined_kinds, self.left_kinds = set(catalog.contract.joined), set(catalog.contract.left)
        self.joined: dict[int, int] = {}
        self.left: dict[int, int] = {}
        self.first: int | None = None
        self.last: int | None = None

    def outcome(self, outcome: Outcome) -> None:
        buckets = self.counts[outcome.touchpoint]
        index = outcome.at // self.bucket
        pair = buckets.get(index)
        if pair is None:
            pair = buckets[index] = [0, 0]
        if outcome.good:
            pair[0] += 1
        else:
            pair[1] += 1
            some = self.bad.setdefault((outcome.touchpoint, index), [])
            if len(some) < BAD_KEPT:
                some.append((outcome.at, outcome.customer))
        # (An outcome's instant lies between its events': the events alone set the span.)

    def event(self, event: Event) -> None:
        at = event.at
        if self.first is None or at < self.first:
            self.first = at
        if self.last is None or at > self.last:
            self.last = at
        kind = event.kind
        if kind in self.joined_kinds:
            start = period_start(event.at, self.period)
            self.joined[start] = self.joined.get(start, 0) + 1
        elif kind in self.left_kinds:
            start = period_start(event.at, self.period)
            self.left[start] = self.left.get(start, 0) + 1

    def evidence(self, source: str, impact: dict[str, dict]) -> Evidence | None:
        """The evidence, with each touchpoint's impact over the span (the replay summary's); None when
        the replay read no event."""
        if self.first is None or self.last is None:
            return None
        period, start = self.period, period_start(self.first, self.period)
        periods = (self.last - start) // period + 1
        touchpoints = {}
        for touchpoint in self.catalog.touchpoints:
            buckets = self.counts[touchpoint.id]
            good, bad = [0] * periods, [0] * periods
            for index, (g, b) in buckets.items():
                slot = (index * self.bucket - start) // period
                good[slot] += g
                bad[slot] += b
            touchpoints[touchpoint.id] = TouchpointEvidence(
                good, bad, self._spells(touchpoint, buckets), impact.get(touchpoint.id, {})
            )
        starts = range(start, start + periods * period, period)
        joined, left = [self.joined.get(at, 0) for at in starts], [self.left.get(at, 0) for at in starts]
        return Evidence(source, start, period, self.last + 1, touchpoints, joined, left, window=self.window)

    def _spells(self, touchpoint, buckets: dict[int, list[int]]) -> list[Spell]:  # type: ignore[no-untyped-def]
        """The state over the window at the end of every bucket, from the first outcome's to the
        window's end after the last (the state a live rule evaluates then), or to the end of the input:
        a spell still broken there has no end."""
        if not buckets or self.last is None:
            return []
        width = self.window // self.bucket
        first, last = min(buckets), min(max(buckets) + width, self.last // self.bucket)
        end = self.last + 1
        good = bad = 0
        states: list[tuple[int, str | None]] = []
        for index in range(first, last + 1):
            pair = buckets.get(index)
            if pair is not None:
                good, bad = good + pair[0], bad + pair[1]
            gone = buckets.get(index - width)
            if gone is not None:
                good, bad = good - gone[0], bad - gone[1]
            at = (index + 1) * self.bucket
            states.append((min(at, end), touchpoint_state(touchpoint, good, bad)))
            if at >= end:
                break
        return spells(states)

    def chosen(self, order: Iterable[TouchpointReview], start: int) -> list[tuple[str, str]]:
        """(touchpoint, customer) of the stories to tell: for each touchpoint of ``order`` (at most
        STORIES, each customer once), in its worst broken period, the first customer whose bad outcome
        came in the longest spell broken of that period (or, without one, that period's first)."""
        chosen: list[tuple[str, str]] = []
        for row in order:
            if len(chosen) == STORIES or row.worst is None:
                continue
            begins = start + row.worst * self.period
            ends = begins + self.period
            candidates = [
                entry
                for index in range(begins // self.bucket, ends // self.bucket)
                for entry in self.bad.get((row.touchpoint.id, index), ())
            ]
            inside = [spell for spell in row.spells if spell.overlaps(begins, ends)]
            if inside:
                spell = max(inside, key=lambda s: s.length(ends))
                until = spell.end if spell.end is not None else math.inf
                candidates = [c for c in candidates if spell.start <= c[0] <= until] or candidates
            taken = {customer for _, customer in chosen}
            for _, customer in candidates:
                if customer not in taken:
                    chosen.append((row.touchpoint.id, customer))
                    break
        return chosen


def story(journey: Journey, touchpoint: str) -> Story:
    """A story from a customer's journey: its events and outcomes in time order, each event with its
    own fields (a CloudEvent's data's), not its envelope."""
    steps = []
    for at, _, raw in journey.events:
        event = orjson.loads(raw)
        steps.append(Step(at, str(event.get("type", "?")), _fields(event)))
    for at, _, outcome in journey.outcomes:
        detail = outcome["reason"].replace("_", " ")
        if "latency_seconds" in outcome:
            detail += f" after {_seconds(outcome['latency_seconds'])}"
        steps.append(Step(at, outcome["touchpoint"], detail, outcome["outcome"]))
    steps.sort(key=lambda step: (step.at, step.outcome is not None))
    return Story(journey.customer, touchpoint, steps, journey.dropped_events + journey.dropped_outcomes)


def _fields(event: dict) -> str:
    fields = {name: value for name, value in event.items() if name not in ENVELOPE}
    data = fields.pop("data", None)
    if isinstance(data, dict):
        fields.update(data)
    shown = [f"{name} {value}" for name, value in fields.items() if isinstance(value, str | int | float | bool)]
    text = ", ".join(shown)
    return text if len(text) <= DETAIL else text[: DETAIL - 1] + "…"


def _seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
