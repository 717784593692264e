"""The worker's parts put together, once: partitions and their read model, the metrics, the dead letters,
ingest and the judge.

``wire`` is a plain function of the catalog, the settings, the two stores, an outbox and the inputs'
positions: the app (``streams.app``) calls it with its changelog-backed tables, Kafka's outbox and the
consumer's positions, and the tests call it with memory stores and a list, so that they drive the
worker's own wiring, not a copy of it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from prometheus_client import CollectorRegistry

from monitor.catalog import Catalog
from monitor.durations import parse_duration
from monitor.metrics import Metrics

from .handlers import DeadLetters, Failures, Ingest, Judge, Positions
from .outbox import Outbox
from .partitions import Partitions, Store
from .settings import Settings
from .views import MetricsPage, Views, move_gauges


@dataclass
class Wiring:
    """A worker's parts, as ``wire`` put them together."""

    partitions: Partitions
    views: Views
    metrics: Metrics
    page: MetricsPage  # /metrics (of ``registry``)
    failures: Failures
    dead_letters: DeadLetters
    ingest: Ingest
    judge: Judge


def wire(
    catalog: Catalog,
    settings: Settings,
    customers: Store,
    journeys: Store,
    outbox: Outbox,
    positions: Positions,
    registry: CollectorRegistry,
    *,
    events_topic: str,
    dead_letter_topic: str,
    clock: Callable[[], float] = time.time,
) -> Wiring:
    """The parts of a worker judging ``catalog`` as ``settings`` say, its state in ``customers`` and
    ``journeys``, what it sends through ``outbox``, its figures in ``registry``. ``clock``: the wall
    clock in seconds (the sources' last events are timed by it)."""
    lateness = parse_duration(settings.lateness) if settings.lateness else None
    max_future = parse_duration(settings.max_future) if settings.max_future else catalog.max_future
    source_of_topic = {topic: source for source, topic in settings.topics_of(catalog.contract.source_names).items()}
    partitions = Partitions(
        catalog,
        customers,
        journeys,
        lateness=lateness,
        retention=parse_duration(settings.dedup_retention),
        in_memory=settings.customers_in_memory,
        journey_cache=settings.journeys_in_memory,
    )
    views = Views(partitions)
    # The partitions' families in a registry of their own, cached by the page (streams.views.MetricsPage).
    metrics = Metrics(catalog, views, CollectorRegistry())
    move_gauges(metrics, registry)
    page = MetricsPage(views, metrics, metrics.registry)
    registry.register(page)
    started = clock()
    for source in source_of_topic.values():
        metrics.watch_source(source, started, clock)
    failures = Failures(metrics)
    dead_letters = DeadLetters(outbox, dead_letter_topic, events_topic, metrics, failures)
    outbox.on_refused = dead_letters.refused
    ingest = Ingest(
        outbox,
        events_topic,
        dead_letters,
        max_future,
        failures,
        positions=positions,
        events_partitions=settings.partitions,
        lateness=partitions.lateness,
        decoder=catalog.decoder,
        sources=source_of_topic,
        metrics=metrics,
    )
    judge = Judge(partitions, events_topic, dead_letters, max_future, failures, catalog.decoder, source_of_topic)
    return Wiring(partitions, views, metrics, page, failures, dead_letters, ingest, judge)
