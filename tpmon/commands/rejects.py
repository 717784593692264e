"""tpmon rejects: read the dead-letter topic back, as JSONL records or as the messages themselves."""

from __future__ import annotations

import base64
import contextlib
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

import click
import orjson

from ..output import atomic_output, err, fail

HEADERS = ("reason", "source", "detail", "stage", "touchpoint", "message", "omitted")
STALLED = 30.0  # seconds without a message, short of the end, before Kafka is taken for gone


@click.command()
@click.option("--bootstrap", help="Kafka bootstrap servers [env TPMON_BOOTSTRAP; default 127.0.0.1:9092].")
@click.option("--topic", help="The dead-letter topic [env TPMON_DEAD_LETTER_TOPIC; default tpmon-rejects].")
@click.option("--reason", "reasons", multiple=True, help="Only these reasons (repeat the option for several).")
@click.option("--source", "sources", multiple=True, help="Only messages of these source topics.")
@click.option(
    "--raw",
    is_flag=True,
    help="Write each message as it came, one per line (for `tpmon produce` once fixed), instead of records.",
)
@click.option(
    "--out", type=click.Path(dir_okay=False, allow_dash=True, path_type=Path), default="-", help="[default: stdout]"
)
def rejects(
    bootstrap: str | None, topic: str | None, reasons: tuple[str, ...], sources: tuple[str, ...], raw: bool, out: Path
) -> None:
    """Read every message kept in the dead-letter topic, from the first to the last there now.

    Each record is what `tpmon replay --rejects` writes (reason, detail, source, the message as raw
    text or raw_base64), with stage for internal errors and where it was kept (topic, partition,
    offset, timestamp). With --raw, only the messages, one per line; those that are not UTF-8 or hold
    a line break cannot be written so and are counted on stderr. Nothing is committed: reading the
    topic changes nothing for anyone else.
    """
    from streams.settings import Settings

    from ..runtime import run_until_interrupted

    try:
        settings = Settings.load(bootstrap=bootstrap, dead_letter_topic=topic)
    except ValueError as error:
        fail(str(error))
    tally: Counter[str] = Counter()
    keep = _filter(set(reasons), set(sources))
    try:
        with atomic_output(out) as stream:
            run_until_interrupted(
                _read(settings, keep, _raw_writer(stream, tally) if raw else _record_writer(stream), tally)
            )
    except ConnectionError as error:
        fail(str(error))
    except KeyboardInterrupt:
        err.print(f"interrupted after {tally['read']} messages; nothing written")
        raise SystemExit(130) from None
    unwritten = (
        f", {tally['unwritable']} not written (not UTF-8, or holding a line break)" if tally["unwritable"] else ""
    )
    err.print(f"{tally['written']} of the {tally['read']} messages in {settings.dead_letter_topic} written{unwritten}")


Writer = Callable[[object, dict[str, str]], bool]  # (message, its headers) -> written


def _filter(reasons: set[str], sources: set[str]) -> Callable[[dict[str, str]], bool]:
    def keep(headers: dict[str, str]) -> bool:
        return (not reasons or headers.get("reason") in reasons) and (not sources or headers.get("source") in sources)

    return keep


def _record_writer(stream: BinaryIO) -> Writer:
    def write(message, headers: dict[str, str]) -> bool:  # type: ignore[no-untyped-def]
        record: dict[str, object] = {name: headers[name] for name in HEADERS if name in headers}
        record.update(
            topic=message.topic, partition=message.partition, offset=message.offset, timestamp=message.timestamp
        )
        value = message.value
        if value is None:
            record["raw"] = None
        else:
            try:
                record["raw"] = value.decode("utf-8")
            except UnicodeDecodeError:
                record["raw_base64"] = base64.b64encode(value).decode("ascii")
        stream.write(orjson.dumps(record) + b"\n")
        return True

    return write


def _raw_writer(stream: BinaryIO, tally: Counter[str]) -> Writer:
    def write(message, headers: dict[str, str]) -> bool:  # type: ignore[no-untyped-def]
        value = message.value
        if value is None or b"\n" in value or b"\r" in value or not _is_utf8(value):
            tally["unwritable"] += 1
            return False
        stream.write(value + b"\n")
        return True

    return write


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


async def _read(settings, keep: Callable[[dict[str, str]], bool], write: Writer, tally: Counter[str]) -> None:  # type: ignore[no-untyped-def]
    from aiokafka import AIOKafkaConsumer, TopicPartition

    from ..publish import started

    topic = settings.dead_letter_topic
    partitions = await _partitions(settings, topic)
    if not partitions:
        raise ConnectionError(f"there is no topic {topic} at {settings.bootstrap}")
    consumer = AIOKafkaConsumer(
        **settings.client_options(),
        enable_auto_commit=False,
        max_partition_fetch_bytes=16 * 1024 * 1024,
        fetch_max_bytes=32 * 1024 * 1024,
    )
    await started(consumer, settings)
    try:
        assigned = [TopicPartition(topic, partition) for partition in partitions]
        consumer.assign(assigned)
        await consumer.seek_to_beginning(*assigned)
        ends = await consumer.end_offsets(assigned)
        left = set(assigned)
        progress = time.monotonic()
        while True:
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
            if not left:
                return
            if time.monotonic() - progress > STALLED:
                raise ConnectionError(f"Kafka at {settings.bootstrap} sent nothing more for {STALLED:.0f} s")
            batches = await consumer.getmany(*left, timeout_ms=1000)
            for tp, messages in batches.items():
                progress = time.monotonic()
                for message in messages:
                    if message.offset >= ends[tp]:
                        break
                    tally["read"] += 1
                    headers = {name: value.decode("utf-8", "replace") for name, value in message.headers or ()}
                    if keep(headers) and write(message, headers):
                        tally["written"] += 1
    finally:
        with contextlib.suppress(Exception):
            await consumer.stop()


async def _partitions(settings, topic: str) -> list[int]:  # type: ignore[no-untyped-def]
    """The topic's partitions (none when it does not exist), asked of the broker."""
    from aiokafka.admin import AIOKafkaAdminClient

    from ..publish import started

    admin = await started(AIOKafkaAdminClient(**settings.client_options()), settings)
    try:
        if topic not in await admin.list_topics():
            return []  # (asked first: describing a missing topic would create it, where the broker may)
        (described,) = await admin.describe_topics([topic])
    finally:
        with contextlib.suppress(Exception):
            await admin.close()
    if described["error_code"]:
        return []
    return sorted(partition["partition"] for partition in described["partitions"])
