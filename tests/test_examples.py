"""The "bring your own events" example (examples/utility): its catalog validates, its samples are what
its generator writes, and a replay of them judges every touchpoint."""

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
        "invoice-matches-meter": (116, 4, "broken"),
        "ticket-first-reply": (69, 11, "broken"),
        "survey-promoter": (29, 38, "broken"),
    }
    assert summary["customers"] == {"joined": 120, "left": 7}
