"""Named scenarios: a healthy baseline plus incidents that switch on for a stretch of simulated time.

An incident changes one knob of the simulation (``Knobs``) from ``start`` for ``duration`` after the
simulation's start. Times are simulated time, so a scenario means the same thing in a file and live.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..durations import parse_duration


@dataclass(frozen=True)
class Knobs:
    """How the business behaves: probabilities and median delays (seconds)."""

    bill_wrong: float = 0.01  # share of bills whose amount differs from what the customer expects
    payment_failure: float = 0.025
    confirm_median: float = 25.0  # order placed -> confirmed
    confirm_lost: float = 0.005  # orders never confirmed
    activation_median: float = 1200.0
    # A healthy business sits between each touchpoint's objective and its differentiating line
    # (tests/test_simulate.py): the slowest 6% of activations need a second visit, days later.
    activation_revisit: float = 0.06
    call_wait_median: float = 26.0  # 92% answered within a minute (call-answered)
    call_patience_median: float = 150.0  # how long callers wait before they hang up
    call_resolved: float = 0.86
    ticket_response_median: float = 3000.0  # 94% answered within 4 h
    ticket_resolution_median: float = 8 * 3600.0
    winback_share: float = 0.92  # leavers called back (the rest, and calls after 48 h, miss winback-call)
    delivery_late: float = 0.06
    # Share of tickets on which the agent first asks the customer something (ticket.waiting), answered
    # by the customer (ticket.updated, by customer) after a wait; the response comes after the answer.
    ticket_waiting: float = 0.0
    customer_answer_median: float = 3 * 3600.0
    dispute_resolution_median: float = 1.5 * 86400  # 93% resolved within 5 days
    ticket_reopened: float = 0.06  # resolved tickets reopened (within days: ticket-stays-resolved)
    contact_again: float = 0.1  # solved contacts the customer follows up within days (no-repeat-contact)


@dataclass(frozen=True)
class Incident:
    changes: tuple[tuple[str, float], ...]  # (knob, value) pairs
    start: int  # microseconds after the simulation's start
    duration: int
    what: str = ""
    # How long after it ends the occurrences it hit are still being decided (microseconds of event time,
    # not scaled: a caller's patience is the same in a short demo).
    aftermath: int = 0

    @property
    def end(self) -> int:
        """When it ends (microseconds after the simulation's start)."""
        return self.start + self.duration

    def active(self, offset: int) -> bool:
        return self.start <= offset < self.end


@dataclass(frozen=True)
class Scenario:
    name: str
    description: str
    incidents: tuple[Incident, ...] = field(default_factory=tuple)

    def knobs(self, offset: int, base: Knobs = Knobs()) -> Knobs:
        """The knobs in force ``offset`` microseconds after the start."""
        changes = {knob: value for i in self.incidents if i.active(offset) for knob, value in i.changes}
        return replace(base, **changes) if changes else base

    @property
    def aftermath(self) -> int:
        """How long after its last incident ends the occurrences they hit are still being decided."""
        return max((i.aftermath for i in self.incidents if i.end == self.end), default=0)

    @property
    def end(self) -> int:
        """When its last incident ends (microseconds after the start; 0 without incidents)."""
        return max((i.end for i in self.incidents), default=0)

    def scaled(self, factor: float) -> Scenario:
        """The same story with its incident times multiplied by ``factor`` (for short demos)."""
        incidents = tuple(
            replace(i, start=round(i.start * factor), duration=round(i.duration * factor)) for i in self.incidents
        )
        return replace(self, incidents=incidents)


def _incident(changes: dict[str, float], start: str, duration: str, what: str, aftermath: str = "0s") -> Incident:
    return Incident(
        tuple(changes.items()), parse_duration(start), parse_duration(duration), what, parse_duration(aftermath)
    )


BILLING_OUTAGE = _incident({"bill_wrong": 0.4}, "10m", "20m", "billing outage: 40% of bills wrong")
# Callers wait minutes in the queue, and many hang up after a while.
OVERLOADED = {"call_wait_median": 150.0, "call_patience_median": 20.0}
OVERLOADED_WHAT = "contact-center overload: waits over a minute"
# Callers who queued before it ended hang up or are answered after their patience: 99% within 64 s.
OVERLOADED_AFTERMATH = "65s"
OVERLOAD = _incident(OVERLOADED, "10m", "20m", OVERLOADED_WHAT, OVERLOADED_AFTERMATH)

SCENARIOS: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario("healthy", "Every touchpoint works as designed."),
        Scenario("billing-outage", "From minute 10, 40% of bills are wrong for 20 minutes.", (BILLING_OUTAGE,)),
        Scenario(
            "contact-center-overload",
            "From minute 10, for 20 minutes, callers wait well over a minute.",
            (OVERLOAD,),
        ),
        Scenario(
            "order-backlog",
            "From minute 10, for 20 minutes, order confirmations take several minutes.",
            (_incident({"confirm_median": 300.0}, "10m", "20m", "order backlog: confirmations take minutes", "2m"),),
        ),
        Scenario(
            "waiting-on-customer",
            "Healthy, but 40% of tickets wait hours on the customer's answer before the first response "
            "(ticket.waiting, ticket.updated): judged on an SLA clock that pauses (examples/support-hours), "
            "they are in time; on the wall clock, many are not.",
            (_incident({"ticket_waiting": 0.4}, "0s", "3650d", "tickets waiting on the customer"),),
        ),
        Scenario(
            "billing-outage-day",
            "A whole day, with a billing outage from hour 1 to hour 4 (40% of bills wrong): run it for 24h to "
            "see who it hurt, who left after it and what they answered in surveys.",
            (_incident({"bill_wrong": 0.4}, "1h", "3h", "billing outage: 40% of bills wrong"),),
        ),
        Scenario(
            "billing-outage-week",
            "A week, with a billing outage on its fourth day, from hour 9 to hour 15 (40% of bills wrong): run "
            "it for 7d from a Monday's midnight for a weekly review (tpmon report) with one bad day.",
            (_incident({"bill_wrong": 0.4}, "3d9h", "6h", "billing outage: 40% of bills wrong"),),
        ),
        Scenario(
            "incident-day",
            "Healthy, then a billing outage (minutes 10-30), then contact-center overload (minutes 40-60), "
            "then recovery.",
            (
                BILLING_OUTAGE,
                _incident(OVERLOADED, "40m", "20m", OVERLOADED_WHAT, OVERLOADED_AFTERMATH),
            ),
        ),
    )
}
