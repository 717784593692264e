"""The internal catalog model the engine, the metrics and the generators work from."""

from __future__ import annotations

from dataclasses import dataclass, field

from .expressions import Expression

DEADLINE = "deadline"
NO_REPEAT = "no_repeat"
CONDITION = "condition"
KINDS = (DEADLINE, NO_REPEAT, CONDITION)
DEFAULT_LATENESS = 30_000_000  # 30 s in microseconds
DEFAULT_MIN_EVENTS = 20


@dataclass(frozen=True)
class Match:
    """Which events play a role in a touchpoint: their types, and an optional CEL filter."""

    types: frozenset[str]
    where: Expression | None = None


@dataclass(frozen=True)
class Touchpoint:
    id: str
    stage: str
    owner: str
    description: str
    kind: str
    objective: float
    differentiating: float
    min_events: int
    # deadline: opens/closes; no_repeat: opens=trigger, closes=repeat; condition: opens=on.
    opens: Match
    closes: Match | None = None
    key: str | None = None
    within: int | None = None  # microseconds
    good: Expression | None = None
    source: str = ""  # file:line, for messages

    @property
    def event_types(self) -> frozenset[str]:
        return self.opens.types | (self.closes.types if self.closes else frozenset())


@dataclass(frozen=True)
class Catalog:
    touchpoints: tuple[Touchpoint, ...]
    lateness: int = DEFAULT_LATENESS
    files: tuple[str, ...] = field(default_factory=tuple)

    def __getitem__(self, touchpoint_id: str) -> Touchpoint:
        for touchpoint in self.touchpoints:
            if touchpoint.id == touchpoint_id:
                return touchpoint
        raise KeyError(touchpoint_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.touchpoints)
