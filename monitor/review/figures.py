"""The review's figures as JSON (``tpmon report --json``; the shape is in docs/REVIEW.md, "Its figures as
JSON"): the same numbers the page and its summary show, for a spreadsheet or another tool."""

from __future__ import annotations

from itertools import pairwise

from ..durations import format_duration
from .model import Review
from .periods import WEEK
from .text import outside, rfc3339


def figures(review: Review) -> dict:
    evidence = review.evidence
    zone = evidence.zone
    bounds = evidence.bounds()
    touchpoints = {}
    for row in review.touchpoints:
        touchpoints[row.touchpoint.id] = {
            "stage": row.touchpoint.stage,
            "owner": row.touchpoint.owner,
            "objective": row.touchpoint.objective,
            "periods": [
                {"good": good, "bad": bad, "reliability": ratio, "state": state}
                for good, bad, ratio, state in zip(row.good, row.bad, row.reliability, row.states, strict=True)
            ],
            "state_now": row.state_now,
            "reliability_now": row.reliability_now,
            "change": row.change,
            "span": {
                # every outcome decided in the span, as tpmon replay counts them...
                "good": row.counted[0] if row.counted is not None else sum(row.good),
                "bad": row.counted[1] if row.counted is not None else sum(row.bad),
                "state": row.span.state if row.span is not None else None,
                # ...and those the state is judged on: decided on data alone (no warming up)
                "judged": None if row.span is None else {"good": row.span.good, "bad": row.span.bad},
            },
            "error_budget_left": row.budget_left,
            "spells": [
                {"start": rfc3339(spell.start, zone), "end": None if spell.end is None else rfc3339(spell.end, zone)}
                for spell in row.spells
            ],
            "impact": {**row.impact, "churn_lift": row.impact.get("churn_lift")},
        }
    return {
        "timezone": zone.key,
        "period": f"{evidence.period // WEEK}w" if evidence.period % WEEK == 0 else format_duration(evidence.period),
        "source": evidence.source,
        "since": None if evidence.since is None else rfc3339(evidence.since, zone),
        "until": None if evidence.until is None else rfc3339(evidence.until, zone),
        "end": rfc3339(evidence.end, zone),
        "left_out": {"before": evidence.outside[0], "after": evidence.outside[1], "said": outside(evidence)},
        "periods": [{"start": rfc3339(begins, zone), "end": rfc3339(ends, zone)} for begins, ends in pairwise(bounds)],
        "touchpoints": touchpoints,
        "vital_few": list(review.vital_few),
        "customers": {"joined": list(evidence.joined), "left": list(evidence.left)},
        "notes": list(evidence.notes),
    }
