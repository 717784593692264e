"""Customers and their stories, as operational events from the four sources.

Each customer's story is drawn from its own random stream (seeded from the run's seed and the
customer's number), so a run is deterministic for a seed and one customer's story does not depend on
another's. Stories are merged into one stream in the order a source system would emit them: by
``occurred_at``, plus an optional small emission jitter (out of order within the lateness), with
optional duplicates (at-least-once producers) and malformed lines.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Iterator
from dataclasses import dataclass
from statistics import NormalDist

import orjson

from ..durations import MICROS
from ..events import format_timestamp, parse_timestamp
from .scenarios import SCENARIOS, Incident, Knobs, Scenario

DEFAULT_START = "2026-11-22T08:00:00Z"
PLANS = (19.0, 29.0, 49.0, 79.0, 119.0)
CHANNELS = (("web", 45), ("app", 35), ("shop", 12), ("phone", 8))
QUEUES = ("billing", "technical", "sales", "moving")
CATEGORIES = ("billing", "technical", "delivery", "account")
LEAVE_REASONS = ("price", "service", "moving", "competitor")
SURVEYS = (("nps", 0.7), ("csat", 0.3))
# What a customer who had trouble writes in an answer's free-text comment (a personal field: it holds
# their address); by how much trouble. Written without a draw, so the rest of a run stays as it was.
COMMENTS = (
    "",
    "It took a while. Write to me at {address}.",
    "Nobody got back to me. Please write to me at {address}.",
    "I am very unhappy and thinking of leaving. Reach me at {address}.",
)
ANSWERED = 0.35  # share of customers who answer a survey after their journey


def _lognormal(rng: random.Random, median: float, sigma: float) -> float:
    return median * math.exp(rng.gauss(0.0, sigma))


REVISIT = 2.5 * 86400  # seconds: a second visit, when the first could not activate the service


def _quantile(median: float, sigma: float, share: float) -> float:
    """The value a lognormal of this median and sigma stays under with probability ``share``."""
    return median * math.exp(sigma * NormalDist().inv_cdf(share))


def _millis(at: int) -> str:
    """RFC 3339 with milliseconds, as most source systems write it."""
    text = format_timestamp(at - at % 1000)
    return text.replace("000Z", "Z") if "." in text else text


def _seconds(value: float) -> int:
    return int(value * MICROS)


@dataclass
class _Story:
    """One customer's events, drawn up front: (occurred_at, event object)."""

    rng: random.Random
    customer: str
    scenario: Scenario
    start: int  # the simulation's start
    events: list[tuple[int, dict]]
    counter: int = 0
    slow: float = 1.0  # how much of the slow reactions' delays (leaving, answering a survey) runs
    voice: random.Random | None = None  # the survey answers' own stream: the other draws stay as they were

    def knobs(self, at: int) -> Knobs:
        return self.scenario.knobs(at - self.start)

    def emit(self, at: int, event_type: str, **fields: object) -> int:
        self.counter += 1
        event = {
            "event_id": f"{self.customer}-{self.counter:03d}",
            "type": event_type,
            "customer_id": self.customer,
            "occurred_at": _millis(at),
            **fields,
        }
        self.events.append((at, event))
        return at


def _story(story: _Story, arrival: int, number: int) -> None:
    """A newcomer buys, gets, pays, maybe asks for help and maybe leaves; a customer of the base pays a
    bill or calls about something, so bills and calls flow from the first minute of a run."""
    if story.rng.random() < 0.7:
        _newcomer(story, arrival, number)
    else:
        _existing(story, arrival, number)


