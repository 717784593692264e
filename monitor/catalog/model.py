"""The internal catalog model the engine, the metrics and the generators work from."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from functools import cached_property
from zoneinfo import ZoneInfo

from ..calendars import Calendar
from ..contract import Contract, Decoder
from ..state import z_score
from ..window import DEFAULT_TIMEZONE, DEFAULT_WINDOW, Window, parse_window
from .expressions import Expression

DEADLINE = "deadline"
NO_REPEAT = "no_repeat"
CONDITION = "condition"
KINDS = (DEADLINE, NO_REPEAT, CONDITION)
DEFAULT_LATENESS = 30_000_000  # 30 s in microseconds
DEFAULT_MAX_FUTURE = 3_600_000_000  # 1 h: live, events further ahead of the clock are future_timestamp
DEFAULT_MIN_EVENTS = 20
DEFAULT_GRAFANA = "http://localhost:3000"  # as docker-compose serves it
DEFAULT_ATTRIBUTION = 30 * 86_400_000_000  # impact: {attribution: 30d}, in microseconds
DEFAULT_CONFIDENCE = 0.99  # state: {confidence: 0.99}, one-sided (monitor.state)
DEFAULT_JOURNEY_RETENTION = 30 * 86_400_000_000  # journeys: {retention: 30d} at least (monitor.catalog.journeys)
KEEP, DROP = "keep", "drop"  # journeys: {personal: drop}: what journeys do with personal fields


@dataclass(frozen=True)
class JourneySettings:
    """``journeys:`` in the catalog. ``retention``: how far back of its newest entry a journey keeps
    events and outcomes, and how long a journey with nothing new is kept (microseconds). ``personal``:
    ``drop`` (the default) takes the fields declared ``personal: true`` out of every event a journey
    keeps (its contract view and its message, ``raw``); ``keep`` keeps them (monitor.personal)."""

    retention: int = DEFAULT_JOURNEY_RETENTION
    personal: str = DROP

    @property
    def keeps_personal(self) -> bool:
        return self.personal == KEEP


@dataclass(frozen=True)
class Match:
    """Which events play a role in a touchpoint: their types, and an optional CEL filter."""

    types: frozenset[str]
    where: Expression | None = None


@dataclass(frozen=True)
class Tier:
    """One alert tier: fire when the error ratio exceeds factor x (1 - objective) over both windows."""

    name: str  # the long window, as a label value: "1h", "6h", "1d", "3d"
    severity: str  # "page" or "ticket"
    factor: float
    long: str
    short: str


# (name, severity, long window, short window); the factors come from the catalog.
TIER_WINDOWS = (
    ("1h", "page", "1h", "5m"),
    ("6h", "page", "6h", "30m"),
    ("1d", "ticket", "1d", "2h"),
    ("3d", "ticket", "3d", "6h"),
)


def tiers(page: tuple[float, float], ticket: tuple[float, float]) -> tuple[Tier, ...]:
    factors = (*page, *ticket)
    return tuple(
        Tier(name, severity, factor, long, short)
        for (name, severity, long, short), factor in zip(TIER_WINDOWS, factors, strict=True)
    )


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
    tiers: tuple[Tier, ...] = ()
    source: str = ""  # file:line, for messages
    # deadline SLA clocks: open hours, pauses, a due instant from the start, the time left at risk.
    calendar: Calendar | None = None
    pause: Match | None = None
    resume: Match | None = None
    due: Expression | None = None  # a CEL timestamp over the start event, instead of within
    at_risk: int | None = None  # microseconds
    at_risk_alert: int = 3  # instances at risk at once that open a TouchpointAtRisk ticket
    runbook: str = ""  # the URL alerts link to ("" when the catalog names none)
    window: Window = field(default_factory=lambda: parse_window(DEFAULT_WINDOW))  # the state's (monitor.window)
    low_volume: bool | None = None  # alerts.low_volume: True, False, or None (chosen by its volume)

    def decided_by(self, first: int) -> int:
        """The instant by which an instance opened at ``first`` is decided (its due instant, open hours
        counted; a condition decides at once). With ``due:`` the due instant is the start event's own:
        it counts as at once (docs/SEMANTICS.md, "Warming up")."""
        if self.within is None:
            return first
        if self.calendar is not None:
            return self.calendar.advance(first, self.within)
        return first + self.within

    @property
    def event_types(self) -> frozenset[str]:
        types = self.opens.types | (self.closes.types if self.closes else frozenset())
        for match in (self.pause, self.resume):
            if match is not None:
                types |= match.types
        return types

    @property
    def clocked(self) -> bool:
        """A deadline on an SLA clock (engine.clock), rather than the plain S + D."""
        return self.kind == DEADLINE and (
            self.calendar is not None or self.pause is not None or self.due is not None or self.at_risk is not None
        )


@dataclass(frozen=True)
class Catalog:
    touchpoints: tuple[Touchpoint, ...]
    lateness: int = DEFAULT_LATENESS
    files: tuple[str, ...] = field(default_factory=tuple)
    max_future: int = DEFAULT_MAX_FUTURE
    contract: Contract = field(default_factory=Contract)  # the events it judges (docs/EVENTS.md)
    calendars: dict[str, Calendar] = field(default_factory=dict)
    grafana: str = DEFAULT_GRAFANA  # where alerts link their dashboards
    # How long before a customer leaves (``attribution_left``) or answers a survey
    # (``attribution_surveys``) an outcome of theirs counts (engine.impact).
    attribution_left: int = DEFAULT_ATTRIBUTION
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo(DEFAULT_TIMEZONE))  # calendar windows (monitor.window)
    confidence: float = DEFAULT_CONFIDENCE  # of the state's evidence (monitor.state)
    journeys: JourneySettings = field(default_factory=JourneySettings)  # what journeys keep, and how long
    attribution_surveys: int = DEFAULT_ATTRIBUTION
    about: tuple[str, ...] = ()  # the answers' fields naming the instance an answer is about (engine.impact)

    @cached_property
    def z(self) -> float:
        """The confidence as a one-sided standard normal quantile (monitor.state.wilson)."""
        return z_score(self.confidence)

    def scaled(self, factor: int) -> Catalog:
        """The same catalog with every rolling state window divided by ``factor`` (the test profile)."""
        if factor == 1:
            return self
        touchpoints = tuple(replace(t, window=t.window.scaled(factor)) for t in self.touchpoints)
        return replace(self, touchpoints=touchpoints)

    @cached_property
    def decoder(self) -> Decoder:
        """Bytes into events, compiled from the contract once."""
        return Decoder(self.contract)

    def __getitem__(self, touchpoint_id: str) -> Touchpoint:
        for touchpoint in self.touchpoints:
            if touchpoint.id == touchpoint_id:
                return touchpoint
        raise KeyError(touchpoint_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(t.id for t in self.touchpoints)

    def sources_of(self, touchpoint: Touchpoint) -> frozenset[str]:
        """The sources whose events a touchpoint judges."""
        found = (self.contract.source_of_type(event_type) for event_type in touchpoint.event_types)
        return frozenset(source for source in found if source is not None)

    def silence(self, source: str, last: float, now: float) -> float:
        """Seconds a source has been silent since its last event at ``last`` (both Unix seconds): with a
        calendar (its ``calendar:``), only the open hours count, so a claims office is not silent at night."""
        declared = self.contract.source(source)
        calendar = self.calendars.get(declared.calendar or "") if declared is not None else None
        if calendar is None:
            return now - last
        return calendar.measure(round(last * 1_000_000), round(now * 1_000_000)) / 1_000_000

    def silent_sources(self, last_events: dict[str, float], now: float) -> frozenset[str]:
        """The sources silent for more than their silent_after (``silence``) since their last event
        (seconds, by source)."""
        return frozenset(
            source.name
            for source in self.contract.sources
            if source.name in last_events
            and self.silence(source.name, last_events[source.name], now) > source.silent_after / 1_000_000
        )

    def fed_only_by(self, silent: frozenset[str]) -> frozenset[str]:
        """The touchpoints all of whose sources are silent: "no data", never reliable."""
        return frozenset(t.id for t in self.touchpoints if (sources := self.sources_of(t)) and sources <= silent)
