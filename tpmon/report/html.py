"""The review as one self-contained HTML page: the summary first, then the span at a glance, the
vital few, each stage's touchpoints with their charts, customers in and out, and a few stories.
Nothing is fetched when it opens (inline SVG and CSS), and it prints on A4."""

from __future__ import annotations

from collections.abc import Callable
from html import escape

from monitor.conventions import BROKEN
from monitor.review import Review, TouchpointReview
from monitor.review.text import (
    budget,
    gap,
    instant,
    length,
    lift,
    moment,
    nps,
    percent,
    points,
    span,
    spell_window,
    summary,
    voice_nps,
    when,
)

from . import charts

SPELLS_SHOWN = 5  # a touchpoint's longest spells broken, in its section

CSS = """
@page { size: A4; margin: 14mm 12mm; }
* { box-sizing: border-box; }
body { font: 10pt/1.4 system-ui, -apple-system, "Segoe UI", "DejaVu Sans", sans-serif; color: #1c2833;
       margin: 0 auto; padding: 16px; max-width: 190mm; background: #fff; }
h1 { font-size: 17pt; margin: 0 0 2px; }
h2 { font-size: 13pt; margin: 22px 0 6px; border-bottom: 2px solid #1c2833; padding-bottom: 2px; }
h3 { font-size: 11pt; margin: 0; }
.sub { color: #5d6d7e; margin: 0 0 10px; }
pre.summary { white-space: pre-wrap; font: 8pt/1.35 ui-monospace, "DejaVu Sans Mono", monospace;
              background: #f4f6f7; border-left: 4px solid #1c2833; padding: 8px 10px; margin: 8px 0; }
table { border-collapse: collapse; width: 100%; font-size: 9pt; margin: 4px 0 8px; }
th, td { text-align: left; padding: 2px 6px; border-bottom: 1px solid #e5e8e8; vertical-align: top; }
th { color: #5d6d7e; font-weight: 600; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; }
.state { display: inline-block; padding: 0 6px; border-radius: 3px; color: #fff; font-size: 8.5pt; }
.broken { background: #c0392b; } .reliable { background: #27ae60; }
.differentiating { background: #2471a3; } .unknown { background: #95a5a6; } .warming { background: #b0bec5; }
section.touchpoint { break-inside: avoid; page-break-inside: avoid; margin: 10px 0 14px; }
section.touchpoint.was-broken { border-left: 4px solid #c0392b; padding-left: 8px; }
.figures { display: flex; flex-wrap: wrap; gap: 4px 16px; font-size: 9pt; margin: 3px 0; }
.figures b { font-variant-numeric: tabular-nums; }
.owner { color: #5d6d7e; font-weight: normal; }
svg { max-width: 100%; height: auto; display: block; }
.story { break-inside: avoid; page-break-inside: avoid; }
.story td:first-child { white-space: nowrap; }
tr.bad td { color: #c0392b; font-weight: 600; }
.note { color: #5d6d7e; font-size: 8.5pt; }
.stage { break-after: avoid; page-break-after: avoid; }
"""


