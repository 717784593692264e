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
@click.option(
    "--duration",
    default="3m",
    show_default=True,
    type=DURATION,
    help="How long the demo runs (its incident day at least long enough to show the recovery).",
)
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
    """The reliability review of the incident day the demo ran (tpmon report of what it sent live), in
    twelve periods and with the windows of its Prometheus rules (the test profile: a minute for an
    hour), as the day is compressed into the run. (Not of its healthy fortnight: its customers all
    came in its first week, so its touchpoints decided a fortnight after they open, such as
    ticket-stays-resolved, decide their repeats then and the rest a fortnight on; its periods would
    show that, not how they work.)"""
    import time

    from .report import replayed_or_exit, write

    def say(text: str) -> None:
        err.print(text, style="dim", markup=False, highlight=False)

    if not show.sent.is_file():
        return
    period = max(1, round(show.live / 12)) * 1_000_000
    err.print("writing the reliability review of this run (tpmon report)...")
    try:
        found = replayed_or_exit(catalog, [("file", show.sent)], period, None, False, say, "test")
        write(catalog, found, path, time.time_ns() // 1000, say)
    except KeyboardInterrupt:
        err.print("interrupted; no review written")
        return
    except SystemExit:  # the review said why it could not be written; the demo itself went well
        return
    # (One line however long, so that the path can be copied whole.)
    out.print(
        f"the reliability review of this run: {path.resolve()} (open it in a browser, or print it)", soft_wrap=True
    )
