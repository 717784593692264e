"""tpmon demo: the whole pipeline on one machine, with the Customer Room in the terminal."""

from __future__ import annotations

from pathlib import Path

import click

from ..broker import BrokerError, check_java
from ..output import err, fail, out
from ..paths import default_rules
from .catalog import catalog_or_exit
from .options import DURATION


@click.command()
@click.option("--duration", default="3m", show_default=True, type=DURATION, help="How long the demo runs.")
@click.option(
    "--workers", default=1, show_default=True, type=click.IntRange(1, 4), help="Workers sharing the partitions."
)
@click.option(
    "--rate", default=200.0, show_default=True, type=click.FloatRange(min=10), help="Simulated events per second."
)
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path), help="Catalog file or folder [default: rules/]."
)
@click.option(
    "--data",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path(".tpmon/demo"),
    show_default=True,
    help="Scratch folder (emptied first).",
)
@click.option(
    "--picture", type=click.Path(dir_okay=False, path_type=Path), help="Save the wall at its most broken moment as SVG."
)
def demo(duration: int, workers: int, rate: float, rules_path: Path | None, data: Path, picture: Path | None) -> None:
    """Start a local Kafka, workers and the simulator's incident day, and show the Customer Room live.

    A billing outage breaks bill-correct, then an overloaded contact center breaks call-answered,
    then both recover. On Ctrl-C or at the end it stops everything it started and prints a summary.
    """
    from ..demo.run import Demo

    rules = (rules_path or default_rules()).resolve()
    catalog = catalog_or_exit(rules)
    try:
        check_java()
    except BrokerError as error:
        fail(str(error))
    show = Demo(catalog, rules, duration / 1_000_000, workers, rate, data, out)
    completed = True
    try:
        completed = show.run()
    except BrokerError as error:
        show.stop()
        fail(str(error))
    except KeyboardInterrupt:
        completed = False
    finally:
        try:
            err.print("stopping everything the demo started...")
        finally:  # output gone (its reader interrupted too) makes rich exit; what was started still stops
            show.stop()
    out.print(show.summary())
    if picture is not None and show.picture:
        picture.write_text(show.picture)
        out.print(f"the wall, at its most broken moment: {picture}")
    if completed:
        _review(catalog, show, data / "review.html")
    out.print(f"logs and data of this run: {data}")
    if not completed:
        raise SystemExit(130)


def _review(catalog, show, path: Path) -> None:  # type: ignore[no-untyped-def]
    """The reliability review of what the demo sent (tpmon report of its two files, a day a period)."""
    import time

    from monitor.durations import parse_duration

    from .report import replayed_or_exit, write

    def say(text: str) -> None:
        err.print(text, style="dim", markup=False, highlight=False)

    sources = [("file", show.history), ("file", show.sent)]
    if not all(file.is_file() for _, file in sources):
        return
    err.print("writing the reliability review of this run (tpmon report)...")
    try:
        found = replayed_or_exit(catalog, sources, parse_duration("1d"), None, False, say)
        write(catalog, found, path, time.time_ns() // 1000, say)
    except KeyboardInterrupt:
        err.print("interrupted; no review written")
        return
    out.print(f"the reliability review of this run: {path.resolve()} (open it in a browser, or print it)")
