"""The review's charts, drawn by matplotlib as SVG to inline in the HTML (docs/REVIEW.md says why
matplotlib). Figures are made without pyplot (no global state) and written deterministically: the
same review gives the same bytes."""

from __future__ import annotations

import io
import math
from datetime import UTC, datetime
from itertools import pairwise

import matplotlib
from matplotlib import dates, ticker
from matplotlib.colors import ListedColormap
from matplotlib.figure import Figure

from monitor.conventions import BROKEN, DIFFERENTIATING, RELIABLE, STATE_VALUES, UNKNOWN, WARMING_UP
from monitor.review import Review, TouchpointReview
from monitor.review.text import spell_window

WIDTH = 6.9  # inches: the text width of A4 with the page's margins
COLOURS = {
    BROKEN: "#c0392b",
    RELIABLE: "#27ae60",
    DIFFERENTIATING: "#2471a3",
    UNKNOWN: "#d5d8dc",
    WARMING_UP: "#eceff1",
}
INK, MUTED = "#1c2833", "#5d6d7e"
STYLE = {
    "svg.fonttype": "none",  # text stays text: the browser's font, selectable, small
    "font.family": "sans-serif",
    "font.size": 8,
    "axes.edgecolor": MUTED,
    "axes.labelcolor": INK,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "axes.spines.top": False,
    "axes.spines.right": False,
}


def _instant(micros: int) -> datetime:
    """An instant as matplotlib places it (aware, so that a 23-hour day is drawn 23 hours wide; the
    axis labels it in the review's zone)."""
    return datetime.fromtimestamp(micros / 1_000_000, UTC)


def _svg(figure: Figure, name: str) -> str:
    """The figure as an SVG element (no XML prolog), ids salted by ``name`` so that charts inlined in
    one page do not share them."""
    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": name}):
        figure.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None})
    text = buffer.getvalue()
    return text[text.index("<svg") :]


def _time_axis(axes, review: Review) -> None:  # type: ignore[no-untyped-def]
    evidence = review.evidence
    locator = dates.AutoDateLocator(minticks=3, maxticks=8, tz=evidence.zone)
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator, tz=evidence.zone, show_offset=False))
    bounds = evidence.bounds()
    axes.set_xlim(_instant(bounds[0]), _instant(bounds[-1]))


