"""tpmon produce: publish a JSONL file of events to their source topics."""

from __future__ import annotations

import asyncio
import os
import stat
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import click

from ..output import err, fail


@click.command()
@click.argument("events", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path))
@click.option("--bootstrap", help="Kafka bootstrap servers [env TPMON_BOOTSTRAP; default 127.0.0.1:9092].")
@click.option("--topic", help="Send every line to this topic, as it is.")
@click.option(
    "--source", help="The lines are messages of this declared source: each goes to its topic, keyed by its customer."
)
def produce(events: Path, bootstrap: str | None, topic: str | None, source: str | None) -> None:
    """Publish each line of EVENTS, as it is, to the source topic of its type, keyed by customer_id.

    With --source, every line goes to that source's topic, keyed by the customer its shape says. A line
    with no customer to key it by (unreadable, or without one) is sent all the same, unkeyed, so that
    the worker keeps it in its dead letters, and reported with its line number. A line whose topic
    cannot be told (no --source or --topic, and no declared type) is reported and skipped; produce
    exits non-zero when it sent nothing.
    Security settings come from TPMON_* environment variables, as for `tpmon worker`.
    """
    from monitor.catalog import CatalogInvalid
    from streams.settings import Settings

    from ..publish import Published, contract_of, publish, topic_names
    from ..runtime import run_until_interrupted

    if str(events) != "-" and not events.is_file():
        fail(f"{events}: no such file")
    try:
        settings = Settings.load(bootstrap=bootstrap)
    except ValueError as error:
        fail(str(error))

    async def lines() -> AsyncIterator[bytes]:
        from_stdin = str(events) == "-"
        if from_stdin and not stat.S_ISREG(os.fstat(sys.stdin.fileno()).st_mode):
            async for line in _pipe_lines():
                yield line
            return
        with sys.stdin.buffer if from_stdin else events.open("rb") as stream:  # a file never blocks
            for line in stream:
                yield line.rstrip(b"\r\n")

    def skipped(number: int, why: str) -> None:
        err.print(f"line {number}: skipped: {why}", soft_wrap=True)

    def unkeyed(number: int, why: str) -> None:
        err.print(f"line {number}: {why}", soft_wrap=True)

    result = Published()
    if topic and source:
        fail("give --topic or --source, not both")
    try:
        contract = contract_of(settings)
        topics = topic_names(settings, contract)
    except (ValueError, CatalogInvalid) as error:
        fail(str(error))
    if source is not None and source not in topics:
        fail(f"--source {source}: not a source of the catalog ({', '.join(topics)})")
    try:
        run_until_interrupted(publish(lines(), settings, result, topic, skipped, source, contract, unkeyed))
    except ConnectionError as error:
        fail(f"{error}; {_said(result)}{_rest(result, events)}")
    except KeyboardInterrupt:
        err.print(f"interrupted; {_said(result)}{_rest(result, events)}")
        raise SystemExit(130) from None
    err.print(_said(result))
    if result.sent == 0 and result.skipped:
        fail("nothing was sent: every line was skipped (the reasons are above)")


STDIN_LINE_LIMIT = 64 * 1024 * 1024


def _said(result) -> str:  # type: ignore[no-untyped-def]
    """What was sent (and of it, unkeyed) and skipped."""
    unkeyed = f" ({result.unkeyed} of them unkeyed, for the dead letters)" if result.unkeyed else ""
    return f"{result.sent} events sent{unkeyed}, {result.skipped} skipped"


def _rest(result, events: Path) -> str:  # type: ignore[no-untyped-def]
    """How to send what was not: from the first line not known to be sent (the worker drops what
    arrives twice)."""
    if result.first_unsent is None:
        return ""
    where = "the input" if str(events) == "-" else str(events)
    command = (
        "" if str(events) == "-" else f"; `tail -n +{result.first_unsent} {events} | tpmon produce -` sends the rest"
    )
    return f"; the first line not known to be sent is line {result.first_unsent} of {where}{command}"


async def _pipe_lines() -> AsyncIterator[bytes]:
    """Lines of standard input when it is a pipe or a terminal, read by the event loop, so Ctrl-C stops
    a producer that waits for input."""
    reader = asyncio.StreamReader(limit=STDIN_LINE_LIMIT)
    loop = asyncio.get_running_loop()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin.buffer)
    while True:
        try:
            line = await reader.readline()
        except ValueError:
            fail(f"a line on standard input is longer than {STDIN_LINE_LIMIT // (1024 * 1024)} MiB")
        if not line:
            return
        yield line.rstrip(b"\r\n")
