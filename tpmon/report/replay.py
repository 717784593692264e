"""The review's evidence from a replay of event files: one pass judges them all as ``tpmon replay``
does, counting outcomes per period (monitor.review.replayed); a second reads only the lines that
name the customers whose stories it tells, so that journeys are kept for those few, not for all."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

from monitor.catalog import Catalog
from monitor.durations import parse_duration
from monitor.journeys import Journeys
from monitor.observe.windows import STATE_WINDOW
from monitor.replay import Replay
from monitor.review import Evidence, review
from monitor.review.replayed import Tracker, story

from ..commands.replay import feed, open_inputs


def evidence(
    catalog: Catalog,
    sources: list[tuple[str, Path]],
    period: int,
    lateness: int | None,
    progress: bool | None,
    say: Callable[[str], None],
    window: int = parse_duration(STATE_WINDOW),
) -> tuple[Evidence | None, Replay]:
    """The evidence of the inputs (None when they hold no event), and the replay that judged them
    (its summary counts what was rejected); ``window``: the state's, for the spells broken."""
    tracker = Tracker(catalog, period, window)
    run = Replay(catalog, lateness=lateness, on_outcome=tracker.outcome, on_event=tracker.event)
    with contextlib.ExitStack() as stack:
        feed(run, open_inputs(stack, sources), progress)
    summary = run.finish()
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
    chosen = tracker.chosen([by_id[touchpoint] for touchpoint in first.story_order()], found.start)
    if chosen:
        say(f"reading the journeys of {len(chosen)} customers for their stories")
        found.stories = _stories(catalog, sources, chosen, lateness, tracker.last)
    return found, run


def _stories(catalog: Catalog, sources: list[tuple[str, Path]], chosen: list[tuple[str, str]], lateness, until):  # type: ignore[no-untyped-def]
    """The chosen customers' journeys, replayed from only the lines that may be theirs (a line naming
    one of them anywhere; the replay keeps the journeys of those it finds), deciding at the end what
    the whole replay had decided by its last event (their own last events would leave a miss open)."""
    journeys = Journeys(max_age=catalog.journeys.retention)
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
