"""The review's plain-text summary: what the top of the HTML says, readable in an email or a terminal."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from ..conventions import BROKEN, DIFFERENTIATING, RELIABLE, UNKNOWN, WARMING_UP
from ..durations import MICROS, format_duration, parse_duration
from ..observe.windows import STATE_WINDOW
from .model import DISTINCT, Evidence, Review, TouchpointReview, survey_gap
from .periods import UTC_ZONE

CHANGE_WORTH_SAYING = 0.01  # a point of reliability, between the last two periods
MINUTE = 60_000_000


def instant(at: int, zone: ZoneInfo = UTC_ZONE, seconds: bool = False) -> str:
    """To the minute, with its offset in ``zone``: '2027-01-18 09:25 +01:00' (with ``seconds``,
    '2027-01-18 09:25:30 +01:00')."""
    local = datetime.fromtimestamp(at // MICROS, zone)
    offset = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M") + f" {offset[:3]}:{offset[3:5]}"


def rfc3339(at: int, zone: ZoneInfo = UTC_ZONE) -> str:
    """RFC 3339 with the offset in ``zone``: '2027-01-18T00:00:00+01:00' (a fraction only when there is one)."""
    local = datetime.fromtimestamp(at // MICROS, zone).replace(microsecond=at % MICROS)
    return local.isoformat()


def moment(at: int, evidence: Evidence) -> str:
    """An instant in the review's zone, to the second where periods are shorter than minutes (a demo's, a test's)."""
    return instant(at, evidence.zone, evidence.period % MINUTE != 0)


def when(at: int, evidence: Evidence) -> str:
    """A period as the review names it: its start, with its offset."""
    return moment(at, evidence)


def zone_name(evidence: Evidence) -> str:
    return evidence.zone.key


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
    """The mean score after good minus after bad: '+2.4 (nps mean score)', not to be read as NPS points."""
    found = survey_gap(impact.get("voice", {}))
    return "-" if found is None else f"{found[1]:+.1f} ({found[0]} mean score)"


def now(evidence: Evidence) -> str:
    """What the review calls now: each touchpoint's own window at the end of a replay; from Prometheus,
    the last period, or the one before when the last has only begun."""
    if any(found.now is not None for found in evidence.touchpoints.values()):
        return f"each touchpoint over its own window, at the end: {instant(evidence.end - 1, evidence.zone)}"
    starts = evidence.starts()
    if evidence.now == evidence.periods - 1:
        return f"the last period, {when(starts[-1], evidence)}"
    return f"the last whole period, {when(starts[evidence.now], evidence)}; {when(starts[-1], evidence)} has only begun"


def span(review: Review) -> str:
    evidence = review.evidence
    period = format_duration(evidence.period)
    return (
        f"{when(evidence.start, evidence)} to {when(evidence.bounds()[-1], evidence)} "
        f"({evidence.periods} period{'s' if evidence.periods != 1 else ''} of {period}, {zone_name(evidence)})"
    )


def outside(evidence: Evidence) -> str | None:
    """What the review left out of the lines it read: those before --since and from --until on."""
    before, after = evidence.outside
    parts = []
    if evidence.since is not None and before:
        parts.append(f"{before} event{'s' if before != 1 else ''} before {moment(evidence.since, evidence)}")
    if evidence.until is not None and after:
        parts.append(f"{after} from {moment(evidence.until, evidence)} on")
    if not parts:
        return None
    return (
        " and ".join(parts) + " were read (the state at the span's start is judged on them, as a replay "
        "judges them) but left out of the review: their outcomes, customers in and out are not counted."
    )


def nps(side: dict | None) -> str:
    """An NPS figure: '+12 (40 answers)'; '-' without answers."""
    if not side or side.get("nps") is None:
        return "-"
    return f"{side['nps']:+.0f} ({side.get('answers', 0)} answers)"


def lift(impact: dict) -> str:
    """The churn lift: '3.2x' (customers who left among those a touchpoint hurt against among all
    customers active); '-' when it cannot be said."""
    value = impact.get("churn_lift")
    return "-" if value is None else f"{value:.1f}x"