def page(review: Review, written_at: int, progress: Callable[[str], None] | None = None) -> str:
    """The whole page; ``written_at`` (when the review is written, as it says at the bottom) is
    passed in."""
    evidence = review.evidence
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Reliability review, {escape(span(review))}</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Reliability review</h1>",
        f'<p class="sub">{escape(span(review))}, from {escape(evidence.source)}. Times are in '
        f"{escape(evidence.zone.key)}, each with its offset from UTC.</p>",
        f'<pre class="summary">{escape(summary(review))}</pre>',
        *(f'<p class="note">{escape(note)}</p>' for note in evidence.notes),
        "<h2>The span at a glance</h2>",
        '<p class="note">Each touchpoint\'s state per period: broken when its outcomes are confident evidence '
        "of a reliability under its objective, differentiating when of one at or above its differentiating line, "
        "grey with fewer outcomes than its min_events, pale while warming up (its outcomes could stand for "
        "instances opened before the data began).</p>",
        charts.states(review),
        *_vital_few(review),
    ]
    for stage, rows in review.stages():
        parts.append(f'<h2 class="stage">Stage: {escape(stage)}</h2>')
        owners = ", ".join(dict.fromkeys(row.touchpoint.owner for row in rows))
        broken = ", ".join(row.touchpoint.id for row in rows if row.was_broken) or "none"
        count = f"{len(rows)} touchpoint{'s' if len(rows) != 1 else ''}"
        parts.append(f'<p class="note">{count}, owned by {escape(owners)}. Broken in a period: {escape(broken)}.</p>')
        for row in rows:
            if progress is not None:
                progress(row.touchpoint.id)
            parts += _touchpoint(review, row)
    parts += [
        "<h2>Customers in and out</h2>",
        charts.customers(review),
        _table(
            ("period", "joined", "left"),
            [
                (when(at, evidence), joined, left)
                for at, joined, left in zip(evidence.starts(), evidence.joined, evidence.left, strict=True)
            ],
            numeric={1, 2},
        ),
        *_stories(review),
        f'<p class="note">Written {escape(instant(written_at, evidence.zone))} by tpmon report. Reliability is good / (good + '
        "bad) of the outcomes decided in a period; a touchpoint's state needs at least its min_events of them, "
        f"and confident evidence ({review.catalog_confidence:.0%}) to be broken or differentiating. Broken spells "
        "are the times its state was broken over its own window, as the live wall shows it. The "
        "error budget is the bad outcomes the objective allows of those decided in the span.</p>",
        "</body></html>",
    ]
    return "\n".join(parts) + "\n"


