"""What a partition has counted, kept with its state so that a restart or a rebalance continues it.

Every counter the worker serves for the events it judges is counted here, per events partition, and
stored in the partition's own record (``streams.partitions``): events by source and type, duplicates,
late events, rejects by source and reason, rule errors, internal errors, journeys turned broken, and
the latency of deadlines met. Counted in the state instead of in the process, a counter continues
where it was after a restart (never back to zero, which Prometheus would take for a reset), and moves
with its partition to whichever worker takes it over (docs/METRICS.md).

A ``Counts`` is a flat dict, key -> number; a key is a tuple, its first item saying what it counts
(``EVENTS``, ...) and the rest the labels. Pure: numbers in, numbers out.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable, Iterator, Mapping
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .catalog.model import Catalog

EVENTS = "events"  # (EVENTS, source, type)
DUPLICATES = "duplicates"  # (DUPLICATES, source)
LATE = "late"  # (LATE, source)
REJECTED = "rejected"  # (REJECTED, source, reason)
RULE_ERRORS = "rule_errors"  # (RULE_ERRORS, touchpoint)
INTERNAL_ERRORS = "internal_errors"  # (INTERNAL_ERRORS, stage)
JOURNEYS_BROKEN = "journeys_broken"  # (JOURNEYS_BROKEN,)
LATENCY = "latency"  # (LATENCY, touchpoint, a bucket's bound): observations in that bucket
LATENCY_SUM = "latency_sum"  # (LATENCY_SUM, touchpoint): seconds
LATENCY_COUNT = "latency_count"  # (LATENCY_COUNT, touchpoint)
WINDOW = "window"  # (WINDOW, touchpoint, the start of a state window's bucket, outcome): monitor.window
# (IMPACTED, touchpoint, the start of a state window's bucket): the customers whose latest bad outcome of
# the touchpoint is in that bucket (each customer in one bucket: their sum over a window is distinct).
IMPACTED = "impacted"

Key = tuple[str, ...]
Counts = dict[Key, float]


def add(counts: Counts, key: Key, amount: float = 1) -> None:
    counts[key] = counts.get(key, 0) + amount


def merge(into: Counts, more: Mapping[Key, float]) -> None:
    for key, amount in more.items():
        into[key] = into.get(key, 0) + amount


def bound_label(bound: float) -> str:
    """A latency bucket's upper bound as Prometheus writes it (``le``), and as a count's key holds it."""
    return "+Inf" if bound == float("inf") else repr(float(bound))


# Fractions of a deadline where latency buckets sit; the union over the catalog's deadlines is used,
# since a histogram has one set of buckets for all its label values.
_DEADLINE_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0)


def latency_buckets(catalog: Catalog) -> tuple[float, ...]:
    """The latency histograms' bucket bounds, in seconds: around each deadline of the catalog."""
    from .catalog.model import DEADLINE  # (the catalog's model reads counts: imported when asked)

    seconds = {
        round(t.within / 1_000_000 * fraction, 3)
        for t in catalog.touchpoints
        if t.kind == DEADLINE and t.within
        for fraction in _DEADLINE_FRACTIONS
    }
    return tuple(sorted(seconds)) or (1.0,)


def latency_keys(touchpoint: str, buckets: tuple[float, ...]) -> list[Key]:
    """The keys of a touchpoint's latency buckets, by bucket index (the last: past every bound). A key
    names its bound, not its index, so that a catalog whose deadlines change keeps what each bound held."""
    return [(LATENCY, touchpoint, bound_label(bound)) for bound in (*buckets, float("inf"))]


def observe_latency(counts: Counts, keys: list[Key], seconds: float, buckets: tuple[float, ...]) -> None:
    """One deadline met after ``seconds``: counted in the first bucket that holds it, its sum and its
    count (``keys``: the touchpoint's ``latency_keys``); ``histograms`` makes the buckets cumulative."""
    touchpoint = keys[0][1]
    add(counts, keys[bisect_left(buckets, seconds)])
    add(counts, (LATENCY_SUM, touchpoint), seconds)
    add(counts, (LATENCY_COUNT, touchpoint))


def histograms(
    counts: Mapping[Key, float], buckets: tuple[float, ...], touchpoints: Iterable[str]
) -> Iterator[tuple[str, list[tuple[str, float]], float]]:
    """Per touchpoint: (touchpoint, [(upper bound, cumulative count)...] ending with ``+Inf``, sum)."""
    for touchpoint in touchpoints:
        running = 0.0
        cumulative = []
        for key in latency_keys(touchpoint, buckets):
            running += counts.get(key, 0)
            cumulative.append((key[2], running))
        yield touchpoint, cumulative, counts.get((LATENCY_SUM, touchpoint), 0.0)


def record(counts: Mapping[Key, float]) -> list[list]:
    """JSON-ready: [[*key, amount], ...], in the counts' own order (a partition's are written at every
    batch: sorting them each time cost more than all else the record does; ``load`` needs no order)."""
    return [[*key, amount] for key, amount in counts.items()]


def load(stored: Iterable[list]) -> Counts:
    counts: Counts = {}
    for *key, amount in stored:
        if not key or type(amount) not in (int, float):
            raise ValueError(f"not a count: {[*key, amount]!r}")
        counts[tuple(str(part) for part in key)] = amount
    return counts


def of_kind(counts: Mapping[Key, float], kind: str) -> Iterator[tuple[tuple[str, ...], float]]:
    """The counts of one kind: (labels, amount)."""
    for key, amount in counts.items():
        if key[0] == kind:
            yield key[1:], amount


def windowed(counts: Mapping[Key, float]) -> dict[str, dict[int, list[int]]]:
    """The outcomes counted in state windows' buckets: touchpoint -> bucket start -> [good, bad]."""
    found: dict[str, dict[int, list[int]]] = {}
    for key, amount in counts.items():
        if key[0] == WINDOW:
            pair = found.setdefault(key[1], {}).setdefault(int(key[2]), [0, 0])
            pair[0 if key[3] == "good" else 1] += int(amount)
    return found


def windowed_customers(counts: Mapping[Key, float]) -> dict[str, dict[int, int]]:
    """The customers impacted counted in state windows' buckets: touchpoint -> bucket start -> customers
    whose latest bad outcome is in it."""
    found: dict[str, dict[int, int]] = {}
    for key, amount in counts.items():
        if key[0] == IMPACTED:
            mine = found.setdefault(key[1], {})
            mine[int(key[2])] = mine.get(int(key[2]), 0) + int(amount)
    return found


def move_impacted(counts: Counts, touchpoint: str, before: int | None, now: int) -> None:
    """A customer's latest bad outcome of ``touchpoint`` moves from the bucket ``before`` (None: it had
    none) to ``now``: it is counted once, in the bucket of its latest."""
    if before == now:
        return
    if before is not None:
        add(counts, (IMPACTED, touchpoint, str(before)), -1)
    add(counts, (IMPACTED, touchpoint, str(now)), 1)


def drop_windows_before(counts: Counts, starts: Mapping[str, int]) -> None:
    """Forget the buckets of each touchpoint before its window's start (``starts``), and those of
    touchpoints no longer in the catalog: no window will hold them again."""
    for key in [key for key in counts if key[0] in (WINDOW, IMPACTED) and int(key[2]) < starts.get(key[1], 2**63)]:
        del counts[key]
