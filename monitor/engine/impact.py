"""Impact: what customers did after their outcomes (docs/SEMANTICS.md, "Impact").

Every outcome leaves a mark in its customer's state: the instant of the outcome, its touchpoint,
whether it was bad and, when the catalog keys answers (``impact: {about: [...]}``), a 16-bit
fingerprint of the instance's key (one int). Marks are kept for the longer attribution window (at
least a day, which "customers impacted" counts by, and at least the longest state window and a day,
whose distinct customers impacted the live worker counts by them; good marks, which only answers
need, for the surveys' window and a day) and then pruned, so what a customer holds for impact is a
few ints per recent outcome and expires with them.

- A bad outcome that is its customer's first of the touchpoint in its UTC day counts the customer
  impacted (``impacted``: its daily increase is distinct customers).
- A bad outcome later than the customer's latest bad one of the touchpoint is its new latest:
  ``bad`` says which instant it replaces, so that the live worker counts each customer once, in the
  bucket of its latest bad outcome (distinct customers impacted over a window: docs/SEMANTICS.md).
- A leaving (the ``customers.left`` types) counts ``left`` once for every touchpoint of which the
  customer has a bad mark in [left - attribution_left, left].
- A survey answer is attributed to every touchpoint of which the customer has a mark in
  [answer - attribution_surveys, answer]: after bad if one of them is bad, else after good. An answer
  that names the instance it is about (a field of ``about``) is attributed only to the marks of that
  instance (its key's fingerprint: a deadline's or no_repeat's key, or a condition's event's own
  ``about`` field).

Leavings and answers wait in the queue for the watermark, ranked after the due and risk times of
their instant, so every outcome up to their instant is marked before they are attributed, in event
time, whatever the order of arrival. (A condition is judged on arrival, so its mark may be there
before an earlier leaving is attributed: the window is checked on each mark's instant.)

An outcome can still come after a leaving or an answer it precedes was attributed: late history (a
source whose history arrives after the others' was read). So what was attributed is remembered
(``said``: its instant, and the touchpoints it went to) as long as its event's id is (the engine's
``forget``; no event older than that is judged), and a mark that comes later in its window is
attributed to it then: a leaving counts for a touchpoint whose bad outcome came late, an answer goes
to a touchpoint it had not reached, on the side of that outcome. Both only add, so the figures reach
what an ordered read reaches. One case cannot: an answer already counted after good for a touchpoint
whose bad outcome comes late stays after good (a counter never goes down).

A customer's first event of a UTC day counts it active that day (``active_total``): the customer
base the churn after bad outcomes is compared with.

Tallies are kept per customer (a customer's record is its whole change) and summed in ``totals``;
a freed customer's move to ``folded``, as outcome counts do. A touchpoint's tallies map names to
numbers: ``impacted``, ``left``, and per survey and side ``SURVEY/SIDE/answers``, ``.../sum`` and,
for nps, ``.../promoter`` and ``.../detractor``.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from operator import attrgetter
from typing import NamedTuple
from zlib import crc32

from .state import CustomerState

DAY = 86_400_000_000  # microseconds
KEY_BITS = 16  # an instance key's fingerprint in a mark, when answers are keyed (1 in 65,535 collide)
TRIM_FROM = 16  # marks a customer holds before those behind the watermark are reduced to the newest
IMPACTED, LEFT = "impacted", "left"
GOOD_SIDE, BAD_SIDE = "good", "bad"
NPS = "nps"
PROMOTER, PASSIVE, DETRACTOR, ALL = "promoter", "passive", "detractor", "all"


class Attributed(NamedTuple):
    """A leaving or an answer attributed, remembered in its customer's ``said`` for the outcomes that
    come after it (late history)."""

    at: int
    survey: str  # "" for a leaving
    score: float
    reached: int  # the touchpoints it was attributed to, a bit set by touchpoint index
    after_bad: int  # of those, the ones it went to after a bad outcome
    about: int  # the fingerprint of the instance it is about, or 0


_INSTANT = attrgetter("at")


def answer_class(survey: str, score: float) -> str:
    """An answer's class: an nps score 9-10 promotes, 0-6 detracts, 7-8 is passive; others are all one."""
    if survey != NPS:
        return ALL
    if score >= 9:
        return PROMOTER
    return DETRACTOR if score <= 6 else PASSIVE


