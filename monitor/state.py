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