def _newcomer(story: _Story, arrival: int, number: int) -> None:
    rng, emit = story.rng, story.emit
    at = emit(arrival, "customer.joined")
    trouble = 0  # bad moments make contact and churn likelier

    # buy
    order = f"o-{number:07d}"
    at += _seconds(rng.expovariate(1 / 40))
    plan = rng.choice(PLANS)
    channel = rng.choices([c for c, _ in CHANNELS], [w for _, w in CHANNELS])[0]
    with_device = rng.random() < 0.4
    amount = plan + (rng.choice((99.0, 199.0, 349.0)) if with_device else 0.0)
    emit(at, "order.placed", order_id=order, amount=amount, channel=channel)
    knobs = story.knobs(at)
    if rng.random() < knobs.confirm_lost:
        if rng.random() < 0.5:
            emit(at + _seconds(rng.uniform(600, 3600)), "order.cancelled", order_id=order, by="customer")
        _help_and_leave(story, at + _seconds(rng.uniform(600, 3600)), number, trouble + 1)
        return
    confirm_delay = _lognormal(rng, knobs.confirm_median, 0.7)
    trouble += confirm_delay > 120
    at += _seconds(confirm_delay)
    emit(at, "order.confirmed", order_id=order)

    # get
    if with_device:
        promised = at + _seconds(3600)
        late = rng.random() < story.knobs(at).delivery_late
        delivery = promised + _seconds(rng.uniform(60, 5400)) if late else at + _seconds(rng.uniform(900, 3500))
        trouble += late
        emit(delivery, "order.delivered", order_id=order, promised_at=_millis(promised))
    knobs = story.knobs(at)
    activation = _lognormal(rng, knobs.activation_median, 1.0)
    if knobs.activation_revisit and activation > _quantile(knobs.activation_median, 1.0, 1 - knobs.activation_revisit):
        activation += REVISIT  # (the same draw: the slowest first visits fail, and no seed's other draws move)
    at += _seconds(activation)
    emit(at, "service.activated", order_id=order)

    # pay, then help and leave
    at += _seconds(rng.uniform(300, 1200))
    trouble += _bill(story, at, number, plan)
    _help_and_leave(story, at + _seconds(rng.uniform(120, 3600)), number, trouble)


def _existing(story: _Story, arrival: int, number: int) -> None:
    rng = story.rng
    trouble = 0
    if rng.random() < 0.6:
        trouble += _bill(story, arrival, number, rng.choice(PLANS))
        arrival += _seconds(rng.uniform(120, 3600))
    _help_and_leave(story, arrival, number, trouble, always_contact=trouble == 0)


def _bill(story: _Story, at: int, number: int, plan: float) -> int:
    """A bill and its payment; returns how much trouble it caused."""
    rng, emit = story.rng, story.emit
    bill = f"b-{number:07d}"
    wrong = rng.random() < story.knobs(at).bill_wrong
    billed = round(plan * rng.uniform(1.1, 1.6), 2) if wrong else plan
    emit(at, "bill.issued", bill_id=bill, amount=billed, expected_amount=plan)
    trouble = int(wrong)
    paid_at = at + _seconds(rng.expovariate(1 / 900))
    if rng.random() < story.knobs(paid_at).payment_failure:
        emit(paid_at, "payment.failed", bill_id=bill)
        trouble += 1
        paid_at += _seconds(rng.uniform(600, 7200))
    emit(paid_at, "payment.succeeded", bill_id=bill)
    if wrong and rng.random() < 0.6:
        disputed = at + _seconds(rng.expovariate(1 / 1800))
        emit(disputed, "bill.disputed", bill_id=bill)
        median = story.knobs(disputed).dispute_resolution_median
        emit(disputed + _seconds(_lognormal(rng, median, 0.8)), "dispute.resolved", bill_id=bill)
    return trouble


def _help_and_leave(story: _Story, at: int, number: int, trouble: int, always_contact: bool = False) -> None:
    """Contacts, likelier after trouble; an unsolved problem brings the customer back; some leave."""
    rng, emit = story.rng, story.emit
    contact = always_contact or rng.random() < min(0.9, 0.3 + 0.35 * trouble)
    attempt = 0
    while contact and attempt < 3:
        attempt += 1
        solved = _contact(story, at, number, attempt)
        trouble += not solved
        if solved and rng.random() >= story.knobs(at).contact_again:
            break
        if not solved and rng.random() > 0.6:
            break
        at += _seconds(rng.uniform(3600, 3 * 86400))
    leaves = rng.random() < 0.03 + 0.08 * min(trouble, 3)
    _survey(story, at, number, trouble)
    if leaves:
        left = at + _seconds(rng.uniform(3600, 5 * 86400) * story.slow)
        emit(left, "customer.left", reason=rng.choice(LEAVE_REASONS))
        if rng.random() < story.knobs(left).winback_share:
            call_at = left + _seconds(_lognormal(rng, 8 * 3600, 1.0))
            emit(call_at, "call.outbound", call_id=f"w-{number:07d}", purpose="winback")
    elif rng.random() < 0.05:
        emit(at + _seconds(rng.uniform(3600, 86400)), "call.outbound", call_id=f"s-{number:07d}", purpose="survey")


