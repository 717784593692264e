"""Restarts, kills and rebalances as Prometheus sees them: no counter ever goes down, and what it counts
is what was decided, nothing twice (docs/METRICS.md, docs/SEMANTICS.md "Restarts")."""

from __future__ import annotations

import json
import signal
import time
import urllib.request

import orjson
import pytest

from tpmon.broker import free_port

from .conftest import finished, wait_until
from .test_customer_room import Stack
from .test_live_pipeline import live_equals_replay, simulate_live

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.longest]


def counters(stack: Stack) -> list[str]:
    """The names of every tpmon counter Prometheus holds (histograms' and summaries' parts too)."""
    url = f"http://127.0.0.1:{stack.prom_port}/api/v1/label/__name__/values"
    with urllib.request.urlopen(url, timeout=5) as response:
        names = json.loads(response.read())["data"]
    return [
        name for name in names if name.startswith("tpmon_") and name.endswith(("_total", "_count", "_sum", "_bucket"))
    ]


def samples(stack: Stack, selector: str, window: str) -> list[tuple[dict, list[float]]]:
    """Every series of the selector with its raw samples over the window, oldest first."""
    result = stack.query(f"{selector}[{window}]") or []
    return [(row["metric"], [float(value) for _, value in row["values"]]) for row in result]


def test_sigterm_sigkill_and_a_rebalance_never_lower_a_counter_in_prometheus(namespace, tmp_path):
    """A paced stream, scraped every second by a real Prometheus, through a SIGTERM and restart, a
    SIGKILL and restart, and a second worker joining (a rebalance): not one tpmon counter is ever lower
    than before (``resets()`` is 0 for every series), and each outcome series rose by exactly what the
    workers decided, which is what a replay of the same events decides."""
    first_port, second_port = free_port(), free_port()
    worker = namespace.worker(port=first_port)
    stack = Stack(tmp_path / "prometheus", [first_port, second_port], "http://127.0.0.1:9/")
    try:
        began = time.time()
        process, copy = simulate_live(namespace, seconds=75, rate=120, seed=61)
        wait_until(lambda: sum(sum(pair) for pair in worker.outcomes().values()), 60, "the first outcome")

        time.sleep(5)
        assert worker.stop(signal.SIGTERM) == 0, worker.log.read_text()[-2000:]
        worker = namespace.worker(port=first_port)
        recovering = worker.get("/touchpoints")  # ready now (the fixture waited for /ready): whole
        assert recovering is not None and orjson.loads(recovering)["partitions"]

        time.sleep(8)
        worker.stop(signal.SIGKILL)
        worker = namespace.worker(port=first_port)

        time.sleep(5)
        second = namespace.worker(port=second_port)
        wait_until(
            lambda: all(
                0 < len(orjson.loads(w.get("/touchpoints") or b'{"partitions": []}')["partitions"]) < 4
                for w in (worker, second)
            ),
            90,
            "the partitions shared by both workers",
        )
        finished(process, 180, "the simulator")
        expected = live_equals_replay(namespace, [worker, second], copy)
        time.sleep(3)  # scraped once more
        window = f"{int(time.time() - began) + 30}s"

        # Not one counter ever went down, whichever worker served it.
        names = counters(stack)
        assert "tpmon_touchpoint_outcomes_total" in names and "tpmon_events_total" in names
        for name in names:
            went_down = stack.query(f"resets({name}[{window}]) > 0")
            assert went_down == [], (name, [row["metric"] for row in went_down or []])
        series = samples(stack, "tpmon_touchpoint_outcomes_total", window)
        assert series and all("instance" not in metric for metric, _ in series)  # one series a partition
        # Each series rose by what was decided: from 0 (a new group) to the workers' totals, a replay's.
        rose: dict[tuple[str, str], float] = {}
        for metric, values in series:
            assert values == sorted(values), metric
            key = (metric["touchpoint"], metric["outcome"])
            rose[key] = rose.get(key, 0.0) + values[-1] - values[0]
        decided = {(t, o): float(pair[i]) for t, pair in expected.items() for i, o in enumerate(("good", "bad"))}
        assert {k: v for k, v in rose.items() if v} == {k: v for k, v in decided.items() if v}
        increase = stack.query(f"sum(increase(tpmon_touchpoint_outcomes_total[{window}]))") or []
        total = sum(decided.values())
        print(f"\ndecided {total:.0f}; Prometheus increase() {float(increase[0]['value'][1]):.1f}")
        assert total > 300
    finally:
        stack.close()
