"""tpmon replay: judge a file of events against the catalog, as the live pipeline would."""

from __future__ import annotations

import contextlib
import difflib
import os
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

import click
import orjson

from monitor.conventions import FILE_SOURCE
from monitor.events import Reject, parse_timestamp, timestamp_problem
from monitor.failures import Failure, FailureLog
from monitor.journeys import Journeys
from monitor.replay import Replay

from ..output import atomic_output, err, fail, out
from ..runtime import batch_collection, keep_until_exit
from .catalog import catalog_or_exit
from .options import DURATION

STATE_STYLE = {
    "broken": "bold red",
    "reliable": "green",
    "differentiating": "bold blue",
    "unknown": "dim",
    "warming up": "dim italic",
}
PROGRESS_FROM_BYTES = 8 * 1024 * 1024
#: The exit status of a replay that rejected more than half of its lines (its outputs are written).
MOSTLY_REJECTED = 3


def _counted(stream: BinaryIO, advance: Callable[[int], None]) -> Iterator[bytes]:
    """The stream's lines, telling ``advance`` how many bytes went by every 20,000 lines."""
    done = 0
    for number, line in enumerate(stream, 1):
        done += len(line)
        if number % 20000 == 0:
            advance(done)
            done = 0
        yield line
    advance(done)


@click.command()
@click.argument("inputs", nargs=-1, required=True, metavar="[SOURCE=]EVENTS...")
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path), help="Catalog file or folder [default: rules/]."
)
@click.option("--lateness", type=DURATION, help="How long to wait for out-of-order events [default: the catalog's].")
@click.option(
    "--journeys",
    "journeys_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every customer's journey (JSONL).",
)
@click.option(
    "--rejects",
    "rejects_out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write every rejected line, whole, with its reason (JSONL).",
)
@click.option(
    "--now",
    "now_text",
    metavar="TIMESTAMP",
    help="Judge as a worker would at this instant (RFC 3339): events more than max_future ahead of it are "
    "rejected as future_timestamp.",
)
@click.option(
    "--max-future", type=DURATION, help="With --now: how far ahead an event may be [default: the catalog's, 1h]."
)
@click.option(
    "--until",
    "until_text",
    metavar="TIMESTAMP",
    help="At the end, decide what is due by this instant (RFC 3339) instead of by the last event: what a "
    "live worker whose watermark is there has decided (its /touchpoints says where it is).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the summary as one JSON object.")
