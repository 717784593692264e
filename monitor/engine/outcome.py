"""What the engine decides: one outcome per touchpoint instance, and the events no rule could judge."""

from __future__ import annotations

from ..events import RULE_ERROR, Reject, format_timestamp

# Why an outcome is what it is.
IN_TIME = "in_time"  # deadline: the end came within the window
MISSED = "missed"  # deadline: the window closed with no end
REPEATED = "repeated"  # no_repeat: the repeat came within the window
QUIET = "quiet"  # no_repeat: the window closed with no repeat
JUDGED = "judged"  # condition: the expression decided


class Outcome:
    """One decided instance of a touchpoint, for the customer whose events opened and closed it."""

    __slots__ = (
        "at",
        "closed_by",
        "customer",
        "event_id",
        "good",
        "key",
        "latency",
        "opened_at",
        "reason",
        "touchpoint",
    )

    def __init__(
        self,
        touchpoint: str,
        good: bool,
        reason: str,
        customer: str,
        key: str,
        at: int,
        opened_at: int,
        event_id: str,
        closed_by: str | None = None,
        latency: int | None = None,
    ) -> None:
        self.touchpoint = touchpoint
        self.good = good
        self.reason = reason
        self.customer = customer
        self.key = key
        self.at = at  # event time of the decision: the closing event, or the due time
        self.opened_at = opened_at
        self.event_id = event_id  # the event that opened the instance (or the condition's event)
        self.closed_by = closed_by  # the event that closed it, if one did
        self.latency = latency  # microseconds from open to close, for deadlines closed in time

    @property
    def outcome(self) -> str:
        return "good" if self.good else "bad"

    def record(self) -> dict:
        """The JSON form used in journeys and on the outcomes topic."""
        record = {
            "touchpoint": self.touchpoint,
            "outcome": self.outcome,
            "reason": self.reason,
            "customer_id": self.customer,
            "key": self.key,
            "at": format_timestamp(self.at),
            "opened_at": format_timestamp(self.opened_at),
            "event_id": self.event_id,
        }
        if self.closed_by is not None:
            record["closed_by"] = self.closed_by
        if self.latency is not None:
            record["latency_seconds"] = self.latency / 1_000_000
        return record

    def __repr__(self) -> str:
        return f"Outcome({self.touchpoint} {self.outcome} {self.reason} key={self.key} at={format_timestamp(self.at)})"


class RuleError:
    """An event a rule could not judge: its expression failed, or it lacked the rule's key."""

    __slots__ = ("event_id", "message", "touchpoint")

    def __init__(self, touchpoint: str, event_id: str, message: str) -> None:
        self.touchpoint = touchpoint
        self.event_id = event_id
        self.message = message

    def kept(self, raw: bytes, source: str) -> Reject:
        """The event kept whole with reason rule_error, the touchpoint and the message (replay's
        --rejects, the dead letters): the other touchpoints judged it, so it is not a reject."""
        detail = f"touchpoint '{self.touchpoint}' could not judge it: {self.message}"
        return Reject(RULE_ERROR, detail, raw, source, touchpoint=self.touchpoint, message=self.message)

    def __repr__(self) -> str:
        return f"RuleError({self.touchpoint} {self.event_id}: {self.message})"
