"""The live pipeline through outages of the broker itself: nothing lost, doubled or decided early."""

from __future__ import annotations

import signal
import time

import pytest

from .conftest import finished, wait_until
from .test_live_pipeline import live_equals_replay, simulate_live

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.longest]


def test_the_broker_stopped_mid_stream_for_30_s_then_for_4_min(namespace, broker):
    """A paced live stream through two outages of the broker: 30 s while the stream runs (the
    simulator's producer waits for it), then 4 min with deadlines open, before the stream resumes.
    The worker stays up; while the broker is away nothing is decided (its clock is the inputs'
    reports, which travel through Kafka); afterwards every count equals a replay's: nothing lost,
    nothing doubled, nothing decided early."""
    worker = namespace.worker()
    before, before_copy = simulate_live(namespace, seconds=60, rate=100, seed=41, out="before.jsonl")
    wait_until(lambda: sum(sum(pair) for pair in worker.outcomes().values()), 60, "the first outcome")

    def kafka_up() -> float:
        return worker.metrics().get(("tpmon_kafka_up", ()), 0.0)

    def outage(seconds: float) -> None:
        broker.stop()
        time.sleep(5)  # what was fetched before is judged; nothing can be decided after it
        during = worker.outcomes()
        time.sleep(seconds - 5)
        assert worker.outcomes() == during, "decided while the broker was away"
        broker.start()
        wait_until(kafka_up, 60, "the worker to be back on Kafka")

    outage(30)
    finished(before, 180, "the simulator")  # the stream went on after the outage
    outage(240)
    after, after_copy = simulate_live(namespace, seconds=15, rate=100, seed=42, out="after.jsonl")
    finished(after, 120, "the simulator")
    assert worker.process.poll() is None, worker.log.read_text()[-3000:]
    sent = namespace.root / "sent.jsonl"
    sent.write_bytes(before_copy.read_bytes() + after_copy.read_bytes())
    expected = live_equals_replay(namespace, [worker], sent)
    assert sum(g + b for g, b in expected.values()) > 200  # 289 in a run here
    assert worker.metrics()[("tpmon_kafka_outages_total", ())] == 2

    # Stopped while the broker is away: within seconds, with 0, and nothing in the log to alarm anyone.
    broker.stop()
    time.sleep(5)
    asked = time.monotonic()
    code = worker.stop(signal.SIGTERM, timeout=30)
    took = time.monotonic() - asked
    broker.start()
    log = worker.log.read_text()
    assert code == 0 and took < 10, f"exit {code} after {took:.1f} s:\n{log[-3000:]}"
    assert "Traceback" not in log and "CRITICAL" not in log, log[-3000:]
    print(f"stopped with the broker away in {took:.1f} s")
