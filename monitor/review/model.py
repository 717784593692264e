"""The reliability review (docs/REVIEW.md): what the periods of a span say about each touchpoint.

Pure: a source (a replay, ``monitor.review.replayed``; a Prometheus, ``tpmon.report.prometheus``) gathers
``Evidence``, counts per period and the spells a touchpoint was broken, and ``review`` derives the rest
the same way for both: reliability and state per period, the state now (the last period's), the change
against the period before, the error budget left over the span, and the vital few.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from ..catalog.model import Catalog, Touchpoint
from ..conventions import BROKEN, UNKNOWN, WARMING_UP
from ..durations import format_duration, parse_duration
from ..state import Verdict, judge, reliability, vital_few
from .periods import UTC_ZONE, following

DISTINCT = "distinct customers"
MAX_PERIODS = 400  # a chart of more periods than this is a smear: a longer --period says more


def too_many(periods: int, period: int) -> str | None:
    """What to say when a span holds more periods than a review can show, or None."""
    if periods <= MAX_PERIODS:
        return None
    return (
        f"{periods} periods of {format_duration(period)} is more than a review can show ({MAX_PERIODS}): "
        "choose a longer --period"
    )


@dataclass(frozen=True)
class Spell:
    """A time a touchpoint was broken, on the live wall's window: from ``start`` to ``end`` (None
    while it still was at the end of the evidence)."""

    start: int
    end: int | None

    def length(self, until: int) -> int:
        return (self.end if self.end is not None else until) - self.start

    def overlaps(self, begins: int, ends: int) -> bool:
        """Whether some of it lies in [begins, ends)."""
        return self.start < ends and (self.end is None or self.end > begins)


@dataclass
class Step:
    """One entry of a story: an event the customer's systems sent, or an outcome it had."""

    at: int
    what: str  # the event's type, or the touchpoint of an outcome
    detail: str = ""
    outcome: str | None = None  # good or bad, for an outcome


@dataclass
class Story:
    """One customer's reconstructed journey, chosen for a bad outcome of ``touchpoint``."""

    customer: str
    touchpoint: str
    steps: list[Step]
    dropped: int = 0  # earlier entries the journey no longer holds


@dataclass
class TouchpointEvidence:
    good: list[int]  # per period
    bad: list[int]
    spells: list[Spell] = field(default_factory=list)
    impact: dict = field(default_factory=dict)  # monitor.engine.impact.impact_view over the span
    now: Verdict | None = None  # its state over its own window at the end (None: the last period's)
    warming: list[bool] | None = None  # per period: no outcome in it decided on data alone (warming up)
    # Its state over the whole span, as a replay judges its input (None: judged here on the periods' sums).
    span: Verdict | None = None
    # Every outcome decided in the span, (good, bad), as a replay counts them: those of warming-up
    # periods too, which the periods and the state leave out (None: the periods' sums).
    counted: tuple[int, int] | None = None


@dataclass
class Evidence:
    """What a source found, per period from ``start`` (aligned by ``period_start`` in ``zone``: calendar
    periods, see ``monitor.review.periods``)."""

    source: str  # where it comes from, for the reader: "replay of events.jsonl", "Prometheus at ..."
    start: int
    period: int
    end: int  # where the evidence ends (the last event, or now): the last period may be partial
    touchpoints: dict[str, TouchpointEvidence]
    joined: list[int]
    left: list[int]
    window: int = parse_duration("1h")  # of the state whose spells broken are given
    stories: list[Story] = field(default_factory=list)
    impacted_per: str = DISTINCT  # how customers impacted are counted by this source
    notes: list[str] = field(default_factory=list)  # what the reader should know about the source
    first: int | None = None  # the first data, when the source knows it: periods before it warm up
    zone: ZoneInfo = UTC_ZONE  # the catalog's: periods are its days and weeks, times are shown in it
    since: int | None = None  # the bounds the review was asked for (--since, --until), when given
    until: int | None = None
    outside: tuple[int, int] = (0, 0)  # events read but left out: before ``since``, from ``until`` on
    _bounds: list[int] | None = field(default=None, repr=False, compare=False)

    @property
    def periods(self) -> int:
        return len(self.joined)

    @property
    def partial(self) -> bool:
        """Whether the last period holds less than half of one (the evidence ends early in it)."""
        if not self.periods:
            return False
        begins, ends = self.bounds()[-2:]
        return self.end - begins < (ends - begins) / 2

    @property
    def now(self) -> int:
        """The index of the period the review calls now: the last, unless it is partial and one before it
        is whole (a Monday morning's week says little yet)."""
        return self.periods - 2 if self.partial and self.periods > 1 else self.periods - 1

    def bounds(self) -> list[int]:
        """Each period's start, then the last one's end: a local day may be 23 or 25 hours long."""
        if self._bounds is None or len(self._bounds) != self.periods + 1:
            found = [self.start]
            for _ in range(self.periods):
                found.append(following(found[-1], self.period, self.zone))
            self._bounds = found
        return self._bounds

    def starts(self) -> list[int]:
        return self.bounds()[:-1]