@click.option(
    "--progress/--no-progress", default=None, help="Progress bar on stderr [default: for large files on a terminal]."
)
@click.option(
    "--forget",
    "forget_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Customers forgotten on request (ids, one a line): no journey of theirs, and their lines kept out of "
    "--rejects (a JSON line by its customer_id; any other line if it holds the id as a whole word); every "
    "count the same.",
)
def replay(
    inputs: tuple[str, ...],
    rules_path: Path | None,
    lateness: int | None,
    journeys_out: Path | None,
    rejects_out: Path | None,
    now_text: str | None,
    max_future: int | None,
    until_text: str | None,
    as_json: bool,
    progress: bool | None,
    forget_file: Path | None,
) -> None:
    """Replay EVENTS (JSONL, one event per line; - for stdin) through the catalog.

    Several inputs are merged in event-time order, as a live worker aligns its sources. An input
    written SOURCE=FILE is read as messages of that declared source (its shape and time format
    apply); a bare FILE holds lines in the contract's own shape or CloudEvents.

    No line stops the replay: bad lines are counted, and kept whole with --rejects; a line whose
    processing fails for a reason outside the event contract (a bug) is kept there too, as
    internal_error, and its traceback printed on stderr; so is each event a touchpoint's rule could
    not judge, as rule_error with the touchpoint and the message.

    Exits 3, once its outputs are written, when more than half of the lines were rejected.
    """
    from monitor.erasures import naming

    forgotten = forgotten_or_exit(forget_file)
    names_forgotten = naming(forgotten)
    catalog = catalog_or_exit(rules_path)
    not_after = None
    if now_text is not None:
        now = parse_timestamp(now_text)
        if now is None:
            fail(f"--now {timestamp_problem(now_text)}")
        not_after = now + (catalog.max_future if max_future is None else max_future)  # type: ignore[operator]
    elif max_future is not None:
        fail("--max-future needs --now: without it, replay has no clock to be ahead of")
    until = None
    if until_text is not None:
        until = parse_timestamp(until_text)
        if until is None:
            fail(f"--until {timestamp_problem(until_text)}")
    sources = inputs_or_exit(inputs, catalog)
    for _, events in sources:
        for output in (journeys_out, rejects_out):
            if output is not None and str(events) != "-" and output.resolve() == events.resolve():
                fail(f"{output} is an input file; choose another output")

    with contextlib.ExitStack() as stack:
        # Seldom from the first line to the end, finishing and writing included: the thresholds put back
        # after feeding would have the next allocation walk every young object the replay keeps.
        stack.enter_context(batch_collection())
        rejects_stream = stack.enter_context(atomic_output(rejects_out)) if rejects_out else None

        def keep_reject(number: int, reject: Reject) -> None:
            if forgotten and names_forgotten(reject.raw):
                return  # a forgotten customer's line (monitor.erasures.naming): counted all the same
            if rejects_stream is not None:
                rejects_stream.write(orjson.dumps(reject.record(line=number)) + b"\n")

        failure_log = FailureLog()

        def report_failure(number: int | None, failure: Failure) -> None:
            text = failure_log.lines(failure, time.monotonic())
            if text is not None:
                where = f"line {number}: " if number is not None else ""
                err.print(f"{where}{text}", style="red", markup=False, highlight=False, soft_wrap=True)

        journeys = Journeys.of(catalog) if journeys_out else None
        run = Replay(
            catalog,
            lateness=lateness,
            journeys=journeys,
            on_reject=keep_reject,
            on_failure=report_failure,
            not_after=not_after,
        )
        streams = open_inputs(stack, sources)
        try:
            feed(run, streams, progress)
        except KeyboardInterrupt:
            err.print(f"interrupted after {run.lines} lines; no output written")
            raise SystemExit(130) from None
        summary = run.finish(until)
        if journeys is not None:
            journeys.erase(forgotten)
        if journeys_out and journeys is not None:
            with atomic_output(journeys_out) as journey_stream:
                for record in journeys.records():
                    journey_stream.write(orjson.dumps(record) + b"\n")
        keep_until_exit(run, journeys)  # freeing them would only delay the end
    if as_json:
        sys.stdout.buffer.write(orjson.dumps(summary) + b"\n")
    else:
        _print_table(catalog, summary)
    mostly = run.mostly_rejected()
    if mostly is not None:
        sys.stdout.flush()
        fail(
            f"{mostly}: the input does not fit the catalog's declarations (a pointer's typo?); "
            + (f"the lines are in {rejects_out}; " if rejects_out else "keep them with --rejects FILE; ")
            + "check a sample with `tpmon rules validate --sample SOURCE=FILE`",
            MOSTLY_REJECTED,
        )


def forgotten_or_exit(path: Path | None) -> frozenset[str]:
    """The customer ids of a --forget file (one a line); none without one."""
    if path is None:
        return frozenset()
    from .forget import ids_or_exit  # (here: a replay without --forget starts without asyncio)

    return frozenset(ids_or_exit(path, "--forget "))


def open_inputs(stack: contextlib.ExitStack, sources: list[tuple[str, Path]]) -> list[tuple[str, BinaryIO, int]]:
    """(source, stream, size in bytes; 0 for standard input) of each input, closed with ``stack``."""
    streams = []
    for source, events in sources:
        if str(events) == "-":
            streams.append((source, sys.stdin.buffer, 0))
        else:
            stream = stack.enter_context(events.open("rb"))
            streams.append((source, stream, os.fstat(stream.fileno()).st_size))
    return streams


def feed(run: Replay, streams: list[tuple[str, BinaryIO, int]], progress: bool | None) -> None:
    """Feed the inputs to a replay, one input as it is, several merged in event-time order; a bar on
    stderr with ``progress`` (None: for large files on a terminal)."""
    size = sum(size for _, _, size in streams)
    show = progress if progress is not None else (err.is_terminal and size >= PROGRESS_FROM_BYTES)
    with contextlib.ExitStack() as stack:
        if show and size:
            # (imported here, as the table's: a replay without a bar or a table starts without them)
            from rich.progress import (
                BarColumn,
                DownloadColumn,
                Progress,
                TextColumn,
                TimeRemainingColumn,
                TransferSpeedColumn,
            )

            columns = (
                TextColumn("replaying"),
                BarColumn(),
                DownloadColumn(),
                TransferSpeedColumn(),
                TimeRemainingColumn(),
            )
            bar = stack.enter_context(Progress(*columns, console=err, transient=True))
            task = bar.add_task("replay", total=size)
            inputs = [(source, _counted(stream, lambda n: bar.advance(task, n))) for source, stream, _ in streams]
        else:
            inputs = [(source, stream) for source, stream, _ in streams]
        stack.enter_context(batch_collection())
        if len(inputs) == 1:
            run.feed(inputs[0][1], inputs[0][0])
        else:
            run.feed_merged(inputs)


