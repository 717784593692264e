"""The review's evidence from a replay: ``Tracker`` is fed the replay's outcomes and events as they
are decided and read, and gives the ``Evidence`` at the end.

Outcomes are counted in small buckets of event time, which the periods sum; and in the buckets of each
touchpoint's own state window (``monitor.window``), from which come the spells broken (the state over
that window at the end of each of its buckets, as the workers serve it live and the recording rule
touchpoint:tpmon_touchpoint_state:value states it) and the state at the end, the review's "now".
"""

from __future__ import annotations

import math
from collections.abc import Iterable

from ..catalog.model import Catalog
from ..contract import Contract
from ..durations import parse_duration
from ..engine.outcome import Outcome
from ..events import Event
from ..journeys import Journey, describe
from ..observe.windows import STATE_WINDOW
from ..state import judge, partition_standing, warming_up
from ..window import STEPS
from .model import Evidence, Spell, Step, Story, TouchpointEvidence, TouchpointReview, period_start, spells

BUCKET = parse_duration("5m")
DAY = parse_duration("1d")
# From a calendar period's start, an instant in the next one (a day is 23 to 25 hours, a month 28 to 31 days).
PERIOD_REACH = {"day": DAY + DAY // 2, "week": 8 * DAY, "month": 32 * DAY}
STORIES = 3  # customers' journeys in a review: one per touchpoint, the vital few first
BAD_KEPT = 2  # the first bad outcomes of each touchpoint in each bucket, to choose a story from


class Tracker:
    """Counts a replay's outcomes by touchpoint and bucket, and customers in and out."""

    def __init__(self, catalog: Catalog, period: int, window: int = parse_duration(STATE_WINDOW)) -> None:
        self.catalog, self.period, self.window = catalog, period, window
        self.bucket = math.gcd(BUCKET, period, window)
        self.counts: dict[str, dict[int, list[int]]] = {t.id: {} for t in catalog.touchpoints}
        # By the buckets of each touchpoint's state window: bucket start -> [good, bad].
        self.windowed: dict[str, dict[int, list[int]]] = {t.id: {} for t in catalog.touchpoints}
        # A profile's window (the test profile's minute for the wall's hour) scales every touchpoint's.
        self.scaled = catalog.scaled(max(1, parse_duration(STATE_WINDOW) // window))
        self.windows = {t.id: t.window for t in self.scaled.touchpoints}
        # The first bad outcomes of each touchpoint in each bucket, (at, customer): a story is chosen among them.
        self.bad: dict[tuple[str, int], list[tuple[int, str]]] = {}  # by (touchpoint, bucket)
        self.joined_kinds, self.left_kinds = set(catalog.contract.joined), set(catalog.contract.left)
        self.joined: dict[int, int] = {}
        self.left: dict[int, int] = {}
        self.first: int | None = None
        self.last: int | None = None

    def outcome(self, outcome: Outcome) -> None:
        mine = self.windowed[outcome.touchpoint]
        start = self.windows[outcome.touchpoint].bucket(outcome.at)
        pair = mine.get(start)
        if pair is None:
            pair = mine[start] = [0, 0]
        pair[0 if outcome.good else 1] += 1
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
            # Only the outcomes decided on data alone count: from the first bucket whose outcomes all
            # belong to instances opened after the data began (docs/SEMANTICS.md, "Warming up").
            since = touchpoint.decided_by(self.first)
            fair = -(-since // self.bucket) if since > self.first else -math.inf
            for index, (g, b) in buckets.items():
                if index < fair:
                    continue
                slot = (index * self.bucket - start) // period
                good[slot] += g
                bad[slot] += b
            warming = [
                begins + period <= fair * self.bucket for begins in range(start, start + periods * period, period)
            ]
            warming = [warm and since > self.first for warm in warming]
            windowed = self.windowed[touchpoint.id]
            now = partition_standing(self.scaled[touchpoint.id], windowed, self.last, self.first)
            touchpoints[touchpoint.id] = TouchpointEvidence(
                good,
                bad,
                self._spells(self.scaled[touchpoint.id], windowed),
                impact.get(touchpoint.id, {}),
                judge(touchpoint, now.good, now.bad, self.catalog.z, bool(now.warming)),
                warming,
            )
        starts = range(start, start + periods * period, period)
        joined, left = [self.joined.get(at, 0) for at in starts], [self.left.get(at, 0) for at in starts]
        return Evidence(
            source, start, period, self.last + 1, touchpoints, joined, left, window=self.window, first=self.first
        )

    def _spells(self, touchpoint, buckets: dict[int, list[int]]) -> list[Spell]:  # type: ignore[no-untyped-def]
        """The state over the touchpoint's window at the end of each of its buckets, from its first
        outcome's to the window's end after the last (the state the workers serve then), or to the end
        of the input: a spell still broken there has no end. A rolling window slides a bucket at a
        time, adding the newest and taking out the one that left it."""
        if not buckets or self.last is None or self.first is None:
            return []
        window, end, z = touchpoint.window, self.last + 1, self.catalog.z
        step, last_bucket = window.step, max(buckets)
        states: list[tuple[int, str | None]] = []
        good = bad = 0
        bucket = min(buckets)
        while bucket <= self.last:
            following = bucket + step if step else window.bucket(bucket + PERIOD_REACH[window.period])
            pair = buckets.get(bucket, (0, 0))
            if step:
                gone = buckets.get(bucket - STEPS * step, (0, 0))
                good, bad = good + pair[0] - gone[0], bad + pair[1] - gone[1]
            else:
                good, bad = pair[0], pair[1]
            instant = min(following - 1, self.last)
            warming = warming_up(touchpoint, window.start(instant), self.first)
            states.append((min(following, end), judge(touchpoint, good, bad, z, warming).state))
            if following >= end or following > last_bucket + (window.span or 0):
                break
            bucket = following
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


def story(journey: Journey, touchpoint: str, contract: Contract) -> Story:
    """A story from a customer's journey: its events and outcomes in time order, each event by its
    declared type with what the catalog says of it (``monitor.journeys.describe``: its declaration's
    story template, or a few declared fields), whatever shape its source sent it in."""
    steps = [Step(at, view["type"], describe(view, contract)) for at, view in journey.views()]
    for at, _, outcome in journey.outcomes:
        detail = outcome["reason"].replace("_", " ")
        if "latency_seconds" in outcome:
            detail += f" after {_seconds(outcome['latency_seconds'])}"
        steps.append(Step(at, outcome["touchpoint"], detail, outcome["outcome"]))
    steps.sort(key=lambda step: (step.at, step.outcome is not None))
    return Story(journey.customer, touchpoint, steps, journey.dropped_events + journey.dropped_outcomes)


def _seconds(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