def _survey(story: _Story, at: int, number: int, trouble: int) -> None:
    """After the journey, some customers answer a survey: lower the more trouble they had."""
    voice = story.voice
    if voice is None or voice.random() >= ANSWERED:
        return
    survey = voice.choices([s for s, _ in SURVEYS], [w for _, w in SURVEYS])[0]
    hurt = min(trouble, 3)
    if survey == "nps":  # 0-10
        score = min(10, max(0, round(voice.gauss(8.8, 1.2) - 2.4 * hurt)))
    else:  # csat, 1-5
        score = min(5, max(1, round(voice.gauss(4.5, 0.6) - 1.0 * hurt)))
    answered = at + _seconds(_lognormal(voice, 3600, 1.0) * story.slow)
    said = {"comment": COMMENTS[hurt].format(address=f"{story.customer}@example.org")} if hurt else {}
    story.emit(answered, "survey.answered", survey_id=f"s-{number:07d}", survey=survey, score=score, **said)


def _contact(story: _Story, at: int, number: int, attempt: int) -> bool:
    """A call or a ticket; True when it solved the customer's problem."""
    rng, emit = story.rng, story.emit
    knobs = story.knobs(at)
    if rng.random() < 0.6:
        call = f"k-{number:07d}-{attempt}"
        queue = rng.choice(QUEUES)
        wait = _lognormal(rng, knobs.call_wait_median, 0.6)
        patience = _lognormal(rng, knobs.call_patience_median, 0.5)
        if wait > patience:
            emit(at + _seconds(patience), "call.abandoned", call_id=call, queue=queue, wait_seconds=round(patience, 1))
            return False
        answered = emit(at + _seconds(wait), "call.answered", call_id=call, queue=queue, wait_seconds=round(wait, 1))
        resolved = rng.random() < knobs.call_resolved
        emit(answered + _seconds(rng.expovariate(1 / 360)), "call.ended", call_id=call, resolved=resolved)
        return resolved
    ticket = f"t-{number:07d}-{attempt}"
    emit(at, "ticket.opened", ticket_id=ticket, category=rng.choice(CATEGORIES))
    asked = at
    if knobs.ticket_waiting and rng.random() < knobs.ticket_waiting:  # (no draw when off: seeds stay as they were)
        asked = emit(at + _seconds(_lognormal(rng, 600.0, 0.8)), "ticket.waiting", ticket_id=ticket)
        asked = emit(
            asked + _seconds(_lognormal(rng, knobs.customer_answer_median, 0.8)),
            "ticket.updated",
            ticket_id=ticket,
            by="customer",
        )
    emit(asked + _seconds(_lognormal(rng, knobs.ticket_response_median, 1.0)), "ticket.responded", ticket_id=ticket)
    resolved_at = at + _seconds(_lognormal(rng, knobs.ticket_resolution_median, 0.8))
    emit(resolved_at, "ticket.resolved", ticket_id=ticket)
    if rng.random() < story.knobs(resolved_at).ticket_reopened:
        reopened = resolved_at + _seconds(rng.expovariate(1 / (2 * 86400)))
        emit(reopened, "ticket.reopened", ticket_id=ticket)
        emit(reopened + _seconds(_lognormal(rng, 6 * 3600, 0.8)), "ticket.resolved", ticket_id=ticket)
        return False
    return True


