"""tpmon kafka: a local single-node Apache Kafka for development, tests and the demo."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import click

from ..broker import DEFAULT_DATA, DEFAULT_PORT, BrokerError, LocalKafka
from ..output import err, fail, out


@click.group()
def kafka() -> None:
    """Run a local Apache Kafka 4 (KRaft, single node, loopback only)."""


@kafka.command()
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(1, 65535),
    help="Clients connect here; the broker's controller listens on PORT+1 (another free port if taken).",
)
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA, show_default=True)
@click.option("--foreground", is_flag=True, help="Stay attached; Ctrl-C stops the broker.")
def start(port: int, data: Path, foreground: bool) -> None:
    """Start the broker (fetching its jars with Maven the first time) and print its address."""
    broker = LocalKafka(data, port)
    err.print("starting Kafka (the first start fetches its jars with Maven)...")
    try:
        address = broker.start()
    except BrokerError as error:
        fail(str(error))
    out.print(address)
    if not foreground:
        err.print(f"running in the background (data in {broker.data}); `tpmon kafka stop --data {data}` stops it")
        return
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGTERM, stop)
    try:
        while not stopping and broker.running_pid() is not None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    broker.stop()
    err.print("stopped")


@kafka.command()
@click.option("--data", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_DATA, show_default=True)
def stop(data: Path) -> None:
    """Stop the broker started from this data folder."""
    if LocalKafka(data).stop():
        err.print("stopped")
    else:
        err.print(f"no broker running from {data}")
