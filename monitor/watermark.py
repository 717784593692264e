"""The live watermark: it follows the slowest input (docs/SEMANTICS.md). Pure: time comes in reports.

An input is one source topic partition. Whoever reads it (the worker's ingest) says, in a report, for
each input it reads: its progress (the largest ``occurred_at`` it has passed on), whether it is idle,
and when it last delivered anything; and the reporter's wall clock at the time of the report. Idle
means caught up (a recent fetch found nothing waiting in Kafka) and quiet for the lateness; an input
whose position against its end offset is unknown (never fetched, paused, or the broker unreachable) is
not idle, nor is one with a backlog.

Reports travel on the events topic behind the events they cover, to every partition (see
``streams.handlers``), so the state judging a partition's customers reads them in order with its
events. Its watermark is then a function of what the partition holds, not of any worker's clock: read
again after a restart, the partition reaches the same watermark at the same place, and a broker that
cannot be reached delivers no report, so the watermark stands still instead of deciding deadlines
whose ends are waiting in Kafka.

The watermark of a partition (``Inputs.watermark``) is:

- while some input is not idle: the smallest progress among those inputs, minus the lateness (an
  input that has not reported yet, or has a backlog and has delivered nothing yet, holds it back
  entirely; one caught up that has never delivered anything is idle);
- when every input is idle: the largest progress, minus the lateness, plus how long the inputs have
  been quiet (from the newest delivery to the oldest report), never beyond the oldest report's wall
  clock minus the lateness: a quiet stream decides its deadlines at due time plus lateness, and a
  backfill far in the past moves on by the length of its pauses only.

It never goes back (the engine takes it only when it is ahead). An input that nobody reports any more
(a worker gone) keeps its last report until another worker reads it; which inputs exist is said by
every report (``known``), so a source taken out of the configuration stops holding anything back.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from .events import format_timestamp

#: An input's name: "topic/partition" (a topic name cannot hold "/").
SEPARATOR = "/"


def input_name(topic: str, partition: int) -> str:
    return f"{topic}{SEPARATOR}{partition}"


@dataclass(slots=True)
class Input:
    progress: int | None = None  # the largest occurred_at delivered (µs), None before the first event
    idle: bool = False
    delivered: int | None = None  # wall clock (µs) of its last delivery, or of when its reader began
    reported: int | None = None  # wall clock (µs) of the report that said so
    caught_up: bool = False  # nothing waiting in Kafka, as its reader last knew (idle: and quiet too)
    history: int | None = None  # the progress of the history it delivers behind its own stream, if any


@dataclass(slots=True)
class Report:
    """What a reader says of its inputs at ``now`` (wall clock, µs); and, to the events partition that
    counts an input's rejects, the messages of it that were not events (``rejects``)."""

    now: int
    # name -> (progress, idle, delivered, caught up, history progress or None)
    inputs: dict[str, tuple[int | None, bool, int, bool, int | None]]
    known: tuple[str, ...] = ()  # every input there is, read by this reader or not
    # input -> [(its offset, source, reason, stage of an internal error or None), ...]
    rejects: dict[str, list[tuple[int, str, str, str | None]]] = field(default_factory=dict)

    def record(self) -> dict:
        record = {
            "now": self.now,
            "inputs": {name: list(values) for name, values in self.inputs.items()},
            "known": list(self.known),
        }
        if self.rejects:
            record["rejects"] = {name: [list(entry) for entry in entries] for name, entries in self.rejects.items()}
        return record

    @classmethod
    def from_record(cls, data: dict) -> Report:
        now = data["now"]
        if type(now) is not int:
            raise ValueError("a report's 'now' must be an integer (microseconds)")
        inputs = {}
        for name, said in data["inputs"].items():
            progress, idle, delivered = said[:3]
            caught_up = said[3] if len(said) > 3 else idle  # (reports before it was said: idle is caught up)
            history = said[4] if len(said) > 4 else None
            if (progress is not None and type(progress) is not int) or type(idle) is not bool:
                raise ValueError(f"input {name!r}: progress must be an integer or null, idle true or false")
            if type(delivered) is not int or type(caught_up) is not bool:
                raise ValueError(f"input {name!r}: delivered must be an integer, caught up true or false")
            if history is not None and type(history) is not int:
                raise ValueError(f"input {name!r}: history must be an integer or null")
            inputs[str(name)] = (progress, idle, delivered, caught_up, history)
        known = tuple(str(name) for name in data.get("known", ()))
        rejects = {}
        for name, entries in data.get("rejects", {}).items():
            rejects[str(name)] = [
                (int(offset), str(source), str(reason), stage) for offset, source, reason, stage in entries
            ]
        return cls(now, inputs, known, rejects)


