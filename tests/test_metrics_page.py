"""/metrics as the worker serves it (streams.views.MetricsPage): the partitions' families built once per
change of what is published, and always what a fresh build of the registry says."""

from __future__ import annotations

from prometheus_client.parser import text_string_to_metric_families

from tests.test_metrics import EVENTS, NOW, judged, line
from tests.worker_helpers import Message, Worker


def samples(page: bytes) -> dict:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(page.decode())
        for s in family.samples
    }


def fresh(worker: Worker) -> dict:
    """The page built from nothing cached."""
    worker.page.key = None
    return samples(worker.page.page(worker.registry))


def test_the_page_is_what_a_fresh_build_says_and_holds_every_family(catalog):
    worker = judged(catalog, EVENTS)
    page = samples(worker.page.page(worker.registry))
    assert page == fresh(worker)
    names = {name for name, _ in page}
    # the partitions' (cached), the gauges Metrics sets itself (moved out of the cache), the worker's own
    assert {
        "tpmon_events_total",
        "tpmon_touchpoint_window_outcomes",
        "tpmon_touchpoint_objective_ratio",
        "tpmon_source_last_event_timestamp_seconds",
    } <= names


def test_built_once_per_publish_not_per_scrape(catalog):
    worker = judged(catalog, EVENTS)
    first = worker.page.page(worker.registry)
    builds = worker.page.builds
    for _ in range(3):
        assert worker.page.page(worker.registry) == first
    assert worker.page.builds == builds
    worker.run(
        [Message("orders", line("p2", "order.placed", 70, customer="c2", order_id="o2", amount=5, channel="web"))], NOW
    )
    served = samples(worker.page.page(worker.registry))
    assert worker.page.builds == builds + 1
    assert served == fresh(worker)
    assert sum(v for (name, _), v in served.items() if name == "tpmon_events_total") == 1 + sum(
        v for (name, _), v in samples(first).items() if name == "tpmon_events_total"
    )


def test_what_is_judged_but_not_published_is_not_served(catalog):
    worker = judged(catalog, EVENTS)
    before = worker.page.page(worker.registry)
    snapshot = worker.views.snapshot()
    assert worker.page.page(worker.registry) == before  # (a snapshot is not published)
    worker.views.publish(snapshot)
    assert worker.page.page(worker.registry) == before  # nothing new in it
    assert worker.page.builds >= 2


def test_the_process_counts_and_partitions_given_up_are_served_at_once(catalog):
    worker = judged(catalog, EVENTS)
    worker.page.page(worker.registry)
    worker.metrics.refused("orders", "too_large")
    served = samples(worker.page.page(worker.registry))
    assert (
        served[("tpmon_events_rejected_total", (("partition", ""), ("reason", "too_large"), ("source", "orders")))] == 1
    )
    held = {labels for name, labels in served if name == "tpmon_events_total"}
    given_up = max(int(dict(labels)["partition"]) for labels in held)
    worker.partitions.drop([given_up])
    served = samples(worker.page.page(worker.registry))
    assert served == fresh(worker)
    assert not any(dict(labels).get("partition") == str(given_up) for _, labels in served)
