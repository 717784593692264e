"""`tpmon replay`: the summary JSON of docs/SEMANTICS.md, the table, rejects and journeys, on files of every kind."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
from click.testing import CliRunner

from monitor.durations import parse_duration
from monitor.simulate import Simulation
from tests.builders import event
from tpmon.cli import main

from .conftest import ROOT


def replay(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, ["replay", *args])
    return result.exit_code, result.stdout, result.stderr


def line(e) -> bytes:  # type: ignore[no-untyped-def]
    return e.raw


@pytest.fixture(scope="session")
def simulated(tmp_path_factory):
    """A simulated incident day of more than 100k events, with duplicates and some bad lines."""
    path = tmp_path_factory.mktemp("sim") / "events.jsonl"
    run = Simulation(customers=26_000, duration=parse_duration("80m"), seed=5, scenario="incident-day", bad_lines=0.001)
    with path.open("wb") as stream:
        for raw in run.lines():
            stream.write(raw + b"\n")
    return path


def test_the_json_summary_has_the_spec_shape(simulated, catalog):
    code, out, _ = replay(str(simulated), "--json")
    assert code == 0
    assert out.count("\n") == 1
    summary = orjson.loads(out)
    assert set(summary) == {"events", "touchpoints", "customers", "journeys", "vital_few"}
    assert {"accepted", "rejected", "duplicates"} <= set(summary["events"])
    assert list(summary["touchpoints"]) == list(catalog.ids)
    for row in summary["touchpoints"].values():
        assert set(row) == {"good", "bad", "pending", "reliability", "state", "rule_errors", "impact"}
        assert row["state"] in {"warming up", "unknown", "broken", "reliable", "differentiating"}
        decided = row["good"] + row["bad"]
        assert row["reliability"] == (row["good"] / decided if decided else None)
    assert set(summary["customers"]) == {"joined", "left"}
    assert set(summary["journeys"]) == {"total", "broken"}


def test_a_simulated_file_of_100k_events(simulated):
    code, out, _ = replay(str(simulated), "--json")
    assert code == 0
    summary = orjson.loads(out)
    events = summary["events"]
    lines = simulated.read_bytes().count(b"\n")
    assert lines >= 100_000
    assert events["accepted"] + events["rejected"] + events["duplicates"] == lines
    assert events["rejected"] > 0 and events["duplicates"] > 0
    # The incident day breaks bill-correct (billing outage); order confirmation stays healthy.
    assert summary["touchpoints"]["bill-correct"]["state"] == "broken"
    assert summary["touchpoints"]["order-confirmed"]["state"] in {"reliable", "differentiating"}
    assert summary["journeys"]["total"] > 10_000
    assert 0 < summary["journeys"]["broken"] < summary["journeys"]["total"]


def test_rejects_and_journeys_are_written(simulated, tmp_path):
    rejects, journeys = tmp_path / "rejects.jsonl", tmp_path / "journeys.jsonl"
    code, out, _ = replay(str(simulated), "--json", "--rejects", str(rejects), "--journeys", str(journeys))
    assert code == 0
    summary = orjson.loads(out)
    kept = [orjson.loads(r) for r in rejects.read_bytes().splitlines()]
    assert len(kept) == summary["events"]["rejected"]
    assert all({"reason", "detail", "line"} <= set(r) and ("raw" in r or "raw_base64" in r) for r in kept)
    records = [orjson.loads(r) for r in journeys.read_bytes().splitlines()]
    assert len(records) == summary["journeys"]["total"]
    assert sum(r["broken"] for r in records) == summary["journeys"]["broken"]


def test_bad_lines_never_stop_a_replay(tmp_path):
    good = event("bill.issued", 0, bill_id="b", amount=1.0, expected_amount=1.0)
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(
        b"\n".join([b"{not json", b"\xff\xfe", b"[]", b"", b"   ", line(good), b'{"event_id": 1}', line(good)]) + b"\n"
    )
    code, out, _ = replay(str(path), "--json", "--rejects", str(tmp_path / "r.jsonl"))
    summary = orjson.loads(out)
    assert code == 3  # most lines rejected: said, once the summary and the rejects are written
    assert summary["events"] == {**summary["events"], "accepted": 1, "rejected": 4, "duplicates": 1}
    reasons = [orjson.loads(r)["reason"] for r in (tmp_path / "r.jsonl").read_bytes().splitlines()]
    assert reasons == ["malformed_json", "not_utf8", "not_object", "wrong_type"]


@pytest.mark.parametrize(
    ("bad", "good", "code"),
    [(3, 2, 3), (2, 2, 0), (0, 1, 0)],
    ids=["more than half rejected exits 3", "half rejected is not most", "none rejected"],
)
def test_a_replay_that_rejects_most_lines_exits_3_once_its_outputs_are_written(tmp_path, bad, good, code):
    lines = [line(event("customer.joined", n, customer=f"c{n}")) for n in range(good)]
    lines += [b'{"event_id": "x", "type": "customer.joined"}'] * (bad - 1) + [b"{cut"] * min(bad, 1)
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    rejects = tmp_path / "r.jsonl"
    exit_code, out, err = replay(str(path), "--rejects", str(rejects), "--json")
    assert exit_code == code and orjson.loads(out)["events"]["rejected"] == bad
    assert len(rejects.read_bytes().splitlines()) == bad
    if code:
        assert f"{bad} of the {bad + good} lines read were rejected (missing_field 2, malformed_json 1)" in err
        assert "tpmon rules validate --sample" in err


def test_an_empty_file_gives_an_empty_summary(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_bytes(b"")
    code, out, _ = replay(str(path), "--json")
    summary = orjson.loads(out)
    assert code == 0 and summary["events"]["accepted"] == 0
    assert all(row["state"] == "unknown" and row["reliability"] is None for row in summary["touchpoints"].values())


def test_lateness_from_the_command_line(tmp_path):
    placed = event("order.placed", 0, order_id="o1")
    confirmed_late = event("order.confirmed", 60, order_id="o1")
    mover = event("customer.joined", 300)
    path = tmp_path / "late.jsonl"
    # The confirmation arrives after an event 5 minutes later: late with 30s, in time with 10m.
    path.write_bytes(b"\n".join([line(placed), line(mover), line(confirmed_late)]))
    _, out, _ = replay(str(path), "--json")
    assert orjson.loads(out)["touchpoints"]["order-confirmed"]["bad"] == 1
    _, out, _ = replay(str(path), "--json", "--lateness", "10m")
    assert orjson.loads(out)["touchpoints"]["order-confirmed"]["good"] == 1


def test_the_default_output_is_a_table(simulated):
    code, out, _ = replay(str(simulated))
    assert code == 0
    assert "bill-correct" in out and "broken" in out and "events:" in out


def test_clear_errors(tmp_path):
    code, _, err = replay(str(tmp_path / "missing.jsonl"))
    assert code == 2 and "no such file" in err
    code, _, err = replay(
        str(tmp_path / "missing.jsonl"), "--rules", str(ROOT / "tests" / "catalogs" / "several-errors")
    )
    assert code == 1 and "objective" in err
    code, _, err = replay(str(tmp_path / "x.jsonl"), "--lateness", "soon")
    assert code == 2 and "duration" in err


@pytest.mark.parametrize("args", [["--json"], []], ids=["json", "table"])
def test_the_console_script_ends_without_freeing_the_state_and_loses_no_output(simulated, tmp_path, args):
    """The console script leaves the replay's state to the end of the process: its output (piped, so
    buffered) and its files are whole, and its exit code is the command's."""
    journeys = tmp_path / "journeys.jsonl"
    done = subprocess.run(
        [sys.executable, "-m", "tpmon.cli", "replay", str(simulated), "--journeys", str(journeys), *args],
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    _, expected, _ = replay(str(simulated), *args)
    assert done.stdout.decode() == expected
    assert journeys.read_bytes().count(b"\n") == orjson.loads(replay(str(simulated), "--json")[1])["journeys"]["total"]
    missing = subprocess.run(
        [sys.executable, "-m", "tpmon.cli", "replay", str(tmp_path / "none.jsonl")], capture_output=True, check=False
    )
    assert missing.returncode == 2 and b"no such file" in missing.stderr


HOSTILE_LINES = [
    (
        b'{"event_id":"h1","type":"order.placed","customer_id":"c","occurred_at":"9999-12-31T23:59:59-01:00","order_id":"o","amount":1,"channel":"web"}',
        "bad_timestamp",
    ),
    (
        b'{"event_id":"h2","type":"order.placed","customer_id":"c","occurred_at":"0001-01-01T00:00:00+01:00","order_id":"o","amount":1,"channel":"web"}',
        "bad_timestamp",
    ),
    (b"[" * 20_000 + b"]" * 20_000, "malformed_json"),
    (
        b'{"event_id":"h3","type":"x.y","customer_id":"c","occurred_at":"2026-11-22T10:00:00Z","n":'
        + b"9" * 400
        + b"}",
        "malformed_json",
    ),
    (
        b'{"event_id":"h4","type":"x.y","customer_id":"c","occurred_at":"2026-11-22T10:00:00Z","note":"\xff"}',
        "not_utf8",
    ),
]


def test_no_line_ends_a_replay_with_a_traceback(tmp_path):
    """The lines the issue found, with journeys written (which format every instant)."""
    edge = event("order.placed", 0, "c-last", event_id="edge", occurred_at="9999-12-31T23:59:59Z", order_id="o9")
    first = event("order.placed", 0, "c-first", event_id="first", occurred_at="0001-01-01T00:00:00Z", order_id="o1")
    path = tmp_path / "hostile.jsonl"
    path.write_bytes(b"\n".join([line(first), *(raw for raw, _ in HOSTILE_LINES), line(edge)]) + b"\n")
    rejects, journeys = tmp_path / "r.jsonl", tmp_path / "j.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "tpmon.cli",
            "replay",
            str(path),
            "--json",
            "--journeys",
            str(journeys),
            "--rejects",
            str(rejects),
        ],
        capture_output=True,
        cwd=ROOT,
        check=False,
    )
    assert done.returncode == 3 and b"Traceback" not in done.stderr, done.stderr.decode()[-2000:]  # mostly rejected
    summary = orjson.loads(done.stdout)
    assert summary["events"]["accepted"] == 2 and summary["events"]["internal_errors"] == 0
    kept = [orjson.loads(r) for r in rejects.read_bytes().splitlines()]
    assert [r["reason"] for r in kept] == [reason for _, reason in HOSTILE_LINES]
    assert [r.get("raw", "").encode() for r in kept[:4]] == [raw for raw, _ in HOSTILE_LINES[:4]]
    earliest, latest = [orjson.loads(r) for r in journeys.read_bytes().splitlines()]
    assert earliest["first_at"] == "0001-01-01T00:00:00Z" and latest["last_at"] == "9999-12-31T23:59:59Z"
    assert earliest["outcomes"][0]["at"] == "0001-01-01T00:02:00Z"  # missed by year 1's second minute


