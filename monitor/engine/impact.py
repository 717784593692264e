"""Impact: what customers did after their outcomes (docs/SEMANTICS.md, "Impact").

Every outcome leaves a mark in its customer's state: the instant of the outcome, per touchpoint, and
whether it was bad (``instant << 1 | bad``: one int). Marks are kept for the attribution window (at
least a day, which "customers impacted" counts by) and then pruned, so what a customer holds for
impact is a few ints per recent outcome and expires with them.

- A bad outcome that is its customer's first of the touchpoint in its UTC day counts the customer
  impacted (``impacted``: its daily increase is distinct customers).
- A leaving (the ``customers.left`` types) counts ``left`` once for every touchpoint of which the
  customer has a bad mark in [left - attribution, left].
- A survey answer is attributed to every touchpoint of which the customer has a mark in
  [answer - attribution, answer]: after bad if one of them is bad, else after good.

Leavings and answers wait in the queue for the watermark, ranked after the due and risk times of
their instant, so every outcome up to their instant is marked before they are attributed, in event
time, whatever the order of arrival. (A condition is judged on arrival, so its mark may be there
before an earlier leaving is attributed: the window is checked on each mark's instant.)

A customer's first event of a UTC day counts it active that day (``CUSTOMERS``/``active``): the
customer base the churn after bad outcomes is compared with.

Tallies are kept per customer (a customer's record is its whole change) and summed in ``totals``;
a freed customer's move to ``folded``, as outcome counts do. A tally is a flat mapping of names to
numbers: ``impacted``, ``left``, and per survey and side ``SURVEY/SIDE/answers``, ``.../sum`` and,
for nps, ``.../promoter`` and ``.../detractor``.
"""

from __future__ import annotations

from .state import CustomerState

DAY = 86_400_000_000  # microseconds
IMPACTED, LEFT, ACTIVE = "impacted", "left", "active"
CUSTOMERS = ""  # the tallies of no touchpoint: the customer base
GOOD_SIDE, BAD_SIDE = "good", "bad"
NPS = "nps"
PROMOTER, PASSIVE, DETRACTOR, ALL = "promoter", "passive", "detractor", "all"


def answer_class(survey: str, score: float) -> str:
    """An answer's class: an nps score 9-10 promotes, 0-6 detracts, 7-8 is passive; others are all one."""
    if survey != NPS:
        return ALL
    if score >= 9:
        return PROMOTER
    return DETRACTOR if score <= 6 else PASSIVE


def add_tallies(into: dict[str, dict[str, float]], tallies: dict[str, dict[str, float]]) -> None:
    """Sum per-touchpoint tallies into ``into``."""
    for touchpoint, named in tallies.items():
        mine = into.setdefault(touchpoint, {})
        for name, amount in named.items():
            mine[name] = mine.get(name, 0) + amount


