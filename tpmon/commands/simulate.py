"""tpmon simulate: realistic operational events, deterministic for a seed, to a file or live to Kafka."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import click

from monitor.durations import MICROS, format_duration
from monitor.events import format_timestamp
from monitor.simulate import SCENARIOS, Simulation
from monitor.simulate.generator import DEFAULT_START

from ..output import atomic_output, err, fail
from .options import DURATION

SCENARIO_HELP = "; ".join(f"{name}: {s.description}" for name, s in SCENARIOS.items())
EVENTS_PER_CUSTOMER = 4.5  # about, in a run of an hour; used to turn --rate into customers


@click.command()
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write JSONL here (- for stdout); with --bootstrap, a copy of what was sent.",
)
@click.option(
    "--bootstrap", help="Publish live to Kafka at HOST:PORT instead, as the events happen (event time is now)."
)
@click.option("--customers", type=click.IntRange(min=0), help="Customers arriving over the run [default 1000].")
@click.option(
    "--rate", type=click.FloatRange(min=0, min_open=True), help="About this many events per second (sets --customers)."
)
@click.option(
    "--duration", default="1h", show_default=True, type=DURATION, help="Time covered (live: how long it runs)."
)
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--scenario", default="healthy", show_default=True, type=click.Choice(sorted(SCENARIOS)), help=SCENARIO_HELP
)
@click.option("--start", help=f"occurred_at of the run's start (RFC 3339) [default {DEFAULT_START}; live: now].")
@click.option(
    "--disorder",
    default="2s",
    show_default=True,
    type=DURATION,
    help="Events leave their source up to this much out of order.",
)
@click.option(
    "--duplicates",
    default=0.002,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of events sent twice.",
)
@click.option(
    "--bad-lines",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1, max_open=True),
    help="Share of lines replaced by malformed input.",
)
@click.option(
    "--time-scale",
    default=1.0,
    show_default=True,
    type=click.FloatRange(min=0, min_open=True),
    help="Incidents come this many times sooner (60: the outage of minute 10 starts at second 10), for demos and tests.",
)
@click.option(
    "--prefix",
    default="c",
    show_default=True,
    help="Of the customer ids (c-000001...), so that two runs (a stream and a history, say) have other customers.",
)
def simulate(
    out_path: Path | None,
    bootstrap: str | None,
    customers: int | None,
    rate: float | None,
    duration: int,
    seed: int,
    scenario: str,
    start: str | None,
    disorder: int,
    duplicates: float,
    bad_lines: float,
    time_scale: float,
    prefix: str,
) -> None:
    """Simulate customers moving through buy, get, pay, help and leave, across all four sources.

    Named scenarios inject incidents, e.g. billing-outage: from minute 10, 40% of bills wrong for 20
    minutes. With --bootstrap the events are published as they happen, for --duration; Ctrl-C stops.
    """
    if out_path is None and bootstrap is None:
        fail("say where the events go: --out FILE.jsonl (or - for stdout), or --bootstrap HOST:PORT")
    if customers is None:
        customers = max(1, round(rate * duration / MICROS / EVENTS_PER_CUSTOMER)) if rate else 1000
    if start is None:
        start = format_timestamp(time.time_ns() // 1000) if bootstrap else DEFAULT_START
    try:
        run = Simulation(
            customers, duration, seed, scenario, start, disorder, duplicates, bad_lines, time_scale, prefix=prefix
        )
    except ValueError as error:
        fail(str(error))
    for incident in run.unreached():
        err.print(
            f"warning: the run ends ({format_duration(duration)}) before {scenario}'s incident starts "
            f"({format_duration(incident.start)} in: {incident.what or 'incident'}), so it has none of it; "
            f"--duration {format_duration(incident.end + incident.aftermath)} covers it",
            soft_wrap=True,
        )
    if bootstrap is not None:
        _live(run, bootstrap, out_path)
        return
    count = 0
    try:
        with atomic_output(out_path) as stream:  # type: ignore[arg-type]
            for line in run.lines():
                stream.write(line + b"\n")
                count += 1
    except KeyboardInterrupt:
        err.print("interrupted; no file written")
        raise SystemExit(130) from None
    if str(out_path) != "-":
        err.print(
            f"{count} events from {customers} customers over {format_duration(duration)} "
            f"(scenario {scenario}, seed {seed}) -> {out_path}",
            soft_wrap=True,
        )


def _live(run: Simulation, bootstrap: str, copy: Path | None) -> None:
    """Publish each event when the wall clock reaches its send time."""
    from streams.settings import Settings

    from ..publish import Published, publish
    from ..runtime import run_until_interrupted

    try:
        settings = Settings.load(bootstrap=bootstrap)
    except ValueError as error:
        fail(str(error))
    copy_stream = copy.open("wb") if copy is not None and str(copy) != "-" else None

    async def paced() -> AsyncIterator[bytes]:
        for sent, line in run.timed_lines():
            delay = (sent - time.time_ns() // 1000) / MICROS
            if delay > 0:
                await asyncio.sleep(delay)
            if copy_stream is not None:
                copy_stream.write(line + b"\n")
            yield line

    err.print(f"publishing to {bootstrap} until {format_duration(run.duration)} have passed (Ctrl-C stops)...")
    result = Published()
    try:
        run_until_interrupted(publish(paced(), settings, result))
    except ConnectionError as error:
        fail(f"{error}; {result.sent} events sent")
    except KeyboardInterrupt:
        err.print(f"interrupted; {result.sent} events sent")
        raise SystemExit(130) from None
    finally:
        if copy_stream is not None:
            copy_stream.close()
    err.print(f"{result.sent} events sent")
