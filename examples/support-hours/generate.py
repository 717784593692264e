"""Write the support-hours samples: tickets from tpmon's simulator, technician visits of our own.

    python examples/support-hours/generate.py [--customers 400] [--seed 5] [--start 2026-03-26T06:00:00Z] [--out DIR]

Deterministic for a seed; the committed samples are its output with the defaults. Six days across
the night the clocks go forward in Europe/Berlin (29 March 2026): the simulator's tickets, 40% of them
waiting hours on the customer (its waiting-on-customer scenario), and technician visits booked for
slots on those days, some of them in the small hours of the change, most technicians on time.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

from monitor.durations import parse_duration
from monitor.simulate import Simulation

HERE = Path(__file__).resolve().parent
TICKET_TYPES = ("ticket.opened", "ticket.responded", "ticket.resolved", "ticket.waiting", "ticket.updated")


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def tickets(customers: int, seed: int, start: str) -> list[bytes]:
    simulation = Simulation(
        customers=customers,
        duration=parse_duration("6d"),
        seed=seed,
        scenario="waiting-on-customer",
        start=start,
    )
    return [line for line in simulation.lines() if json.loads(line)["type"] in TICKET_TYPES]


def visits(customers: int, seed: int, start: datetime) -> list[bytes]:
    rng = random.Random(seed)
    found: list[tuple[datetime, dict]] = []
    for number in range(1, customers // 4 + 1):
        customer = f"v-{number:04d}"
        booked = start + timedelta(minutes=rng.uniform(0, 4 * 24 * 60))
        slot = booked + timedelta(hours=rng.choice([2, 6, 20, 30]))
        visit = f"visit-{number:04d}"
        found.append(
            (booked, {"event_id": f"{visit}-b", "type": "visit.booked", "customer_id": customer,
                      "occurred_at": rfc3339(booked), "visit_id": visit, "slot_start": rfc3339(slot)})
        )  # fmt: skip
        if rng.random() < 0.9:  # most come; a few are late, some early
            late = rng.random() < 0.08
            arrival = slot + timedelta(minutes=rng.uniform(125, 240) if late else rng.uniform(-30, 115))
            found.append(
                (arrival, {"event_id": f"{visit}-a", "type": "technician.arrived", "customer_id": customer,
                           "occurred_at": rfc3339(arrival), "visit_id": visit})
            )  # fmt: skip
    found.sort(key=lambda item: (item[0], item[1]["event_id"]))
    return [json.dumps(event, separators=(",", ":")).encode() for _, event in found]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=400)
    parser.add_argument("--seed", type=int, default=5)
    parser.add_argument("--start", default="2026-03-26T06:00:00Z")
    parser.add_argument("--out", type=Path, default=HERE / "samples", help="the folder to write (samples/)")
    args = parser.parse_args()
    samples = args.out
    samples.mkdir(exist_ok=True)
    start = datetime.fromisoformat(args.start)
    for name, lines in (
        ("tickets", tickets(args.customers, args.seed, args.start)),
        ("visits", visits(args.customers, args.seed, start)),
    ):
        (samples / f"{name}.jsonl").write_bytes(b"".join(line + b"\n" for line in lines))
        print(f"{len(lines)} events -> {samples / name}.jsonl")


if __name__ == "__main__":
    main()