def voice_nps(impact: dict) -> tuple[dict | None, dict | None]:
    """The NPS after good and after bad of a touchpoint's impact (None where there is none)."""
    found = impact.get("voice", {}).get("nps") or {}
    return found.get("after_good"), found.get("after_bad")


def summary(review: Review) -> str:
    """Lines a reader skims first: what broke and when, the vital few, the state now, what changed,
    the budgets overspent, customers in and out; then one line per touchpoint."""
    evidence = review.evidence
    lines = [f"Reliability review, {span(review)}", f"From {evidence.source}. Times in {zone_name(evidence)}."]
    left_out = outside(evidence)
    if left_out:
        lines.append(left_out[0].upper() + left_out[1:])
    lines.append("")
    broken = [row for row in review.touchpoints if row.was_broken]
    lines.append("Broken in a period:" if broken else "Broken in a period: none.")
    for row in broken:
        periods = [
            f"{when(at, evidence)} ({percent(ratio)})"
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
    if not review.vital_few:
        lines.append("Vital few: none (no touchpoint is broken over the span as a whole).")
    else:
        lines.append("Vital few (of those broken over the span, the ones that hurt the most customers):")
        by_id = review.by_id
        per = "" if evidence.impacted_per == DISTINCT else f" ({evidence.impacted_per})"
        for touchpoint in review.vital_few:
            row = by_id[touchpoint]
            impact = row.impact
            good, bad = voice_nps(impact)
            lines.append(
                f"  {touchpoint}: {impact.get('customers_impacted', 0)} customers impacted{per}, "
                f"{impact.get('left_after_bad', 0)} left after a bad outcome (churn lift {lift(impact)}), "
                f"NPS after good {nps(good)}, after bad {nps(bad)}; {row.hurt} bad outcomes in its broken periods"
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
    inside = row.spells_in(evidence.bounds())
    if not inside:
        return ""
    until = evidence.end
    spell = max(inside, key=lambda s: (s.length(until), -s.start))
    ends = moment(spell.end, evidence) if spell.end is not None else "the end"
    return f"; the longest spell {moment(spell.start, evidence)} to {ends} ({length(spell.length(until))})"


def _table(review: Review) -> str:
    """One line per touchpoint: its reliability, then (a second table, each narrow enough for an email)
    its impact over the span."""
    reliability = _columns(
        ("touchpoint", "owner", "now", "reliability", "change", "budget left"),
        [
            (
                row.touchpoint.id,
                row.touchpoint.owner,
                row.state_now,
                percent(row.reliability_now),
                points(row.change),
                budget(row),
            )
            for row in review.touchpoints
        ],
        3,
    )
    impact = []
    for row in review.touchpoints:
        good, bad = voice_nps(row.impact)
        impact.append(
            (
                row.touchpoint.id,
                row.impact.get("customers_impacted", 0),
                row.impact.get("left_after_bad", 0),
                lift(row.impact),
                _score(good),
                _score(bad),
            )
        )
    headings = ("touchpoint", "customers impacted", "left after bad", "churn lift", "NPS after good", "NPS after bad")
    return reliability + "\n\n" + _columns(headings, impact, 1)


def _columns(headings: tuple[str, ...], rows: list[tuple], first_right: int) -> str:
    widths = [max(len(str(cells[i])) for cells in (headings, *rows)) for i in range(len(headings))]

    def line(cells: tuple) -> str:
        return "  ".join(
            str(cell).rjust(width) if i >= first_right else str(cell).ljust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    return "\n".join([line(headings), *(line(cells) for cells in rows)])


def _score(side: dict | None) -> str:
    return "-" if not side or side.get("nps") is None else f"{side['nps']:+.0f}"


def spell_window(row: TouchpointReview, evidence: Evidence) -> str:
    """The window a touchpoint's broken spells are judged over: its own (scaled, as the spells are, when
    the evidence's wall window is a profile's shorter one)."""
    factor = max(1, parse_duration(STATE_WINDOW) // evidence.window)
    return row.touchpoint.window.scaled(factor).text
