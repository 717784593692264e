"""Failures: processing that raised for a reason outside the contract (a bug), recorded instead of stopping.

No input may stop the pipeline (docs/EVENTS.md). Each step a message goes through is guarded; what raises
becomes a ``Failure`` naming the stage and, where there is one, the event. The message itself is kept
whole as an ``internal_error`` reject by whoever holds it (the worker's dead letters, replay's
``--rejects``), and the rest goes on.

The stages, in the order a message meets them:

- ``decode``: decoding a message or line (live, also routing it to its customer's partition);
- ``judge``: the engine's step;
- ``journey``: filing an accepted event and its outcomes in the journey (the event *was* judged);
- ``decide``: the engine deciding a queued event or a due time, later than its message's own step;
- ``record``: writing a customer's record or journey to the store;
- ``metrics``, ``deliver``, ``restore`` (reading stored records back), ``timer`` (the worker's clocks).

``FailureLog`` decides what to log: the traceback of the first failure of each kind (stage, exception,
the line that raised), then one line at most every ``every`` seconds per kind, with how many were not
logged in between. Logging every failure of a bug that hits every message would bury the first one.
"""

from __future__ import annotations

import traceback
from dataclasses import dataclass, field
from typing import Final

DECODE: Final = "decode"
JUDGE: Final = "judge"
JOURNEY: Final = "journey"
DECIDE: Final = "decide"
RECORD: Final = "record"
METRICS: Final = "metrics"
DELIVER: Final = "deliver"
RESTORE: Final = "restore"
TIMER: Final = "timer"
STAGES: Final = (DECODE, JUDGE, JOURNEY, DECIDE, RECORD, METRICS, DELIVER, RESTORE, TIMER)

#: Stages after which the event was judged all the same: sending it again would be a duplicate.
JUDGED_STAGES: Final = frozenset({JOURNEY, DECIDE, RECORD, METRICS})


class Failure:
    """What raised, where, and for which event (when there is one)."""

    __slots__ = ("customer", "error", "event_id", "stage", "touchpoint")

    def __init__(
        self,
        stage: str,
        error: BaseException,
        *,
        event_id: str | None = None,
        customer: str | None = None,
        touchpoint: str | None = None,
    ) -> None:
        self.stage = stage
        self.error = error
        self.event_id = event_id
        self.customer = customer
        self.touchpoint = touchpoint

    @property
    def kind(self) -> tuple[str, str, str]:
        """(stage, exception type, where it was raised): failures of one bug share it."""
        frames = traceback.extract_tb(self.error.__traceback__)
        where = f"{frames[-1].filename}:{frames[-1].lineno}" if frames else ""
        return self.stage, type(self.error).__name__, where

    @property
    def detail(self) -> str:
        """One line, for a dead letter's detail and a log line."""
        about = [f"{name} {value}" for name, value in self.subject() if value is not None]
        message = str(self.error).splitlines()[0] if str(self.error) else ""
        text = f"{self.stage} failed: {type(self.error).__name__}" + (f": {message}" if message else "")
        return text + (f" ({', '.join(about)})" if about else "")

    def subject(self) -> tuple[tuple[str, str | None], ...]:
        return (("event", self.event_id), ("customer", self.customer), ("touchpoint", self.touchpoint))

    def traceback(self) -> str:
        return "".join(traceback.format_exception(self.error)).rstrip()

    def __repr__(self) -> str:
        return f"Failure({self.detail})"


@dataclass
class _Seen:
    last_logged: float
    unlogged: int = 0


@dataclass
class FailureLog:
    """Which failures to log, and how (see the module docstring). ``now`` is in seconds, from any clock."""

    every: float = 10.0
    kinds: dict[tuple[str, str, str], _Seen] = field(default_factory=dict)

    def lines(self, failure: Failure, now: float) -> str | None:
        """The text to log for this failure, or None to count it silently."""
        kind = failure.kind
        seen = self.kinds.get(kind)
        if seen is None:
            self.kinds[kind] = _Seen(now)
            return f"internal error, {failure.detail}\n{failure.traceback()}"
        if now - seen.last_logged < self.every:
            seen.unlogged += 1
            return None
        more = f" ({seen.unlogged} more like it not logged)" if seen.unlogged else ""
        seen.last_logged, seen.unlogged = now, 0
        return f"internal error again, {failure.detail}{more}"
