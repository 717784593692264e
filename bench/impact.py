"""What impact costs a customer's state: the bytes attribution holds per customer, and how many
customers it holds (docs/SEMANTICS.md, "Impact").

A simulated day (N customers, the shipped catalog) is judged by a tracking engine, as a worker's
partition is; then its watermark moves on by the duplicate-id retention (a day) and the engine forgets,
as a worker's sweep does. Without impact every customer with nothing open would be freed; with it, a
customer whose outcomes are within the attribution window (30 days) is held. Reported, measured with
tracemalloc in a fresh interpreter:

- the customers held after the sweep, of the N;
- the bytes per held customer of its whole state (CustomerState and everything it refers to), and of
  the part impact adds (its marks, active days and tallies).

    python -m bench.impact [--customers 20000]   (bench.run runs it with the others)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tracemalloc
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DAY = 86_400_000_000


def _measure(customers: int) -> dict:
    from monitor.catalog import load_catalog
    from monitor.durations import parse_duration
    from monitor.engine import Engine
    from monitor.simulate import Simulation

    catalog = load_catalog(ROOT / "rules")
    decode = catalog.decoder.decode
    events = [decode(line, "bench") for line in Simulation(customers=customers, duration=parse_duration("1d")).lines()]
    engine = Engine(catalog, track=True)
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    for event in events:
        if not isinstance(event, bytes) and hasattr(event, "customer"):
            engine.step(event)
    engine.finish()
    engine.dirty.clear()
    engine.advance(engine.state.watermark + DAY)  # a day on: the ids' retention has passed
    engine.forget(engine.state.watermark - DAY)
    engine.compact()
    held = engine.state.customers
    whole = tracemalloc.get_traced_memory()[0] - before
    tracemalloc.stop()
    impact = sum(
        sys.getsizeof(mine.recent or ()) * (mine.recent is not None)
        + sys.getsizeof(mine.days or ()) * (mine.days is not None)
        + sys.getsizeof(mine.impact or {}) * (mine.impact is not None)
        for mine in held.values()
    )
    return {
        "customers": customers,
        "held": len(held),
        "bytes_per_held_customer": whole / max(1, len(held)),
        "impact_bytes_per_held_customer": impact / max(1, len(held)),
        "marks_per_held_customer": sum(len(mine.recent or ()) for mine in held.values()) / max(1, len(held)),
    }


def measure(customers: int) -> dict:
    """The figures, measured in a fresh interpreter."""
    done = subprocess.run(
        [sys.executable, "-m", "bench.impact", "--json", "--customers", str(customers)],
        capture_output=True,
        check=True,
        cwd=ROOT,
    )
    return json.loads(done.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--json", action="store_true", help="print the figures as JSON (and nothing else)")
    args = parser.parse_args()
    found = _measure(args.customers)
    if args.json:
        print(json.dumps(found))
        return
    print(
        f"{found['held']:,} of {found['customers']:,} customers held a day on (attribution); "
        f"{found['bytes_per_held_customer']:,.0f} B per held customer, of which impact "
        f"{found['impact_bytes_per_held_customer']:,.0f} B ({found['marks_per_held_customer']:.1f} marks)"
    )


if __name__ == "__main__":
    main()
