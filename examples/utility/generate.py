"""Write the utility's sample inputs, one file per source, each in that system's own shape.

    python examples/utility/generate.py [--accounts 120] [--seed 4] [--start 2026-11-23T07:00:00Z]

Deterministic for a seed; the committed samples are its output with the defaults. Two days of a
small utility: accounts open (and a few close), technicians are booked and most arrive on time,
helpdesk tickets get replies (slower on the second afternoon, when the queue is short of staff),
invoices mostly match the meter, and customers answer NPS surveys.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import UTC, datetime, timedelta
from pathlib import Path

HERE = Path(__file__).resolve().parent


def rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def generate(accounts: int, seed: int, start: datetime) -> dict[str, list[tuple[datetime, dict]]]:
    rng = random.Random(seed)
    out: dict[str, list[tuple[datetime, dict]]] = {"field-visits": [], "helpdesk": [], "invoices": [], "surveys": []}
    for number in range(1, accounts + 1):
        account = f"acct-{number:04d}"
        at = start + timedelta(minutes=rng.uniform(0, 36 * 60))
        out["invoices"].append(
            (
                at,
                {
                    "event_id": f"{account}-open",
                    "type": "account.opened",
                    "customer_id": account,
                    "occurred_at": rfc3339(at),
                },
            )
        )
        if rng.random() < 0.8:  # a technician visit
            booked = at + timedelta(minutes=rng.uniform(5, 60))
            appointment = f"apt-{number:04d}"
            out["field-visits"].append(
                (
                    booked,
                    {
                        "uuid": f"fv-{number:04d}-b",
                        "kind": "appointment.booked",
                        "account": {"id": account},
                        "ts": epoch_ms(booked),
                        "appointment": {"id": appointment, "slot_start": epoch_ms(booked + timedelta(hours=1))},
                        "work": rng.choice(["meter-install", "leak-repair", "inspection"]),
                        "crew": f"crew-{rng.randint(1, 6)}",
                    },
                )
            )
            late = rng.random() < 0.12
            arrived = booked + timedelta(minutes=rng.uniform(130, 240) if late else rng.uniform(20, 110))
            out["field-visits"].append(
                (
                    arrived,
                    {
                        "uuid": f"fv-{number:04d}-a",
                        "kind": "technician.arrived",
                        "account": {"id": account},
                        "ts": epoch_ms(arrived),
                        "appointment": {"id": appointment},
                    },
                )
            )
        if rng.random() < 0.7:  # a helpdesk ticket
            opened = at + timedelta(minutes=rng.uniform(10, 600))
            ticket = f"T-{number:05d}"
            out["helpdesk"].append(
                (
                    opened,
                    {
                        "specversion": "1.0",
                        "id": f"hd-{number:05d}-c",
                        "type": "ticket.created",
                        "source": "/helpdesk/eu",
                        "subject": account,
                        "time": rfc3339(opened),
                        "datacontenttype": "application/json",
                        "data": {"ticket_id": ticket, "channel": rng.choice(["email", "phone", "web"])},
                    },
                )
            )
            short_staffed = opened - start > timedelta(hours=28)
            hours = rng.uniform(2, 9) if short_staffed and rng.random() < 0.5 else rng.uniform(0.1, 3.5)
            replied = opened + timedelta(hours=hours)
            out["helpdesk"].append(
                (
                    replied,
                    {
                        "specversion": "1.0",
                        "id": f"hd-{number:05d}-r",
                        "type": "ticket.first_reply",
                        "source": "/helpdesk/eu",
                        "subject": account,
                        "time": rfc3339(replied),
                        "data": {"ticket_id": ticket},
                    },
                )
            )
        sent = at + timedelta(hours=rng.uniform(1, 10))
        metered = round(rng.uniform(20, 140), 2)
        amount = metered if rng.random() > 0.03 else round(metered * 1.4, 2)
        out["invoices"].append(
            (
                sent,
                {
                    "event_id": f"inv-{number:04d}",
                    "type": "invoice.sent",
                    "customer_id": account,
                    "occurred_at": rfc3339(sent),
                    "invoice_id": f"INV-{number:05d}",
                    "amount": amount,
                    "metered_amount": metered,
                },
            )
        )
        if rng.random() < 0.6:
            answered = sent + timedelta(hours=rng.uniform(1, 12))
            out["surveys"].append(
                (
                    answered,
                    {
                        "event_id": f"nps-{number:04d}",
                        "type": "survey.answered",
                        "customer_id": account,
                        "occurred_at": rfc3339(answered),
                        "survey_id": f"S-{number:05d}",
                        "survey": "nps",
                        "score": rng.choice([4, 6, 7, 8, 9, 9, 10, 10]),
                    },
                )
            )
        if rng.random() < 0.05:
            left = at + timedelta(hours=rng.uniform(12, 40))
            out["invoices"].append(
                (
                    left,
                    {
                        "event_id": f"{account}-close",
                        "type": "account.closed",
                        "customer_id": account,
                        "occurred_at": rfc3339(left),
                        "reason": "moved",
                    },
                )
            )
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--accounts", type=int, default=120)
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--start", default="2026-11-23T07:00:00Z")
    parser.add_argument("--out", type=Path, default=HERE / "samples")
    args = parser.parse_args()
    start = datetime.fromisoformat(args.start.replace("Z", "+00:00"))
    args.out.mkdir(parents=True, exist_ok=True)
    for source, events in generate(args.accounts, args.seed, start).items():
        events.sort(key=lambda item: item[0])  # each system writes in its own time order
        with (args.out / f"{source}.jsonl").open("w") as stream:
            for _, event in events:
                stream.write(json.dumps(event, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
