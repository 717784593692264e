"""A crash at any point while the store refuses some deletions of freed customers (once, twice, or
always): the counts after the restart are a replay's (``Partition.freeing``: a record whose deletion
is not written is never counted twice, nor is a customer's next life taken for it)."""

from __future__ import annotations

import zlib

import pytest

from streams.views import Views
from tests.builders import MemoryStores
from tests.test_partitions import crash_scenario, events_counted, finish, new


def refusing(store, attempts, policy):  # type: ignore[no-untyped-def]
    """``store`` refuses the deletions ``policy`` names: its first n attempts, or all ("always")."""
    put = store.put

    def failing(partition, key, value):  # type: ignore[no-untyped-def]
        if value is None and policy(key):
            n = attempts.get(key, 0)
            attempts[key] = n + 1
            if policy(key) == "always" or n < policy(key):
                raise OSError("disk full")
        put(partition, key, value)

    store.put = failing


@pytest.mark.parametrize("mode", ["once", "twice", "always"])
@pytest.mark.parametrize("in_memory", [100_000, 3])
def test_a_crash_at_any_point_with_deletions_refused_loses_and_doubles_nothing(catalog, monkeypatch, mode, in_memory):  # type: ignore[no-untyped-def]
    catalog, work, expected, summary = crash_scenario(catalog, monkeypatch)

    def policy(key):  # type: ignore[no-untyped-def]
        if zlib.crc32(key.encode()) % 3:
            return 0
        return {"once": 1, "twice": 2, "always": "always"}[mode]

    def judge(live, mine, numbers):  # type: ignore[no-untyped-def]
        for number in numbers:
            if number % 5 == 4:
                live.forget()
            mine.deliver()
            live.handle_batch(work[number])

    refused_total = 0
    for cut_batch in (3, 9, 14, 24, 29, 49, len(work) - 2):
        attempts: dict[str, int] = {}
        crashing = MemoryStores()
        refusing(crashing.customers, attempts, policy)
        live = new(catalog, crashing.customers, crashing.journeys, retention="1h", in_memory=in_memory)
        judge(live, crashing, range(cut_batch))
        if cut_batch % 5 == 4:
            live.forget()
        refused_total += sum(1 for f, _ in live.failures if f.stage == "record")
        for fraction in (0.0, 0.1, 0.3, 0.5, 0.7, 0.9, 0.99, 1.0):
            mine = crashing.crashed(customers=fraction)
            refusing(mine.customers, dict(attempts), policy)
            live = new(catalog, mine.customers, mine.journeys, retention="1h", in_memory=in_memory)
            live.handle_batch(work[cut_batch - 1])
            mine.deliver()
            live.handle_batch(work[cut_batch])
            judge(live, mine, range(cut_batch + 1, len(work)))
            finish(live)
            counts = {t: tuple(c) for t, c in Views(live).counts().items()}
            diff = {t: (counts[t], expected[t]) for t in expected if counts[t] != expected[t]}
            assert not diff, (cut_batch, fraction, diff)
            events = summary["events"]
            wanted = {"accepted": events["accepted"], "duplicates": events["duplicates"], "late": events["late"]}
            assert events_counted(live) == wanted, (cut_batch, fraction)
    assert refused_total > 0  # (the scenario refused deletions before the crashes)
