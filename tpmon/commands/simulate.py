"""tpmon simulate: realistic operational events, deterministic for a seed."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.durations import format_duration
from monitor.simulate import SCENARIOS, Simulation
from monitor.simulate.generator import DEFAULT_START

from ..output import atomic_output, err, fail
from .options import DURATION

SCENARIO_HELP = "; ".join(f"{name}: {s.description}" for name, s in SCENARIOS.items())


@click.command()
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, allow_dash=True, path_type=Path),
    help="Write JSONL here (- for stdout).",
)
@click.option(
    "--customers", default=1000, show_default=True, type=click.IntRange(min=0), help="Customers arriving over the run."
)
@click.option("--duration", default="1h", show_default=True, type=DURATION, help="Simulated time covered.")
@click.option("--seed", default=1, show_default=True, type=int)
@click.option(
    "--scenario", default="healthy", show_default=True, type=click.Choice(sorted(SCENARIOS)), help=SCENARIO_HELP
)
@click.option("--start", default=DEFAULT_START, show_default=True, help="occurred_at of the run's start (RFC 3339).")
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
def simulate(
    out_path: Path | None,
    customers: int,
    duration: int,
    seed: int,
    scenario: str,
    start: str,
    disorder: int,
    duplicates: float,
    bad_lines: float,
) -> None:
    """Simulate customers moving through buy, get, pay, help and leave, across all four sources.

    Named scenarios inject incidents, e.g. billing-outage: from minute 10, 40% of bills wrong for 20 minutes.
    """
    if out_path is None:
        fail("say where the events go: --out FILE.jsonl (or - for stdout)")
    try:
        run = Simulation(customers, duration, seed, scenario, start, disorder, duplicates, bad_lines)
    except ValueError as error:
        fail(str(error))
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
