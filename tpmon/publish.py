"""Publishing events to their source topics with aiokafka: shared by `produce` and `simulate`."""

from __future__ import annotations

import asyncio
import collections
import contextlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType
from aiokafka.errors import (
    KafkaConnectionError,
    KafkaError,
    KafkaTimeoutError,
    OutOfOrderSequenceNumber,
    ProducerFenced,
    TopicAlreadyExistsError,
    UnknownProducerId,
)

from monitor.catalog import load_catalog
from monitor.contract import Contract, Decoder
from monitor.events import Event
from streams.logs import quiet_client_logs
from streams.outbox import succeeded
from streams.partitions import key_partition
from streams.settings import Settings
from tpmon.paths import default_rules

Client = TypeVar("Client", bound=Any)
MAX_REQUEST_BYTES = 8 * 1024 * 1024
FLUSH_TIMEOUT = 10.0  # seconds a stopping producer waits for the broker to take what it holds
RETRY_FOR = 60.0  # seconds a line is retried while Kafka does not take it
WINDOW = 5000  # lines handed to the producer before their acknowledgements are awaited


class Unsent(ConnectionError):
    """Kafka did not take line ``number`` (nor, perhaps, some after it) within RETRY_FOR."""

    def __init__(self, number: int, error: BaseException, bootstrap: str) -> None:
        super().__init__(
            f"Kafka at {bootstrap} did not take line {number} for {RETRY_FOR:.0f} s ({type(error).__name__})"
        )


@dataclass
class Published:
    sent: int = 0  # acknowledged by Kafka
    unkeyed: int = 0  # of those, sent without a key (no customer: the worker dead-letters them)
    skipped: int = 0
    first_unsent: int | None = None  # the first line not known to be sent, when stopped early


#: Sentinels are events from the future by design: a worker that is to take them needs this max_future.
SENTINEL_MAX_FUTURE = "30000d"


def watermark_sentinels(partitions: int, event_type: str, occurred_at: str = "2099-01-01T00:00:00Z") -> list[bytes]:
    """One event of ``event_type`` (a declared type without required fields of its own) per partition
    of tpmon's events topic, at ``occurred_at``.

    Published after everything else, they move every partition's watermark past every due time before
    ``occurred_at``, as the end of a replay does; live counters then equal replay's (tests, benchmarks).
    The customers are chosen so that Kafka's default partitioner spreads them one per partition. A
    worker refuses events far ahead of its clock (max_future), so one that is to take sentinels runs
    with ``TPMON_MAX_FUTURE=SENTINEL_MAX_FUTURE``.
    """
    lines: dict[int, bytes] = {}
    number = 0
    while len(lines) < partitions:
        customer = f"sentinel-{number}"
        partition = key_partition(customer.encode(), partitions)
        if partition not in lines:
            event = {
                "event_id": customer,
                "type": event_type,
                "customer_id": customer,
                "occurred_at": occurred_at,
            }
            lines[partition] = orjson.dumps(event)
        number += 1
    return [lines[partition] for partition in sorted(lines)]


def contract_of(settings: Settings) -> Contract:
    """The event contract of the catalog the settings name (TPMON_RULES, else the default one)."""
    return load_catalog(settings.rules or default_rules()).contract


#: Why a line the worker is to dead-letter is sent without a key (said with its line number).
UNKEYED = "sent unkeyed, for the worker to keep in its dead letters"


def route(
    line: bytes, topics: dict[str, str], fixed_topic: str | None, contract: Contract
) -> tuple[str | None, bytes | None, str]:
    """(topic, key, why) for one line: the source topic of its type, keyed by its customer
    (``customer_id``, or a CloudEvent's data's customer_id or subject). No topic: the line is skipped,
    and why says so; a topic and a why: it is sent without a key (it has no customer to key it by, so
    the worker will dead-letter it), and why says so."""
    key = None
    try:
        data = orjson.loads(line)
    except orjson.JSONDecodeError:
        data = None
    if isinstance(data, dict):
        customer = data.get("customer_id")
        body = data.get("data")
        if customer is None and "specversion" in data:
            customer = body.get("customer_id", data.get("subject")) if isinstance(body, dict) else data.get("subject")
        if isinstance(customer, str) and customer:
            key = customer.encode()
    unkeyed = "" if key is not None else f"no customer_id to key it by: {UNKEYED}"
    if fixed_topic is not None:
        return fixed_topic, key, unkeyed
    if not isinstance(data, dict):
        return None, None, "not a JSON object, so its source topic is unknown (give --topic or --source to send it)"
    event_type = data.get("type")
    if not isinstance(event_type, str) or not event_type:
        return None, None, "field 'type' is missing, so its source topic is unknown (give --topic to send it anyway)"
    source = contract.source_of_type(event_type)
    if source is None or source not in topics:
        return (
            None,
            None,
            f"type {event_type!r} is not declared in the catalog's events (give --topic to send it anyway)",
        )
    return topics[source], key, unkeyed