def reliability(review: Review, row: TouchpointReview) -> str:
    """Reliability per period (a step for each period, a dot where it was decided) against the
    objective and differentiating lines; the spells broken shaded."""
    evidence = review.evidence
    touchpoint = row.touchpoint
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(WIDTH, 1.9), layout="constrained")
        axes = figure.add_subplot()
        bounds = evidence.bounds()
        starts = [_instant(at) for at in bounds[:-1]]
        middles = [_instant((begins + ends) // 2) for begins, ends in pairwise(bounds)]
        values = [math.nan if value is None else value for value in row.reliability]
        if row.spells:  # one collection for them all: a touchpoint near its objective has hundreds
            spans = []
            for spell in row.spells:
                start = dates.date2num(_instant(spell.start))
                end = dates.date2num(_instant(spell.end if spell.end is not None else evidence.end))
                spans.append((start, end - start))
            axes.broken_barh(
                spans, (0, 1), transform=axes.get_xaxis_transform(), color=COLOURS[BROKEN], alpha=0.14, lw=0
            )
        axes.axhline(touchpoint.objective, color=COLOURS[BROKEN], ls="--", lw=1, label="objective")
        axes.axhline(
            touchpoint.differentiating, color=COLOURS[DIFFERENTIATING], ls=":", lw=1.2, label="differentiating"
        )
        axes.step(
            [*starts, _instant(bounds[-1])],
            [*values, values[-1]],
            where="post",
            color=INK,
            lw=1.2,
            label="reliability per period",
        )
        states = row.states
        axes.scatter(middles, values, s=14, zorder=3, color=[COLOURS[state] for state in states], edgecolors="none")
        decided = [value for value in values if not math.isnan(value)]
        low = min([touchpoint.objective, *decided]) if decided else touchpoint.objective
        margin = max((1 - low) * 0.15, 0.005)
        axes.set_ylim(max(low - margin, 0), 1 + margin / 3)
        axes.yaxis.set_major_formatter(ticker.PercentFormatter(1.0, decimals=None if 1 - low > 0.05 else 1))
        axes.yaxis.set_major_locator(ticker.MaxNLocator(4))
        axes.grid(axis="y", color="#eaeded", lw=0.6)
        _time_axis(axes, review)
        if row.spells:
            label = f"broken (over {spell_window(row, evidence)})"
            axes.plot([], [], color=COLOURS[BROKEN], alpha=0.3, lw=6, label=label)
        axes.legend(loc="lower left", bbox_to_anchor=(0, 1), fontsize=7, frameon=False, ncols=4, borderaxespad=0.2)
        return _svg(figure, f"reliability-{touchpoint.id}")


def states(review: Review) -> str:
    """Every touchpoint's state per period, one row each in the catalog's order: the span at a glance."""
    evidence = review.evidence
    rows = review.touchpoints
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(WIDTH, 0.5 + 0.2 * len(rows)), layout="constrained")
        axes = figure.add_subplot()
        order = sorted(STATE_VALUES, key=STATE_VALUES.get)
        colours = ListedColormap([COLOURS[state] for state in order])
        grid = [[order.index(state) for state in row.states] for row in rows]
        edges = [dates.date2num(_instant(at)) for at in evidence.bounds()]  # a local day may be 23 or 25 hours
        axes.pcolormesh(edges, range(len(rows) + 1), grid, cmap=colours, vmin=-0.5, vmax=len(order) - 0.5)
        axes.set_ylim(len(rows), 0)
        axes.set_yticks([index + 0.5 for index in range(len(rows))], [row.touchpoint.id for row in rows])
        axes.tick_params(axis="y", length=0)
        for spine in axes.spines.values():
            spine.set_visible(False)
        axes.xaxis_date()
        _time_axis(axes, review)
        for state in (BROKEN, RELIABLE, DIFFERENTIATING, UNKNOWN, WARMING_UP):
            axes.plot([], [], "s", color=COLOURS[state], label=state if state != UNKNOWN else "too few outcomes")
        axes.legend(loc="upper center", bbox_to_anchor=(0.5, 0), ncols=5, fontsize=7, frameon=False, borderaxespad=1.8)
        return _svg(figure, "states")


def customers(review: Review) -> str:
    """Customers who joined and who left, per period."""
    evidence = review.evidence
    with matplotlib.rc_context(STYLE):
        figure = Figure(figsize=(WIDTH, 1.6), layout="constrained")
        axes = figure.add_subplot()
        edges = [dates.date2num(_instant(at)) for at in evidence.bounds()]  # in days, matplotlib's date unit
        widths = [(ends - begins) * 0.4 for begins, ends in pairwise(edges)]  # a local day: 23 to 25 hours
        for offset, counts, state, label in (
            (0.5, evidence.joined, RELIABLE, "joined"),
            (1.5, evidence.left, BROKEN, "left"),
        ):
            where = [begins + width * offset for begins, width in zip(edges, widths, strict=False)]
            axes.bar(where, counts, width=[w * 0.95 for w in widths], align="edge", color=COLOURS[state], label=label)
        axes.xaxis_date()
        _time_axis(axes, review)
        axes.yaxis.set_major_locator(ticker.MaxNLocator(4, integer=True))
        axes.grid(axis="y", color="#eaeded", lw=0.6)
        axes.legend(loc="lower left", bbox_to_anchor=(0, 1), fontsize=7, frameon=False, ncols=2, borderaxespad=0.2)
        return _svg(figure, "customers")
