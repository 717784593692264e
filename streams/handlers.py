"""The worker's two hops, a batch at a time, without Faust: what ``streams.app`` hands each fetch to.

Each hop is a named step, a pure function of a batch that returns what to write, and a thin unit that
writes it (the outbox, the dead letters, the metrics), the way a Faust agent would:

- ``ingest`` (unit ``Ingest``): each source message is decoded; an event goes on to the events topic
  keyed by its customer (so that one partition sees all of a customer's events), anything else whole to
  the dead letters;
- ``read_events`` (unit ``Judge``): each message of the events topic is read again, an event or a
  report of ingest, and the partition's engine (``streams.partitions``) takes them in order; what it
  changes is written as records of its stores.

docs/PERFORMANCE.md says why these are not Faust agents (the per-message path costs several times the
judging itself).

Ingest also says how far each of its inputs (source topic partitions) has come: after every batch, and
at every tick, it sends a report (``monitor.watermark.Report``) to every partition of the events topic,
behind the events it covers. The judge takes the reports in order with the events, and the watermark
follows the slowest input (docs/SEMANTICS.md). So that catching up does not hold a whole backlog in memory,
ingest pauses the inputs more than ``AHEAD`` ahead of the slowest (``Ingest.ahead``).

Nothing a message holds can stop either (docs/EVENTS.md). Each message is guarded: a message whose
processing raises (a bug) is kept whole in the dead letters with reason internal_error and the stage
that failed, counted, and logged (``monitor.failures.FailureLog``), and the next message is processed.
A dead letter carries the message as it came (value and key) with headers ``reason``, ``source``,
``detail`` and, for internal errors, ``stage``. An event a touchpoint's rule could not judge (a rule
error: the other touchpoints judged it) is kept there too, with reason rule_error and headers
``touchpoint`` and ``message``, once for each touchpoint that could not judge it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

import orjson

from monitor.contract import Decoder
from monitor.contract.binary import attributes, structured
from monitor.durations import parse_duration
from monitor.events import INTERNAL_ERROR, TOO_LARGE, TOO_OLD, Event, Reject, format_timestamp, json_bytes
from monitor.failures import DECODE, DELIVER, Failure, FailureLog
from monitor.metrics import Metrics
from monitor.watermark import Report, input_name

from .outbox import Message, Outbox
from .partitions import Item, Partitions, Refused, key_partition

log = logging.getLogger("tpmon")

DETAIL_CHARS = 1000  # a dead letter's detail header is cut there (a detail may quote the input)
OMITTED = "omitted"  # header of a dead letter whose value the topic refused: only its size is kept
CLOCK_SKEW = 300_000_000  # 5 min: how far apart two workers' clocks may be
REPORT = ("tpmon", b"report")  # the header of a report on the events topic
INPUT = "input"  # the header of an event on the events topic: where ingest read it, "topic/partition@offset"
NO_HEADERS: dict[str, str] = {}  # (a message without any: ``said``)
#: How far (event time) an input may be read ahead of the slowest before it is paused: the judge holds
#: that much of the faster inputs' events, waiting for the watermark.
AHEAD = parse_duration("10m")
#: An input read here that is caught up and has delivered nothing for this long (wall clock) holds none
#: of the others back: it cannot be read further, so they would wait for nothing until it goes idle, a
#: lateness later (a backfill's last messages, held for the lateness).
SETTLED = parse_duration("5s")


class Record(Protocol):
    """What a handler reads of a Kafka message (Faust's ``Message`` has it)."""

    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: object


def header(headers: object, name: str) -> str:
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for key, value in items:  # type: ignore[union-attr]
        if key == name:
            return value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return ""


def said(headers: object) -> dict[str, str]:
    """A message's headers by name, each read once, as ``header`` reads it (the first of a name)."""
    found: dict[str, str] = {}
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for key, value in items:  # type: ignore[union-attr]
        if key not in found:
            found[key] = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return found


class Failures:
    """Where failures go: the log (the first of each kind with its traceback) and the metrics."""

    def __init__(self, metrics: Metrics | None) -> None:
        self.metrics = metrics
        self.log = FailureLog()

    def report(self, failure: Failure, where: str = "", counted: bool = False) -> None:
        """Log a failure; count it as the process's unless it is ``counted`` already (a partition's, or
        an input's through ingest's reports)."""
        try:
            if self.metrics is not None and not counted:
                self.metrics.failed(failure.stage)
            text = self.log.lines(failure, time.monotonic())
            if text is not None:
                log.error("%s%s", where, text)
        except Exception:  # reporting must never be what stops the worker
            log.exception("could not report an internal error")


class DeadLetters:
    """Keeps messages whole on the dead-letter topic, with why."""

    def __init__(
        self, outbox: Outbox, topic: str, events_topic: str, metrics: Metrics | None, failures: Failures
    ) -> None:
        self.outbox = outbox
        self.topic = topic
        self.events_topic = events_topic
        self.metrics = metrics
        self.failures = failures

    def reject(self, message: Record, reject: Reject) -> None:
        """A message that is not a valid event (counted by whoever found it: ingest's reports, the
        partition that judged it)."""
        self._add(
            message.key,
            message.value,
            reject.reason,
            reject.source,
            reject.detail,
            reject.stage,
            reject.touchpoint,
            reject.message,
        )

    def failed(self, message: Record, source: str, failure: Failure) -> None:
        """A message whose processing raised: logged, kept as internal_error (counted as ``reject``)."""
        self.failures.report(failure, f"{message.topic}[{message.partition}]@{message.offset}: ", counted=True)
        self._add(message.key, message.value, INTERNAL_ERROR, source, failure.detail, failure.stage)

    def _add(
        self,
        key: bytes | None,
        value: bytes | None,
        reason: str,
        source: str,
        detail: str,
        stage: str | None,
        touchpoint: str | None = None,
        message: str | None = None,
    ) -> None:
        headers = [
            ("reason", reason.encode()),
            ("source", source.encode("utf-8", "backslashreplace")),
            ("detail", detail[:DETAIL_CHARS].encode("utf-8", "backslashreplace")),
        ]
        if stage is not None:
            headers.append(("stage", stage.encode()))
        if touchpoint is not None:  # a rule error's
            headers.append(("touchpoint", touchpoint.encode()))
            headers.append(("message", (message or "")[:DETAIL_CHARS].encode("utf-8", "backslashreplace")))
        self.outbox.add(self.topic, key, value, headers=headers)

    def refused(self, message: Message, error: Exception) -> None:
        """The broker refused a message of ours for itself (its size): the outbox's ``on_refused``."""
        topic, key, value, _, headers = message
        size = len(value or b"")
        if topic == self.events_topic:  # an event too large for the events topic: a reject, whole
            source = header(headers, "source") or topic
            if self.metrics is not None:
                self.metrics.refused(source, TOO_LARGE)
            self._add(key, value, TOO_LARGE, source, f"the topic {topic} refused it ({size} bytes): {error}", None)
            return
        if topic == self.topic and all(name != OMITTED for name, _ in headers or []):
            # A dead letter too large for its topic: what is said of it is kept, its bytes cannot be.
            self.outbox.add(topic, key, None, headers=[*(headers or []), (OMITTED, f"{size} bytes: {error}".encode())])
        self.failures.report(Failure(DELIVER, error), f"{topic}: a message of {size} bytes was refused: ")


class Positions(Protocol):
    """What the consumer knows of the inputs (``streams.seam`` gives Faust's)."""

    def assigned(self) -> Iterable[tuple[str, int]]:
        """The source topic partitions this worker reads."""
        ...

    def known(self) -> Iterable[tuple[str, int]]:
        """Every partition of the source topics, read here or not."""
        ...

    def caught_up(self, topic: str, partition: int) -> bool:
        """Nothing waiting in Kafka, as a fetch of the last few seconds said (unknown: False)."""
        ...


@dataclass(slots=True)
class Ingested:
    """What the ingest step makes of a batch of source messages; nothing is sent yet.

    - ``events``: (key, value, source) of each valid event, for the events topic, keyed by its customer,
      the value as it came;
    - ``rejects``: each message that is not a valid event, with why (for the dead letters);
    - ``failed``: each message whose decoding raised (a bug), with its source and the failure;
    - ``progress``: each input (source topic, partition) the batch delivered, and its largest
      ``occurred_at`` in the batch (None: no valid event of it in the batch).
    """

    events: list[tuple[bytes, bytes, bytes, bytes]] = field(default_factory=list)
    rejects: list[tuple[Record, Reject]] = field(default_factory=list)
    failed: list[tuple[Record, str, Failure]] = field(default_factory=list)
    progress: dict[tuple[str, int], int | None] = field(default_factory=dict)
    history: dict[tuple[str, int], int] = field(default_factory=dict)


def ingest(
    messages: Sequence[Record],
    decoder: Decoder,
    not_after: int,
    sources: Mapping[str, str] | None = None,
    before: Mapping[tuple[str, int], int | None] | None = None,
    lateness: int = 0,
) -> Ingested:
    """The ingest step, a pure function of a batch: decode each message as its source's (``sources``:
    topic -> the catalog's source, when the topics are renamed; an event later than ``not_after`` is a
    future_timestamp reject) and say what to send where. Events, rejects and metrics carry the
    source's name, progress the topic partition. An event goes on with where it was read (``INPUT``
    header: its input and offset there), so that the judge knows a message ingest reads again (after a
    restart, from the last commit) from a duplicate of the stream. ``history``: each input's largest
    ``occurred_at`` among its events older than what it had delivered (``before``, and earlier in the
    batch) minus the lateness: history it delivers behind its own stream (docs/SEMANTICS.md). Guarded
    per message."""
    step = Ingested()
    decode = decoder.decode
    sources = sources or {}
    forward, rejects, progress, history = step.events.append, step.rejects.append, step.progress, step.history
    names: dict[tuple[str, int], bytes] = {}
    reached: dict[tuple[str, int], int | None] = dict(before or {})
    for message in messages:
        where = (message.topic, message.partition)
        source = sources.get(message.topic, message.topic)
        newest = progress.get(where)
        try:
            raw = message.value or b""
            found = attributes(message.headers) if message.headers else None
            if found is not None:  # CloudEvents in binary mode: on as the structured form
                raw = structured(raw, found)
            decoded = decode(raw, source, not_after=not_after)
            if type(decoded) is Event:
                name = names.get(where)
                if name is None:
                    name = names[where] = input_name(*where).encode()
                forward((decoded.customer.encode(), raw, source.encode(), b"%s@%d" % (name, message.offset)))
                at = decoded.at
                if newest is None or at > newest:
                    newest = at
                mark = reached.get(where)
                if mark is None or at > mark:
                    reached[where] = at
                elif at < mark - lateness and at > history.get(where, at - 1):
                    history[where] = at
            else:
                rejects((message, decoded))  # type: ignore[arg-type]
        except Exception as error:
            step.failed.append((message, source, Failure(DECODE, error)))
        progress[where] = newest
    return step


@dataclass(slots=True)
class Read:
    """What the judge step reads of a batch of the events topic, for the engines.

    - ``items``: (events partition, offset, event or report, its input, its offset there) in the order
      of the batch (``streams.partitions.Item``);
    - ``held``: for each item, its message and source (so that a failure keeps it whole);
    - ``rejects`` and ``failed``: as ``Ingested``'s.
    """

    items: list[Item] = field(default_factory=list)
    held: list[tuple[Record, str]] = field(default_factory=list)
    rejects: list[tuple[Record, Reject]] = field(default_factory=list)
    failed: list[tuple[Record, str, Failure]] = field(default_factory=list)


def read_events(
    messages: Sequence[Record],
    decoder: Decoder,
    events_topic: str,
    not_after: int,
    sources: Mapping[str, str] | None = None,
) -> Read:
    """The judge step's reading, a pure function of a batch: each message of the events topic is a
    report of ingest (its inputs' progress) or an event, decoded again as its source's (``source``
    header), with where ingest read it (``INPUT`` header)."""
    step = Read()
    decode = decoder.decode
    sources = sources or {}
    items, held = step.items.append, step.held.append
    for message in messages:
        source = events_topic
        try:
            headers = said(message.headers) if message.headers else NO_HEADERS  # (read once)
            if headers.get(REPORT[0]) == "report":
                report = Report.from_record(orjson.loads(message.value or b""))
                items((message.partition, message.offset, report, None, -1))
                held((message, source))
                continue
            named = headers.get("source") or events_topic
            source = sources.get(named, named)  # a topic's name: written before the source's was
            decoded = decode(message.value or b"", source, not_after=not_after)
            if type(decoded) is Event:
                name, at_source = read_at(headers.get(INPUT, ""))
                items((message.partition, message.offset, decoded, name, at_source))  # type: ignore[arg-type]
                held((message, source))
            else:  # not written by ingest (ingest passes on valid events only): kept all the same
                step.rejects.append((message, decoded))  # type: ignore[arg-type]
                items((message.partition, message.offset, Refused(source, decoded.reason), None, -1))  # type: ignore[union-attr]
                held((message, source))
        except Exception as error:
            step.failed.append((message, source, Failure(DECODE, error)))
            items((message.partition, message.offset, Refused(source, INTERNAL_ERROR, DECODE), None, -1))
            held((message, source))
    return step


def read_at(said: str) -> tuple[str | None, int]:
    """An ``INPUT`` header's input and offset (None, -1 when there is none: not written by ingest)."""
    name, _, offset = said.rpartition("@")
    if not name or not offset.isdigit():
        return None, -1
    return name, int(offset)


def counter_of(name: str, partitions: int) -> int:
    """The partition of the events topic that counts an input's rejects."""
    return key_partition(name.encode(), partitions)


class Ingest:
    """The first hop: decode each source message, pass events on keyed by customer, dead-letter the rest;
    and report the inputs' progress to every events partition."""

    def __init__(
        self,
        outbox: Outbox,
        events_topic: str,
        dead_letters: DeadLetters,
        max_future: int,
        failures: Failures,
        *,
        positions: Positions,
        events_partitions: int,
        lateness: int,
        decoder: Decoder,
        sources: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.decoder, self.sources, self.metrics = decoder, sources, metrics
        self.outbox = outbox
        self.events_topic = events_topic
        self.dead_letters = dead_letters
        self.max_future = max_future
        self.failures = failures
        self.positions = positions
        self.events_partitions = events_partitions
        self.lateness = lateness
        # Per input read here: [progress, wall clock of its last delivery (or of when it was assigned),
        # the progress of the history it delivers behind its stream (None: none), when it last did].
        self.inputs: dict[str, list] = {}
        self.names: dict[tuple[str, int], str] = {}
        self.where: dict[str, tuple[str, int]] = {}
        self.last_report: dict[str, tuple] | None = None
        # Per input, the messages of the batch that were not events, for its next report: the
        # partition of the events topic that counts the input's rejects counts them (each once).
        self.rejected: dict[str, list[tuple[int, str, str, str | None]]] = {}

    def __call__(self, messages: Sequence[Record], now: int) -> None:
        before = {self.where[name]: mine[0] for name, mine in self.inputs.items() if name in self.where}
        step = ingest(messages, self.decoder, now + self.max_future, self.sources, before, self.lateness)
        add, events = self.outbox.add, self.events_topic
        for key, value, source, read_at in step.events:
            add(events, key, value, headers=[("source", source), (INPUT, read_at)])
        if self.metrics is not None and step.events:
            for source in {source for _, _, source, _ in step.events}:
                self.metrics.source_events(source.decode(), now / 1_000_000)
        rejected = self.rejected
        for message, reject in step.rejects:
            self.dead_letters.reject(message, reject)
            rejected.setdefault(input_name(message.topic, message.partition), []).append(
                (message.offset, reject.source, reject.reason, None)
            )
        for message, source, failure in step.failed:
            self.dead_letters.failed(message, source, failure)
            rejected.setdefault(input_name(message.topic, message.partition), []).append(
                (message.offset, source, INTERNAL_ERROR, failure.stage)
            )
        inputs, names = self.inputs, self.names
        for where, progress in step.progress.items():
            name = names.get(where)
            if name is None:
                name = names[where] = input_name(*where)
                self.where[name] = where
            mine = inputs.get(name)
            if mine is None:
                mine = inputs[name] = [None, now, None, None]
            mine[1] = now
            if progress is not None and (mine[0] is None or progress > mine[0]):
                mine[0] = progress
            history = step.history.get(where)
            if history is not None:  # it delivers history behind its own stream: until quiet of it
                mine[2] = history if mine[2] is None else max(mine[2], history)
                mine[3] = now
        if messages:
            self.report(now)

    def tick(self, now: int) -> None:
        """Report when something changed since the last report, or when an input is idle (its report
        moves an idle watermark on with the wall clock)."""
        self.report(now, only_if_changed=True)

    def report(self, now: int, only_if_changed: bool = False) -> None:
        """Send each events partition how far the inputs read here have come."""
        try:
            assigned = {
                input_name(topic, partition): (topic, partition) for topic, partition in self.positions.assigned()
            }
            for name in [name for name in self.inputs if name not in assigned]:
                del self.inputs[name]  # read elsewhere now
            for name in assigned:
                if name not in self.inputs:
                    self.inputs[name] = [None, now, None, None]  # quiet counts from when it is read here
                    self.where[name] = assigned[name]
            said = {}
            for name, mine in self.inputs.items():
                progress, delivered, history, history_at = mine
                topic, partition = assigned[name]
                caught_up = self.positions.caught_up(topic, partition)
                if history is not None and caught_up and now - history_at >= self.lateness:
                    history = mine[2] = None  # its history is read
                # Idle: nothing waiting, and quiet for the lateness, or never delivered anything (a
                # source that sends nothing holds nothing back: docs/SEMANTICS.md).
                idle = caught_up and (progress is None or now - delivered >= self.lateness)
                said[name] = (progress, idle, delivered, caught_up, history)
            if (
                only_if_changed
                and said == self.last_report
                and not self.rejected
                and not any(idle for _, idle, *_ in said.values())
            ):
                return
            self.last_report = said
            known = tuple(sorted(input_name(topic, partition) for topic, partition in self.positions.known()))
            value = json_bytes(Report(now, said, known).record())
            counting: dict[int, dict[str, list]] = {}
            for name, entries in self.rejected.items():
                counting.setdefault(counter_of(name, self.events_partitions), {})[name] = entries
            self.rejected = {}
            for partition in range(self.events_partitions):
                mine = counting.get(partition)
                said_here = value if mine is None else json_bytes(Report(now, said, known, mine).record())
                self.outbox.add(self.events_topic, None, said_here, partition, headers=[REPORT])
        except Exception as error:
            self.failures.report(Failure(DECODE, error), "reporting the inputs' progress: ")

    def ahead(
        self, judged: dict[str, tuple[int | None, bool]] | None = None, history: bool = False, now: int | None = None
    ) -> set[tuple[str, int]]:
        """The inputs read here that are more than AHEAD ahead of the slowest input not idle: to pause.
        At ``now`` (wall clock, µs), an input read here that is caught up and quiet for SETTLED counts as
        idle (it holds nothing back, and is not paused).

        ``judged`` is what the reports the judge has taken say of every input (name -> progress, idle),
        this worker's and others': it knows the progress of an input from before a restart, and of the
        inputs other workers read. An input with neither progress nor a known end (it has a backlog, or
        its end is unknown) counts as the slowest of all, so the others wait for its first events.

        Nothing is paused while some input delivers history behind its own stream (here, or as the
        judge's reports say: ``history``): its progress does not move while it reads it, so the others
        would wait on it one after another, and the judge holds the history until it is read whole
        anyway (docs/SEMANTICS.md, "Late history")."""
        if history or any(mine[2] is not None for mine in self.inputs.values()):
            return set()
        said = self.last_report or {}
        view = dict(judged or {})
        blocked = False
        floor: int | None = None
        names = set(view) | set(said)
        settled = {name for name in said if self._settled(name, now)}  # (as idle: below)
        for name in names:
            progress, idle = view.get(name, (None, False))
            mine = said.get(name)
            if mine is not None:
                local, idle, *_ = mine
                if local is not None and (progress is None or local > progress):
                    progress = local
            if idle or name in settled:
                continue
            if progress is None:
                if mine is not None and self._caught_up(name):
                    continue  # read here, nothing waiting: nothing to wait for
                blocked = True
                continue
            if floor is None or progress < floor:
                floor = progress
            view[name] = (progress, idle)
        pause = set()
        for name, (local, idle, *_) in said.items():
            progress = view.get(name, (local, idle))[0]
            if local is None or name in settled:
                continue  # nothing delivered here yet: never paused (resuming seeks after what it delivered)
            if not idle and (blocked or (floor is not None and progress > floor + AHEAD)):  # type: ignore[operator]
                topic, partition = name.rsplit("/", 1)
                pause.add((topic, int(partition)))
        return pause

    def _settled(self, name: str, now: int | None) -> bool:
        mine = self.inputs.get(name)
        if now is None or mine is None:
            return False
        _, delivered, *_ = mine
        return now - delivered >= SETTLED and self._caught_up(name)

    def _caught_up(self, name: str) -> bool:
        topic, partition = name.rsplit("/", 1)
        return self.positions.caught_up(topic, int(partition))


class Judge:
    """The second hop: decode each event again and judge it in its partition's engine."""

    def __init__(
        self,
        partitions: Partitions,
        events_topic: str,
        dead_letters: DeadLetters,
        max_future: int,
        failures: Failures,
        decoder: Decoder,
        sources: Mapping[str, str] | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.decoder, self.sources, self.metrics = decoder, sources, metrics
        self.partitions = partitions
        self.events_topic = events_topic
        self.dead_letters = dead_letters
        # Ingest checked the clock already; this is for messages written to the events topic by others,
        # with room for the clocks of the worker that ingested and the one that judges to differ.
        self.max_future = max_future + CLOCK_SKEW
        self.failures = failures

    def __call__(self, messages: Sequence[Record], now: int) -> None:
        step = read_events(messages, self.decoder, self.events_topic, now + self.max_future, self.sources)
        for message, reject in step.rejects:  # (counted by their partitions: handle_batch)
            self.dead_letters.reject(message, reject)
        for message, source, failure in step.failed:
            self.dead_letters.failed(message, source, failure)
        handled = self.partitions.handle_batch(step.items)
        for item, failure in handled.failed:
            message, source = step.held[item]
            self.dead_letters.failed(message, source, failure)
        for item in handled.too_old:
            message, source = step.held[item]
            event = step.items[item][2]
            detail = (
                f"occurred at {format_timestamp(event.at)}, more than the remembered ids' retention "  # type: ignore[union-attr]
                "behind the watermark: it could be one judged already (tpmon rejects --raw | tpmon replay)"
            )
            self.dead_letters.reject(message, Reject(TOO_OLD, detail, message.value or b"", source))
        for item, error in handled.rule_errors:  # (counted by their partitions, with their customers)
            message, source = step.held[item]
            self.dead_letters.reject(message, error.kept(message.value or b"", source))
        self.drain()

    def drain(self) -> None:
        """Report the failures of no message (stored records unreadable, rules that raised deciding)."""
        failures, self.partitions.failures = self.partitions.failures, []
        for failure, counted in failures:
            self.failures.report(failure, counted=counted)