def route_as(
    line: bytes, source: str, topics: dict[str, str], decoder: Decoder
) -> tuple[str | None, bytes | None, str]:
    """(topic, key, why) for a line of a given source: its topic, keyed by the customer its shape says;
    a line that is not a valid event of the source is sent there without a key, for the worker to
    dead-letter, and why says what is wrong with it."""
    decoded = decoder.decode(line, source)
    if type(decoded) is not Event:
        return topics[source], None, f"{decoded.detail}: {UNKEYED}"  # type: ignore[union-attr]
    return topics[source], decoded.customer.encode(), ""


def topic_names(settings: Settings, contract: Contract) -> dict[str, str]:
    """Source name -> topic: the catalog's sources, renamed as TPMON_TOPICS says."""
    return settings.topics_of(contract.source_names)


async def started(client: Client, settings: Settings) -> Client:
    """Start an aiokafka client (producer, consumer or admin); a broker out of reach is a
    ConnectionError that says where, with the client closed."""
    try:
        await client.start()
    except KafkaConnectionError:
        with contextlib.suppress(Exception):
            await (client.close() if isinstance(client, AIOKafkaAdminClient) else client.stop())
        raise ConnectionError(f"cannot reach Kafka at {settings.bootstrap}") from None
    return client


async def ensure_topics(
    settings: Settings, names: list[str], config: dict[str, str] | None = None, configure: bool = False
) -> None:
    """Create the topics that do not exist yet, with the configured partitions (and ``config``); with
    ``configure``, set ``config`` on those that exist too (what it names; the rest is Kafka's default)."""
    admin = await started(AIOKafkaAdminClient(**settings.client_options()), settings)
    try:
        existing = set(await admin.list_topics())
        missing = [
            NewTopic(name, settings.partitions, 1, topic_configs=config) for name in names if name not in existing
        ]
        if missing:
            with contextlib.suppress(TopicAlreadyExistsError):
                await admin.create_topics(missing)
        if configure and config:
            there = [
                ConfigResource(ConfigResourceType.TOPIC, name, configs=config) for name in names if name in existing
            ]
            if there:
                await admin.alter_configs(there)
    finally:
        await admin.close()


