"""Prometheus metrics (docs/METRICS.md), read from what each partition has stored, with an injected registry.

Labels are bounded: touchpoints, stages and owners come from the catalog, types from the contract
(unknown types are "other"), sources from configuration, reasons from a fixed list, partitions from
the events topic. Never an id.

Every counter of what was judged is a partition's (``partition`` label): counted in its state
(``monitor.counts``, the engine's outcome and impact tallies), stored with it, and served only once
stored (``Figures``). A worker restarting, or a partition moving to another worker, therefore never
shows a counter going down: a partition not recovered yet has no series at all (Prometheus marks them
stale), and comes back at what it had stored. The few counts of the process itself (messages too
large to forward, failures of no partition, Kafka outages) have no ``partition`` label and start at
zero with the process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
    SummaryMetricFamily,
)
from prometheus_client.registry import Collector

from . import conventions as c
from . import counts as tally
from .catalog.model import DEADLINE, Catalog
from .counts import latency_buckets
from .engine.impact import BAD_SIDE, GOOD_SIDE, IMPACTED, LEFT, answers
from .events import REJECT_REASONS
from .failures import DELIVER, STAGES, TIMER
from .state import customers_in_window, partition_standing

#: The failures of no partition: a delivery to Kafka, the worker's own timers (at zero from the start,
#: so that the first one counts in ``increase()``).
PROCESS_STAGES = (DELIVER, TIMER)

LABEL_PARTITION = "partition"


@dataclass
class Figures:
    """What one partition has decided and counted, as stored: all /metrics serves of it."""

    outcomes: dict[str, list[int]] = field(default_factory=dict)  # touchpoint -> [good, bad]
    pending: dict[str, int] = field(default_factory=dict)
    at_risk: dict[str, int] = field(default_factory=dict)
    impact: dict[str, dict[str, float]] = field(default_factory=dict)  # engine.impact's tallies
    active: int = 0  # customers active, once per customer and UTC day
    counts: tally.Counts = field(default_factory=dict)
    decided_to: int | None = None  # the instant it has decided to (its state windows end there)
    first: dict[str, int | None] = field(default_factory=dict)  # touchpoint -> its first data (warm-up)


class FiguresSource(Protocol):
    def figures(self) -> Mapping[int, Figures]:
        """Per partition owned and recovered, its figures as stored."""
        ...


class _PartitionsCollector(Collector):
    """Every series of what was judged, one per partition (those recovered on this worker)."""

    def __init__(self, catalog: Catalog, source: FiguresSource, process: tally.Counts) -> None:
        self.process = process
        self.touchpoints = catalog.touchpoints
        self.deadlines = [t.id for t in catalog.touchpoints if t.kind == DEADLINE]
        self.surveys = catalog.contract.surveys
        self.buckets = latency_buckets(catalog)
        contract = catalog.contract
        self.sources = contract.source_names
        # Each source's series exist from the start, at zero, so that a first increase counts: its
        # declared types and "other".
        self.types = {
            source: [*sorted(d.type for d in contract.events if d.source == source), c.OTHER_TYPE]
            for source in self.sources
        }
        self.joined, self.left = contract.joined, contract.left
        self.source = source

    def collect(self) -> Iterator[Metric]:
        figures = sorted(self.source.figures().items())
        yield from self._decided(figures)
        yield from self._impact(figures)
        yield from self._events(figures)

    def _decided(self, figures: list[tuple[int, Figures]]) -> Iterator[Metric]:
        p = LABEL_PARTITION
        outcomes = CounterMetricFamily(
            c.METRIC_OUTCOMES.removesuffix("_total"),
            "Touchpoint instances decided, by outcome.",
            labels=[c.LABEL_TOUCHPOINT, c.LABEL_STAGE, c.LABEL_OWNER, c.LABEL_OUTCOME, p],
        )
        pending = GaugeMetricFamily(
            c.METRIC_PENDING, "Touchpoint instances open and not yet decided.", labels=[c.LABEL_TOUCHPOINT, p]
        )
        at_risk = GaugeMetricFamily(
            c.METRIC_AT_RISK,
            "Open, running instances with at most the touchpoint's at_risk left (touchpoints with at_risk).",
            labels=[c.LABEL_TOUCHPOINT, p],
        )
        rule_errors = CounterMetricFamily(
            c.METRIC_RULE_ERRORS.removesuffix("_total"),
            "Events a touchpoint's rule could not judge.",
            labels=[c.LABEL_TOUCHPOINT, p],
        )
        latency = HistogramMetricFamily(
            c.METRIC_LATENCY,
            "Time from a deadline's start to its end, for ends that came.",
            labels=[c.LABEL_TOUCHPOINT, p],
        )
        window = GaugeMetricFamily(
            c.METRIC_WINDOW_OUTCOMES,
            "Outcomes decided in the touchpoint's state window (its window: setting), by outcome, at the instant "
            "the partition has decided to: the touchpoint's state is judged on their sum over partitions.",
            labels=[c.LABEL_TOUCHPOINT, c.LABEL_STAGE, c.LABEL_OWNER, c.LABEL_OUTCOME, p],
        )
        warming = GaugeMetricFamily(
            c.METRIC_WARMING_UP,
            "1 while the touchpoint's window, or the time it takes to decide, reaches before the partition's "
            "first data (its state warms up), else 0.",
            labels=[c.LABEL_TOUCHPOINT, p],
        )
        customers = GaugeMetricFamily(
            c.METRIC_WINDOW_CUSTOMERS_IMPACTED,
            "Distinct customers with a bad outcome of the touchpoint in its state window, at the instant the "
            "partition has decided to (a customer lives in one partition: their sum is distinct).",
            labels=[c.LABEL_TOUCHPOINT, p],
        )
        for number, mine in figures:
            partition = str(number)
            buckets = tally.windowed(mine.counts)
            impacted = tally.windowed_customers(mine.counts)
            for t in self.touchpoints:
                customers.add_metric([t.id, partition], customers_in_window(t, impacted.get(t.id), mine.decided_to))
                now = partition_standing(t, buckets.get(t.id), mine.decided_to, mine.first.get(t.id))
                window.add_metric([t.id, t.stage, t.owner, c.GOOD, partition], now.good)
                window.add_metric([t.id, t.stage, t.owner, c.BAD, partition], now.bad)
                if now.warming is not None:  # (a partition without data yet says nothing)
                    warming.add_metric([t.id, partition], 1 if now.warming else 0)
                good, bad = mine.outcomes.get(t.id, (0, 0))
                outcomes.add_metric([t.id, t.stage, t.owner, c.GOOD, partition], good)
                outcomes.add_metric([t.id, t.stage, t.owner, c.BAD, partition], bad)
                pending.add_metric([t.id, partition], mine.pending.get(t.id, 0))
                if t.at_risk is not None:
                    at_risk.add_metric([t.id, partition], mine.at_risk.get(t.id, 0))
                rule_errors.add_metric([t.id, partition], mine.counts.get((tally.RULE_ERRORS, t.id), 0))
            for touchpoint, buckets, total in tally.histograms(mine.counts, self.buckets, self.deadlines):
                latency.add_metric([touchpoint, partition], buckets, total)
        yield outcomes
        yield window
        yield customers
        yield warming
        yield pending
        yield at_risk
        yield rule_errors
        yield latency

    def _impact(self, figures: list[tuple[int, Figures]]) -> Iterator[Metric]:
        """Impact (docs/SEMANTICS.md, "Impact"), from the tallies in the engine state."""
        p = LABEL_PARTITION
        impacted = CounterMetricFamily(
            c.METRIC_CUSTOMERS_IMPACTED.removesuffix("_total"),
            "Customers with a bad outcome of the touchpoint, counted once per customer and UTC day.",
            labels=[c.LABEL_TOUCHPOINT, p],
        )
        left = CounterMetricFamily(
            c.METRIC_LEFT_AFTER_BAD.removesuffix("_total"),
            "Leavings within the attribution window after a bad outcome of the touchpoint (each leaving once "
            "per touchpoint).",
            labels=[c.LABEL_TOUCHPOINT, p],
        )
        labels = [c.LABEL_TOUCHPOINT, c.LABEL_SURVEY, c.LABEL_AFTER, p]
        score = SummaryMetricFamily(
            c.METRIC_SURVEY_SCORE,
            "Survey scores of customers with an outcome of the touchpoint in the attribution window, "
            "after a bad one or only good ones.",
            labels=labels,
        )
        answered = CounterMetricFamily(
            c.METRIC_SURVEY_ANSWERS.removesuffix("_total"),
            "Survey answers attributed to the touchpoint, by side and class (nps: promoter, passive, detractor).",
            labels=[c.LABEL_TOUCHPOINT, c.LABEL_SURVEY, c.LABEL_AFTER, c.LABEL_CLASS, p],
        )
        active = CounterMetricFamily(
            c.METRIC_CUSTOMERS_ACTIVE.removesuffix("_total"),
            "Customers with an event, counted once per customer and UTC day: the base churn is compared with.",
            labels=[p],
        )
        for number, mine in figures:
            partition = str(number)
            active.add_metric([partition], mine.active)
            for t in self.touchpoints:
                named = mine.impact.get(t.id, {})
                impacted.add_metric([t.id, partition], named.get(IMPACTED, 0))
                left.add_metric([t.id, partition], named.get(LEFT, 0))
                for survey in self.surveys:
                    for side in (GOOD_SIDE, BAD_SIDE):
                        by_class, total = answers(named, survey, side)
                        score.add_metric([t.id, survey, side, partition], sum(by_class.values()), total)
                        for cls, count in by_class.items():
                            answered.add_metric([t.id, survey, side, cls, partition], count)
        yield active
        yield impacted
        yield left
        yield score
        yield answered

    def _events(self, figures: list[tuple[int, Figures]]) -> Iterator[Metric]:
        p = LABEL_PARTITION
        events = CounterMetricFamily(
            c.METRIC_EVENTS.removesuffix("_total"), "Valid events accepted.", labels=[c.LABEL_SOURCE, c.LABEL_TYPE, p]
        )
        rejected = CounterMetricFamily(
            c.METRIC_REJECTED.removesuffix("_total"),
            "Inputs rejected, by reason.",
            labels=[c.LABEL_SOURCE, c.LABEL_REASON, p],
        )
        duplicates = CounterMetricFamily(
            c.METRIC_DUPLICATES.removesuffix("_total"),
            "Events seen again with a known event_id.",
            labels=[c.LABEL_SOURCE, p],
        )
        late = CounterMetricFamily(
            c.METRIC_LATE.removesuffix("_total"),
            "Events that arrived after the watermark passed them.",
            labels=[c.LABEL_SOURCE, p],
        )
        customers = CounterMetricFamily(
            c.METRIC_CUSTOMERS.removesuffix("_total"), "Customers joined and left.", labels=[c.LABEL_DIRECTION, p]
        )
        broken = CounterMetricFamily(
            c.METRIC_JOURNEYS_BROKEN.removesuffix("_total"), "Journeys that turned broken.", labels=[p]
        )
        failures = CounterMetricFamily(
            c.METRIC_INTERNAL_ERRORS.removesuffix("_total"),
            "Processing that raised for a reason outside the event contract (a bug), by where it failed.",
            labels=[c.LABEL_STAGE_OF_FAILURE, p],
        )
        for number, mine in figures:
            partition = str(number)
            counted = mine.counts
            by_type = dict.fromkeys(((s, t) for s, types in self.types.items() for t in types), 0.0)
            by_reason = dict.fromkeys(((s, r) for s in self.sources for r in REJECT_REASONS), 0.0)
            by_source = dict.fromkeys(self.sources, 0.0)
            dups, lates = dict(by_source), dict(by_source)
            joined = left = 0.0
            for (source, kind), amount in tally.of_kind(counted, tally.EVENTS):
                by_type[source, kind] = amount
                if kind in self.joined:
                    joined += amount
                elif kind in self.left:
                    left += amount
            for (source, reason), amount in tally.of_kind(counted, tally.REJECTED):
                by_reason[source, reason] = amount
            for (source,), amount in tally.of_kind(counted, tally.DUPLICATES):
                dups[source] = amount
            for (source,), amount in tally.of_kind(counted, tally.LATE):
                lates[source] = amount
            for (source, kind), amount in sorted(by_type.items()):
                events.add_metric([source, kind, partition], amount)
            for (source, reason), amount in sorted(by_reason.items()):
                rejected.add_metric([source, reason, partition], amount)
            for source, amount in sorted(dups.items()):
                duplicates.add_metric([source, partition], amount)
            for source, amount in sorted(lates.items()):
                late.add_metric([source, partition], amount)
            customers.add_metric([c.JOINED, partition], joined)
            customers.add_metric([c.LEFT, partition], left)
            broken.add_metric([partition], counted.get((tally.JOURNEYS_BROKEN,), 0))
            by_stage = dict.fromkeys(STAGES, 0.0)
            for (stage,), amount in tally.of_kind(counted, tally.INTERNAL_ERRORS):
                by_stage[stage] = amount
            for stage, amount in by_stage.items():
                failures.add_metric([stage, partition], amount)
        for (source, reason), amount in sorted(tally.of_kind(self.process, tally.REJECTED)):
            rejected.add_metric([source, reason, ""], amount)
        by_stage = dict.fromkeys(PROCESS_STAGES, 0.0)
        for (stage,), amount in tally.of_kind(self.process, tally.INTERNAL_ERRORS):
            by_stage[stage] = amount
        for stage, amount in by_stage.items():
            failures.add_metric([stage, ""], amount)
        yield events
        yield rejected
        yield duplicates
        yield late
        yield customers
        yield broken
        yield failures


class Metrics:
    """The metric families of one worker: what its partitions stored, and the few of the process.

    The process's own counts (``refused``, ``failed``) are series of the same families without a
    ``partition`` (an empty label is none to Prometheus).
    """

    def __init__(self, catalog: Catalog, source: FiguresSource, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry if registry is not None else CollectorRegistry()
        r = self.registry
        self.process: tally.Counts = {}  # the process's own counts (``refused``, ``failed``)
        r.register(_PartitionsCollector(catalog, source, self.process))
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
        self.last_event = Gauge(
            c.METRIC_SOURCE_LAST_EVENT,
            "When this worker last took a valid event of the source, in Unix seconds (its start, until then).",
            [c.LABEL_SOURCE],
            registry=r,
        )
        self.silent_open = Gauge(
            c.METRIC_SOURCE_SILENT_OPEN,
            "Seconds since this worker last took a valid event of the source, counted in the source's calendar "
            "(sources with a calendar: only).",
            [c.LABEL_SOURCE],
            registry=r,
        )
        self.catalog = catalog
        self._last_event: dict[str, Gauge] = {}
        self._last_seen: dict[str, float] = {}
        for t in catalog.touchpoints:
            self.objective.labels(t.id).set(t.objective)
            self.differentiating.labels(t.id).set(t.differentiating)
            self.min_events.labels(t.id).set(t.min_events)

    def watch_source(self, source: str, now: float, clock: Callable[[], float]) -> None:
        """A declared source this worker reads: its last event is ``now`` (seconds) until one comes, so
        that a source that never sends is silent after its silent_after too. A source with a calendar
        also says how long it has been silent in its open hours, as of each scrape (``clock``)."""
        self._last_event[source] = self.last_event.labels(source)
        self.source_events(source, now)
        declared = self.catalog.contract.source(source)
        if declared is not None and declared.calendar:
            self.silent_open.labels(source).set_function(
                lambda: self.catalog.silence(source, self._last_seen.get(source, now), clock())
            )

    def source_events(self, source: str, now: float) -> None:
        child = self._last_event.get(source)
        if child is not None:
            child.set(now)
            self._last_seen[source] = now

    def last_events(self) -> dict[str, float]:
        """When each watched source last sent this worker a valid event (seconds)."""
        return dict(self._last_seen)

    def refused(self, source: str, reason: str) -> None:
        """A message this process could not pass on (too large for the events topic): counted here."""
        tally.add(self.process, (tally.REJECTED, source, reason))

    def failed(self, stage: str) -> None:
        """A failure of no partition (delivering, a timer of the worker): counted here."""
        tally.add(self.process, (tally.INTERNAL_ERRORS, stage))