def inputs_or_exit(inputs: tuple[str, ...], catalog) -> list[tuple[str, Path]]:  # type: ignore[no-untyped-def]
    """(source, file) of each ``[SOURCE=]FILE``; a bare file's lines describe themselves."""
    sources = catalog.contract.source_names
    read = []
    for given in inputs:
        name, equals, file = given.partition("=")
        if equals and not Path(given).is_file():
            if name not in sources:
                close = difflib.get_close_matches(name, sources, n=1)
                hint = f"; did you mean '{close[0]}'?" if close else f" (the catalog's: {', '.join(sources)})"
                fail(f"{given}: '{name}' is not a declared source{hint}")
            source, path = name, Path(file)
        else:
            source, path = FILE_SOURCE, Path(given)
        if str(path) == "-":
            if len(inputs) > 1:
                fail("- (standard input) can only be the one input")
        elif not path.is_file():
            fail(f"{path}: no such file")
        read.append((source, path))
    return read


def _nps(impact: dict) -> str:
    """NPS after good/after bad: "+35/-50"; "-" where a side has no answer."""
    sides = impact.get("voice", {}).get("nps") or {}
    shown = [sides.get(side, {}).get("nps") for side in ("after_good", "after_bad")]
    return "/".join("-" if value is None else f"{value:+.0f}" for value in shown)


def _rule_errors_by_touchpoint(summary: dict) -> str:
    """' (touchpoint N, ...)': the touchpoints with rule errors, the most first."""
    found = sorted(
        ((row.get("rule_errors", 0), t) for t, row in summary["touchpoints"].items() if row.get("rule_errors")),
        key=lambda pair: (-pair[0], pair[1]),
    )
    return f" ({', '.join(f'{t} {count}' for count, t in found)})" if found else ""


def _print_table(catalog, summary: dict) -> None:  # type: ignore[no-untyped-def]
    from rich.table import Table

    from monitor.review.text import lift

    table = Table(title="Touchpoints", title_justify="left")
    risky = any(t.at_risk is not None for t in catalog.touchpoints)  # (a column only where it means something)
    headings = ["touchpoint", "stage", "owner", "good", "bad", "pending", *(["at risk"] if risky else [])]
    numbers = ("good", "bad", "pending", "at risk", "reliability", "objective", "impacted", "left", "lift", "nps")
    for heading in [*headings, "reliability", "objective", "state", "impacted", "left", "lift", "nps"]:
        justify = "right" if heading in numbers else "left"
        table.add_column(heading, justify=justify)
    for touchpoint in catalog.touchpoints:
        row = summary["touchpoints"][touchpoint.id]
        ratio = "-" if row["reliability"] is None else f"{row['reliability']:.1%}"
        at_risk = [str(row["at_risk"]) if "at_risk" in row else "-"] if risky else []
        table.add_row(
            touchpoint.id,
            touchpoint.stage,
            touchpoint.owner,
            str(row["good"]),
            str(row["bad"]),
            str(row["pending"]),
            *at_risk,
            ratio,
            f"{touchpoint.objective:.1%}",
            f"[{STATE_STYLE[row['state']]}]{row['state']}[/]",
            str(row["impact"]["customers_impacted"]),
            str(row["impact"]["left_after_bad"]),
            lift(row["impact"]),
            _nps(row["impact"]),
        )
    out.print(table)
    if summary["vital_few"]:
        out.print("vital few (broken, the most customers impacted first): " + ", ".join(summary["vital_few"]))
    e, c, j = summary["events"], summary["customers"], summary["journeys"]
    out.print(
        f"events: {e['accepted']} accepted, {e['rejected']} rejected, {e['duplicates']} duplicates, "
        f"{e['late']} late, {e['rule_errors']} rule errors{_rule_errors_by_touchpoint(summary)}"
        + (f", [bold red]{e['internal_errors']} internal errors[/] (see stderr)" if e["internal_errors"] else "")
    )
    out.print(f"customers: {c['joined']} joined, {c['left']} left; journeys: {j['total']}, {j['broken']} broken")
    out.print(
        "impacted: customers with a bad outcome; left: leavings within the attribution window after one; "
        "lift: how much more often they left than all customers active; nps: after good / after bad"
    )