def fingerprint(key: str) -> int:
    """An instance key's fingerprint in a mark (never 0: a mark of no instance), the same in every process."""
    return crc32(key.encode()) % ((1 << KEY_BITS) - 1) + 1


def add_tallies(into: dict[str, dict[str, float]], tallies: dict[str, dict[str, float]]) -> None:
    """Sum per-touchpoint tallies into ``into``."""
    for touchpoint, named in tallies.items():
        mine = into.setdefault(touchpoint, {})
        for name, amount in named.items():
            mine[name] = mine.get(name, 0) + amount


class Impact:
    """The marks, the attribution and the tallies of one engine.

    What a customer holds is small and kept out of the garbage collector's sight, as the rest of its
    state: its marks and active days are tuples of ints (the days shared), its tallies one flat dict
    ("TOUCHPOINT/NAME" -> number, the names shared). A mark is
    ``((instant << 1 | bad) << bits | touchpoint index) << key_bits | key fingerprint``, so that marks
    compare by instant (``key_bits`` is 0 unless answers are keyed: a mark is then a 60-bit int, 32
    bytes, and with the fingerprint a 76-bit one, 36 bytes). (The engine adds good marks itself: ``add``.)
    """

    __slots__ = (
        "_bad_of_index",
        "active_folded",
        "active_total",
        "bits",
        "folded",
        "ids",
        "keep",
        "keep_good",
        "key_bits",
        "left_window",
        "low",
        "marks_good",
        "names",
        "position",
        "survey_window",
        "totals",
        "within",
    )

    def __init__(
        self,
        ids: tuple[str, ...],
        left_window: int,
        marks_good: bool,
        survey_window: int | None = None,
        keyed: bool = False,
        reach: int = 0,
    ) -> None:
        self.ids = ids
        self.position = {touchpoint: index for index, touchpoint in enumerate(ids)}
        self.bits = max(1, len(ids).bit_length())
        self.key_bits = KEY_BITS if keyed else 0
        self.low = self.bits + self.key_bits  # what is below a mark's bad bit
        # A mark's bad bit and touchpoint index: ``mark & _bad_of_index`` is ``1 << low | index << key_bits``
        # for a bad mark of the touchpoint at ``index``.
        self._bad_of_index = 1 << self.low | ((1 << self.bits) - 1) << self.key_bits
        self.left_window = left_window
        self.survey_window = left_window if survey_window is None else survey_window
        # A day at least: the first bad outcome of a day is found in them; and ``reach``, the longest
        # time back a state window can need a customer's latest bad outcome (engine.Engine).
        self.keep = max(left_window, self.survey_window, DAY, reach)
        self.keep_good = max(self.survey_window, DAY)  # good marks serve answers only
        self.marks_good = marks_good  # good outcomes matter only to answers
        # Count only the leavings and answers with an instant in [low, high) (a review bounded by
        # --since/--until); every one is still attributed and remembered, so late marks find them.
        self.within: tuple[int, int] | None = None
        self.totals: dict[str, dict[str, float]] = {}  # touchpoint -> name -> amount
        self.folded: dict[str, dict[str, float]] = {}
        self.active_total = self.active_folded = 0  # customers active, per customer and UTC day
        self.names: dict[object, object] = {}  # one object for each tally name and day held by customers

    def mark(self, at: int, bad: bool, index: int, key: int = 0) -> int:
        """A mark of an outcome at ``at`` (``key``: its instance's fingerprint, 0 for none)."""
        return (((at << 1 | bad) << self.bits | index) << self.key_bits) | key

    def parts(self, mark: int) -> tuple[int, bool, int, int]:
        """(instant, bad, touchpoint index, key fingerprint) of a mark."""
        kb = self.key_bits
        return (
            mark >> (self.low + 1),
            bool((mark >> self.low) & 1),
            (mark >> kb) & ((1 << self.bits) - 1),
            (mark & ((1 << kb) - 1)),
        )

    # -- marks ------------------------------------------------------------------------------------------
    def bad(self, state: CustomerState, index: int, at: int, watermark: int | None, key: int = 0) -> int | None:
        """A bad outcome: its mark, and the customer impacted if it is its first of the touchpoint that
        UTC day. Returns, when it is the customer's latest bad outcome of the touchpoint, the instant of
        the one before (-1: none held), else None."""
        low, marks = self.low, state.recent
        first = True
        latest = -1
        if marks is not None:
            day, kb, shift, select = at // DAY, self.key_bits, low + 1, self._bad_of_index
            # A bad mark of the touchpoint: its bad bit set and its index's bits those of ``index``.
            wanted = 1 << low | index << kb
            for m in marks:
                if m & select == wanted:
                    instant = m >> shift
                    if instant // DAY == day:
                        first = False
                    if instant > latest:
                        latest = instant
        if first:
            self.tally(state, self.ids[index], IMPACTED, 1)
        self.add(state, self.mark(at, True, index, key), watermark)
        return latest if at > latest else None

    def add(self, state: CustomerState, mark: int, watermark: int | None) -> None:
        """Add a mark; then, the marks are kept to what a leaving or an answer to come can need
        (``trim``). ``watermark`` is the engine's horizon: nothing still to be attributed is before it
        (what is queued waits for the watermark). What is older than it by the keep goes; of the rest
        before it, a touchpoint's newest mark and its newest bad one (of each instance, when answers
        are keyed) say all that attribution, the first bad outcome of a day and the latest bad outcome
        ask. (Events that come after the watermark passed them are late, and see what is left.)"""
        marks = state.recent
        state.recent = (mark,) if marks is None else self.trim((*marks, mark), watermark)
        if state.said is not None:
            self.came_late(state, mark)

    def trim(self, marks: tuple[int, ...], watermark: int | None) -> tuple[int, ...] | None:
        """The marks worth keeping at ``watermark`` (see ``add``), oldest first."""
        if watermark is None:
            return marks
        shift, low = self.low + 1, self.low
        floor, now = (watermark - self.keep) << shift, watermark << shift
        good_floor = (watermark - self.keep_good) << shift
        if marks and min(marks) >= good_floor and len(marks) <= TRIM_FROM:
            return marks  # (most: all of them are kept)
        if floor == good_floor:  # (good and bad marks are kept as long: one comparison)
            kept = [m for m in marks if m >= floor]
        else:
            kept = [m for m in marks if m >= good_floor or (m >= floor and (m >> low) & 1)]
        if len(kept) > TRIM_FROM:
            newest: dict[int, int] = {}  # (bad, touchpoint, key) -> newest mark before the watermark
            ahead = []
            mask = (1 << (low + 1)) - 1
            for m in kept:
                if m < now:
                    key = m & mask
                    newest[key] = max(newest.get(key, m), m)
                else:
                    ahead.append(m)
            kept = sorted({*newest.values(), *ahead})
        return tuple(kept) or None

    def prune(self, state: CustomerState, watermark: int) -> bool:
        """At ``watermark``: drop the marks older than the keep and the active days before the
        watermark's (a customer still active today is held until tomorrow, so that it is counted once
        a day even if freed and back); return whether any went."""
        changed = False
        days = state.days
        if days is not None and min(days) < watermark // DAY:
            state.days = tuple(day for day in days if day >= watermark // DAY) or None
            changed = True
        marks = state.recent
        if marks is not None and min(marks) < (watermark - self.keep_good) << (self.low + 1):
            trimmed = self.trim(marks, watermark)
            if trimmed != marks:
                state.recent = trimmed
                changed = True
        return changed

    def may_prune(self, record: dict, watermark: int) -> bool:
        """Whether ``prune`` at ``watermark`` could drop anything of a stored customer (its record): an
        active day before the watermark's, or a mark past its keep as ``trim`` keeps them (a bad one
        ``keep``, a good one ``keep_good``). A mark of a touchpoint the catalog no longer has is left
        out: ``load`` drops it."""
        days = record.get("days")
        if days and min(days) < watermark // DAY:
            return True
        good_floor, bad_floor, known = watermark - self.keep_good, watermark - self.keep, self.position
        for touchpoint, stored, *_ in record.get("recent", ()):  # [touchpoint, instant << 1 | bad, key]
            if touchpoint in known and stored >> 1 < (bad_floor if stored & 1 else good_floor):
                return True
        return False

    # -- attribution ------------------------------------------------------------------------------------
    def _sides(self, state: CustomerState, at: int, window: int, key: int = 0) -> dict[str, bool]:
        """Touchpoint -> whether a bad mark is in [at - window, at], for those with any mark there (of
        the instance whose fingerprint is ``key``, when not 0)."""
        sides: dict[str, bool] = {}
        marks = state.recent
        if marks is None:
            return sides
        low, kb = self.low, self.key_bits
        mask, keys, lowest, high = (1 << self.bits) - 1, (1 << kb) - 1, at - window, at
        for m in marks:
            if lowest <= m >> (low + 1) <= high and (not key or m & keys == key):
                touchpoint = self.ids[(m >> kb) & mask]
                sides[touchpoint] = sides.get(touchpoint, False) or bool((m >> low) & 1)
        return sides

    def _counted(self, at: int) -> bool:
        within = self.within
        return within is None or within[0] <= at < within[1]

    def left(self, at: int, state: CustomerState) -> None:
        reached, counted = 0, self._counted(at)
        for touchpoint, bad in self._sides(state, at, self.left_window).items():
            if bad:
                if counted:
                    self.tally(state, touchpoint, LEFT, 1)
                reached |= 1 << self.position[touchpoint]
        self._said(state, Attributed(at, "", 0, reached, reached, 0))

    def answer(self, at: int, survey: str, score: float, state: CustomerState, key: int = 0) -> None:
        """An answer, about the instance whose fingerprint is ``key`` (0: about none in particular)."""
        reached = bads = 0
        counted = self._counted(at)
        for touchpoint, bad in self._sides(state, at, self.survey_window, key).items():
            if counted:
                self._answer_to(state, touchpoint, survey, score, bad)
            reached |= 1 << self.position[touchpoint]
            if bad:
                bads |= 1 << self.position[touchpoint]
        self._said(state, Attributed(at, survey, score, reached, bads, key))

    def _answer_to(self, state: CustomerState, touchpoint: str, survey: str, score: float, bad: bool) -> None:
        prefix = f"{survey}/{BAD_SIDE if bad else GOOD_SIDE}/"
        self.tally(state, touchpoint, prefix + "answers", 1)
        self.tally(state, touchpoint, prefix + "sum", score)
        cls = answer_class(survey, score)
        if cls in (PROMOTER, DETRACTOR):
            self.tally(state, touchpoint, prefix + cls, 1)

    @staticmethod
    def _said(state: CustomerState, entry: Attributed) -> None:
        """Remember an attribution made, in order of instant."""
        said = state.said
        if said is None:
            state.said = [entry]
        elif said[-1].at <= entry.at:
            said.append(entry)
        else:  # a late leaving or answer, attributed after a later one
            insort(said, entry, key=_INSTANT)

    def came_late(self, state: CustomerState, mark: int) -> None:
        """A mark added after a leaving or an answer in whose window it falls was attributed: attribute
        it to them now (see the module's docstring)."""
        at, bad, index, key = self.parts(mark)
        bit, said = 1 << index, state.said
        left_until, survey_until = at + self.left_window, at + self.survey_window
        until = max(left_until, survey_until)
        for number in range(bisect_left(said, at, key=_INSTANT), len(said)):  # type: ignore[arg-type]
            instant, survey, score, reached, bads, about = said[number]
            if instant > until:
                break
            if reached & bit:
                continue
            counted = self._counted(instant)
            if not survey:
                if not bad or instant > left_until:
                    continue
                if counted:
                    self.tally(state, self.ids[index], LEFT, 1)
            else:
                if instant > survey_until or (about and about != key):
                    continue
                if counted:
                    self._answer_to(state, self.ids[index], survey, score, bad)
            said[number] = Attributed(instant, survey, score, reached | bit, bads | (bit if bad else 0), about)

    def forget(self, state: CustomerState, before: int) -> None:
        """Forget the attributions of events older than ``before`` (their ids are forgotten with them:
        nothing older is judged any more)."""
        said = state.said
        if said is not None:
            state.said = [entry for entry in said if entry.at >= before] or None

    def tally(self, state: CustomerState, touchpoint: str, name: str, amount: float) -> None:
        mine = state.impact
        if mine is None:
            mine = state.impact = {}
        key = f"{touchpoint}/{name}"
        key = self.names.setdefault(key, key)  # type: ignore[assignment]
        mine[key] = mine.get(key, 0) + amount
        named = self.totals.get(touchpoint)
        if named is None:
            named = self.totals[touchpoint] = {}
        named[name] = named.get(name, 0) + amount

    # -- customers come and go --------------------------------------------------------------------------
    def free(self, state: CustomerState) -> None:
        """A customer freed: its tallies stay in ``folded``."""
        if state.impact is not None:
            add_tallies(self.folded, nested(state.impact))
        self.active_folded += state.active

    def record(self, state: CustomerState) -> dict:
        """The customer's part, JSON-ready, naming touchpoints by id (a reordered catalog still reads it):
        a mark as [touchpoint, instant << 1 | bad], and its key's fingerprint when it has one."""
        recent = []
        for m in state.recent or ():
            at, bad, index, key = self.parts(m)
            recent.append([self.ids[index], at << 1 | bad, key] if key else [self.ids[index], at << 1 | bad])
        return {
            "recent": recent,
            "impact": dict(state.impact or {}),
            "days": list(state.days or ()),
            "active": state.active,
            # [instant, survey ("" for a leaving), score, touchpoints reached, of them after bad, instance]
            "said": [
                [at, survey, score, self._named(reached), self._named(bads), *([about] if about else [])]
                for at, survey, score, reached, bads, about in state.said or ()
            ],
        }

    def _named(self, bits: int) -> list[str]:
        return [touchpoint for index, touchpoint in enumerate(self.ids) if bits >> index & 1]

    def _bits(self, named: list[str]) -> int:
        position = self.position
        return sum(1 << position[t] for t in set(named) if t in position)

    def load(self, state: CustomerState, record: dict, counted: bool = False) -> None:
        """Put back a stored customer's marks and tallies (``counted``: its tallies are in the totals
        already, see ``count``)."""
        bits, kb, index = self.bits, self.key_bits, self.position
        marks = tuple(
            ((stored[1] << bits | index[stored[0]]) << kb) | (stored[2] if kb and len(stored) > 2 else 0)
            for stored in record.get("recent", ())
            if stored[0] in index
        )
        state.recent = marks or None
        names = self.names
        state.days = tuple(names.setdefault(day, day) for day in record["days"]) if record.get("days") else None
        impact = record.get("impact")
        state.impact = {names.setdefault(k, k): v for k, v in impact.items()} if impact else None  # type: ignore[misc]
        state.active = record.get("active", 0)
        if not counted:
            if state.impact:
                add_tallies(self.totals, nested(state.impact))
            self.active_total += state.active
        said = record.get("said")
        state.said = (
            sorted(
                (
                    Attributed(at, survey, score, self._bits(reached), self._bits(bads), about[0] if about else 0)
                    for at, survey, score, reached, bads, *about in said
                ),
                key=_INSTANT,
            )
            if said
            else None
        )

    def count(self, record: dict) -> None:
        """A stored customer's tallies into the totals, the customer left out of memory (Engine.count)."""
        impact = record.get("impact")
        if impact:
            add_tallies(self.totals, nested(impact))
        self.active_total += record.get("active", 0)

    def fold(self, tallies: dict[str, dict[str, float]], active: int = 0) -> None:
        """Take the tallies of customers freed before (a partition's record)."""
        add_tallies(self.folded, tallies)
        add_tallies(self.totals, tallies)
        self.active_folded += active
        self.active_total += active


def nested(flat: dict[str, float]) -> dict[str, dict[str, float]]:
    """A customer's flat tallies ("TOUCHPOINT/NAME") by touchpoint."""
    found: dict[str, dict[str, float]] = {}
    for key, amount in flat.items():
        touchpoint, _, name = key.partition("/")
        found.setdefault(touchpoint, {})[name] = amount
    return found


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


def churn_lift(left_after_bad: float, impacted: float, left: float, active: float) -> float | None:
    """How much more the customers a touchpoint hurt left than everyone: (left after bad / customers
    impacted) / (customers who left / customers active), over one span; None when a denominator is 0."""
    if not impacted or not active or not left:
        return None
    return (left_after_bad / impacted) / (left / active)


def impact_view(
    named: dict[str, float], customers_impacted: int, churn: tuple[float, float, float] | None = None
) -> dict:
    """A touchpoint's impact as the replay summary and /touchpoints show it, from its tallies and the
    customers impacted (counted by each as it can). ``churn``: (customers impacted, customers who left,
    customers active) over the span of the tallies, whose churn lift it states (None: none)."""
    left = int(named.get(LEFT, 0))
    lift = None if churn is None else churn_lift(left, *churn)
    return {
        "customers_impacted": customers_impacted,
        "left_after_bad": left,
        "churn_lift": None if lift is None else round(lift, 6),
        "voice": voice(named),
    }


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
