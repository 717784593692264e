"""The review's plain-text summary: what the top of the HTML says, readable in an email or a terminal."""

from __future__ import annotations

from ..conventions import BROKEN, DIFFERENTIATING, RELIABLE, UNKNOWN, WARMING_UP
from ..durations import format_duration
from ..events import format_timestamp
from .model import DAY, DISTINCT, Evidence, Review, TouchpointReview, survey_gap

CHANGE_WORTH_SAYING = 0.01  # a point of reliability, between the last two periods
MINUTE = 60_000_000


def day(at: int) -> str:
    return format_timestamp(at)[:10]


def instant(at: int, seconds: bool = False) -> str:
    """Minutes, UTC: '2026-11-26 09:25' (with ``seconds``, '2026-11-26 09:25:30')."""
    return format_timestamp(at)[: 19 if seconds else 16].replace("T", " ")


def moment(at: int, evidence: Evidence) -> str:
    """An instant, to the second where periods are shorter than minutes (a demo's, a test's)."""
    return instant(at, evidence.period % MINUTE != 0)


def when(at: int, period: int) -> str:
    """A period's start as the review names it: its day, or its minute (second) in shorter periods."""
    return day(at) if period % DAY == 0 else instant(at, period % MINUTE != 0)


def length(micros: int) -> str:
    """A spell's length, to the minute ('6h15m'), or to the second under one."""
    if micros <= 0:
        return "at the end"  # broken in the last instant judged
    minutes = micros // MINUTE * MINUTE
    return format_duration(minutes) if minutes else format_duration(max(micros // 1_000_000, 1) * 1_000_000)


def percent(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}%}"


def points(change: float | None) -> str:
    return "-" if change is None else f"{change * 100:+.1f} pts"


def budget(row: TouchpointReview) -> str:
    left = row.budget_left
    if row.decided == 0:
        return "-"
    if left is None:  # an objective of 100% allows no bad outcome
        return "overspent" if sum(row.bad) else "100%"
    return f"{left:.0%}" if left >= 0 else f"overspent {1 - left:.1f}x"


def gap(impact: dict) -> str:
    found = survey_gap(impact.get("voice", {}))
    return "-" if found is None else f"{found[0]} {found[1]:+.1f}"


def now(evidence: Evidence) -> str:
    """What the review calls now: each touchpoint's own window at the end of a replay; from Prometheus,
    the last period, or the one before when the last has only begun."""
    if any(found.now is not None for found in evidence.touchpoints.values()):
        return f"each touchpoint over its own window, at the end: {instant(evidence.end - 1, False)}"
    starts = evidence.starts()
    if evidence.now == evidence.periods - 1:
        return f"the last period, {when(starts[-1], evidence.period)}"
    return (
        f"the last whole period, {when(starts[evidence.now], evidence.period)}; "
        f"{when(starts[-1], evidence.period)} has only begun"
    )


def span(review: Review) -> str:
    evidence = review.evidence
    last = evidence.starts()[-1] if evidence.periods else evidence.start
    period = format_duration(evidence.period)
    return (
        f"{when(evidence.start, evidence.period)} to {when(last, evidence.period)} "
        f"({evidence.periods} period{'s' if evidence.periods != 1 else ''} of {period})"
    )


def summary(review: Review) -> str:
    """Lines a reader skims first: what broke and when, the vital few, the state now, what changed,
    the budgets overspent, customers in and out; then one line per touchpoint."""
    evidence = review.evidence
    lines = [f"Reliability review, {span(review)}", f"From {evidence.source}.", ""]
    broken = [row for row in review.touchpoints if row.was_broken]
    lines.append("Broken in a period:" if broken else "Broken in a period: none.")
    for row in broken:
        periods = [
            f"{when(at, evidence.period)} ({percent(ratio)})"
            for at, state, ratio in zip(evidence.starts(), row.states, row.reliability, strict=True)
            if state == BROKEN
        ]
        lines.append(
            f"  {row.touchpoint.id} ({row.touchpoint.owner}, objective {percent(row.touchpoint.objective)}): "
            + ", ".join(periods)
            + _longest(row, evidence)
        )
    flickered = [row for row in review.touchpoints if row.spells and not row.was_broken]
    if flickered:
        lines.append(
            "Broken for a while, in no period as a whole: "
            + ", ".join(
                f"{row.touchpoint.id} ({len(row.spells)}x, the longest {length(row.longest_spells(1, evidence.end)[0].length(evidence.end))})"
                for row in flickered
            )
            + "."
        )
    if review.vital_few:
        lines.append("Vital few (of those broken in a period, the ones that hurt the most customers):")
        by_id = review.by_id
        per = "" if evidence.impacted_per == DISTINCT else f" ({evidence.impacted_per})"
        for touchpoint in review.vital_few:
            row = by_id[touchpoint]
            impact = row.impact
            lines.append(
                f"  {touchpoint}: {impact.get('customers_impacted', 0)} customers impacted{per}, "
                f"{impact.get('left_after_bad', 0)} left after a bad outcome, survey gap {gap(impact)}; "
                f"{row.hurt} bad outcomes in its broken periods"
            )
    states = [row.state_now for row in review.touchpoints]
    counts = ", ".join(
        f"{states.count(state)} {state}"
        for state in (BROKEN, RELIABLE, DIFFERENTIATING, UNKNOWN, WARMING_UP)
        if state in states
    )
    lines.append(f"Now ({now(evidence)}): {counts}.")
    moved = [row for row in review.touchpoints if row.change is not None and abs(row.change) >= CHANGE_WORTH_SAYING]
    if moved:
        lines.append(
            "Changed against the period before: "
            + ", ".join(f"{row.touchpoint.id} {points(row.change)}" for row in moved)
            + "."
        )
    overspent = [row for row in review.touchpoints if row.overspent]
    if overspent:
        lines.append("Error budget overspent over the span: " + ", ".join(row.touchpoint.id for row in overspent) + ".")
    lines.append(f"Customers: {sum(evidence.joined)} joined, {sum(evidence.left)} left.")
    lines += ["", _table(review)]
    return "\n".join(lines)


def _longest(row: TouchpointReview, evidence: Evidence) -> str:
    """The longest spell in its broken periods, if any."""
    inside = row.spells_in(evidence.starts(), evidence.period)
    if not inside:
        return ""
    until = evidence.end
    spell = max(inside, key=lambda s: (s.length(until), -s.start))
    ends = moment(spell.end, evidence) if spell.end is not None else "the end"
    return f"; the longest spell {moment(spell.start, evidence)} to {ends} ({length(spell.length(until))})"


def _table(review: Review) -> str:
    headings = ("touchpoint", "owner", "now", "reliability", "change", "budget left")
    rows = [
        (
            row.touchpoint.id,
            row.touchpoint.owner,
            row.state_now,
            percent(row.reliability_now),
            points(row.change),
            budget(row),
        )
        for row in review.touchpoints
    ]
    widths = [max(len(str(cells[i])) for cells in (headings, *rows)) for i in range(len(headings))]
    right = {3, 4, 5}

    def line(cells: tuple) -> str:
        return "  ".join(
            str(cell).rjust(width) if i in right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headings), *(line(cells) for cells in rows)])