async def publish(
    lines: AsyncIterator[bytes],
    settings: Settings,
    result: Published,
    fixed_topic: str | None = None,
    on_skip: Callable[[int, str], None] | None = None,
    source: str | None = None,
    contract: Contract | None = None,
    on_unkeyed: Callable[[int, str], None] | None = None,
) -> None:
    """Send every line to its topic; lines that cannot be routed are reported through ``on_skip``,
    lines sent without a key (no customer to key them by) through ``on_unkeyed``.

    ``result`` counts the lines Kafka acknowledged, so an interrupted run still says what it sent, and
    ``result.first_unsent`` the first line not known to be sent when it stops early. While Kafka is
    out of reach, each line is retried for RETRY_FOR seconds; then ``Unsent`` names the line. On
    cancellation (Ctrl-C) what was handed to the producer is flushed before it stops, within FLUSH_TIMEOUT.
    """
    contract = contract or contract_of(settings)  # the catalog's, unless the caller has read it already
    topics = topic_names(settings, contract)
    decoder = Decoder(contract) if source is not None else None
    if source is not None and source not in topics:
        raise ValueError(f"'{source}' is not a source of the catalog ({', '.join(topics)})")
    await ensure_topics(
        settings, [fixed_topic] if fixed_topic else [topics[source]] if source else list(topics.values())
    )

    def new_producer() -> AIOKafkaProducer:
        return AIOKafkaProducer(
            **settings.client_options(),
            max_request_size=MAX_REQUEST_BYTES,
            linger_ms=5,
            acks="all",
            enable_idempotence=True,
        )

    producer = await started(new_producer(), settings)
    loop = asyncio.get_running_loop()

    async def renew(deadline: float) -> None:
        """A producer whose sequence the broker no longer follows (after an outage, the broker may
        answer out-of-order-sequence for every later batch of a partition) fails for good: start a new
        one (a new producer id) and send the whole window again. Lines Kafka took before may be sent
        twice; tpmon counts a repeated event_id as a duplicate (docs/SEMANTICS.md), so nothing is doubled."""
        nonlocal producer
        for *_, given_up in window:  # the old producer fails them all: said here, not as "never retrieved"
            given_up.add_done_callback(_retrieved)
        old, producer = producer, new_producer()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(old.stop(), FLUSH_TIMEOUT)
        while True:
            try:
                await producer.start()
                break
            except KafkaError as error:
                if loop.time() > deadline:
                    raise Unsent(window[0][0], error, settings.bootstrap) from None
                await asyncio.sleep(1.0)
        for index, (number, topic, key, line, _) in enumerate(window):
            window[index] = (number, topic, key, line, await send(number, topic, key, line, deadline))

    async def send(
        number: int, topic: str, key: bytes | None, line: bytes, deadline: float | None = None
    ) -> asyncio.Future:
        """Hand a line to the producer; while Kafka cannot take it, retry until ``deadline`` (by default
        RETRY_FOR from now)."""
        deadline = loop.time() + RETRY_FOR if deadline is None else deadline
        while True:
            try:
                return await producer.send(topic, value=line, key=key)
            except KafkaError as error:
                if not _retriable(error) or loop.time() > deadline:
                    raise Unsent(number, error, settings.bootstrap) from None
                await asyncio.sleep(1.0)

    async def settle() -> None:
        """Wait until Kafka has every line of the window, in order, sending again what failed; a line
        not acknowledged within RETRY_FOR is ``Unsent`` (a batch for a partition without a known
        leader never fails on its own)."""
        while window:
            number, *_, future = window[0]
            deadline = loop.time() + RETRY_FOR
            while True:
                try:
                    await asyncio.wait_for(asyncio.shield(future), max(0.0, deadline - loop.time()))
                    break
                except TimeoutError:
                    raise Unsent(number, KafkaTimeoutError(), settings.bootstrap) from None
                except _PRODUCER_LOST as error:
                    if loop.time() > deadline:
                        raise Unsent(number, error, settings.bootstrap) from None
                    await renew(deadline)
                    future = window[0][4]
                except KafkaError as error:
                    if not _retriable(error) or loop.time() > deadline:
                        raise Unsent(number, error, settings.bootstrap) from None
                    await asyncio.sleep(1.0)
                    await resend_failed(deadline)
                    future = window[0][4]
            if window.popleft()[2] is None:
                result.unkeyed += 1
            result.sent += 1

    async def resend_failed(deadline: float) -> None:
        """Send again, in order, every line of the window whose send failed: after an outage the
        batches that expired fail all their lines at once, and one wait serves them all (a wait for
        each would hold a window of thousands for as many seconds)."""
        for index, (number, topic, key, line, sent) in enumerate(window):
            if sent.done() and not sent.cancelled() and sent.exception() is not None:
                window[index] = (number, topic, key, line, await send(number, topic, key, line, deadline))

    window: collections.deque[tuple[int, str, bytes | None, bytes, asyncio.Future]] = collections.deque()
    number = 0
    with quiet_client_logs():
        try:
            async for line in lines:
                number += 1
                if not line.strip():
                    continue
                if source is not None:
                    topic, key, why = route_as(line, source, topics, decoder)  # type: ignore[arg-type]
                else:
                    topic, key, why = route(line, topics, fixed_topic, contract)
                if topic is None:
                    result.skipped += 1
                    if on_skip is not None:
                        on_skip(number, why)
                    continue
                if why and on_unkeyed is not None:
                    on_unkeyed(number, why)
                window.append((number, topic, key, line, await send(number, topic, key, line)))
                if len(window) >= WINDOW:
                    await settle()
            await settle()
        finally:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.flush(), FLUSH_TIMEOUT)
            while window and succeeded(window[0][4]):  # what the flush got through
                if window.popleft()[2] is None:
                    result.unkeyed += 1
                result.sent += 1
            if window:
                result.first_unsent = window[0][0]
            for *_, future in window:  # their failures are said above, not as "never retrieved"
                future.add_done_callback(_retrieved)
            with contextlib.suppress(Exception):
                await asyncio.wait_for(producer.stop(), FLUSH_TIMEOUT)


#: Errors after which a producer sends nothing more (aiokafka fails every later batch): start a new one.
_PRODUCER_LOST = (OutOfOrderSequenceNumber, UnknownProducerId, ProducerFenced)


def _retriable(error: KafkaError) -> bool:
    return error.retriable or isinstance(error, KafkaTimeoutError)


def _retrieved(future: asyncio.Future) -> None:
    if not future.cancelled():
        future.exception()