@dataclass
class Inputs:
    """The inputs feeding one partition's state, as the reports in that partition say."""

    lateness: int
    inputs: dict[str, Input] = field(default_factory=dict)
    now: int | None = None  # the wall clock of the latest report

    def report(self, report: Report) -> None:
        if report.known:
            known = set(report.known)
            for name in [name for name in self.inputs if name not in known]:
                del self.inputs[name]  # no longer a source: it holds nothing back
            for name in report.known:
                if name not in self.inputs:
                    self.inputs[name] = Input()
        for name, said in report.inputs.items():
            progress, idle, delivered, *more = said
            caught_up = more[0] if more else idle  # (a report of before caught up was said apart)
            mine = self.inputs.get(name)
            if mine is None:
                mine = self.inputs[name] = Input()
            if progress is not None and (mine.progress is None or progress > mine.progress):
                mine.progress = progress  # a new reader (after a takeover) re-reads what was delivered
            mine.idle, mine.delivered, mine.reported, mine.caught_up = idle, delivered, report.now, caught_up
            mine.history = more[1] if len(more) > 1 else None
        if self.now is None or report.now > self.now:
            self.now = report.now

    def watermark(self) -> int | None:
        """The watermark the inputs allow (None: nothing can be decided yet)."""
        inputs = self.inputs.values()
        if not inputs:
            return None
        slowest = None
        busy = False
        for mine in inputs:
            if not mine.idle:
                if mine.progress is None:
                    return None
                busy = True
                if slowest is None or mine.progress < slowest:
                    slowest = mine.progress
        if busy:
            return slowest - self.lateness  # type: ignore[operator]
        progress = [mine.progress for mine in inputs if mine.progress is not None]
        if not progress:
            return None
        now = min(mine.reported for mine in inputs)  # type: ignore[type-var]
        last = max(mine.delivered for mine in inputs)  # type: ignore[type-var]
        quiet = max(0, now - last)  # type: ignore[operator]
        return min(max(progress) - self.lateness + quiet, now - self.lateness)  # type: ignore[operator]

    def view(self) -> dict:
        """For people: each input's progress (RFC 3339) and whether it is idle."""
        return {
            name: {"progress": None if mine.progress is None else format_timestamp(mine.progress), "idle": mine.idle}
            for name, mine in sorted(self.inputs.items())
        }

    def record(self) -> dict:
        return {
            name: [mine.progress, mine.idle, mine.delivered, mine.reported, mine.caught_up, mine.history]
            for name, mine in sorted(self.inputs.items())
        }

    def load(self, record: dict) -> None:
        self.inputs = {name: Input(*values) for name, values in record.items()}
        reported = [mine.reported for mine in self.inputs.values() if mine.reported is not None]
        self.now = max(reported) if reported else None


#: A hold below anything: nothing is decided while an input that may hold history has a backlog.
NOTHING = -(2**63)
NEXT_REPORT = -(2**63)  # when an input's last late event came: not yet said by a report


#: The longest a partition holds for history (wall clock): longer, it decides on as if the rest of that
#: history had come in time (at least this, and ten lateness: docs/SEMANTICS.md, "Late history").
HOLD_AT_MOST = 5 * 60 * 1_000_000


@dataclass
class History:
    """Whether late history is in flight at one partition, and where what it decides is held meanwhile
    (docs/SEMANTICS.md, "Late history").

    A late event (its instant already passed by the watermark) begins a history period, or carries it
    on. Meanwhile what the partition decides is held before the history: nothing is decided, until
    the history is read. It is read once every input is caught up (nothing waiting in Kafka), none has
    delivered history behind its own stream for the lateness (as its reader says), and a lateness of
    the reports' wall clock has passed since the last late event here: then nothing is held, and what
    the history opened is decided with the rest, in event-time order. When every input delivers
    history, the partition decides, meanwhile, up to the least advanced of them, minus the lateness: an
    input that delivers none (an idle one too) may yet, since Kafka does not hand out topics by event
    time and another topic's part of the same history may come later.

    A period lasts ``at_most`` at the most (``HOLD_AT_MOST``, and ten lateness): a source whose events
    keep coming later than the lateness, or an input that never catches up, must not stop a partition
    deciding; past it, the partition decides on, and its late events are judged as they come.
    """

    lateness: int
    last: int | None = None  # reports' wall clock of the last late event (NEXT_REPORT: the next report's)
    began: int | None = None  # and of the first of the period

    @property
    def at_most(self) -> int:
        return max(HOLD_AT_MOST, 10 * self.lateness)

    def late(self) -> None:
        """A late event: the period begins, or goes on (its lateness counts from the next report)."""
        self.last = NEXT_REPORT
        if self.began is None:
            self.began = NEXT_REPORT

    def held(self, inputs: Inputs) -> int | None:
        """Where what is decided is held (None: nothing held), after a report."""
        if self.last is None:
            return None
        now = inputs.now
        if now is None:
            return NOTHING
        if self.last == NEXT_REPORT:
            self.last = now
        if self.began in (None, NEXT_REPORT):
            self.began = now
        if now - self.began >= self.at_most:  # type: ignore[operator]
            self.last = self.began = None  # held long enough: decide on
            return None
        said = inputs.inputs.values()
        if not all(mine.caught_up for mine in said):
            return NOTHING
        delivering = [mine.history for mine in said if mine.history is not None]
        if not delivering and now - self.last >= self.lateness:
            self.last = self.began = None  # read
            return None
        if delivering and len(delivering) == len(said):
            return min(delivering) - self.lateness  # type: ignore[type-var]
        return NOTHING

    def holding(self, now: int | None) -> float:
        """Seconds the partition has held for history (0: not holding)."""
        if self.began in (None, NEXT_REPORT) or now is None:
            return 0.0
        return max(0, now - self.began) / 1_000_000  # type: ignore[operator]

    def record(self) -> list:
        return [self.last, self.began]

    def load(self, record: object) -> None:
        last, began = record if isinstance(record, list) and len(record) == 2 else (record, None)
        self.last = last if type(last) is int else None
        self.began = began if type(began) is int else None
