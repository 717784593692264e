"""The benchmarks still run: every measure of `make bench`, tiny, on the session's broker."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from .conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_every_benchmark_runs_and_reports(kafka, tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--bootstrap", kafka, "--out", str(out)],
        cwd=ROOT,
        capture_output=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout.decode()[-2000:] + done.stderr.decode()[-3000:]
    results = json.loads(out.read_text())
    throughput = results["throughput"]
    # The tpmon figure exists only if the worker's outcomes equalled a replay's (bench.pipeline checks).
    assert throughput["tpmon_events_per_s"] > 0 and throughput["tpmon_2_workers_events_per_s"] > 0
    assert throughput["ceiling_events_per_s"] > 0 and throughput["faust_agent_events_per_s"] > 0
    assert results["replay"]["ratio"] > 0
    assert all(d["undecided"] == 0 and d["p99"] is not None for d in results["detection"])
    # The inputs allow a decision at due + lateness at the earliest, so the pipeline's part is the smaller.
    assert all(0 < d["after_inputs_p99"] <= d["p99"] for d in results["detection"])
    assert all(m["core"]["instances"] == m["worker"]["instances"] == 1000 for m in results["memory"])
    quiet, kept = results["state"]["quiet"], results["state"]["restart"]
    assert quiet["customers"] == 1000 and kept["stored"] >= 1000 and quiet["ratio_to_idle"] > 0
    assert kept["restart_to_first_event_s"] > 0 and results["state"]["backlog"]["events"] > 0
    table = done.stdout.decode()
    for measure in (
        "ratio 3/1",
        "ratio 3/2",
        "ratio replay / bare",
        "detection at",
        "per pending instance",
        "2 workers",
        "gone quiet past the retention",
        "restart with",
        "backlog",
    ):
        assert measure in table
