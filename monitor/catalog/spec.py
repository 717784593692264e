"""The user's catalog file, version 1, as pydantic models: exactly what may be written in YAML.

These models check shape and values; ``load`` adds the checks that need the whole catalog or the
event contract, and maps the result to the internal model in ``model``.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

from ..durations import parse_duration

SLUG = r"^[a-z0-9]+(?:[-_][a-z0-9]+)*$"
DEFAULT_PAGE = (14.4, 6.0)
DEFAULT_TICKET = (3.0, 1.0)


def _duration(value: object) -> object:
    if isinstance(value, bool) or not isinstance(value, str):
        raise ValueError(f"a duration is written as text with a unit, such as '30s', '2m' or '48h', not {value!r}")
    parse_duration(value)
    return value


Duration = Annotated[str, BeforeValidator(_duration)]


def _event_match(value: object) -> object:
    """`start: order.placed` and `start: [a, b]` are short for `start: {types: [...]}`."""
    if isinstance(value, str):
        return {"types": [value]}
    if isinstance(value, list):
        return {"types": value}
    return value


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)


class EventMatchSpec(_Strict):
    types: list[Annotated[str, Field(min_length=1)]] = Field(min_length=1)
    where: str | None = None


EventMatch = Annotated[EventMatchSpec, BeforeValidator(_event_match)]


class AlertsSpec(_Strict):
    """Burn-rate factors of the alert tiers: page over 1h and 6h, ticket over 1d and 3d; and how many
    instances at risk at once open a TouchpointAtRisk ticket."""

    page: tuple[float, float] = DEFAULT_PAGE
    ticket: tuple[float, float] = DEFAULT_TICKET
    at_risk: int = Field(default=3, ge=1)
    # The alert on bad outcomes counted against the evidence, for touchpoints too quiet for burn rates:
    # true, false, or unset (on while the last hour holds fewer outcomes than min_events).
    low_volume: bool | None = None

    @field_validator("page", "ticket")
    @classmethod
    def _positive(cls, value: tuple[float, float]) -> tuple[float, float]:
        if any(factor <= 0 for factor in value):
            raise ValueError("burn-rate factors must be above 0")
        return value


class _Touchpoint(_Strict):
    id: str = Field(pattern=SLUG)
    stage: str = Field(pattern=SLUG)
    owner: str = Field(pattern=SLUG)
    description: str = ""
    objective: float
    differentiating: float | None = None
    min_events: int = Field(default=20, ge=1)
    window: str | None = Field(default=None, min_length=1)  # the state's: 1h, 7d, day, week, month
    alerts: AlertsSpec = Field(default_factory=AlertsSpec)
    runbook: str | None = Field(default=None, min_length=1)  # a URL; else the catalog's runbook template

    @field_validator("objective", "differentiating", mode="before")
    @classmethod
    def _ratio(cls, value: object) -> object:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"must be a ratio between 0 and 1 such as 0.95, not {value!r}")
        if 1 < value <= 100:
            raise ValueError(f"must be a ratio between 0 and 1; {value} looks like a percentage: write {value / 100:g}")
        if not 0 < value <= 1:
            raise ValueError(f"must be a ratio between 0 and 1 such as 0.95, not {value}")
        return value


class DeadlineSpec(_Touchpoint):
    kind: Literal["deadline"]
    start: EventMatch
    end: EventMatch
    key: str = Field(min_length=1)
    within: Duration | None = None
    # SLA clocks (docs/CATALOG.md): a due instant from the start instead of within; open hours;
    # pauses and resumes for the same key; how much time left is at risk.
    due: str | None = Field(default=None, min_length=1)
    calendar: str | None = Field(default=None, min_length=1)
    pause: EventMatch | None = None
    resume: EventMatch | None = None
    at_risk: Duration | None = None


class NoRepeatSpec(_Touchpoint):
    kind: Literal["no_repeat"]
    trigger: EventMatch
    repeat: EventMatch
    key: str = Field(min_length=1)
    within: Duration


class ConditionSpec(_Touchpoint):
    kind: Literal["condition"]
    on: EventMatch
    good: str = Field(min_length=1)


TouchpointSpec = Annotated[DeadlineSpec | NoRepeatSpec | ConditionSpec, Field(discriminator="kind")]


class ImpactSpec(_Strict):
    """What customers did after outcomes is attributed to those of the last ``attribution`` (both
    signals), or per signal: ``left`` (leavings) and ``surveys`` (answers). ``about``: the fields of
    survey answers that name the instance an answer is about (a claim, a ticket)."""

    attribution: Duration | None = None
    left: Duration | None = None
    surveys: Duration | None = None
    about: list[Annotated[str, Field(min_length=1)]] | None = None


class JourneysSpec(_Strict):
    """What journeys keep: ``retention``, how long (monitor.catalog.journeys); ``personal``, whether
    they keep the fields declared ``personal: true`` (``keep``) or not (``drop``, the default)."""

    retention: Duration | None = None
    personal: Literal["keep", "drop"] | None = None

    @model_validator(mode="before")
    @classmethod
    def _mapping(cls, value: object) -> object:
        if not isinstance(value, dict):
            raise ValueError(f"must be a mapping of settings, such as {{retention: 90d}}, not {value!r}")
        return value

    @field_validator("retention")
    @classmethod
    def _positive(cls, value: str | None) -> str | None:
        if value is not None and parse_duration(value) <= 0:
            raise ValueError(f"must be more than 0, such as 90d, not {value!r}")
        return value


class CatalogFileSpec(_Strict):
    """One catalog file. Touchpoints are checked one by one, so that every error is reported."""

    version: Literal[1]
    lateness: Duration | None = None
    max_future: Duration | None = None
    # Where on-call goes from an alert: a runbook URL template ({touchpoint} is the id) and Grafana.
    runbook: str | None = Field(default=None, min_length=1)
    grafana: str | None = Field(default=None, min_length=1)
    impact: ImpactSpec | None = None
    journeys: JourneysSpec | None = None
    # The state (docs/SEMANTICS.md): every touchpoint's window unless it sets its own, the time zone of
    # calendar windows and of the review, and the confidence of the evidence.
    window: str | None = Field(default=None, min_length=1)
    timezone: str | None = Field(default=None, min_length=1)
    confidence: float | None = None
    touchpoints: list[Any] = Field(default_factory=list)
    # The event contract (docs/EVENTS.md), checked by monitor.contract.declare.
    sources: Any = None
    events: Any = None
    customers: Any = None
    surveys: Any = None
    calendars: Any = None  # checked by monitor.catalog.clocks

    @field_validator("confidence", mode="before")
    @classmethod
    def _confidence(cls, value: object) -> object:
        if value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int | float) or not 0.5 < value < 1:
            raise ValueError(f"must be a level between 0.5 and 1 such as 0.99 (99% confident), not {value!r}")
        return value


KIND_SPECS: dict[str, type[_Touchpoint]] = {
    "deadline": DeadlineSpec,
    "no_repeat": NoRepeatSpec,
    "condition": ConditionSpec,
}
