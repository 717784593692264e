"""The examples: "bring your own events" (examples/utility) and SLA clocks (examples/support-hours).
Each catalog validates, its samples are what its generator writes, and a replay of them judges every
touchpoint."""

from __future__ import annotations

import subprocess
import sys

import orjson
from click.testing import CliRunner

from tpmon.cli import main

from .conftest import ROOT

EXAMPLE = ROOT / "examples" / "utility"
SOURCES = ("field-visits", "helpdesk", "invoices", "surveys")


def test_the_example_catalog_validates_without_warnings():
    done = CliRunner().invoke(main, ["rules", "validate", "--strict", str(EXAMPLE)])
    assert done.exit_code == 0, done.output


def test_the_samples_are_what_the_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(EXAMPLE / "generate.py"), "--out", str(tmp_path)], check=True)
    for source in SOURCES:
        assert (tmp_path / f"{source}.jsonl").read_bytes() == (EXAMPLE / "samples" / f"{source}.jsonl").read_bytes()


def test_a_replay_of_the_four_sources_judges_every_touchpoint():
    inputs = [f"{source}={EXAMPLE / 'samples' / f'{source}.jsonl'}" for source in SOURCES]
    done = CliRunner().invoke(main, ["replay", "--rules", str(EXAMPLE), *inputs, "--json"])
    assert done.exit_code == 0, done.output
    summary = orjson.loads(done.stdout)
    assert summary["events"] == {
        "accepted": 658,
        "rejected": 0,
        "duplicates": 0,
        "late": 0,
        "rule_errors": 0,
        "internal_errors": 0,
    }
    outcomes = {t: (row["good"], row["bad"], row["state"]) for t, row in summary["touchpoints"].items()}
    assert outcomes == {
        "technician-on-time": (83, 9, "reliable"),
        # Below their objectives on these few outcomes, but not confidently so (docs/SEMANTICS.md, "State").
        "invoice-matches-meter": (116, 4, "reliable"),
        "ticket-first-reply": (69, 11, "reliable"),
        "survey-promoter": (29, 38, "reliable"),
    }
    assert summary["customers"] == {"joined": 120, "left": 7}


SUPPORT = ROOT / "examples" / "support-hours"


def test_the_support_hours_catalog_validates_without_warnings():
    done = CliRunner().invoke(main, ["rules", "validate", "--strict", str(SUPPORT)])
    assert done.exit_code == 0, done.output


def test_the_support_hours_samples_are_what_its_generator_writes(tmp_path):
    subprocess.run([sys.executable, str(SUPPORT / "generate.py"), "--out", str(tmp_path)], check=True, cwd=ROOT)
    for source in ("tickets", "visits"):
        assert (tmp_path / f"{source}.jsonl").read_bytes() == (SUPPORT / "samples" / f"{source}.jsonl").read_bytes()


def test_business_hours_and_pauses_judge_what_the_wall_clock_would_not():
    inputs = [f"{source}={SUPPORT / 'samples' / f'{source}.jsonl'}" for source in ("tickets", "visits")]
    done = CliRunner().invoke(main, ["replay", "--rules", str(SUPPORT), *inputs, "--json"])
    assert done.exit_code == 0, done.output
    summary = orjson.loads(done.stdout)
    assert summary["events"]["accepted"] == 520 and summary["events"]["rule_errors"] == 0
    outcomes = {
        t: (row["good"], row["bad"], row["pending"], row["at_risk"]) for t, row in summary["touchpoints"].items()
    }
    assert outcomes == {
        "technician-on-time": (86, 14, 0, 0),
        "first-response": (85, 3, 1, 0),
        "resolution": (86, 0, 3, 0),
    }
    # The same tickets on the shipped catalog's wall clock (4h, no pauses): the waits count against them.
    shipped = CliRunner().invoke(main, ["replay", str(SUPPORT / "samples" / "tickets.jsonl"), "--json"])
    responded = orjson.loads(shipped.stdout)["touchpoints"]["ticket-responded"]
    assert (responded["good"], responded["bad"]) == (63, 25)
