"""Touchpoint state from outcome counts, on evidence (docs/SEMANTICS.md, "State of a touchpoint").

One rule, used by the engine's views, a replay, the review and the walls, and written in PromQL by
``monitor.observe.prometheus`` (the recording rules): with ``n`` outcomes decided in the window,

- warming up while the window, or the time the touchpoint takes to decide, reaches before the data;
- unknown with fewer than ``min_events``;
- broken when the upper Wilson bound of the reliability is below the objective: even the most
  favourable reading of the sample the confidence level allows is below it;
- differentiating when the lower Wilson bound is at or above the differentiating line;
- reliable otherwise (the evidence says neither).

The bounds are one-sided at the catalog's ``confidence`` (default 0.99): a touchpoint that truly
meets its objective is shown broken in at most 1% of the windows it is judged on, and far fewer when
it runs comfortably above its line.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from math import sqrt
from statistics import NormalDist
from typing import TYPE_CHECKING, NamedTuple

from .conventions import BROKEN, DIFFERENTIATING, RELIABLE, UNKNOWN, WARMING_UP
from .counts import Key, windowed

if TYPE_CHECKING:
    from .catalog.model import Catalog, Touchpoint


def reliability(good: int, bad: int) -> float | None:
    """good / (good + bad); None when nothing is decided."""
    decided = good + bad
    return good / decided if decided else None


def z_score(confidence: float) -> float:
    """The standard normal quantile of a one-sided bound at ``confidence`` (0.99 -> 2.326)."""
    return NormalDist().inv_cdf(confidence)


def wilson(good: int, decided: int, z: float) -> tuple[float, float]:
    """The Wilson score interval of good / decided: (lower, upper), each one-sided at z."""
    if decided <= 0:
        return 0.0, 1.0
    ratio = good / decided
    spread = z * z / decided
    centre = ratio + spread / 2
    margin = z * sqrt(ratio * (1 - ratio) / decided + spread / (4 * decided))
    return max(0.0, (centre - margin) / (1 + spread)), min(1.0, (centre + margin) / (1 + spread))


@dataclass(frozen=True)
class Verdict:
    """A touchpoint's state over a window, and why: n decided, the reliability and its bounds."""

    state: str
    good: int
    bad: int
    lower: float | None = None
    upper: float | None = None

    @property
    def decided(self) -> int:
        return self.good + self.bad

    @property
    def reliability(self) -> float | None:
        """None while warming up: what the window holds then is not a fair reading (a 14-day no_repeat
        shows only its misses), so no figure is shown for it."""
        return None if self.state == WARMING_UP else reliability(self.good, self.bad)

    def why(self, touchpoint: Touchpoint) -> str:
        """One sentence a person reads beside the tile."""
        n = self.decided
        if self.state == WARMING_UP:
            return "warming up: its window, or the time it takes to decide, reaches before the first data"
        if self.state == UNKNOWN:
            return f"{n} outcomes decided, fewer than its min_events ({touchpoint.min_events})"
        bounds = f"{n} outcomes, {self.reliability:.1%}, between {self.lower:.1%} and {self.upper:.1%}"
        if self.state == BROKEN:
            return f"{bounds}: confidently below the objective ({touchpoint.objective:.1%})"
        if self.state == DIFFERENTIATING:
            return f"{bounds}: confidently at or above differentiating ({touchpoint.differentiating:.1%})"
        return f"{bounds}: not confidently below {touchpoint.objective:.1%} nor at {touchpoint.differentiating:.1%}"

    def view(self, touchpoint: Touchpoint) -> dict:
        """JSON-ready: what /touchpoints and the review say of it."""
        return {
            "decided": self.decided,
            "reliability": self.reliability,
            "lower": None if self.lower is None else round(self.lower, 6),
            "upper": None if self.upper is None else round(self.upper, 6),
            "why": self.why(touchpoint),
        }


def judge(touchpoint: Touchpoint, good: int, bad: int, z: float, warming: bool = False) -> Verdict:
    """The state of a touchpoint whose window holds ``good`` and ``bad`` outcomes (``z``: the catalog's
    confidence as a one-sided normal quantile, ``Catalog.z``)."""
    if warming:
        return Verdict(WARMING_UP, good, bad)
    decided = good + bad
    if decided < touchpoint.min_events:
        return Verdict(UNKNOWN, good, bad)
    lower, upper = wilson(good, decided, z)
    if upper < touchpoint.objective:
        state = BROKEN
    elif lower >= touchpoint.differentiating:
        state = DIFFERENTIATING
    else:
        state = RELIABLE
    return Verdict(state, good, bad, lower, upper)


