"""tpmon report: the reliability review, for the cross-functional meeting (docs/REVIEW.md)."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
import orjson

from monitor.durations import format_duration, parse_duration
from monitor.observe.windows import PROFILES, STATE_WINDOW
from monitor.review import Evidence, Review, review, summary
from monitor.review.model import too_many
from monitor.review.periods import Bound, parse_bound

from ..output import atomic_output, err, fail
from .catalog import catalog_or_exit
from .options import DURATION
from .replay import forgotten_or_exit, inputs_or_exit

SHORTEST_PERIOD = parse_duration("1s")  # (what the test profile makes of a minute)
DEFAULT_SINCE = parse_duration("28d")  # with --prometheus


class BoundType(click.ParamType):
    """'2027-01-04T00:00:00+01:00', '2027-01-04' (in the catalog's time zone) or a duration such as '28d'."""

    name = "TIME"

    def convert(self, value, param, ctx):  # type: ignore[no-untyped-def]
        if isinstance(value, Bound):
            return value
        try:
            return parse_bound(value)
        except ValueError as error:
            self.fail(str(error), param, ctx)


def replayed_or_exit(  # type: ignore[no-untyped-def]
    catalog,
    sources,
    period,
    lateness,
    progress,
    say,
    profile: str = "production",
    since=None,
    until=None,
    forgotten: frozenset[str] = frozenset(),
) -> Evidence:
    """The evidence of a replay of ``sources``; an input with no event (in the span) exits with a message."""
    from ..report.replay import evidence

    say(f"replaying {', '.join(str(path) for _, path in sources)}")
    window = PROFILES[profile].seconds(STATE_WINDOW) * 1_000_000
    zone = catalog.timezone
    begins = since.instant(zone) if since is not None else None
    back = since.back if since is not None else None
    ends = until.instant(zone) if until is not None else None
    found, run = evidence(catalog, sources, period, lateness, progress, say, window, begins, ends, back, forgotten)
    if found is None:
        what = f"{run.lines} lines, {run.tally.rejected} rejected" if run.lines else "nothing"
        bounded = " between --since and --until" if since is not None or until is not None else ""
        fail(f"no event to review{bounded} in {', '.join(str(p) for _, p in sources)} ({what})", 1)
    for note in found.notes:
        if "stretch the review" in note:
            err.print(f"warning: {note}", style="yellow", markup=False, highlight=False, soft_wrap=True)
    return found  # type: ignore[return-value]


def write(catalog, found: Evidence, out_path: Path, now: int, say, json_path: Path | None = None) -> tuple[Review, str]:  # type: ignore[no-untyped-def]
    """Review the evidence and write the page (and its figures as JSON); exits with a message when there
    is nothing to show."""
    from monitor.review.figures import figures

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
    if json_path is not None:
        with atomic_output(json_path) as stream:
            stream.write(orjson.dumps(figures(judged), option=orjson.OPT_INDENT_2) + b"\n")
    return judged, text


def worker_access(user: str | None, password_file: Path | None, ca_file: Path | None):  # type: ignore[no-untyped-def]
    """The credentials and CA for the workers' web views (their web configuration: docs/SECURITY.md)."""
    import os

    from ..report.workers import WorkerAccess

    password = os.environ.get("TPMON_WORKER_PASSWORD", "")
    if password_file is not None:
        try:
            password = next(iter(password_file.read_text().splitlines()), "")
        except OSError as error:
            fail(f"--worker-password-file {password_file}: {error.strerror}")
    if password and not user:
        fail("a worker password without --worker-user (TPMON_WORKER_USER): whose is it?")
    if user and not password:
        fail(f"--worker-user {user}: give the password in TPMON_WORKER_PASSWORD or --worker-password-file")
    if ca_file is not None and not ca_file.is_file():
        fail(f"--worker-ca-file {ca_file}: no such file")
    return WorkerAccess(user or "", password, str(ca_file) if ca_file else "")


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
@click.option(
    "--json",
    "json_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Also write the review's figures as JSON to this file (docs/REVIEW.md gives the shape).",
)
@click.option(
    "--since",
    type=BoundType(),
    help="Where the review starts: an RFC 3339 instant, a date (midnight in the catalog's time zone) or a "
    "duration back from the end (from now with --prometheus, where it is 28d unless given).",
)
@click.option(
    "--until",
    type=BoundType(),
    help="Where the review ends (excluded): an RFC 3339 instant or a date (midnight in the catalog's time zone).",
)
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
    "--worker-user",
    envvar="TPMON_WORKER_USER",
    help="With --worker: the user of the workers' basic authentication; the password is read from "
    "TPMON_WORKER_PASSWORD or --worker-password-file [env TPMON_WORKER_USER].",
)
@click.option(
    "--worker-password-file",
    envvar="TPMON_WORKER_PASSWORD_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="A file holding that user's password (its first line) [env TPMON_WORKER_PASSWORD_FILE].",
)
@click.option(
    "--worker-ca-file",
    envvar="TPMON_WORKER_CA_FILE",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With --worker https://...: the CA of the workers' certificates [env TPMON_WORKER_CA_FILE; default "
    "the system's CAs].",
)
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path), help="Catalog file or folder [default: rules/]."
)
@click.option("--lateness", type=DURATION, help="With files: how long to wait for out-of-order events.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: for large files on a terminal]."
)
@click.option(
    "--forget",
    "forget_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="With files: customers forgotten on request (ids, one a line): no story of theirs; every figure the same.",
)
def report(
    inputs: tuple[str, ...],
    out_path: Path,
    period: int,
    prometheus_url: str | None,
    json_path: Path | None,
    since: Bound | None,
    until: Bound | None,
    profile: str,
    workers: tuple[str, ...],
    worker_user: str | None,
    worker_password_file: Path | None,
    worker_ca_file: Path | None,
    rules_path: Path | None,
    lateness: int | None,
    progress: bool | None,
    forget_file: Path | None,
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
    if str(out_path) == "-" or (json_path is not None and str(json_path) == "-"):
        fail("--out and --json need files: the summary goes to stdout")
    if json_path is not None and json_path.resolve() == out_path.resolve():
        fail("--json and --out name the same file; choose another for one of them")
    if until is not None and until.back is not None:
        fail(f"--until {until.text}: give an instant or a date (a duration is for --since, back from the end)")
    if forget_file is not None and prometheus_url:
        fail("--forget goes with event files (Prometheus keeps no customer; the workers forget on `tpmon forget`)")
    forgotten = forgotten_or_exit(forget_file)
    if workers and not prometheus_url:
        fail("--worker goes with --prometheus (a replay tells its stories from the events)")
    access = worker_access(worker_user, worker_password_file, worker_ca_file)
    if period < SHORTEST_PERIOD:
        fail(
            f"--period {format_duration(period)} is too short: a period is at least {format_duration(SHORTEST_PERIOD)}"
        )
    if not prometheus_url and lateness is not None and lateness < 0:
        fail("--lateness must not be negative")
    catalog = catalog_or_exit(rules_path)
    zone = catalog.timezone
    if since is not None and until is not None and since.back is None and since.instant(zone) >= until.instant(zone):  # type: ignore[operator]
        fail(f"--since {since.text} is not before --until {until.text}")

    def say(text: str) -> None:
        err.print(text, style="dim", markup=False, highlight=False, soft_wrap=True)

    now = time.time_ns() // 1000
    try:
        if prometheus_url:
            from ..report.prometheus import PrometheusError, evidence, stories

            back = since.back if since is not None else DEFAULT_SINCE
            if back is not None and back < period:
                fail(f"--since {format_duration(back)} is shorter than one --period ({format_duration(period)})")
            ends = min(now, until.instant(zone)) if until is not None else now  # type: ignore[type-var]
            begins = since.instant(zone) if since is not None else None
            try:
                found = evidence(catalog, prometheus_url, back or 0, period, PROFILES[profile], ends, say, begins)
            except PrometheusError as error:
                fail(str(error), 1)
            found.stories, notes = stories(workers, review(catalog, found).story_order(), say, catalog, access)
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
            found = replayed_or_exit(
                catalog, sources, period, lateness, progress, say, profile, since, until, forgotten
            )
        judged, text = write(catalog, found, out_path, now, say, json_path)
    except KeyboardInterrupt:
        err.print("interrupted; no review written")
        raise SystemExit(130) from None
    sys.stdout.write(summary(judged) + "\n")
    err.print(f"wrote {out_path} ({len(text) // 1024} KB): open it in a browser, or print it", highlight=False)
    if json_path is not None:
        err.print(f"wrote its figures to {json_path}", highlight=False)