@dataclass
class TouchpointReview:
    touchpoint: Touchpoint
    good: list[int]
    bad: list[int]
    reliability: list[float | None]  # per period; None where nothing was decided
    states: list[str]  # per period
    spells: list[Spell]
    impact: dict
    now: int = -1  # the index of the period called now (Evidence.now)
    verdict: Verdict | None = None  # the state over its own window at the end, when the source gives it
    span: Verdict | None = None  # the state over the whole span, as a replay judges its input
    counted: tuple[int, int] | None = None  # every outcome decided in the span (TouchpointEvidence.counted)

    @property
    def state_now(self) -> str:
        """Its state over its own window at the end of the evidence (the wall's), else its last period's."""
        if self.verdict is not None:
            return self.verdict.state
        return self.states[self.now] if self.states else UNKNOWN

    @property
    def reliability_now(self) -> float | None:
        if self.verdict is not None:
            return self.verdict.reliability
        return self.reliability[self.now] if self.reliability else None

    @property
    def change(self) -> float | None:
        """The reliability now minus the period's before (a fraction: 0.01 is one point); None unless
        both had their min_events (a change from a handful of outcomes is noise)."""
        now = self.now % len(self.states) if self.states else 0
        if now < 1 or {self.states[now], self.states[now - 1]} & {UNKNOWN, WARMING_UP}:
            return None
        if self.reliability[now] is None or self.reliability[now - 1] is None:
            return None
        return self.reliability[now] - self.reliability[now - 1]  # type: ignore[operator]

    @property
    def decided(self) -> int:
        return sum(self.good) + sum(self.bad)

    @property
    def budget_left(self) -> float | None:
        """The share of the span's error budget (bad outcomes the objective allows of those decided)
        not spent: 1 untouched, 0 spent, below 0 overspent; None when nothing was decided, or when the
        objective allows none (see ``overspent``)."""
        allowed = (1 - self.touchpoint.objective) * self.decided
        if not self.decided or allowed <= 0:
            return None
        return 1 - sum(self.bad) / allowed

    @property
    def overspent(self) -> bool:
        """More bad outcomes than the objective allows over the span (with an objective of 100%, any)."""
        left = self.budget_left
        return left < 0 if left is not None else self.decided > 0 and sum(self.bad) > 0

    @property
    def was_broken(self) -> bool:
        """Broken over a whole period (not only for a while, as a touchpoint near its objective flickers)."""
        return BROKEN in self.states

    @property
    def hurt(self) -> int:
        """Bad outcomes in its broken periods (a customer may have several)."""
        return sum(bad for bad, state in zip(self.bad, self.states, strict=True) if state == BROKEN)

    @property
    def worst(self) -> int | None:
        """The index of its worst broken period, or None."""
        broken = [index for index, state in enumerate(self.states) if state == BROKEN]
        return min(broken, key=lambda index: (self.reliability[index], index)) if broken else None

    def spells_in(self, bounds: list[int]) -> list[Spell]:
        """Its spells that overlap its broken periods (given the periods' bounds, Evidence.bounds)."""
        broken = [
            (begins, ends)
            for begins, ends, state in zip(bounds[:-1], bounds[1:], self.states, strict=True)
            if state == BROKEN
        ]
        return [s for s in self.spells if any(s.overlaps(begins, ends) for begins, ends in broken)]

    def longest_spells(self, count: int, until: int) -> list[Spell]:
        """Its ``count`` longest spells, in time order."""
        longest = sorted(self.spells, key=lambda s: (-s.length(until), s.start))[:count]
        return sorted(longest, key=lambda s: s.start)


