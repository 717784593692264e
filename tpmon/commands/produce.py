"""tpmon produce: publish a JSONL file of events to their source topics."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import click

from ..output import err, fail


@click.command()
@click.argument("events", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--bootstrap", help="Kafka bootstrap servers [env TPMON_BOOTSTRAP; default 127.0.0.1:9092].")
@click.option("--topic", help="Send every line to this topic, as it is.")
def produce(events: Path, bootstrap: str | None, topic: str | None) -> None:
    """Publish each line of EVENTS, as it is, to the source topic of its type, keyed by customer_id.

    Without --topic, a line whose type is unknown or that cannot be read is reported and skipped.
    Security settings come from TPMON_* environment variables, as for `tpmon worker`.
    """
    from streams.settings import Settings

    from ..publish import publish

    if str(events) != "-" and not events.is_file():
        fail(f"{events}: no such file")
    try:
        settings = Settings.load(bootstrap=bootstrap)
    except ValueError as error:
        fail(str(error))

    async def lines() -> AsyncIterator[bytes]:
        stream = sys.stdin.buffer if str(events) == "-" else events.open("rb")
        with stream:
            for line in stream:
                yield line.rstrip(b"\r\n")

    def skipped(number: int, why: str) -> None:
        err.print(f"line {number}: skipped: {why}", soft_wrap=True)

    try:
        result = asyncio.run(publish(lines(), settings, topic, skipped))
    except ConnectionError as error:
        fail(str(error))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise SystemExit(130) from None
    err.print(f"{result.sent} events sent, {result.skipped} skipped")
