"""tpmon report: the reliability review, for the cross-functional meeting (docs/REVIEW.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click

from monitor.durations import format_duration, parse_duration
from monitor.observe.windows import PROFILES, STATE_WINDOW
from monitor.review import Evidence, Review, review, summary
from monitor.review.model import too_many

from ..output import atomic_output, err, fail
from .catalog import catalog_or_exit
from .options import DURATION
from .replay import inputs_or_exit

SHORTEST_PERIOD = parse_duration("1s")  # (what the test profile makes of a minute)


def replayed_or_exit(catalog, sources, period, lateness, progress, say, profile: str = "production") -> Evidence:  # type: ignore[no-untyped-def]
    """The evidence of a replay of ``sources``; an input with no event exits with a message."""
    from ..report.replay import evidence

    say(f"replaying {', '.join(str(path) for _, path in sources)}")
    window = PROFILES[profile].seconds(STATE_WINDOW) * 1_000_000
    found, run = evidence(catalog, sources, period, lateness, progress, say, window)
    if found is None:
        what = f"{run.lines} lines, {run.tally.rejected} rejected" if run.lines else "nothing"
        fail(f"no event to review in {', '.join(str(p) for _, p in sources)} ({what})", 1)
    return found  # type: ignore[return-value]


def write(catalog, found: Evidence, out_path: Path, now: int, say) -> tuple[Review, str]:  # type: ignore[no-untyped-def]
    """Review the evidence and write the page; exits with a message when there is nothing to show."""
    from ..report.html import page

    problem = too_many(found.periods, found.period)
    if problem:
        fail(problem)
    judged = review(catalog, found)
    if not any(row.decided for row in judged.touchpoints):
        fail(f"nothing was decided in {found.source}: no outcome of any touchpoint to review", 1)
    say(f"drawing {len(judged.touchpoints) + 2} charts")
    text = page(judged, now)
    with atomic_output(out_path) as stream:
        stream.write(text.encode())
    return judged, text


@click.command()
@click.argument("inputs", nargs=-1, metavar="[SOURCE=]EVENTS...")
@click.option(
    "--out",
    "out_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="The review's HTML file.",
)
@click.option("--period", type=DURATION, default="1d", show_default=True, help="Each period's length (1d, 1w, ...).")
@click.option("--prometheus", "prometheus_url", metavar="URL", help="Read a running Prometheus instead of files.")
@click.option("--since", type=DURATION, default="28d", show_default=True, help="With --prometheus: how far back.")
@click.option(
    "--profile",
    type=click.Choice(sorted(PROFILES)),
    default="production",
    show_default=True,
    help="The rules' windows: with --prometheus, the profile they were rendered with (tpmon rules render "
    "--profile); with files, the window of the spells broken (the wall's hour; test: a minute).",
)
@click.option(
    "--worker",
    "workers",
    multiple=True,
    metavar="URL",
    help="With --prometheus: a worker's web address to tell stories from (its /stories); repeat for each.",
)
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path), help="Catalog file or folder [default: rules/]."
)
@click.option("--lateness", type=DURATION, help="With files: how long to wait for out-of-order events.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: for large files on a terminal]."
)
def report(
    inputs: tuple[str, ...],
    out_path: Path,
    period: int,
    prometheus_url: str | None,
    since: int,
    profile: str,
    workers: tuple[str, ...],
    rules_path: Path | None,
    lateness: int | None,
    progress: bool | None,
) -> None:
    """Write the reliability review of EVENTS (replayed as tpmon replay judges them) or of what a
    running Prometheus recorded, as one self-contained HTML file (charts inline, prints on A4).

    Per stage and touchpoint: reliability per period against the objective and differentiating
    lines, the state now, the change against the previous period, the error budget left, when it was
    broken; the vital few with customers impacted, left after bad and the survey gap; customers in
    and out; and a few customers' stories. The plain-text summary at its top is printed on stdout.
    """
    if prometheus_url and inputs:
        fail("give event files or --prometheus, not both")
    if not prometheus_url and not inputs:
        fail("give event files to replay, or --prometheus URL")
    if str(out_path) == "-":
        fail("--out needs a file: the summary goes to stdout")
    if workers and not prometheus_url:
        fail("--worker goes with --prometheus (a replay tells its stories from the events)")
    if period < SHORTEST_PERIOD:
        fail(
            f"--period {format_duration(period)} is too short: a period is at least {format_duration(SHORTEST_PERIOD)}"
        )
    if not prometheus_url and lateness is not None and lateness < 0:
        fail("--lateness must not be negative")
    catalog = catalog_or_exit(rules_path)

    def say(text: str) -> None:
        err.print(text, style="dim", markup=False, highlight=False, soft_wrap=True)

    now = time.time_ns() // 1000
    try:
        if prometheus_url:
            from ..report.prometheus import PrometheusError, evidence, stories

            if since < period:
                fail(f"--since {format_duration(since)} is shorter than one --period ({format_duration(period)})")
            try:
                found = evidence(catalog, prometheus_url, since, period, PROFILES[profile], now, say)
            except PrometheusError as error:
                fail(str(error), 1)
            found.stories, notes = stories(workers, review(catalog, found).story_order(), say, catalog)
            if not workers:
                notes = ["Prometheus keeps no journeys: with --worker URL the review tells the stories a worker keeps."]
            found.notes += notes
        else:
            sources = inputs_or_exit(inputs, catalog)
            for _, events in sources:
                if str(events) == "-":
                    fail("the review reads its inputs twice (for the stories): give files, not standard input")
                if events.resolve() == out_path.resolve():
                    fail(f"{out_path} is an input file; choose another output")
            found = replayed_or_exit(catalog, sources, period, lateness, progress, say, profile)
        judged, text = write(catalog, found, out_path, now, say)
    except KeyboardInterrupt:
        err.print("interrupted; no review written")
        raise SystemExit(130) from None
    sys.stdout.write(summary(judged) + "\n")
    err.print(f"wrote {out_path} ({len(text) // 1024} KB): open it in a browser, or print it", highlight=False)
