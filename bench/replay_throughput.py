"""Replay throughput against the bare ceiling: a JSON parse and a dict update per line, same file, same run.

    python -m bench.replay_throughput [--customers 145000] [--rounds 3] [--file events.jsonl]

The file is a simulated day and a half of the waiting-on-customer scenario (tickets wait on the
customer); it is replayed with the shipped catalog and with the same catalog whose two ticket deadlines
run on an SLA clock (business hours, pauses, at_risk).

Prints a markdown table and writes bench/results/replay.json. The two loops alternate, round by round,
so that a noisy machine slows both alike; the ratio is what to read.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson

from monitor.catalog import load_catalog
from monitor.durations import parse_duration
from monitor.replay import Replay
from monitor.simulate import Simulation
from tpmon.runtime import batch_collection

ROOT = Path(__file__).resolve().parent.parent


def bare(path: Path) -> int:
    """The ceiling: parse each line and count events per customer."""
    counts: dict[str, int] = {}
    lines = 0
    with path.open("rb") as stream:
        for line in stream:
            event = orjson.loads(line)
            customer = event["customer_id"]
            counts[customer] = counts.get(customer, 0) + 1
            lines += 1
    return lines


def replay(path: Path, catalog) -> int:  # type: ignore[no-untyped-def]
    """What `tpmon replay` does, start-up aside."""
    run = Replay(catalog)
    with path.open("rb") as stream, batch_collection():
        run.feed(stream)
    summary = run.finish()
    return summary["events"]["accepted"] + summary["events"]["duplicates"] + summary["events"]["rejected"]


def timed(function, *args) -> tuple[float, int]:  # type: ignore[no-untyped-def]
    gc.collect()
    start = time.perf_counter()
    count = function(*args)
    return time.perf_counter() - start, count


_CLOCK = """    calendar: support-hours
    pause: ticket.waiting
    resume: {types: [ticket.updated], where: 'by == "customer"'}
    at_risk: 1h
"""
_CLOCKS = """version: 1
events:
  - {type: ticket.waiting, source: tickets, fields: {ticket_id: string}}
  - {type: ticket.updated, source: tickets, fields: {ticket_id: string, by: [customer, agent]}}
calendars:
  support-hours:
    timezone: Europe/Berlin
    hours: {mon-fri: "08:00-12:00, 13:00-18:00", sat: "09:00-12:00"}
    holidays: [2026-12-24, 2026-12-25, 2026-12-26]
"""


def clocked_catalog(rules: Path, folder: Path):  # type: ignore[no-untyped-def]
    """The shipped catalog with its two ticket deadlines on an SLA clock (business hours in Berlin,
    paused while the ticket waits on the customer, at risk with an hour left)."""
    folder.mkdir(parents=True, exist_ok=True)
    for file in rules.glob("*.yaml"):
        text = file.read_text()
        if file.name == "help.yaml":
            for touchpoint in ("ticket-responded", "ticket-resolved"):
                start = text.index(f"  - id: {touchpoint}\n")
                at = text.index("    objective:", start)
                text = text[:at] + _CLOCK + text[at:]
        (folder / file.name).write_text(text)
    (folder / "clocks.yaml").write_text(_CLOCKS)
    return load_catalog(folder)


def measure(path: Path, customers: int, rounds: int, catalog, clocked=None) -> dict:  # type: ignore[no-untyped-def]
    """Both loops over ``path`` (simulated first if missing: the waiting-on-customer scenario, so that
    tickets pause), alternating round by round; with ``clocked`` (a catalog on SLA clocks), the replay
    with it too, in the same rounds."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        simulation = Simulation(
            customers=customers, duration=parse_duration("36h"), seed=11, scenario="waiting-on-customer"
        )
        with path.open("wb") as stream:
            for line in simulation.lines():
                stream.write(line + b"\n")
    return rates(path, rounds, catalog, clocked)


def rates(path: Path, rounds: int, catalog, clocked=None) -> dict:  # type: ignore[no-untyped-def]
    """Both loops over the file at ``path``, alternating round by round (and the replay on ``clocked``,
    a catalog on SLA clocks, in the same rounds), then `tpmon replay --json` once, start-up included."""
    bare_rates, replay_rates, clocked_rates = [], [], []
    lines = 0
    for _ in range(rounds):
        seconds, lines = timed(bare, path)
        bare_rates.append(lines / seconds)
        seconds, replayed = timed(replay, path, catalog)
        assert replayed == lines, (replayed, lines)
        replay_rates.append(lines / seconds)
        if clocked is not None:
            seconds, replayed = timed(replay, path, clocked)
            assert replayed == lines, (replayed, lines)
            clocked_rates.append(lines / seconds)

    # The command a user runs, start-up included, once.
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "tpmon.cli", "replay", str(path), "--json"], check=True, capture_output=True, cwd=ROOT
    )
    cli_rate = lines / (time.perf_counter() - start)
    bare_rate, replay_rate = statistics.median(bare_rates), statistics.median(replay_rates)
    result = {
        "events": lines,
        "rounds": rounds,
        "bare_events_per_s": round(bare_rate),
        "replay_events_per_s": round(replay_rate),
        "ratio": round(replay_rate / bare_rate, 3),
        "ratios_by_round": [round(r / b, 3) for r, b in zip(replay_rates, bare_rates, strict=True)],
        "cli_events_per_s_with_startup": round(cli_rate),
    }
    if clocked_rates:
        clocked_rate = statistics.median(clocked_rates)
        result.update(
            clocked_events_per_s=round(clocked_rate),
            clocked_ratio=round(clocked_rate / bare_rate, 3),
            clocked_ratios_by_round=[round(c / b, 3) for c, b in zip(clocked_rates, bare_rates, strict=True)],
            clocked_over_default=[round(c / r, 3) for c, r in zip(clocked_rates, replay_rates, strict=True)],
        )
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--customers", type=int, default=145_000, help="simulated customers (about 7 events each)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--file", type=Path, help="use this JSONL file instead of simulating one")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "replay.json")
    args = parser.parse_args()
    path = args.file or ROOT / "bench" / "results" / f"waiting-{args.customers}.jsonl"
    with tempfile.TemporaryDirectory() as folder:
        clocked = clocked_catalog(ROOT / "rules", Path(folder))
        result = measure(path, args.customers, args.rounds, load_catalog(ROOT / "rules"), clocked)
    result.update(python=platform.python_version(), machine=f"{platform.machine()}, {platform.processor() or 'cpu'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    lines = result["events"]
    print(f"| measure ({lines:,} events, median of {args.rounds}) | events/s |")
    print("|---|---|")
    print(f"| bare parse + dict update | {result['bare_events_per_s']:,} |")
    print(f"| replay core (decode, dedup, engine, tally) | {result['replay_events_per_s']:,} |")
    print(f"| `tpmon replay --json`, start-up included | {result['cli_events_per_s_with_startup']:,} |")
    print(f"| **ratio replay / bare** | **{result['ratio']}** (by round: {result['ratios_by_round']}) |")
    print(
        f"| replay on SLA clocks (two ticket deadlines: calendar, pauses, at_risk) | {result['clocked_events_per_s']:,} |"
    )
    print(
        f"| **ratio clocked replay / bare** | **{result['clocked_ratio']}** (clocked / default by round: "
        f"{result['clocked_over_default']}) |"
    )


if __name__ == "__main__":
    main()
