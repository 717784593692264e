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
    caught_up_at: int | None = None  # wall clock of the latest report that said it was caught up


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
            if caught_up:
                mine.caught_up_at = report.now
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
        """Each input's first six fields, as every version reads them back (``caught_up_at`` is kept
        apart, in ``caught_up_record``: a worker of before it takes a partition over unharmed)."""
        return {
            name: [mine.progress, mine.idle, mine.delivered, mine.reported, mine.caught_up, mine.history]
            for name, mine in sorted(self.inputs.items())
        }

    def caught_up_record(self) -> dict[str, int]:
        return {name: mine.caught_up_at for name, mine in sorted(self.inputs.items()) if mine.caught_up_at is not None}

    def load(self, record: dict, caught_up: dict | None = None) -> None:
        self.inputs = {name: Input(*values[:6]) for name, values in record.items()}  # (of a later version too)
        for name, at in (caught_up or {}).items():
            mine = self.inputs.get(name)
            if mine is not None:
                mine.caught_up_at = int(at)
        reported = [mine.reported for mine in self.inputs.values() if mine.reported is not None]
        self.now = max(reported) if reported else None


#: A hold below anything: nothing is decided while an input that may hold history has a backlog.
NOTHING = -(2**63)
NEXT_REPORT = -(2**63)  # when an input's last late event came: not yet said by a report


#: The longest a late event holds what a partition decides (wall clock), whatever else: a source whose
#: events keep coming later than the lateness, or an input that never catches up, must not stop it
#: deciding (at least this, and ten lateness: docs/SEMANTICS.md, "Late history").
HOLD_AT_MOST = 5 * 60 * 1_000_000


@dataclass
class History:
    """The late events one partition got, and where what it decides is held for them (docs/SEMANTICS.md,
    "Late history").

    A late event (its instant already passed by the watermark) holds what its partition decides at its
    instant minus the lateness, so that what came with it (its end, say) is read first. Its hold ends
    once every input has been said caught up (nothing waiting in Kafka) by a report a lateness or more
    of the reports' wall clock after it came: what its own input and every other input had sent with
    it is read, however long their backlogs take to read, and what they sent a little later has come
    too. What is decided is held at the lowest hold of all. So a fortnight of history read at once
    holds everything from its first instant until it is read whole, in every topic it was produced
    into, and a straggler holds for a lateness while every input keeps up (while one has a backlog,
    until it is read: which backlog holds the rest of a history cannot be told). Holds of one input
    between two reports are one. No hold lasts more than ``at_most``.
    """

    lateness: int
    # input -> its holds, oldest first: [held at (µs of event time), reports' wall clock when it came];
    # a hold that came since the last report has NEXT_REPORT.
    holds: dict[str, list[list[int]]] = field(default_factory=dict)

    @property
    def at_most(self) -> int:
        return max(HOLD_AT_MOST, 10 * self.lateness)

    def late(self, name: str, at: int) -> None:
        """A late event of the input ``name``: it holds at its instant minus the lateness."""
        mine = self.holds.get(name)
        if mine is None:
            self.holds[name] = [[at - self.lateness, NEXT_REPORT]]
        elif mine[-1][1] == NEXT_REPORT:
            if at - self.lateness < mine[-1][0]:
                mine[-1][0] = at - self.lateness
        else:
            mine.append([at - self.lateness, NEXT_REPORT])

    def held(self, inputs: Inputs) -> int | None:
        """Where what is decided is held (None: nothing held), after a report: the holds that are over
        go, the others' lowest."""
        if not self.holds:
            return None
        now = inputs.now
        if now is None:
            return NOTHING
        # The last instant by which every input had been caught up: what each had waiting then is read.
        caught_up_at = [reader.caught_up_at for reader in inputs.inputs.values()]
        everyone = None if None in caught_up_at else min(caught_up_at, default=now)
        lowest = None
        for name, mine in list(self.holds.items()):
            kept = []
            for hold in mine:
                if hold[1] == NEXT_REPORT:
                    hold[1] = now
                read = everyone is not None and everyone - hold[1] >= self.lateness
                if read or now - hold[1] >= self.at_most:
                    continue
                kept.append(hold)
                if lowest is None or hold[0] < lowest:
                    lowest = hold[0]
            if kept:
                self.holds[name] = kept
            else:
                del self.holds[name]
        return lowest

    def holding(self, now: int | None) -> float:
        """Seconds the oldest hold has held (0: none)."""
        came = [hold[1] for mine in self.holds.values() for hold in mine if hold[1] != NEXT_REPORT]
        if not came or now is None:
            return 0.0
        return max(0, now - min(came)) / 1_000_000

    def record(self) -> dict:
        return {name: [list(hold) for hold in mine] for name, mine in sorted(self.holds.items())}

    def load(self, record: object) -> None:
        self.holds = {}
        if isinstance(record, dict):
            for name, mine in record.items():
                self.holds[str(name)] = [[int(at), int(came)] for at, came in mine]