def test_replay_now_rejects_events_from_the_future(tmp_path):
    path = tmp_path / "clock.jsonl"
    soon, far = event("customer.joined", 3000, event_id="soon"), event("customer.joined", 3601, event_id="far")
    path.write_bytes(line(soon) + b"\n" + line(far) + b"\n")
    now = "2026-11-22T10:00:00Z"
    _, out, _ = replay(str(path), "--json", "--now", now, "--rejects", str(tmp_path / "r.jsonl"))
    assert orjson.loads(out)["events"] == {**orjson.loads(out)["events"], "accepted": 1, "rejected": 1}
    assert orjson.loads((tmp_path / "r.jsonl").read_bytes())["reason"] == "future_timestamp"
    _, out, _ = replay(str(path), "--json", "--now", now, "--max-future", "2h")
    assert orjson.loads(out)["events"]["accepted"] == 2
    _, out, _ = replay(str(path), "--json")  # no clock: nothing is from the future
    assert orjson.loads(out)["events"]["accepted"] == 2
    code, _, err = replay(str(path), "--now", "tomorrow")
    assert code == 2 and "--now" in err and "RFC 3339" in err
    code, _, err = replay(str(path), "--max-future", "2h")
    assert code == 2 and "--now" in err


def test_a_line_whose_processing_raises_is_kept_as_internal_error_and_the_replay_goes_on(tmp_path, monkeypatch):
    from monitor.engine import Engine
    from monitor.journeys import Journeys

    step, add_event = Engine.step, Journeys.add_event

    def poisoned_step(self, e):  # type: ignore[no-untyped-def]
        if e.id.startswith("poison-step"):
            raise RuntimeError("a test-only rule error")
        return step(self, e)

    def poisoned_journey(self, e):  # type: ignore[no-untyped-def]
        if e.id.startswith("poison-journey"):
            raise RuntimeError("a test-only journey error")
        return add_event(self, e)

    monkeypatch.setattr(Engine, "step", poisoned_step)
    monkeypatch.setattr(Journeys, "add_event", poisoned_journey)
    lines = [
        event("customer.joined", 0, event_id="ok-1"),
        event("customer.joined", 1, event_id="poison-step-1"),
        event("customer.joined", 2, event_id="poison-step-2"),
        event("customer.joined", 3, event_id="poison-journey-1"),
        event("customer.joined", 4, event_id="ok-2"),
    ]
    path, rejects = tmp_path / "poison.jsonl", tmp_path / "r.jsonl"
    path.write_bytes(b"\n".join(line(e) for e in lines) + b"\n")
    code, out, err = replay(str(path), "--json", "--rejects", str(rejects), "--journeys", str(tmp_path / "j.jsonl"))
    assert code == 0
    events = orjson.loads(out)["events"]
    # The step's failures were not judged (rejected); the journey's was (accepted, and kept as well).
    assert (events["accepted"], events["rejected"], events["internal_errors"]) == (3, 2, 3)
    kept = [orjson.loads(r) for r in rejects.read_bytes().splitlines()]
    assert [(r["line"], r["reason"], r["stage"]) for r in kept] == [
        (2, "internal_error", "judge"),
        (3, "internal_error", "judge"),
        (4, "internal_error", "journey"),
    ]
    assert kept[0]["raw"].encode() == line(lines[1])
    assert err.count("Traceback") == 2  # once per kind of failure, the second of a kind in one line
    assert "line 2: internal error" in err and "line 3:" not in err  # the second of a kind, so soon, is counted only


