"""What a worker's partitions show, read and never written: the web views (/touchpoints, /at-risk,
/stories, /state) and the figures /metrics serves (``monitor.metrics``), added up over the partitions
this worker owns (``streams.partitions``).

/metrics never serves a figure a restart could take back: each partition's figures are taken as a
numbered ``snapshot`` before a delivery, and ``publish``ed once the delivery has returned (what they
account for is stored).
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Iterator

import orjson
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import Metric
from prometheus_client.metrics import MetricWrapperBase

from monitor import counts as tally
from monitor.engine.impact import IMPACTED, add_tallies, impact_view
from monitor.events import format_timestamp
from monitor.journeys import Journey, story
from monitor.metrics import Figures, Metrics
from monitor.state import Verdict, customers_in_window, judge, reliability, standing, warming_up
from monitor.watermark import NOTHING, Inputs

from .partitions import Partition, Partitions


class Views:
    """The read model of one worker's partitions."""

    def __init__(self, partitions: Partitions) -> None:
        self.partitions = partitions
        self.catalog = partitions.catalog
        # What /metrics serves: each partition's figures as last stored (``snapshot``, ``publish``).
        self.published: dict[int, Figures] = {}
        self.published_at = 0
        self.snapshots = 0
        self.version = 0  # one more at each change of ``published`` (MetricsPage's cache key)

    @property
    def owned(self) -> dict[int, Partition]:
        return self.partitions.owned

    # -- the web views ----------------------------------------------------------------------------------
    def counts(self) -> dict[str, list[int]]:
        totals = {touchpoint_id: [0, 0] for touchpoint_id in self.catalog.ids}
        for part in list(self.owned.values()):
            for touchpoint_id, (good, bad) in part.engine.counts().items():
                pair = totals.setdefault(touchpoint_id, [0, 0])
                pair[0] += good
                pair[1] += bad
        return totals

    def pending_counts(self) -> dict[str, int]:
        totals = dict.fromkeys(self.catalog.ids, 0)
        for part in list(self.owned.values()):
            for touchpoint_id, count in part.engine.pending_counts().items():
                totals[touchpoint_id] = totals.get(touchpoint_id, 0) + count
        return totals

    def at_risk_counts(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for part in list(self.owned.values()):
            for touchpoint_id, count in part.engine.at_risk_counts().items():
                totals[touchpoint_id] = totals.get(touchpoint_id, 0) + count
        return totals

    def rule_error_counts(self) -> dict[str, int]:
        """Per touchpoint, the events its rule could not judge on this worker's partitions."""
        parts = list(self.owned.values())
        return {
            touchpoint: sum(int(part.counts.get((tally.RULE_ERRORS, touchpoint), 0)) for part in parts)
            for touchpoint in self.catalog.ids
        }

    def impact_totals(self) -> dict[str, dict[str, float]]:
        totals: dict[str, dict[str, float]] = {}
        for part in list(self.owned.values()):
            add_tallies(totals, part.engine.impact.totals)
        return totals

    def at_risk(self, limit: int = 100) -> list[dict]:
        """The instances at risk on this worker's partitions, the least time left first (at most
        ``limit``), each with its touchpoint, customer, key and time left at its partition's watermark."""
        found = [item for part in list(self.owned.values()) for item in part.engine.at_risk()]
        found.sort(key=lambda item: (item["left"], item["touchpoint"], item["customer_id"], item["key"]))
        return found[:limit]

    def touchpoints(self) -> dict[str, dict]:
        """The state of every touchpoint over its window on this worker's partitions (as the recording
        rule states it over all of them), why, and its counts since the data began."""
        counts, pending = self.counts(), self.pending_counts()
        at_risk = self.at_risk_counts()
        impact = self.impact_totals()
        rule_errors = self.rule_error_counts()
        standing = self.standing()
        parts = list(self.owned.values())
        marks = [mark for part in parts if (mark := part.engine.mark()) is not None]
        firsts_of = [part.firsts() for part in parts]
        window_customers = self.customers_impacted()
        # The churn lift since the data began, customers counted once a day (impacted and active alike,
        # as the counters and the recording rule count them): a replay's over one UTC day.
        left_types = self.catalog.contract.left
        left = sum(
            n for part in parts for (_, kind), n in tally.of_kind(part.counts, tally.EVENTS) if kind in left_types
        )
        active = sum(part.engine.impact.active_total for part in parts)
        view = {}
        for t in self.catalog.touchpoints:
            good, bad = counts[t.id]
            verdict = standing[t.id]
            # Since the data began, as a replay of the same events states it over its whole input
            # (warming up while what is decided by now was opened before the data): the vital few's.
            firsts = [first for mine in firsts_of if (first := mine.get(t.id)) is not None]
            warming = bool(firsts and marks) and warming_up(t, min(marks), min(firsts))
            since_start = judge(t, good, bad, self.catalog.z, warming)
            evidence = verdict.view(t)
            view[t.id] = {
                "stage": t.stage,
                "owner": t.owner,
                # The state over its own window, and why (n decided there, the bounds): the wall's.
                "state": verdict.state,
                "why": evidence.pop("why"),
                "window": {"span": t.window.text, "good": verdict.good, "bad": verdict.bad, **evidence},
                # Every outcome decided since the data began (the counters'), and the state over them.
                "since_start": since_start.state,
                "good": good,
                "bad": bad,
                "pending": pending[t.id],
                "reliability": reliability(good, bad),
                "objective": t.objective,
                "differentiating": t.differentiating,
                "rule_errors": rule_errors.get(t.id, 0),  # events its rule could not judge (the metric's)
            }
            if t.at_risk is not None:
                view[t.id]["at_risk"] = at_risk.get(t.id, 0)
            # Customers impacted: distinct, in its window (the wall's).
            named = impact.get(t.id, {})
            churn = (named.get(IMPACTED, 0), left, active)
            view[t.id]["impact"] = impact_view(named, window_customers.get(t.id, 0), churn)
        return view

    def customers_impacted(self) -> dict[str, int]:
        """Distinct customers with a bad outcome of each touchpoint in its window, on this worker's
        partitions: each partition's at the instant it has decided to, added up (a customer lives in one
        partition), as tpmon_touchpoint_window_customers_impacted summed."""
        found = dict.fromkeys(self.catalog.ids, 0)
        for part in list(self.owned.values()):
            buckets, mark = tally.windowed_customers(part.counts), part.engine.mark()
            for t in self.catalog.touchpoints:
                found[t.id] += customers_in_window(t, buckets.get(t.id), mark)
        return found

    def standing(self) -> dict[str, Verdict]:
        """Each touchpoint's state over its window, on this worker's partitions: each partition's window at
        the instant it has decided to, added up (monitor.state.standing), as the recording rule does."""
        parts = list(self.owned.values())
        return standing(self.catalog, [(part.counts, part.engine.mark(), part.firsts()) for part in parts])

    def latest_stories(self, touchpoint: str) -> list[dict]:
        """The latest customers of this worker with a bad outcome of ``touchpoint``, newest first, each
        with its story (``monitor.journeys.story``) from its journey."""
        found = []
        for at, partition, customer in reversed(self.partitions.stories.get(touchpoint, ())):
            part = self.owned.get(partition)
            journey = part.journeys.by_customer.get(customer) if part is not None else None
            if journey is None:
                stored = self.partitions.journey_store.get(customer, partition)
                if not stored:
                    continue  # expired since
                journey = Journey.from_record(orjson.loads(stored), self.catalog.decoder)
            told = story(journey, {touchpoint}, self.catalog.contract)
            if told is None:
                continue  # the bad outcome aged out of the journey since (its max_age or max_outcomes)
            found.append(
                {
                    "customer_id": customer,
                    "bad_at": format_timestamp(at),
                    "story": told,
                    "journey": f"/journeys/{customer}",
                }
            )
        return found

    def customers_in_memory(self) -> dict[int, int]:
        """Per partition, the customers of ``customers_held`` in memory (the others wait in the store)."""
        return {number: len(part.engine.state.customers) for number, part in sorted(self.owned.items())}

    def customers_held(self) -> dict[int, int]:
        """Per partition, the customers whose state it holds (open, queued or remembered), in memory or in
        the store."""
        return {number: len(part.engine.state.customers) + part.on_disk for number, part in sorted(self.owned.items())}

    def watermarks(self) -> dict[int, int | None]:
        return {number: part.engine.state.watermark for number, part in sorted(self.owned.items())}

    def decided(self) -> dict[int, int | None]:
        """Per partition, the instant up to which it has decided: its watermark, or below it while it
        holds for history (None: nothing yet, or everything held)."""
        found = {}
        for number, part in sorted(self.owned.items()):
            mark = part.engine.mark()
            found[number] = None if mark is None or mark == NOTHING else mark
        return found

    def holding(self) -> dict[int, float]:
        """Per partition, the seconds it has held for history (0: not holding)."""
        return {number: part.history.holding(part.clock.now) for number, part in sorted(self.owned.items())}

    def clocks(self) -> dict[int, Inputs]:
        return {number: part.clock for number, part in sorted(self.owned.items())}

    # -- what /metrics serves ------------------------------------------------------------------------
    def snapshot(self) -> tuple[int, dict[int, Figures]]:
        """Every owned partition's figures now, numbered, to ``publish`` once what they account for is
        stored: /metrics then never serves a figure a restart could take back."""
        self.snapshots += 1
        return self.snapshots, {number: self._figures(part) for number, part in self.owned.items()}

    @staticmethod
    def _figures(part: Partition) -> Figures:
        engine = part.engine
        return Figures(
            outcomes=engine.counts(),
            pending=engine.pending_counts(),
            at_risk=engine.at_risk_counts(),
            impact={touchpoint: dict(named) for touchpoint, named in engine.impact.totals.items()},
            active=engine.impact.active_total,
            counts=dict(part.counts),
            decided_to=engine.mark(),
            first=part.firsts(),
        )

    def publish(self, snapshot: tuple[int, dict[int, Figures]]) -> None:
        """What /metrics serves from now on, unless a later snapshot is published already; of the
        partitions still owned only."""
        number, figures = snapshot
        if number < self.published_at:
            return
        self.published_at = number
        self.published = {partition: view for partition, view in figures.items() if partition in self.owned}
        self.version += 1

    def publish_restored(self, number: int) -> None:
        """What /metrics serves of a partition just read back: what it stored (the others' figures wait
        for their deliveries)."""
        part = self.owned.get(number)
        if part is not None:
            self.published = {**self.published, number: self._figures(part)}
            self.version += 1

    def figures(self) -> dict[int, Figures]:
        """What /metrics serves: of the partitions still owned (one given up stops at once)."""
        owned = self.owned
        return {partition: view for partition, view in self.published.items() if partition in owned}


class _Families:
    """Metric families as a registry to ``generate_latest``."""

    def __init__(self, families: Iterable[Metric]) -> None:
        self.families = families

    def collect(self) -> Iterable[Metric]:
        return self.families


class MetricsPage:
    """/metrics: the partitions' families (the bulk of the page, their window counts computed from the
    figures) collected and written once per change of what is published (``Views.version``, the
    partitions still owned, the process's own counts), and served as those bytes until the next change;
    the rest of the registry (the process's gauges, lag, the broker's link: cheap, some read at the
    scrape) collected and written at each scrape.

    ``wire`` builds it: ``Metrics`` registers its partitions' collector in a registry of its own
    (``published``, cached here), whose gauges it moves to the worker's ``registry``; ``registry``
    serves the cached families too (``collect``), so that it still holds every family.
    """

    def __init__(self, views: Views, metrics: Metrics, published: CollectorRegistry) -> None:
        self.views, self.metrics, self.published = views, metrics, published
        self.key: Hashable = None
        self.families: list[Metric] = []
        self.ids: set[int] = set()
        self.text = b""
        self.builds = 0

    def _now(self) -> Hashable:
        owned = self.views.owned
        return (
            self.views.version,
            tuple(partition for partition in self.views.published if partition in owned),
            tuple(sorted(self.metrics.process.items())),
        )

    def _refresh(self) -> None:
        key = self._now()
        if key != self.key:
            self.families = list(self.published.collect())
            self.ids = {id(family) for family in self.families}
            self.text = generate_latest(_Families(self.families))  # type: ignore[arg-type]
            self.key = key
            self.builds += 1

    def collect(self) -> Iterator[Metric]:
        """The partitions' families as last built (a collector of the worker's registry)."""
        self._refresh()
        return iter(self.families)

    def describe(self) -> list[Metric]:
        return []  # (not collected at registration: the partitions are not built yet)

    def page(self, registry: CollectorRegistry) -> bytes:
        """The whole page of ``registry`` (which holds this page's families): the cached bytes, and the
        rest written now."""
        self._refresh()
        ids = self.ids
        rest = generate_latest(_Families(f for f in registry.collect() if id(f) not in ids))  # type: ignore[arg-type]
        return self.text + rest


def move_gauges(metrics: Metrics, to: CollectorRegistry) -> None:
    """The gauges ``metrics`` set itself (objectives, sources' last events, silence in open hours: read
    at the scrape) out of its own registry into ``to``, so that its own holds only the partitions'."""
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            metrics.registry.unregister(value)
            to.register(value)
