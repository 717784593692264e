"""Prometheus metrics (docs/METRICS.md) with an injected registry and children bound ahead of the hot path.

Labels are bounded: touchpoints, stages and owners come from the catalog, types from the contract
(unknown types are "other"), sources from configuration, reasons from a fixed list. Never an id.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Protocol

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

from . import conventions as c
from .catalog.model import DEADLINE, Catalog
from .engine.impact import BAD_SIDE, GOOD_SIDE, IMPACTED, LEFT, answers
from .engine.outcome import Outcome
from .events import REJECT_REASONS
from .failures import STAGES

# Fractions of a deadline where latency buckets sit; the union over the catalog's deadlines is used,
# since a histogram has one set of buckets for all its label values.
_DEADLINE_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def latency_buckets(catalog: Catalog) -> tuple[float, ...]:
    seconds = {
        round(t.within / 1_000_000 * fraction, 3)
        for t in catalog.touchpoints
        if t.kind == DEADLINE and t.within
        for fraction in _DEADLINE_FRACTIONS
    }
    return tuple(sorted(seconds)) or (1.0,)


class OutcomeSource(Protocol):
    """Where outcome counts and open instances are read from: the engine state, which a restarted
    worker restores, so that the counters continue where they were instead of starting at zero."""

    def counts(self) -> dict[str, list[int]]: ...

    def pending_counts(self) -> dict[str, int]: ...

    def at_risk_counts(self) -> dict[str, int]: ...

    def impact_totals(self) -> dict[str, dict[str, float]]: ...

    def customers_active(self) -> int: ...


class _StateCollector(Collector):
    def __init__(self, catalog: Catalog, source: OutcomeSource) -> None:
        self.touchpoints = catalog.touchpoints
        self.surveys = catalog.contract.surveys
        self.source = source

    def collect(self) -> Iterator[Metric]:
        outcomes = CounterMetricFamily(
            c.METRIC_OUTCOMES.removesuffix("_total"),
            "Touchpoint instances decided, by outcome.",
            labels=[c.LABEL_TOUCHPOINT, c.LABEL_STAGE, c.LABEL_OWNER, c.LABEL_OUTCOME],
        )
        pending = GaugeMetricFamily(
            c.METRIC_PENDING, "Touchpoint instances open and not yet decided.", labels=[c.LABEL_TOUCHPOINT]
        )
        at_risk = GaugeMetricFamily(
            c.METRIC_AT_RISK,
            "Open, running instances with at most the touchpoint's at_risk left (touchpoints with at_risk).",
            labels=[c.LABEL_TOUCHPOINT],
        )
        counts, open_now = self.source.counts(), self.source.pending_counts()
        risky = self.source.at_risk_counts()
        for t in self.touchpoints:
            good, bad = counts.get(t.id, (0, 0))
            outcomes.add_metric([t.id, t.stage, t.owner, c.GOOD], good)
            outcomes.add_metric([t.id, t.stage, t.owner, c.BAD], bad)
            pending.add_metric([t.id], open_now.get(t.id, 0))
            if t.at_risk is not None:
                at_risk.add_metric([t.id], risky.get(t.id, 0))
        yield outcomes
        yield pending
        yield at_risk
        yield from self._impact()

    def _impact(self) -> Iterator[Metric]:
        """Impact (docs/SEMANTICS.md, "Impact"), from the tallies in the engine state: every series
        exists from the start, at zero, so that its first increase counts."""
        tallies = self.source.impact_totals()
        impacted = CounterMetricFamily(
            c.METRIC_CUSTOMERS_IMPACTED.removesuffix("_total"),
            "Customers with a bad outcome of the touchpoint, counted once per customer and UTC day.",
            labels=[c.LABEL_TOUCHPOINT],
        )
        left = CounterMetricFamily(
            c.METRIC_LEFT_AFTER_BAD.removesuffix("_total"),
            "Leavings within the attribution window after a bad outcome of the touchpoint (each leaving once "
            "per touchpoint).",
            labels=[c.LABEL_TOUCHPOINT],
        )
        labels = [c.LABEL_TOUCHPOINT, c.LABEL_SURVEY, c.LABEL_AFTER]
        score = SummaryMetricFamily(
            c.METRIC_SURVEY_SCORE,
            "Survey scores of customers with an outcome of the touchpoint in the attribution window, "
            "after a bad one or only good ones.",
            labels=labels,
        )
        answered = CounterMetricFamily(
            c.METRIC_SURVEY_ANSWERS.removesuffix("_total"),
            "Survey answers attributed to the touchpoint, by side and class (nps: promoter, passive, detractor).",
            labels=[*labels, c.LABEL_CLASS],
        )
        for t in self.touchpoints:
            named = tallies.get(t.id, {})
            impacted.add_metric([t.id], named.get(IMPACTED, 0))
            left.add_metric([t.id], named.get(LEFT, 0))
            for survey in self.surveys:
                for side in (GOOD_SIDE, BAD_SIDE):
                    by_class, total = answers(named, survey, side)
                    score.add_metric([t.id, survey, side], sum(by_class.values()), total)
                    for cls, count in by_class.items():
                        answered.add_metric([t.id, survey, side, cls], count)
        active = CounterMetricFamily(
            c.METRIC_CUSTOMERS_ACTIVE.removesuffix("_total"),
            "Customers with an event, counted once per customer and UTC day: the base churn is compared with.",
        )
        active.add_metric([], self.source.customers_active())
        yield active
        yield impacted
        yield left
        yield score
        yield answered


class Metrics:
    """The metric families of one process, and fast paths to their children.

    Outcome counts and open instances are read from ``source`` (the engine state) when scraped; the
    rest counts what this process sees.
    """

    def __init__(self, catalog: Catalog, source: OutcomeSource, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        r.register(_StateCollector(catalog, source))
        self.latency = Histogram(
            c.METRIC_LATENCY, "Time from a deadline's start to its end, for ends that came.",
            [c.LABEL_TOUCHPOINT], buckets=latency_buckets(catalog), registry=r,
        )  # fmt: skip
        self.objective = Gauge(
            c.METRIC_OBJECTIVE, "The touchpoint's reliability objective.", [c.LABEL_TOUCHPOINT], registry=r
        )
        self.differentiating = Gauge(
            c.METRIC_DIFFERENTIATING,
            "Reliability at or above which the touchpoint differentiates.",
            [c.LABEL_TOUCHPOINT],
            registry=r,
        )
        self.min_events = Gauge(
            c.METRIC_MIN_EVENTS,
            "Decided outcomes needed before the touchpoint has a state.",
            [c.LABEL_TOUCHPOINT],
            registry=r,
        )
        self.rule_errors = Counter(
            c.METRIC_RULE_ERRORS, "Events a touchpoint's rule could not judge.", [c.LABEL_TOUCHPOINT], registry=r
        )
        self.events = Counter(c.METRIC_EVENTS, "Valid events accepted.", [c.LABEL_SOURCE, c.LABEL_TYPE], registry=r)
        self.rejected = Counter(
            c.METRIC_REJECTED, "Inputs rejected, by reason.", [c.LABEL_SOURCE, c.LABEL_REASON], registry=r
        )
        self.duplicates = Counter(
            c.METRIC_DUPLICATES, "Events seen again with a known event_id.", [c.LABEL_SOURCE], registry=r
        )
        self.late = Counter(
            c.METRIC_LATE, "Events that arrived after the watermark passed them.", [c.LABEL_SOURCE], registry=r
        )
        self.customers = Counter(c.METRIC_CUSTOMERS, "Customers joined and left.", [c.LABEL_DIRECTION], registry=r)
        self.journeys_broken = Counter(c.METRIC_JOURNEYS_BROKEN, "Journeys that turned broken.", registry=r)
        self.internal_errors = Counter(
            c.METRIC_INTERNAL_ERRORS,
            "Processing that raised for a reason outside the event contract (a bug), by where it failed.",
            [c.LABEL_STAGE_OF_FAILURE],
            registry=r,
        )
        self._internal_errors = {stage: self.internal_errors.labels(stage) for stage in STAGES}
        self.last_event = Gauge(
            c.METRIC_SOURCE_LAST_EVENT,
            "When this worker last took a valid event of the source, in Unix seconds (its start, until then).",
            [c.LABEL_SOURCE],
            registry=r,
        )
        self._last_event: dict[str, Gauge] = {}
        self._last_seen: dict[str, float] = {}

        # Children bound ahead of time: the hot path does one dict lookup and an inc().
        self._latency = {}
        self._rule_errors = {}
        for t in catalog.touchpoints:
            self._rule_errors[t.id] = self.rule_errors.labels(t.id)
            self.objective.labels(t.id).set(t.objective)
            self.differentiating.labels(t.id).set(t.differentiating)
            self.min_events.labels(t.id).set(t.min_events)
            if t.kind == DEADLINE:
                self._latency[t.id] = self.latency.labels(t.id)
        self._joined = self.customers.labels(c.JOINED)
        self._left = self.customers.labels(c.LEFT)
        # Label values come from the declarations (docs/EVENTS.md), so they stay bounded.
        self._types = catalog.contract.types
        self._joined_types, self._left_types = catalog.contract.joined, catalog.contract.left
        self._events: dict[tuple[str, str], Counter] = {}
        self._by_source: dict[tuple[str, str], Counter] = {}

    def bind_source(self, source: str) -> None:
        """Create a source's children up front, so its series exist (at zero) before the first event."""
        for event_type in [*sorted(self._types), c.OTHER_TYPE]:
            self._events[source, event_type] = self.events.labels(source, event_type)
        for reason in REJECT_REASONS:
            self._by_source[source, reason] = self.rejected.labels(source, reason)
        self._by_source[source, "duplicate"] = self.duplicates.labels(source)
        self._by_source[source, "late"] = self.late.labels(source)

    def watch_source(self, source: str, now: float) -> None:
        """A declared source this worker reads: its last event is ``now`` (seconds) until one comes, so
        that a source that never sends is silent after its silent_after too."""
        self._last_event[source] = self.last_event.labels(source)
        self.source_events(source, now)

    def source_events(self, source: str, now: float) -> None:
        child = self._last_event.get(source)
        if child is not None:
            child.set(now)
            self._last_seen[source] = now

    def last_events(self) -> dict[str, float]:
        """When each watched source last sent this worker a valid event (seconds)."""
        return dict(self._last_seen)

    def _source(self, source: str, what: str) -> Counter:
        child = self._by_source.get((source, what))
        if child is None:
            self.bind_source(source)
            child = self._by_source[source, what]
        return child

    # -- the hot path ------------------------------------------------------------------------------------
    def event(self, source: str, kind: str, count: int = 1) -> None:
        child = self._events.get((source, kind))
        if child is None:
            self.bind_source(source)
            child = self._events[source, kind]
        child.inc(count)
        if kind in self._joined_types:
            self._joined.inc(count)
        elif kind in self._left_types:
            self._left.inc(count)

    def reject(self, source: str, reason: str) -> None:
        self._source(source, reason).inc()

    def duplicate(self, source: str, count: int = 1) -> None:
        self._source(source, "duplicate").inc(count)

    def late_event(self, source: str, count: int = 1) -> None:
        self._source(source, "late").inc(count)

    def outcome(self, outcome: Outcome) -> None:
        """Observe a deadline's latency (the outcome itself is counted in the state)."""
        if outcome.latency is not None:
            histogram = self._latency.get(outcome.touchpoint)
            if histogram is not None:
                histogram.observe(outcome.latency / 1_000_000)

    def internal_error(self, stage: str) -> None:
        self._internal_errors[stage].inc()

    def rule_error(self, touchpoint: str) -> None:
        self._rule_errors[touchpoint].inc()

    def journey_broken(self) -> None:
        self.journeys_broken.inc()