def test_replay_runs_from_any_folder_with_the_shipped_catalog(tmp_path):
    """Outside the repository there is no ./rules: the catalog installed with tpmon is used (an
    editable install once made that a traceback)."""
    path = tmp_path / "one.jsonl"
    path.write_bytes(line(event("customer.joined", 0)) + b"\n")
    env = {k: v for k, v in os.environ.items() if k != "TPMON_RULES"}
    done = subprocess.run(
        [sys.executable, "-m", "tpmon.cli", "replay", str(path), "--json"],
        capture_output=True,
        cwd=tmp_path,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr.decode()[-2000:]
    assert orjson.loads(done.stdout)["customers"]["joined"] == 1


def test_a_late_fortnight_at_the_end_of_a_file_is_judged_as_the_history_it_is(catalog):
    """A day judged, then a fortnight of other customers' history appended to the same file: its late
    starts wait for the ends that come with them, so the file replays to what the same events sorted
    replay to (docs/SEMANTICS.md, "Late history")."""
    from monitor.replay import Replay

    day = list(Simulation(customers=200, duration=parse_duration("1d"), seed=3).lines())
    history = list(
        Simulation(
            customers=200, duration=parse_duration("14d"), seed=4, prefix="h", start="2026-11-01T00:00:00Z"
        ).lines()
    )

    def summary(lines: list[bytes]) -> dict:
        replay = Replay(catalog)
        replay.feed(lines)
        return replay.finish()

    unordered = summary(day + history)
    ordered = summary(sorted(day + history, key=lambda line: orjson.loads(line)["occurred_at"]))
    assert unordered["touchpoints"] == ordered["touchpoints"]
    assert unordered["events"]["late"] > len(history) * 0.9
