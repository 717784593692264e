"""The reliability review (``tpmon report``, docs/REVIEW.md): evidence per period from a replay or a
Prometheus, the review derived from it, and its plain-text summary."""

from .model import Evidence, Review, Spell, Step, Story, TouchpointEvidence, TouchpointReview, review
from .periods import period_start
from .text import summary

__all__ = [
    "Evidence",
    "Review",
    "Spell",
    "Step",
    "Story",
    "TouchpointEvidence",
    "TouchpointReview",
    "period_start",
    "review",
    "summary",
]
