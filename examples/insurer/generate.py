"""Write the home insurer's sample inputs, one file per source, each in that system's own shape.

    python examples/insurer/generate.py [--policyholders 400] [--seed 7] [--start 2026-03-02]

Deterministic for a seed; the committed samples are its output with the defaults. Seven weeks of a
small home insurer in Berlin, across the change to summer time (2026-03-29) and Easter:

- the claims platform sends webhooks: nested JSON, times in epoch milliseconds;
- the contact centre publishes CloudEvents 1.0, the policyholder in ``subject``;
- the policy system writes flat events with local offsets (+01:00, then +02:00) and German dates
  (``14.04.2026``);
- the survey tool sends NPS answers, some about a claim (its number).

Adjusters fall behind in the fourth week, the contact centre is short of staff in the third, a few
renewal notices go out late, and customers hurt by either leave more often and score lower.
"""

from __future__ import annotations

import argparse
import json
import random
from datetime import date, datetime, time, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

HERE = Path(__file__).resolve().parent
BERLIN = ZoneInfo("Europe/Berlin")


def epoch_ms(moment: datetime) -> int:
    return int(moment.timestamp() * 1000)


def local(moment: datetime) -> str:
    """As the policy system writes times: Berlin local time with its offset."""
    return moment.astimezone(BERLIN).isoformat(timespec="seconds")


def utc(moment: datetime) -> str:
    return moment.astimezone(ZoneInfo("UTC")).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def office_hour(rng: random.Random, day: date) -> datetime:
    """A moment in office hours (08:00-18:00 Berlin) of ``day``."""
    return datetime.combine(day, time(8), BERLIN) + timedelta(minutes=rng.uniform(0, 600))


