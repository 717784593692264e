"""Replay: a whole input through the engine, counted as SPEC section 3 describes.

Pure: it takes lines of bytes and gives a summary; reading files, progress and printing are the CLI's.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from .catalog.model import Catalog
from .conventions import FILE_SOURCE
from .engine import DUPLICATE, LATE, Engine, Outcome
from .events import Event, Reject, decode
from .journeys import Journeys
from .state import reliability, touchpoint_state


@dataclass
class Tally:
    accepted: int = 0
    rejected: int = 0
    duplicates: int = 0
    late: int = 0
    rule_errors: int = 0
    rejected_by_reason: Counter = field(default_factory=Counter)
    good: Counter = field(default_factory=Counter)
    bad: Counter = field(default_factory=Counter)
    joined: int = 0
    left: int = 0
    customers: set[str] = field(default_factory=set)
    broken_customers: set[str] = field(default_factory=set)


class Replay:
    """Feed lines, then ``finish``. ``on_reject(line_number, reject)`` sees every rejected line."""

    def __init__(
        self,
        catalog: Catalog,
        *,
        lateness: int | None = None,
        journeys: Journeys | None = None,
        on_reject: Callable[[int, Reject], None] | None = None,
        on_outcome: Callable[[Outcome], None] | None = None,
    ) -> None:
        self.catalog = catalog
        self.engine = Engine(catalog, lateness=lateness)
        self.journeys = journeys
        self.on_reject = on_reject
        self.on_outcome = on_outcome
        self.tally = Tally()
        self.lines = 0

    def feed(self, lines: Iterable[bytes]) -> None:
        engine, tally, journeys = self.engine, self.tally, self.journeys
        step, outbox = engine.step, engine.outbox
        customers = tally.customers
        number = self.lines
        for line in lines:
            number += 1
            if not line.strip():
                continue  # blank lines are not events
            event = decode(line.rstrip(b"\r\n"), FILE_SOURCE)
            if type(event) is not Event:
                tally.rejected += 1
                tally.rejected_by_reason[event.reason] += 1  # type: ignore[union-attr]
                if self.on_reject is not None:
                    self.on_reject(number, event)  # type: ignore[arg-type]
                continue
            status = step(event)
            if status == DUPLICATE:
                tally.duplicates += 1
                continue
            tally.accepted += 1
            if status == LATE:
                tally.late += 1
            customers.add(event.customer)
            if event.kind == "customer.joined":
                tally.joined += 1
            elif event.kind == "customer.left":
                tally.left += 1
            if journeys is not None:
                journeys.add_event(event)
            if outbox:
                self._drain()
        self.lines = number
        if engine.errors:
            tally.rule_errors += len(engine.errors)
            engine.errors.clear()

    def _drain(self) -> None:
        tally, journeys = self.tally, self.journeys
        for outcome in self.engine.outbox:
            if outcome.good:
                tally.good[outcome.touchpoint] += 1
            else:
                tally.bad[outcome.touchpoint] += 1
                tally.broken_customers.add(outcome.customer)
            if journeys is not None:
                journeys.add_outcome(outcome)
            if self.on_outcome is not None:
                self.on_outcome(outcome)
        self.engine.outbox.clear()

    def finish(self) -> dict:
        """Decide what the end of input decides, and return the summary of SPEC section 3."""
        self.engine.finish()
        self._drain()
        self.tally.rule_errors += len(self.engine.errors)
        self.engine.errors.clear()
        return self.summary()

    def summary(self) -> dict:
        tally = self.tally
        pending = self.engine.pending()
        touchpoints = {}
        for index, touchpoint in enumerate(self.catalog.touchpoints):
            good, bad = tally.good[touchpoint.id], tally.bad[touchpoint.id]
            touchpoints[touchpoint.id] = {
                "good": good,
                "bad": bad,
                "pending": pending[index],
                "reliability": reliability(good, bad),
                "state": touchpoint_state(touchpoint, good, bad),
            }
        return {
            "events": {
                "accepted": tally.accepted,
                "rejected": tally.rejected,
                "duplicates": tally.duplicates,
                "late": tally.late,
                "rule_errors": tally.rule_errors,
            },
            "touchpoints": touchpoints,
            "customers": {"joined": tally.joined, "left": tally.left},
            "journeys": {"total": len(tally.customers), "broken": len(tally.broken_customers)},
        }
