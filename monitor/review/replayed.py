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
from datetime import datetime
from itertools import pairwise

from ..catalog.model import Catalog
from ..contract import Contract
from ..durations import parse_duration
from ..engine.fair import Fair
from ..engine.impact import churn_lift
from ..engine.outcome import Outcome
from ..events import Event
from ..journeys import Journey, describe
from ..observe.windows import STATE_WINDOW
from ..state import judge, partition_standing, warming_up
from ..window import STEPS
from . import periods
from .model import Evidence, Spell, Step, Story, TouchpointEvidence, TouchpointReview, spells

BUCKET = parse_duration("5m")
DAY = parse_duration("1d")
# From a calendar period's start, an instant in the next one (a day is 23 to 25 hours, a month 28 to 31 days).
PERIOD_REACH = {"day": DAY + DAY // 2, "week": 8 * DAY, "month": 32 * DAY}
STORIES = 3  # customers' journeys in a review: one per touchpoint, the vital few first
BAD_KEPT = 2  # the first bad outcomes of each touchpoint in each bucket, to choose a story from
# A few events far from the rest (a stray line a year early) would stretch the span: say so, and how to bound it.
STRAY_SHARE = 0.01  # at most this share of the events in the span...
STRAY_GAP = parse_duration("7d")  # ...with no event for this long (or a period, if longer) between them and the rest


class Tracker:
    """Counts a replay's outcomes by touchpoint and bucket, and customers in and out.

    With ``since`` and ``until`` every line is still judged (the state before ``since`` is what the
    replay made of the lines before it), but only the outcomes and events in [since, until) count, and
    the events outside are counted apart (``outside``)."""

    def __init__(
        self,
        catalog: Catalog,
        period: int,
        window: int = parse_duration(STATE_WINDOW),
        since: int | None = None,
        until: int | None = None,
    ) -> None:
        self.catalog, self.period, self.window = catalog, period, window
        self.since, self.until = since, until
        self.low = since if since is not None else -math.inf
        self.high = until if until is not None else math.inf
        self.bucket = math.gcd(BUCKET, period, window)
        self.counts: dict[str, dict[int, list[int]]] = {t.id: {} for t in catalog.touchpoints}
        # By the buckets of each touchpoint's state window: bucket start -> [good, bad]. These count the
        # outcomes before ``since`` too, so that the state near it is judged on a whole window.
        self.windowed: dict[str, dict[int, list[int]]] = {t.id: {} for t in catalog.touchpoints}
        # A profile's window (the test profile's minute for the wall's hour) scales every touchpoint's.
        self.scaled = catalog.scaled(max(1, parse_duration(STATE_WINDOW) // window))
        self.windows = {t.id: t.window for t in self.scaled.touchpoints}
        # The first bad outcomes of each touchpoint in each bucket, (at, customer): a story is chosen among them.
        self.bad: dict[tuple[str, int], list[tuple[int, str]]] = {}  # by (touchpoint, bucket)
        # The state over the whole span is judged as a replay judges its input: on the outcomes decided
        # on data alone (monitor.engine.fair), with the customers each hurt (distinct) beside it.
        self.fair = Fair(catalog.touchpoints)
        self.impacted: dict[str, set[str]] = {t.id: set() for t in catalog.touchpoints}
        self.joined_kinds, self.left_kinds = set(catalog.contract.joined), set(catalog.contract.left)
        self.joined: dict[int, int] = {}  # by bucket
        self.left: dict[int, int] = {}
        self.first: int | None = None  # of every event read
        self.last: int | None = None
        self.before = self.after = 0  # events read outside [since, until)
        self.customers: set[str] = set()  # with an event in the span: the churn lift's base, as replay's
        self.days: dict[int, list[int]] = {}  # UTC day -> [events, first, last] in the span (for strays)

    def outcome(self, outcome: Outcome) -> None:
        at = outcome.at
        if at >= self.high:
            return
        mine = self.windowed[outcome.touchpoint]
        start = self.windows[outcome.touchpoint].bucket(at)
        pair = mine.get(start)
        if pair is None:
            pair = mine[start] = [0, 0]
        pair[0 if outcome.good else 1] += 1
        if at < self.low:
            return
        self.fair.add(outcome.touchpoint, outcome.good, at)
        buckets = self.counts[outcome.touchpoint]
        index = at // self.bucket
        pair = buckets.get(index)
        if pair is None:
            pair = buckets[index] = [0, 0]
        if outcome.good:
            pair[0] += 1
        else:
            pair[1] += 1
            self.impacted[outcome.touchpoint].add(outcome.customer)
            some = self.bad.setdefault((outcome.touchpoint, index), [])
            if len(some) < BAD_KEPT:
                some.append((at, outcome.customer))
        # (An outcome's instant lies between its events': the events alone set the span.)

    def event(self, event: Event) -> None:
        at = event.at
        if self.first is None or at < self.first:
            self.first = at
            self.fair.first(at)  # (as the engine's: before this event's outcomes come)
        if self.last is None or at > self.last:
            self.last = at
        if at < self.low:
            self.before += 1
            return
        if at >= self.high:
            self.after += 1
            return
        day = self.days.get(at // DAY)
        if day is None:
            self.days[at // DAY] = [1, at, at]
        else:
            day[0] += 1
            day[1], day[2] = min(day[1], at), max(day[2], at)
        self.customers.add(event.customer)
        kind = event.kind
        if kind in self.joined_kinds:
            self.joined[at // self.bucket] = self.joined.get(at // self.bucket, 0) + 1
        elif kind in self.left_kinds:
            self.left[at // self.bucket] = self.left.get(at // self.bucket, 0) + 1

    def span(self) -> tuple[int, int] | None:
        """[first, end) of the review: from ``since`` (else the first event), to ``until`` or the end of
        the input, whichever comes first; None when no event lies in it."""
        if self.first is None or self.last is None or not self.days:
            return None
        first = self.since if self.since is not None else min(day[1] for day in self.days.values())
        end = self.last + 1 if self.until is None else min(self.until, self.last + 1)
        return first, end

    def evidence(self, source: str, impact: dict[str, dict]) -> Evidence | None:
        """The evidence, with each touchpoint's impact (the replay summary's; its customers impacted are
        those of the span); None when no event lies in the span."""
        span = self.span()
        if span is None or self.first is None:
            return None
        begins, end = span
        period, zone = self.period, self.catalog.timezone
        bounds = periods.bounds(begins, end, period, zone)
        count = len(bounds) - 1
        last = end - 1  # the last instant judged
        touchpoints = {}
        for touchpoint in self.catalog.touchpoints:
            buckets = self.counts[touchpoint.id]
            good, bad = [0] * count, [0] * count
            decided = [sum(pair[0] for pair in buckets.values()), sum(pair[1] for pair in buckets.values())]
            # Only the outcomes decided on data alone count: from the first bucket whose outcomes all
            # belong to instances opened after the data began (docs/SEMANTICS.md, "Warming up").
            since = touchpoint.decided_by(self.first)
            fair = -(-since // self.bucket) if since > self.first else -math.inf
            for index, (g, b) in buckets.items():
                if index < fair:
                    continue
                slot = periods.index(bounds, index * self.bucket)
                if 0 <= slot < count:
                    good[slot] += g
                    bad[slot] += b
            warming = [ends <= fair * self.bucket and since > self.first for ends in bounds[1:]]
            windowed = self.windowed[touchpoint.id]
            now = partition_standing(self.scaled[touchpoint.id], windowed, last, self.first)
            mine = dict(impact.get(touchpoint.id, {}))
            mine["customers_impacted"] = len(self.impacted[touchpoint.id])
            # The churn lift, as a replay of the span's lines alone states it (its leavings and answers
            # are counted in the span by the replay: Replay's attributed_within).
            lift = churn_lift(
                mine.get("left_after_bad", 0), mine["customers_impacted"], sum(self.left.values()), len(self.customers)
            )
            mine["churn_lift"] = None if lift is None else round(lift, 6)
            touchpoints[touchpoint.id] = TouchpointEvidence(
                good,
                bad,
                self._spells(self.scaled[touchpoint.id], windowed, begins, end),
                mine,
                judge(touchpoint, now.good, now.bad, self.catalog.z, bool(now.warming)),
                warming,
                judge(
                    touchpoint,
                    *self.fair.counts[touchpoint.id],
                    self.catalog.z,
                    warming_up(touchpoint, last, self.first),
                ),
                (decided[0], decided[1]),
            )
        joined, left = self._per_period(self.joined, bounds), self._per_period(self.left, bounds)
        found = Evidence(
            source,
            bounds[0],
            period,
            end,
            touchpoints,
            joined,
            left,
            window=self.window,
            first=self.first,
            zone=zone,
            since=self.since,
            until=self.until,
            outside=(self.before, self.after),
        )
        found.notes += self._strays()
        return found

    def _per_period(self, counts: dict[int, int], bounds: list[int]) -> list[int]:
        found = [0] * (len(bounds) - 1)
        for index, count in counts.items():
            slot = periods.index(bounds, index * self.bucket)
            if 0 <= slot < len(found):
                found[slot] += count
        return found

    def _strays(self) -> list[str]:
        """What to say of a few events far from the rest at either end of the span (left unbounded): they
        stretch it, and --since or --until would bound it to the rest."""
        days = sorted(self.days.items())
        total = sum(day[0] for _, day in days)
        gap = max(STRAY_GAP, self.period)
        said = []
        for forward in (True, False):
            if (self.since if forward else self.until) is not None:
                continue
            ordered = days if forward else days[::-1]
            counted, cut = 0, None
            for (_, day), (_, nearest) in pairwise(ordered):
                counted += day[0]
                if counted > STRAY_SHARE * total:
                    break
                apart = nearest[1] - day[2] if forward else day[1] - nearest[2]
                if apart >= gap:
                    cut = (counted, nearest)
            if cut is None:
                continue
            counted, nearest = cut
            zone = self.catalog.timezone
            some = f"{counted} event{'s' if counted != 1 else ''} of the input {'lie' if counted != 1 else 'lies'}"
            if forward:
                bound = periods.period_start(nearest[1], DAY, zone)
                said.append(
                    f"{some} far before the rest, which "
                    f"begins {_local_date(nearest[1], zone)}: they stretch the review back to them. "
                    f"To review the rest alone, add --since {_local_date(bound, zone)}."
                )
            else:
                bound = periods.following(periods.period_start(nearest[2], DAY, zone), DAY, zone)
                said.append(
                    f"{some} far after the rest, which "
                    f"ends {_local_date(nearest[2], zone)}: they stretch the review on to them. "
                    f"To review the rest alone, add --until {_local_date(bound, zone)}."
                )
        return said

    def _spells(self, touchpoint, buckets: dict[int, list[int]], begins: int, end: int) -> list[Spell]:  # type: ignore[no-untyped-def]
        """The state over the touchpoint's window at the end of each of its buckets, from its first
        outcome's to the window's end after the last (the state the workers serve then), or to the end
        of the span: a spell still broken there has no end; those before the span's start are cut at it.
        A rolling window slides a bucket at a time, adding the newest and taking out the one that left it."""
        if not buckets or self.first is None:
            return []
        window, z = touchpoint.window, self.catalog.z
        step, last_bucket, last = window.step, max(buckets), end - 1
        states: list[tuple[int, str | None]] = []
        good = bad = 0
        bucket = min(buckets)
        while bucket <= last:
            following = bucket + step if step else window.bucket(bucket + PERIOD_REACH[window.period])
            pair = buckets.get(bucket, (0, 0))
            if step:
                gone = buckets.get(bucket - STEPS * step, (0, 0))
                good, bad = good + pair[0] - gone[0], bad + pair[1] - gone[1]
            else:
                good, bad = pair[0], pair[1]
            instant = min(following - 1, last)
            warming = warming_up(touchpoint, window.start(instant), self.first)
            states.append((min(following, end), judge(touchpoint, good, bad, z, warming).state))
            if following >= end or following > last_bucket + (window.span or 0):
                break
            bucket = following
        found = spells(states)
        return [
            Spell(max(spell.start, begins), spell.end) for spell in found if spell.end is None or spell.end > begins
        ]

    def chosen(
        self, order: Iterable[TouchpointReview], bounds: list[int], forgotten: Iterable[str] = ()
    ) -> list[tuple[str, str]]:
        """(touchpoint, customer) of the stories to tell: for each touchpoint of ``order`` (at most
        STORIES, each customer once), in its worst broken period, the first customer whose bad outcome
        came in the longest spell broken of that period (or, without one, that period's first); never
        one of ``forgotten`` (``tpmon report --forget``)."""
        forgotten = set(forgotten)
        chosen: list[tuple[str, str]] = []
        for row in order:
            if len(chosen) == STORIES or row.worst is None:
                continue
            begins, ends = bounds[row.worst], bounds[row.worst + 1]
            candidates = [
                entry
                for index in range(begins // self.bucket, -(-ends // self.bucket))
                for entry in self.bad.get((row.touchpoint.id, index), ())
                if begins <= entry[0] < ends
            ]
            inside = [spell for spell in row.spells if spell.overlaps(begins, ends)]
            if inside:
                spell = max(inside, key=lambda s: s.length(ends))
                until = spell.end if spell.end is not None else math.inf
                candidates = [c for c in candidates if spell.start <= c[0] <= until] or candidates
            taken = {customer for _, customer in chosen} | forgotten
            for _, customer in candidates:
                if customer not in taken:
                    chosen.append((row.touchpoint.id, customer))
                    break
        return chosen


def _local_date(at: int, zone) -> str:  # type: ignore[no-untyped-def]
    return datetime.fromtimestamp(at // 1_000_000, zone).date().isoformat()


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