@dataclass
class Review:
    evidence: Evidence
    touchpoints: list[TouchpointReview]  # in the catalog's order (stage by stage)
    vital_few: list[str]
    catalog_confidence: float = 0.99  # of the states' evidence (monitor.state)

    @property
    def by_id(self) -> dict[str, TouchpointReview]:
        return {row.touchpoint.id: row for row in self.touchpoints}

    def story_order(self) -> list[str]:
        """The touchpoints whose stories to tell: the vital few, then the others broken in a period,
        the most customers impacted first."""
        broken = [row for row in self.touchpoints if row.was_broken and row.touchpoint.id not in self.vital_few]
        broken.sort(key=lambda row: (-int(row.impact.get("customers_impacted", 0)), row.touchpoint.id))
        return [*self.vital_few, *(row.touchpoint.id for row in broken)]

    def stages(self) -> list[tuple[str, list[TouchpointReview]]]:
        grouped: dict[str, list[TouchpointReview]] = {}
        for row in self.touchpoints:
            grouped.setdefault(row.touchpoint.stage, []).append(row)
        return list(grouped.items())


def review(catalog: Catalog, evidence: Evidence) -> Review:
    """Derive the review from the evidence. The vital few are ``monitor.state.vital_few`` of each
    touchpoint's state over the whole span (a replay's, as ``tpmon replay`` judges the same events; else
    judged on the periods' sums) and its customers impacted over the span: the same touchpoints
    ``tpmon replay`` names over the same events."""
    rows = []
    for touchpoint in catalog.touchpoints:
        found = evidence.touchpoints.get(touchpoint.id)
        if found is None:
            found = TouchpointEvidence([0] * evidence.periods, [0] * evidence.periods)
        pairs = list(zip(found.good, found.bad, strict=True))
        states = []
        warming = found.warming or [False] * len(pairs)
        for (good, bad), warm in zip(pairs, warming, strict=True):
            states.append(judge(touchpoint, good, bad, catalog.z, warm).state)
        rows.append(
            TouchpointReview(
                touchpoint,
                list(found.good),
                list(found.bad),
                [reliability(good, bad) for good, bad in pairs],
                states,
                list(found.spells),
                found.impact,
                evidence.now,
                found.now,
                found.span or judge(touchpoint, sum(found.good), sum(found.bad), catalog.z),
                found.counted or (sum(found.good), sum(found.bad)),
            )
        )
    states = {row.touchpoint.id: row.span.state for row in rows if row.span is not None}
    impacted = {row.touchpoint.id: int(row.impact.get("customers_impacted", 0)) for row in rows}
    return Review(evidence, rows, vital_few(states, impacted), catalog.confidence)


def survey_gap(voice: dict) -> tuple[str, float] | None:
    """A touchpoint's survey gap: the mean score after good minus after bad, of nps (or of the first
    survey with answers on both sides), with the survey's name; None without answers on both sides."""
    for survey in sorted(voice, key=lambda name: (name != "nps", name)):
        good, bad = voice[survey]["after_good"]["mean"], voice[survey]["after_bad"]["mean"]
        if good is not None and bad is not None:
            return survey, good - bad
    return None


def spells(states: list[tuple[int, str | None]]) -> list[Spell]:
    """The spells broken in a time-ordered series of (instant, state; None where there was no value):
    each from the first broken instant to the first after it that is not broken."""
    found: list[Spell] = []
    since: int | None = None
    for at, state in states:
        if state == BROKEN:
            if since is None:
                since = at
        elif since is not None:
            found.append(Spell(since, at))
            since = None
    if since is not None:
        found.append(Spell(since, None))
    return found