def _table(headings: tuple[str, ...], rows: list[tuple], numeric: set[int] = frozenset(), classes=None) -> str:  # type: ignore[assignment,no-untyped-def]
    head = "".join(
        f'<th class="n">{escape(h)}</th>' if i in numeric else f"<th>{escape(h)}</th>" for i, h in enumerate(headings)
    )
    body = []
    for index, cells in enumerate(rows):
        css = f' class="{classes[index]}"' if classes and classes[index] else ""
        tds = "".join(
            f'<td class="n">{escape(str(cell))}</td>' if i in numeric else f"<td>{escape(str(cell))}</td>"
            for i, cell in enumerate(cells)
        )
        body.append(f"<tr{css}>{tds}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _state(state: str) -> str:
    return f'<span class="state {escape(state)}">{escape(state)}</span>'


def _vital_few(review: Review) -> list[str]:
    per = review.evidence.impacted_per
    parts = ["<h2>The vital few</h2>"]
    if not review.vital_few:
        return [
            *parts,
            "<p>None: no touchpoint is broken over the span as a whole (judged on all its outcomes, as "
            "tpmon replay judges the same events). Those broken in a period are named above.</p>",
        ]
    parts.append(
        '<p class="note">The touchpoints broken over the span (judged on all its outcomes, as tpmon replay '
        "judges the same events), those that hurt the most customers first (with a bad outcome in the span, "
        f"{escape(per)}), cut where they cover 80% of them. Bad in broken periods: its bad outcomes in the "
        "periods it was broken. Left after bad: customers who left within the attribution window after a bad "
        "outcome. Churn lift: how much more often its impacted customers left than all active customers. NPS "
        "after good and after bad: of the answers attributed to it, with their number.</p>"
    )
    by_id = review.by_id
    rows = []
    for touchpoint in review.vital_few:
        row = by_id[touchpoint]
        impact = row.impact
        good, bad = voice_nps(impact)
        rows.append(
            (
                touchpoint,
                row.touchpoint.owner,
                impact.get("customers_impacted", 0),
                row.states.count(BROKEN),
                row.hurt,
                impact.get("left_after_bad", 0),
                lift(impact),
                nps(good),
                nps(bad),
            )
        )
    headings = (
        "touchpoint",
        "owner",
        "customers impacted",
        "periods broken",
        "bad in broken periods",
        "left after bad",
        "churn lift",
        "NPS after good",
        "NPS after bad",
    )
    parts.append(_table(headings, rows, numeric={2, 3, 4, 5, 6, 7, 8}))
    return parts


def _touchpoint(review: Review, row: TouchpointReview) -> list[str]:
    touchpoint, evidence = row.touchpoint, review.evidence
    css = "touchpoint was-broken" if row.was_broken else "touchpoint"
    last = row.reliability_now
    impact = row.impact
    good, bad = voice_nps(impact)
    parts = [
        f'<section class="{css}" id="{escape(touchpoint.id)}">',
        f'<h3>{escape(touchpoint.id)} <span class="owner">· owner {escape(touchpoint.owner)}</span> '
        f"{_state(row.state_now)}</h3>",
        f'<div class="note">{escape(touchpoint.description)}</div>' if touchpoint.description else "",
        '<div class="figures">'
        f"<span>now <b>{percent(last)}</b></span>"
        f"<span>change <b>{escape(points(row.change))}</b></span>"
        f"<span>objective <b>{percent(touchpoint.objective)}</b></span>"
        f"<span>differentiating <b>{percent(touchpoint.differentiating)}</b></span>"
        f"<span>error budget left <b>{escape(budget(row))}</b></span>"
        f"<span>decided <b>{row.decided}</b> ({sum(row.bad)} bad)</span>"
        f"<span>customers impacted <b>{impact.get('customers_impacted', 0)}</b></span>"
        f"<span>left after bad <b>{impact.get('left_after_bad', 0)}</b></span>"
        f"<span>churn lift <b>{escape(lift(impact))}</b></span>"
        f"<span>NPS after good <b>{escape(nps(good))}</b></span>"
        f"<span>NPS after bad <b>{escape(nps(bad))}</b></span>"
        f"<span>mean score gap <b>{escape(gap(impact))}</b></span>"
        "</div>",
        charts.reliability(review, row),
    ]
    if row.spells:
        shown = row.longest_spells(SPELLS_SHOWN, evidence.end)
        parts.append(
            _table(
                ("broken from", "to", "for"),
                [
                    (
                        moment(s.start, evidence),
                        moment(s.end, evidence) if s.end is not None else "the end (still broken)",
                        length(s.length(evidence.end)),
                    )
                    for s in shown
                ],
            )
        )
        if len(row.spells) > len(shown):
            parts.append(
                f'<p class="note">Broken {len(row.spells)} times in the span (over its window, '
                f"{escape(spell_window(row, evidence))}); the {len(shown)} longest are shown.</p>"
            )
    elif row.was_broken:
        parts.append('<p class="note">Broken over a whole period, though never over its own window within it.</p>')
    parts.append("</section>")
    return parts


def _stories(review: Review) -> list[str]:
    stories = review.evidence.stories
    parts = ["<h2>Stories</h2>"]
    if not stories:
        return [
            *parts,
            '<p class="note">No customer story: no bad outcome of a broken touchpoint, or the source '
            "keeps no journeys.</p>",
        ]
    parts.append(
        '<p class="note">Customers behind the numbers: each journey as its events and outcomes came, one '
        "customer's own and no one else's, chosen for a bad outcome of a broken touchpoint.</p>"
    )
    for story in stories:
        rows, classes = [], []
        for step in story.steps:
            if step.outcome is None:
                rows.append((moment(step.at, review.evidence), step.what, step.detail))
                classes.append("")
            else:
                rows.append((moment(step.at, review.evidence), f"→ {step.what}: {step.outcome}", step.detail))
                classes.append("bad" if step.outcome == "bad" else "")
        dropped = f" ({story.dropped} earlier entries no longer kept)" if story.dropped else ""
        parts += [
            '<div class="story">',
            f'<h3>{escape(story.customer)} <span class="owner">· for {escape(story.touchpoint)}{escape(dropped)}'
            "</span></h3>",
            _table((f"when ({review.evidence.zone.key})", "what", "detail"), rows, classes=classes),
            "</div>",
        ]
    return parts
