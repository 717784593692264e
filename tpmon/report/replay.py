"""The review's evidence from a replay of event files: one pass judges them all as ``tpmon replay``
does, counting outcomes per period (monitor.review.replayed); a second reads only the lines that
name the customers whose stories it tells, so that journeys are kept for those few, not for all."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from monitor.catalog import Catalog
from monitor.durations import format_duration, parse_duration
from monitor.journeys import Journeys
from monitor.observe.windows import STATE_WINDOW
from monitor.replay import Replay
from monitor.review import Evidence, period_start, review
from monitor.review.replayed import Tracker, story
from monitor.review.text import instant

from ..commands.replay import feed, open_inputs


def evidence(
    catalog: Catalog,
    sources: list[tuple[str, Path]],
    period: int,
    lateness: int | None,
    progress: bool | None,
    say: Callable[[str], None],
    window: int = parse_duration(STATE_WINDOW),
    since: int | None = None,
    until: int | None = None,
    back: int | None = None,
    forgotten: frozenset[str] = frozenset(),
) -> tuple[Evidence | None, Replay]:
    """The evidence of the inputs (None when they hold no event in the span), and the replay that
    judged them (its summary counts what was rejected); ``window``: the state's, for the spells broken.
    ``since`` and ``until`` bound the span; ``back`` (instead of ``since``) starts it that long before
    its end, at a period's start: the end is known once the inputs are read, so they are read twice.
    ``forgotten``: customers whose stories are never told (their outcomes still count)."""
    tracker, run, summary = _judged(catalog, sources, period, lateness, progress, window, since, until)
    if back is not None and tracker.span() is not None:
        _, end = tracker.span()  # type: ignore[misc]
        since = period_start(end - back, period, catalog.timezone)
        say(f"reading again from {instant(since, catalog.timezone)} ({format_duration(back)} before the end)")
        tracker, run, summary = _judged(catalog, sources, period, lateness, progress, window, since, until)
    names = ", ".join(path.name for _, path in sources)
    found = tracker.evidence(
        f"a replay of {names}", {touchpoint: row["impact"] for touchpoint, row in summary["touchpoints"].items()}
    )
    if found is None:
        return None, run
    say(
        f"judged {run.lines} lines: {summary['events']['accepted']} events accepted, "
        f"{summary['events']['rejected']} rejected"
    )
    found.notes += _caveats(summary)
    first = review(catalog, found)
    by_id = first.by_id
    chosen = tracker.chosen([by_id[touchpoint] for touchpoint in first.story_order()], found.bounds(), forgotten)
    if chosen:
        say(f"reading the journeys of {len(chosen)} customers for their stories")
        found.stories = _stories(catalog, sources, chosen, lateness, tracker.last)
    return found, run


def _judged(catalog, sources, period, lateness, progress, window, since, until):  # type: ignore[no-untyped-def]
    """One replay of the inputs, its outcomes tracked for the review."""
    tracker = Tracker(catalog, period, window, since, until)
    bounded = None if since is None and until is None else (tracker.low, tracker.high)
    run = Replay(
        catalog, lateness=lateness, on_outcome=tracker.outcome, on_event=tracker.event, attributed_within=bounded
    )
    with contextlib.ExitStack() as stack:
        feed(run, open_inputs(stack, sources), progress)
    return tracker, run, run.finish()


def _stories(catalog: Catalog, sources: list[tuple[str, Path]], chosen: list[tuple[str, str]], lateness, until):  # type: ignore[no-untyped-def]
    """The chosen customers' journeys, replayed from only the lines that may be theirs (a line naming
    one of them anywhere; the replay keeps the journeys of those it finds), deciding at the end what
    the whole replay had decided by its last event (their own last events would leave a miss open)."""
    journeys = Journeys.of(catalog)
    run = Replay(catalog, lateness=lateness, journeys=journeys)
    needles = [customer.encode() for _, customer in chosen]
    with contextlib.ExitStack() as stack:
        streams = [(source, _naming(stream, needles), size) for source, stream, size in open_inputs(stack, sources)]
        feed(run, streams, False)  # type: ignore[arg-type]
    run.finish(until)
    told = []
    for touchpoint, customer in chosen:
        journey = journeys.get(customer)
        if journey is not None:
            told.append(story(journey, touchpoint, catalog.contract))
    return told


def _naming(stream: BinaryIO, needles: list[bytes]) -> Iterator[bytes]:
    for line in stream:
        if any(needle in line for needle in needles):
            yield line


def _caveats(summary: dict) -> list[str]:
    events = summary["events"]
    notes = []
    if events["rejected"] or events["internal_errors"]:
        notes.append(
            f"{events['rejected']} input lines were rejected and {events['internal_errors']} failed: "
            "they are not in this review (tpmon replay --rejects keeps them, with the reason)."
        )
    if events["late"]:
        notes.append(
            f"{events['late']} events came later than the lateness allows: they were judged all the same, but "
            "could not reopen an instance already decided."
        )
    return notes
