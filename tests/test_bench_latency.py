"""The detection benchmark's "after the inputs" instant: when the slowest-input watermark allows a decision."""

from __future__ import annotations

from bench.latency import allowed

S = 1_000_000  # µs


def test_the_latest_partition_to_deliver_past_the_instant_sets_it():
    sent = {("orders", 0): [9 * S, 10 * S, 10 * S + 5], ("calls", 0): [9 * S, 11 * S]}
    assert allowed(10 * S, sent, lateness=2.0) == 11 * S


def test_a_partition_quiet_for_the_lateness_is_idle_and_holds_nothing_back():
    # calls delivered at 9 s and then nothing until 20 s: idle from 11 s (9 s + 2 s of lateness)
    sent = {("orders", 0): [10 * S], ("calls", 0): [9 * S, 20 * S]}
    assert allowed(10 * S, sent, lateness=2.0) == 11 * S
    # already quiet for the lateness at the instant: nothing to wait for
    assert allowed(12 * S, {("orders", 0): [12 * S], ("calls", 0): [9 * S]}, lateness=2.0) == 12 * S


def test_never_before_the_instant_itself():
    assert allowed(10 * S, {("orders", 0): [1 * S, 10 * S]}, lateness=2.0) == 10 * S
    assert allowed(10 * S, {}, lateness=2.0) == 10 * S
    # nothing sent before: quiet since the worker began (the benchmark starts it well before its load)
    assert allowed(10 * S, {("calls", 1): [11 * S]}, lateness=2.0) == 10 * S