def in_window(touchpoint: Touchpoint, buckets: Mapping[int, Sequence[int]], at: int) -> tuple[int, int]:
    """(good, bad) of the buckets (bucket start -> [good, bad]) in the touchpoint's window at ``at``."""
    window = touchpoint.window
    start = window.start(at)
    good = bad = 0
    for bucket, pair in buckets.items():
        if start <= bucket <= at:
            good += pair[0]
            bad += pair[1]
    return good, bad


def customers_in_window(touchpoint: Touchpoint, buckets: Mapping[int, int] | None, at: int | None) -> int:
    """Distinct customers impacted in the touchpoint's window at ``at``, from the buckets (bucket start ->
    customers whose latest bad outcome is in it, ``monitor.counts.IMPACTED``): a customer with a bad
    outcome in the window has its latest there, and is in one bucket only. What a partition serves as
    tpmon_touchpoint_window_customers_impacted."""
    if at is None or not buckets:
        return 0
    start = touchpoint.window.start(at)
    return sum(count for bucket, count in buckets.items() if start <= bucket <= at)


def warming_up(touchpoint: Touchpoint, start: int, first: int | None) -> bool:
    """Whether a window starting at ``start`` reaches before the first data, counting back the time
    the touchpoint takes to decide: its outcomes at ``start`` may belong to instances opened before
    the data began (``Touchpoint.decided_by``: a 14-day no_repeat decides only its bad outcomes in its
    first 14 days). Without any data there is nothing to warm up from: the state is unknown."""
    return first is not None and touchpoint.decided_by(first) > start


class Standing(NamedTuple):
    """One partition's part of a touchpoint's state: its window's outcomes at what it has decided."""

    good: int
    bad: int
    warming: bool | None  # None: the partition has no data yet (it says nothing of warming up)


def partition_standing(
    touchpoint: Touchpoint, buckets: Mapping[int, Sequence[int]] | None, at: int | None, first: int | None
) -> Standing:
    """What one partition (or a whole replay) holds of a touchpoint's window at ``at``: what the worker
    serves as tpmon_touchpoint_window_outcomes and tpmon_touchpoint_warming_up."""
    if at is None or first is None:
        return Standing(0, 0, None)
    good, bad = in_window(touchpoint, buckets or {}, at)
    return Standing(good, bad, warming_up(touchpoint, touchpoint.window.start(at), first))


def standing(
    catalog: Catalog, partitions: Iterable[tuple[Mapping[Key, float], int | None, Mapping[str, int | None]]]
) -> dict:
    """Each touchpoint's ``Verdict`` now over partitions given as (their counts, the instant they have
    decided to, each touchpoint's first data there): the windows' outcomes added up, warming up while
    every partition is (one whose data reaches back far enough speaks for the touchpoint). The recording
    rule touchpoint:tpmon_touchpoint_state:value states the same from the partitions' gauges."""
    parts = [(windowed(counts), at, firsts) for counts, at, firsts in partitions]
    found = {}
    for touchpoint in catalog.touchpoints:
        good = bad = 0
        said: list[bool] = []
        for buckets, at, firsts in parts:
            mine = partition_standing(touchpoint, buckets.get(touchpoint.id), at, firsts.get(touchpoint.id))
            good, bad = good + mine.good, bad + mine.bad
            if mine.warming is not None:
                said.append(mine.warming)
        found[touchpoint.id] = judge(touchpoint, good, bad, catalog.z, bool(said) and all(said))
    return found


VITAL_SHARE = 0.8  # the vital few cover at least this share of the customers broken touchpoints hurt


def vital_few(states: dict[str, str], impacted: dict[str, int]) -> list[str]:
    """The touchpoints whose state is broken, ranked by customers impacted (most first, then id),
    cut at the shortest prefix that covers at least 80% of the customers impacted by broken
    touchpoints (counted per touchpoint, summed): low performance x high impact."""
    broken = sorted((t for t, state in states.items() if state == BROKEN), key=lambda t: (-impacted.get(t, 0), t))
    total = sum(impacted.get(t, 0) for t in broken)
    chosen: list[str] = []
    covered = 0
    for touchpoint in broken:
        if chosen and covered >= VITAL_SHARE * total:
            break
        chosen.append(touchpoint)
        covered += impacted.get(touchpoint, 0)
    return chosen