class Impact:
    """The marks, the attribution and the tallies of one engine."""

    __slots__ = ("folded", "keep", "marks_good", "totals", "window")

    def __init__(self, attribution: int, marks_good: bool) -> None:
        self.window = attribution
        self.keep = max(attribution, DAY)  # a day at least: the first bad outcome of a day is found in them
        self.marks_good = marks_good  # good outcomes matter only to answers
        self.totals: dict[str, dict[str, float]] = {}
        self.folded: dict[str, dict[str, float]] = {}

    # -- marks ------------------------------------------------------------------------------------------
    def mark(self, state: CustomerState, touchpoint: str, bad: bool, at: int) -> None:
        recent = state.recent
        if recent is None:
            recent = state.recent = {}
        marks = recent.get(touchpoint)
        if bad:
            day = at // DAY
            if marks is None or not any(m & 1 and (m >> 1) // DAY == day for m in marks):
                self.tally(state, touchpoint, IMPACTED, 1)
        elif not self.marks_good:
            return
        if marks is None:
            recent[touchpoint] = [at << 1 | bad]
            return
        marks.append(at << 1 | bad)
        if (marks[0] >> 1) < at - self.keep:  # mostly in order: the oldest is at the front
            recent[touchpoint] = [m for m in marks if (m >> 1) >= at - self.keep]

    def active(self, state: CustomerState, day: int) -> None:
        """The customer's first event of a UTC day (days since the epoch)."""
        if state.days is None:
            state.days = [day]
        else:
            state.days.append(day)
        self.tally(state, CUSTOMERS, ACTIVE, 1)

    def prune(self, state: CustomerState, before: int) -> bool:
        """Drop the marks older than ``before``, and the active days before its day; return whether
        any went. (A customer's days do not keep it: once freed, it has had no event for the retention.)"""
        changed = False
        days = state.days
        if days is not None and days[0] < before // DAY:
            state.days = [day for day in days if day >= before // DAY] or None
            changed = True
        recent = state.recent
        if recent is None:
            return changed
        floor = before << 1
        for touchpoint, marks in list(recent.items()):
            if marks and min(marks) < floor:
                kept = [m for m in marks if m >= floor]
                changed = True
                if kept:
                    recent[touchpoint] = kept
                else:
                    del recent[touchpoint]
        if not recent:
            state.recent = None
        return changed

    # -- attribution ------------------------------------------------------------------------------------
    def _sides(self, state: CustomerState, at: int) -> dict[str, bool]:
        """Touchpoint -> whether a bad mark is in [at - attribution, at], for those with any mark there."""
        sides: dict[str, bool] = {}
        if state.recent is None:
            return sides
        low, high = (at - self.window) << 1, at << 1 | 1
        for touchpoint, marks in state.recent.items():
            inside = [m for m in marks if low <= m <= high]
            if inside:
                sides[touchpoint] = any(m & 1 for m in inside)
        return sides

    def left(self, at: int, state: CustomerState) -> None:
        for touchpoint, bad in self._sides(state, at).items():
            if bad:
                self.tally(state, touchpoint, LEFT, 1)

    def answer(self, at: int, survey: str, score: float, state: CustomerState) -> None:
        cls = answer_class(survey, score)
        for touchpoint, bad in self._sides(state, at).items():
            side = BAD_SIDE if bad else GOOD_SIDE
            prefix = f"{survey}/{side}/"
            self.tally(state, touchpoint, prefix + "answers", 1)
            self.tally(state, touchpoint, prefix + "sum", score)
            if cls in (PROMOTER, DETRACTOR):
                self.tally(state, touchpoint, prefix + cls, 1)

    def tally(self, state: CustomerState, touchpoint: str, name: str, amount: float) -> None:
        if state.impact is None:
            state.impact = {}
        for tallies in (state.impact, self.totals):
            named = tallies.get(touchpoint)
            if named is None:
                named = tallies[touchpoint] = {}
            named[name] = named.get(name, 0) + amount

    # -- customers come and go --------------------------------------------------------------------------
    def free(self, state: CustomerState) -> None:
        """A customer freed: its tallies stay in ``folded``."""
        if state.impact is not None:
            add_tallies(self.folded, state.impact)

    def load(self, state: CustomerState, record: dict) -> None:
        """Put back a stored customer's marks and tallies."""
        recent = record.get("recent")
        state.recent = {touchpoint: list(marks) for touchpoint, marks in recent.items()} if recent else None
        state.days = list(record["days"]) if record.get("days") else None
        impact = record.get("impact")
        state.impact = {touchpoint: dict(named) for touchpoint, named in impact.items()} if impact else None
        if state.impact:
            add_tallies(self.totals, state.impact)

    def fold(self, tallies: dict[str, dict[str, float]]) -> None:
        """Take the tallies of customers freed before (a partition's record)."""
        add_tallies(self.folded, tallies)
        add_tallies(self.totals, tallies)


def answers(named: dict[str, float], survey: str, side: str) -> tuple[dict[str, int], float]:
    """A touchpoint's answers to one survey on one side, from its tallies: the count per class
    (promoter, passive and detractor for nps, else all) and the sum of their scores."""
    prefix = f"{survey}/{side}/"
    total = int(named.get(prefix + "answers", 0))
    if survey != NPS:
        return {ALL: total}, named.get(prefix + "sum", 0)
    promoters, detractors = int(named.get(prefix + PROMOTER, 0)), int(named.get(prefix + DETRACTOR, 0))
    by_class = {PROMOTER: promoters, PASSIVE: total - promoters - detractors, DETRACTOR: detractors}
    return by_class, named.get(prefix + "sum", 0)


def voice(named: dict[str, float]) -> dict[str, dict]:
    """A touchpoint's survey answers by survey and side, from its tallies: answers, mean, and for nps
    the NPS (percent of promoters minus percent of detractors). A survey appears once it has an answer."""
    surveys = sorted({name.split("/", 1)[0] for name in named if name.count("/") == 2})
    found: dict[str, dict] = {}
    for survey in surveys:
        sides = {}
        for side in (GOOD_SIDE, BAD_SIDE):
            prefix = f"{survey}/{side}/"
            answers = int(named.get(prefix + "answers", 0))
            row: dict = {"answers": answers, "mean": named[prefix + "sum"] / answers if answers else None}
            if survey == NPS:
                promoters, detractors = named.get(prefix + PROMOTER, 0), named.get(prefix + DETRACTOR, 0)
                row["nps"] = 100 * (promoters - detractors) / answers if answers else None
            sides[f"after_{side}"] = row
        found[survey] = sides
    return found
