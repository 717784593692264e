"""A customer base over weeks, as a replay of history reads it: the file of issue 33's replay figures.

    python -m bench.month OUT [--customers 30000] [--days 20] [--seed 33]   # writes the file
    python -m bench.month --measure [--rounds 3]                           # replays it (make bench does)

The simulator (``monitor.simulate``) follows each customer through one journey in hours; a replay of
history reads something else: a base of customers over weeks, each with orders, bills, calls and
tickets spread over the whole span, a few events of types the catalog does not declare, and most
deadlines decided long before the end. With the defaults: 30,000 customers over 20 days, about 338k
lines (orders, 1 to 3 per customer; a bill each; calls and tickets for some; a few leavers).

Only the shipped catalog's types of the tree before the contract became data (a46f3ca: no
``survey.answered``) and three undeclared ones are written, in the contract's own flat shape with
RFC 3339 milliseconds, so both trees replay the same file with no rejects. Deterministic for a seed:
each customer draws from its own stream, and lines leave their source up to 2 s out of order, with
a few sent twice.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

import orjson

ROOT = Path(__file__).resolve().parent.parent

START = datetime(2026, 11, 2, tzinfo=UTC)  # a Monday
SECOND = 1_000_000  # microseconds
HOUR = 3600 * SECOND
DAY = 24 * HOUR
PLANS = (19.0, 29.0, 49.0, 79.0, 119.0)
CHANNELS = ("web", "app", "shop", "phone")
QUEUES = ("billing", "technical", "sales", "moving")
CATEGORIES = ("billing", "technical", "delivery", "account")
UNDECLARED = ("app.login", "web.visit", "newsletter.opened")  # types no catalog declares: kept as "other"
DISORDER = 2 * SECOND
DUPLICATES = 0.002


def timestamp(at: int) -> str:
    """RFC 3339 in UTC with milliseconds, as most source systems write it."""
    moment = START + timedelta(microseconds=at - at % 1000)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


class Customer:
    """One customer's events over the span, as (microseconds from START, event)."""

    def __init__(self, number: int, seed: int, span: int) -> None:
        self.rng = random.Random(seed * 1_000_003 + number)
        self.id = f"m-{number:06d}"
        self.number = number
        self.span = span
        self.events: list[tuple[int, dict]] = []

    def emit(self, at: int, event_type: str, **fields: object) -> int:
        if 0 <= at < self.span:  # what happens after the span is not in the file
            event = {
                "event_id": f"{self.id}-{len(self.events) + 1:03d}",
                "type": event_type,
                "customer_id": self.id,
                "occurred_at": timestamp(at),
                **fields,
            }
            self.events.append((at, event))
        return at

    def seconds(self, median: float, sigma: float) -> int:
        return int(lognormal(self.rng, median, sigma) * SECOND)

    def anytime(self) -> int:
        return self.rng.randrange(self.span)

    def story(self) -> None:
        rng = self.rng
        if rng.random() < 0.3:
            self.emit(self.rng.randrange(self.span // 4), "customer.joined")
        for number in range(1, rng.choice((1, 1, 2, 2, 3)) + 1):
            self.order(f"o-{self.number:06d}-{number}", self.anytime())
        self.bill(f"b-{self.number:06d}", self.anytime())
        for number in range(1, 3):
            if rng.random() < 0.35:
                self.call(f"k-{self.number:06d}-{number}", self.anytime())
        if rng.random() < 0.3:
            self.ticket(f"t-{self.number:06d}", self.anytime())
        for _ in range(rng.choice((0, 0, 1, 1, 2))):
            self.emit(self.anytime(), rng.choice(UNDECLARED), session=f"s-{rng.randrange(10**9)}")
        if rng.random() < 0.03:
            left = self.emit(self.anytime(), "customer.left", reason=rng.choice(("price", "service", "moving")))
            if rng.random() < 0.7:
                self.emit(
                    left + self.seconds(8 * 3600, 1.0),
                    "call.outbound",
                    call_id=f"w-{self.number:06d}",
                    purpose="winback",
                )

    def order(self, order: str, at: int) -> None:
        rng = self.rng
        plan = rng.choice(PLANS)
        with_device = rng.random() < 0.4
        amount = plan + (rng.choice((99.0, 199.0, 349.0)) if with_device else 0.0)
        self.emit(at, "order.placed", order_id=order, amount=amount, channel=rng.choice(CHANNELS))
        if rng.random() < 0.03:
            self.emit(at + self.seconds(1800, 0.8), "order.cancelled", order_id=order, by="customer")
            return
        at = self.emit(at + self.seconds(40, 0.6), "order.confirmed", order_id=order)
        if with_device:
            promised = at + DAY
            delivered = promised + (1 if rng.random() < 0.1 else -1) * int(rng.uniform(60, 7200) * SECOND)
            self.emit(delivered, "order.delivered", order_id=order, promised_at=timestamp(promised))
        self.emit(at + self.seconds(8 * 3600, 1.0), "service.activated", order_id=order)

    def bill(self, bill: str, at: int) -> None:
        rng = self.rng
        plan = rng.choice(PLANS)
        wrong = rng.random() < 0.02
        amount = round(plan * rng.uniform(1.1, 1.6), 2) if wrong else plan
        self.emit(at, "bill.issued", bill_id=bill, amount=amount, expected_amount=plan)
        paid = at + self.seconds(2 * 86400, 1.0)
        if rng.random() < 0.04:
            self.emit(paid, "payment.failed", bill_id=bill)
            paid += self.seconds(86400, 0.5)
        self.emit(paid, "payment.succeeded", bill_id=bill)
        if wrong and rng.random() < 0.6:
            disputed = self.emit(at + self.seconds(86400, 0.8), "bill.disputed", bill_id=bill)
            self.emit(disputed + self.seconds(2 * 86400, 0.8), "dispute.resolved", bill_id=bill)

    def call(self, call: str, at: int) -> None:
        rng = self.rng
        queue = rng.choice(QUEUES)
        wait = round(lognormal(rng, 25, 0.7), 1)
        if rng.random() < 0.08:
            self.emit(at, "call.abandoned", call_id=call, queue=queue, wait_seconds=wait)
            return
        answered = self.emit(at, "call.answered", call_id=call, queue=queue, wait_seconds=wait)
        self.emit(answered + self.seconds(360, 0.6), "call.ended", call_id=call, resolved=rng.random() < 0.8)

    def ticket(self, ticket: str, at: int) -> None:
        rng = self.rng
        self.emit(at, "ticket.opened", ticket_id=ticket, category=rng.choice(CATEGORIES))
        self.emit(at + self.seconds(3600, 1.0), "ticket.responded", ticket_id=ticket)
        resolved = self.emit(at + self.seconds(8 * 3600, 0.8), "ticket.resolved", ticket_id=ticket)
        if rng.random() < 0.08:
            reopened = self.emit(resolved + self.seconds(2 * 86400, 1.0), "ticket.reopened", ticket_id=ticket)
            self.emit(reopened + self.seconds(6 * 3600, 0.8), "ticket.resolved", ticket_id=ticket)


def lines(customers: int = 30_000, days: int = 20, seed: int = 33) -> list[bytes]:
    """The file's lines, in the order their sources send them."""
    span = days * DAY
    sent: list[tuple[int, int, bytes]] = []
    for number in range(1, customers + 1):
        customer = Customer(number, seed, span)
        customer.story()
        noise = customer.rng
        for at, event in customer.events:
            line = orjson.dumps(event)
            sent.append((at + noise.randrange(DISORDER), len(sent), line))
            if noise.random() < DUPLICATES:
                sent.append((at + noise.randrange(5 * SECOND), len(sent), line))
    sent.sort()
    return [line for _, _, line in sent]


def write(path: Path, customers: int = 30_000, days: int = 20, seed: int = 33) -> int:
    """Write the file (JSONL); return its lines."""
    found = lines(customers, days, seed)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as stream:
        for line in found:
            stream.write(line + b"\n")
    return len(found)


def measure(path: Path, rounds: int, catalog, customers: int = 30_000, days: int = 20) -> dict:  # type: ignore[no-untyped-def]
    """The replay core against the bare parse + dict loop over the file at ``path`` (written first if
    missing), alternating round by round, and `tpmon replay --json` once (bench.replay_throughput)."""
    from bench import replay_throughput

    if not path.exists():
        write(path, customers, days)
    return {"customers": customers, "days": days, **replay_throughput.rates(path, rounds, catalog)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, nargs="?", help="write the file here")
    parser.add_argument("--customers", type=int, default=30_000)
    parser.add_argument("--days", type=int, default=20)
    parser.add_argument("--seed", type=int, default=33)
    parser.add_argument("--measure", action="store_true", help="replay the file (bench/results/, written if missing)")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if args.measure:
        from monitor.catalog import load_catalog

        path = ROOT / "bench" / "results" / f"month-{args.customers}-{args.days}d.jsonl"
        result = measure(path, args.rounds, load_catalog(ROOT / "rules"), args.customers, args.days)
        print(json.dumps(result, indent=2))
        return
    if args.out is None:
        parser.error("say where to write the file, or --measure")
    written = write(args.out, args.customers, args.days, args.seed)
    print(f"{written:,} lines from {args.customers:,} customers over {args.days} days (seed {args.seed}) -> {args.out}")


if __name__ == "__main__":
    main()
