"""Touchpoint state from outcome counts: unknown, broken, reliable or differentiating (docs/SEMANTICS.md)."""

from __future__ import annotations

from .catalog.model import Touchpoint
from .conventions import BROKEN, DIFFERENTIATING, RELIABLE, UNKNOWN


def reliability(good: int, bad: int) -> float | None:
    """good / (good + bad); None when nothing is decided."""
    decided = good + bad
    return good / decided if decided else None


def touchpoint_state(touchpoint: Touchpoint, good: int, bad: int) -> str:
    if good + bad < touchpoint.min_events:
        return UNKNOWN
    ratio = good / (good + bad)
    if ratio < touchpoint.objective:
        return BROKEN
    if ratio >= touchpoint.differentiating:
        return DIFFERENTIATING
    return RELIABLE


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