@dataclass(frozen=True)
class Simulation:
    """A run's settings. ``lines()`` gives the JSONL lines, ``events()`` the objects (bad lines as bytes)."""

    customers: int = 1000
    duration: int = 3600 * MICROS
    seed: int = 1
    scenario: str = "healthy"
    start: str = DEFAULT_START
    disorder: int = 2 * MICROS  # emission jitter: events leave their source up to this much out of order
    duplicates: float = 0.002  # share of events sent twice
    bad_lines: float = 0.0  # share of lines replaced by malformed input
    # Incidents come this many times sooner (60: minute 10 becomes second 10), and customers leave and
    # answer surveys this many times sooner after their journey.
    time_scale: float = 1.0
    prefix: str = "c"  # of the customer ids (and so of the event ids): c-000001, c-000002...
    arrive_within: int | None = None  # customers arrive over this much of the run (default all of it)

    def __post_init__(self) -> None:
        if self.scenario not in SCENARIOS:
            names = ", ".join(sorted(SCENARIOS))
            raise ValueError(f"unknown scenario '{self.scenario}'; choose one of: {names}")
        if self.customers < 0 or self.duration <= 0:
            raise ValueError("customers must be >= 0 and the duration positive")
        if not 0 <= self.duplicates < 1 or not 0 <= self.bad_lines < 1 or self.disorder < 0:
            raise ValueError("duplicates and bad_lines are shares between 0 and 1; disorder is >= 0")
        if self.time_scale <= 0:
            raise ValueError("time_scale must be above 0")
        if parse_timestamp(self.start) is None:
            raise ValueError(f"start must be an RFC 3339 timestamp with offset, not {self.start!r}")

    @property
    def plan(self) -> Scenario:
        """The scenario with its incidents at the times this run has them (``time_scale`` applied)."""
        scenario = SCENARIOS[self.scenario]
        return scenario.scaled(1 / self.time_scale) if self.time_scale != 1 else scenario

    def unreached(self) -> tuple[Incident, ...]:
        """The scenario's incidents that start after the run's end: the run has none of them."""
        return tuple(i for i in self.plan.incidents if i.start >= self.duration)

    def events(self) -> Iterator[dict | bytes]:
        """Events in emission order; everything after start + duration is left out."""
        for _, item in self.emissions():
            yield item

    def lines(self) -> Iterator[bytes]:
        for item in self.events():
            yield item if isinstance(item, bytes) else orjson.dumps(item)

    def timed_lines(self) -> Iterator[tuple[int, bytes]]:
        """(when it leaves its source, in microseconds since the epoch, the line), for live pacing."""
        for sent, item in self.emissions():
            yield sent, item if isinstance(item, bytes) else orjson.dumps(item)

    def emissions(self) -> Iterator[tuple[int, dict | bytes]]:
        """(send time, event or malformed line) in send order."""
        start = parse_timestamp(self.start)
        assert start is not None
        end = start + self.duration
        scenario = self.plan
        rng = random.Random(self.seed)
        # Arrivals spread over the whole run, as a business goes on: a stream whose customers stopped
        # coming before its end would still decide the misses of those who came before, and no more
        # of the outcomes of new ones, and a healthy touchpoint would end broken. (What happens after
        # the end is not sent.)
        span = self.duration if self.arrive_within is None else self.arrive_within
        arrivals = sorted(rng.randrange(0, max(1, span)) for _ in range(self.customers))
        pending: list[tuple[int, int, dict | bytes]] = []
        sequence = 0
        for number, offset in enumerate(arrivals, start=1):
            arrival = start + offset
            while pending and pending[0][0] < arrival:
                sent, _, item = heapq.heappop(pending)
                yield sent, item
            customer = f"{self.prefix}-{number:06d}"
            story = _Story(
                random.Random(self.seed * 1_000_003 + number),
                customer,
                scenario,
                start,
                [],
                slow=1 / self.time_scale,
                voice=random.Random((self.seed * 1_000_003 + number) * 7 + 3),
            )
            _story(story, arrival, number)
            noise = story.rng
            for at, event in story.events:
                if at > end:
                    continue
                sent = at + (noise.randrange(self.disorder) if self.disorder else 0)
                item: dict | bytes = event
                if self.bad_lines and noise.random() < self.bad_lines:
                    item = _malformed(noise, event)
                sequence += 1
                heapq.heappush(pending, (sent, sequence, item))
                if self.duplicates and noise.random() < self.duplicates:
                    sequence += 1
                    heapq.heappush(pending, (sent + noise.randrange(5 * MICROS), sequence, event))
        while pending:
            sent, _, item = heapq.heappop(pending)
            yield sent, item


def _malformed(rng: random.Random, event: dict) -> bytes:
    """Input a real producer sends by mistake: truncated, mistyped, without offset, or not UTF-8."""
    text = orjson.dumps(event)
    choice = rng.randrange(4)
    if choice == 0:
        return text[: len(text) // 2]
    if choice == 1:
        return orjson.dumps({**event, "customer_id": 12345})
    if choice == 2:
        return orjson.dumps({**event, "occurred_at": event["occurred_at"].rstrip("Z")})
    return text.replace(b'"type"', b'"t\xffpe"')