class Insurer:
    def __init__(self, seed: int, start: date, weeks: int) -> None:
        self.rng = random.Random(seed)
        self.start, self.days = start, weeks * 7
        self.out: dict[str, list[tuple[datetime, dict]]] = {
            "claims": [],
            "contact-centre": [],
            "policies": [],
            "surveys": [],
        }
        self.hurt: dict[str, int] = {}
        self.claims = self.calls = 0

    def day(self, low: int = 0, high: int | None = None) -> date:
        return self.start + timedelta(days=self.rng.randrange(low, self.days if high is None else high))

    def week_of(self, moment: datetime) -> int:
        return (moment.astimezone(BERLIN).date() - self.start).days // 7

    def webhook(self, at: datetime, kind: str, holder: str, claim: dict) -> None:
        self.claims += 1
        self.out["claims"].append(
            (
                at,
                {
                    "delivery": {"id": f"wh-{self.claims:06d}"},
                    "event": kind,
                    "occurredAtMillis": epoch_ms(at),
                    "policyHolder": {"id": holder},
                    "claim": claim,
                },
            )
        )

    def policy(self, at: datetime, kind: str, holder: str, **fields: object) -> None:
        number = len(self.out["policies"]) + 1
        self.out["policies"].append(
            (
                at,
                {
                    "event_id": f"pol-{number:06d}",
                    "type": kind,
                    "customer_id": holder,
                    "occurred_at": local(at),
                    **fields,
                },
            )
        )

    def holder(self, number: int) -> None:
        rng, holder = self.rng, f"PH-{number:05d}"
        policy = f"HR-{number:06d}"
        if rng.random() < 0.25:  # a new policy in these weeks: documents due within two days
            issued = office_hour(rng, self.day(0, self.days - 3))
            self.policy(issued, "policy.issued", holder, policy_id=policy, product=rng.choice(["home", "contents"]))
            sent = issued + timedelta(hours=rng.uniform(2, 30) if rng.random() < 0.95 else rng.uniform(50, 90))
            self.policy(sent, "policy.documents_sent", holder, policy_id=policy)
        if rng.random() < 0.35:  # a renewal notice, due at least 30 days before the policy expires
            sent = office_hour(rng, self.day())
            days = rng.randint(31, 45) if rng.random() < 0.93 else rng.randint(20, 29)
            expiry = sent.astimezone(BERLIN).date() + timedelta(days=days)
            self.policy(
                sent, "policy.renewal_notice_sent", holder, policy_id=policy, expiry_date=expiry.strftime("%d.%m.%Y")
            )
        if rng.random() < 0.3:
            self.claim(holder, number)
        for _ in range(rng.choice([0, 0, 1, 1, 2])):
            self.call(holder)
        self.finish(holder, policy)

    def claim(self, holder: str, number: int) -> None:
        rng = self.rng
        claim = f"CL-{number:05d}"
        opened = (
            office_hour(rng, self.day())
            if rng.random() < 0.8
            else datetime.combine(self.day(), time(rng.randrange(0, 24)), BERLIN)
            + timedelta(minutes=rng.uniform(0, 59))
        )
        peril = rng.choice(["water", "storm", "fire", "theft"])
        self.webhook(opened, "claim.opened", holder, {"number": claim, "peril": peril})
        slow = self.week_of(opened) == 3 and rng.random() < 0.55  # adjusters short in week four
        contacted = opened + timedelta(hours=rng.uniform(26, 70) if slow else rng.uniform(0.5, 6))
        if rng.random() < 0.04:
            contacted = opened + timedelta(hours=rng.uniform(30, 60))
        self.webhook(contacted, "adjuster.contacted", holder, {"number": claim})
        bad_contact = contacted - opened > timedelta(hours=20)
        settled = contacted + timedelta(days=rng.uniform(1, 8) if rng.random() < 0.88 else rng.uniform(10, 16))
        amount = round(rng.uniform(300, 9000), 2)
        self.webhook(settled, "claim.settled", holder, {"number": claim, "amount": amount})
        if rng.random() < (0.12 if bad_contact else 0.04):
            self.webhook(settled + timedelta(days=rng.uniform(2, 25)), "claim.reopened", holder, {"number": claim})
        if bad_contact:
            self.hurt[holder] = self.hurt.get(holder, 0) + 1
        if rng.random() < 0.55:  # asked about this claim once it is settled
            score = rng.choice([0, 2, 4, 5, 6, 7, 8]) if bad_contact else rng.choice([6, 7, 8, 9, 9, 10, 10])
            self.answer(holder, settled + timedelta(hours=rng.uniform(4, 72)), score, claim_number=claim)

    def call(self, holder: str) -> None:
        rng = self.rng
        self.calls += 1
        at = office_hour(rng, self.day())
        busy = self.week_of(at) == 2 and rng.random() < 0.6  # short of staff in week three
        wait = rng.uniform(70, 600) if busy else (rng.uniform(5, 55) if rng.random() < 0.93 else rng.uniform(61, 200))
        if wait > 60:
            self.hurt[holder] = self.hurt.get(holder, 0) + 1
        self.out["contact-centre"].append(
            (
                at,
                {
                    "specversion": "1.0",
                    "id": f"cc-{self.calls:06d}",
                    "type": "call.answered",
                    "source": "/contact-centre/berlin",
                    "subject": holder,
                    "time": utc(at),
                    "datacontenttype": "application/json",
                    "data": {
                        "call_id": f"CALL-{self.calls:06d}",
                        "queue": rng.choice(["claims", "policy", "billing"]),
                        "wait_seconds": round(wait, 1),
                    },
                },
            )
        )
        if rng.random() < 0.25:
            score = rng.choice([0, 3, 5, 6, 7]) if wait > 60 else rng.choice([6, 7, 8, 9, 10, 10])
            self.answer(holder, at + timedelta(hours=rng.uniform(1, 30)), score)

    def answer(self, holder: str, at: datetime, score: int, **about: str) -> None:
        number = len(self.out["surveys"]) + 1
        self.out["surveys"].append(
            (
                at,
                {
                    "event_id": f"nps-{number:05d}",
                    "type": "survey.answered",
                    "customer_id": holder,
                    "occurred_at": utc(at),
                    "survey_id": f"S-{number:05d}",
                    "survey": "nps",
                    "score": score,
                    **about,
                },
            )
        )

    def finish(self, holder: str, policy: str) -> None:
        hurt = self.hurt.get(holder, 0)
        if self.rng.random() < (0.02 + 0.12 * min(hurt, 2)):
            at = office_hour(self.rng, self.day(7))
            self.policy(
                at, "policy.cancelled", holder, policy_id=policy, reason=self.rng.choice(["price", "service", "moved"])
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--policyholders", type=int, default=1200)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--start", default="2026-03-02", help="the first Monday (Berlin)")
    parser.add_argument("--weeks", type=int, default=7)
    parser.add_argument("--out", type=Path, default=HERE / "samples")
    args = parser.parse_args()
    insurer = Insurer(args.seed, date.fromisoformat(args.start), args.weeks)
    for number in range(1, args.policyholders + 1):
        insurer.holder(number)
    end = datetime.combine(date.fromisoformat(args.start) + timedelta(weeks=args.weeks), time(0), BERLIN)
    args.out.mkdir(parents=True, exist_ok=True)
    for source, events in insurer.out.items():
        events = [item for item in events if item[0] < end]  # an export of these weeks: later events are not in it
        events.sort(key=lambda item: item[0])  # each system writes in its own time order
        with (args.out / f"{source}.jsonl").open("w") as stream:
            for _, event in events:
                stream.write(json.dumps(event, separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
