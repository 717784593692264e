"""The engine: a step function over (state, event, now) that turns events into outcomes.

``Engine.step`` drops duplicates, moves the clock, judges conditions at once, files deadline and
no_repeat events into the queue, then releases everything the watermark has passed. Outcomes, rule
errors and failures (a rule that raised while deciding: a bug, see ``monitor.failures``) are appended to
``outbox``, ``errors`` and ``failures``, for the caller to drain; with ``outcomes=False`` (a
replay that needs only the counts) the outcomes are counted and not built. With ``track=True`` (the live
pipeline, which stores each customer's record) ``dirty`` names the customers whose state changed and
each customer's queued events are kept with its state; replay does without that bookkeeping.

Time: ``at`` values are event times in microseconds. The clock is the watermark. A replay's engine keeps
its own (the largest event time seen minus the lateness); live, the watermark follows the slowest input
(``monitor.watermark``) and the caller moves it with ``advance`` (``own_clock=False``).

Late history (docs/SEMANTICS.md): an event that arrives after the watermark passed it is history, and
is judged as history, never as a miss. It waits in the queue like any event, and while history is in
flight what is decided is *held* below the watermark (``state.held``), at the point up to which the
history has been read, so that a late start's deadline is not decided before the events that came with
it (its end, say) are read. Live, a late event holds it at once, at its own instant minus the
lateness, and then the caller says where to hold (``advance``, from ``monitor.watermark.History``:
before the history until it is read). A replay holds it itself, at
the largest late instant minus the lateness, until its input has gone on for the lateness with no late
event. The watermark itself never goes back: it says what is late, and what is too old.

Counts: each customer's state holds the outcomes it owns (so that a customer's record is its whole
change, written at once), and ``totals`` holds the sum over every customer, kept as they are counted, so
reading the counts costs nothing per customer. A customer with nothing open, queued or remembered is
freed by ``forget``: its counts move to ``folded``, which the caller keeps apart (a partition's record).
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from heapq import heappush
from operator import attrgetter

from ..catalog.expressions import Expression
from ..catalog.model import CONDITION, DEADLINE, Catalog
from ..contract.kinds import STRING
from ..contract.model import COMMON
from ..events import FIRST_INSTANT, Event
from ..failures import DECIDE, Failure
from ..window import Window
from .clock import ClockRule
from .fair import Fair
from .impact import DAY, TRIM_FROM, Impact, fingerprint
from .outcome import JUDGED, Outcome, RuleError
from .rules import DeadlineRule, NoRepeatRule
from .state import (
    ATTRIBUTION,
    ATTRIBUTION_RULE,
    DUE,
    END,
    IMPACT,
    RECORD_VERSION,
    SEPARATOR,
    START,
    CustomerState,
    Due,
    EngineState,
    Instance,
    Queued,
    make_entry,
)

DUPLICATE = 1
LATE = 2
TOO_OLD = 3  # older than the ids still remembered (``retention``): not judged
# A due line is rebuilt without the instances of customers unloaded since (``unload``) once they are
# more than half of it, and it holds at least this many: until then they wait in it, closed.
LINE_REBUILD_FROM = 64
# The wake-up heap (``wakes``) is rebuilt once it holds more than twice the customers away, plus this:
# a customer unloaded, put back by an event and unloaded again leaves its first entry behind.
WAKES_REBUILD_FROM = 1024


# -- the plan: what each event type sets off (Engine.dispatch) ---------------------------------------------
@dataclass(frozen=True, slots=True)
class Condition:
    """Judge the event at once: the condition touchpoint at ``index`` (when ``where`` lets it)."""

    position: int  # among its type's actions, in catalog order (rule errors are filed in that order)
    index: int
    touchpoint: str
    where: Expression | None
    good: Expression


@dataclass(frozen=True, slots=True)
class Role:
    """File the event in the queue for the rule at ``index``, at ``rank`` (its role: a start, an end,
    a trigger...), keyed by its field ``key_field`` (when ``where`` lets it). A leaving or an answer is
    filed to be attributed (rule ATTRIBUTION_RULE, rank IMPACT), keyed as ``Engine._attribute`` reads."""

    position: int
    index: int
    touchpoint: str
    where: Expression | None
    key_field: str
    # Whether the key field may be absent or not a string (an optional field, or not a string): then
    # it is checked as the event is filed (a rule error if it is); else the decoder has checked it.
    checks_key: bool
    key_of: Callable[[object], str]  # reads the key field of an event's fields
    rank: int
    due: Expression | None  # a deadline's start with ``due:``: its due instant, computed as it is filed


@dataclass(frozen=True, slots=True)
class Actions:
    """Everything an event of one type sets off: its roles are filed, then its conditions are judged."""

    roles: tuple[Role, ...]
    conditions: tuple[Condition, ...]
    # The roles with nothing to check (no where, a key the decoder guarantees, no due), as (rank, rule
    # index, key reader): filed without reading anything else of them; and the others.
    plain: tuple[tuple[int, int, Callable[[object], str | tuple]], ...] = field(init=False)
    checked: tuple[Role, ...] = field(init=False)

    def __post_init__(self) -> None:
        plain, checked = [], []
        for role in self.roles:
            if role.where is None and not role.checks_key and role.due is None:
                plain.append((role.rank, role.index, role.key_of))
            else:
                checked.append(role)
        object.__setattr__(self, "plain", tuple(plain))
        object.__setattr__(self, "checked", tuple(checked))


def _leaving(fields: object) -> str:
    """A leaving's key in the queue: none."""
    return ""


def _reach(window: Window) -> int:
    """How far back from its end a state window can reach, and a day more (held history, a bucket):
    how long a customer's latest bad outcome is kept for the distinct customers impacted in it."""
    span = window.span if window.span is not None else {"day": 1, "week": 7}.get(window.period or "", 31) * DAY
    return span + DAY


class Engine:
    """One engine per partition (live) or per input (replay)."""

    def __init__(
        self,
        catalog: Catalog,
        state: EngineState | None = None,
        *,
        lateness: int | None = None,
        track: bool = False,
        outcomes: bool = True,
        own_clock: bool = True,
        retention: int | None = None,
        fair: bool = False,
        count_active: bool = True,
    ) -> None:
        self.catalog = catalog
        # [good, bad] per touchpoint: every customer's, and of those freed, only theirs.
        self.totals: dict[str, list[int]] = {touchpoint_id: [0, 0] for touchpoint_id in catalog.ids}
        self.folded: dict[str, list[int]] = {touchpoint_id: [0, 0] for touchpoint_id in catalog.ids}
        # With ``fair``, the outcomes decided on data alone are told apart: what a replay's state is
        # judged on (engine.fair: the totals less what is kept apart, so an engine that loads or folds
        # records has none).
        self.fair = Fair(catalog.touchpoints, counted=self.totals) if fair else None
        # Live, ids are remembered for ``retention`` behind the watermark (``forget``): an event older
        # than that could be one already judged whose id is forgotten, so it is refused, never judged.
        self.retention = retention
        # Whether customers active are counted (``customers_active``: the live churn base, its metric); a
        # replay, whose churn lift counts its input's customers, can do without.
        self.count_active = count_active
        self.track = track
        self.own_clock = own_clock
        self.outcomes = outcomes
        self.lateness = catalog.lateness if lateness is None else lateness
        self.state = state or EngineState()
        self.outbox: list[Outcome] = []
        self.errors: list[RuleError] = []
        self.failures: list[Failure] = []  # what raised while deciding (see _release), for the caller to drain
        self.dirty: set[str] = set()
        self.ids = catalog.ids
        self.pending = [0] * len(self.ids)  # open instances per touchpoint, in memory or away (``unload``)
        # Customers unloaded with instances open (``unload``): how many, and a heap of (the instant they
        # must be back in memory by, customer) that ``waking`` reads as the clock moves on; ``_stale``,
        # per rule, its instances closed in its due line by an unload since the line was last rebuilt.
        self.away = 0
        self.wakes: list[tuple[int, str]] = []
        self._stale = [0] * len(self.ids)
        # Per touchpoint with at_risk: (customer, key) -> each of its instances at risk.
        self.risky: dict[int, dict[tuple[str, str], Instance]] = {}
        self._totals = [self.totals[touchpoint_id] for touchpoint_id in self.ids]  # the same pairs, by index
        # With ``fair``, the instant from which an outcome is fair, by index (set by ``_first``); without,
        # none is ever kept apart.
        self._fair_since = [FIRST_INSTANT] * len(self.ids)
        self.impact = Impact(  # (engine.impact)
            self.ids,
            catalog.attribution_left,
            bool(catalog.contract.answers),
            catalog.attribution_surveys,
            keyed=bool(catalog.about),
            reach=max((_reach(t.window) for t in catalog.touchpoints), default=0),
        )
        self._index = self.impact.position  # touchpoint id -> index
        # A good outcome's mark is added here (most outcomes are good): at << _mark_shift | its index's bits.
        self._marks_good = self.impact.marks_good
        self._mark_shift = self.impact.low + 1
        self._mark_bits = [index << self.impact.key_bits for index in range(len(self.ids))]
        self._mark_keep = self.impact.keep << self._mark_shift
        # With ``impact: {about: [...]}``, the fields of each type that name an instance (answers' and
        # conditions' events: a condition's outcome is of its event's instance).
        self._keyed = bool(catalog.about)
        self._about_fields = {
            d.type: names
            for d in catalog.contract.events
            if (names := tuple(f.name for f in d.fields if f.name in catalog.about))
        }
        # Live (``track``): each bad outcome that is its customer's latest of its touchpoint, as
        # (customer, touchpoint, the instant of the one before or -1, its instant), for the caller to
        # count its distinct customers impacted by window bucket (streams.partitions).
        self.latest_bad: list[tuple[str, str, int, int]] = []
        self._compile()

    # -- plan -------------------------------------------------------------------------------------------
    def _compile(self) -> None:
        """Bind rules to the state and build the dispatch table: event type -> what it sets off."""
        self.rules: list[DeadlineRule | NoRepeatRule | None] = []  # None for conditions
        found: dict[str, list[Role | Condition]] = {}
        for index, touchpoint in enumerate(self.catalog.touchpoints):
            if touchpoint.kind == CONDITION:
                self.rules.append(None)
                for event_type in sorted(touchpoint.opens.types):
                    actions = found.setdefault(event_type, [])
                    where, good = touchpoint.opens.where, touchpoint.good
                    actions.append(Condition(len(actions), index, touchpoint.id, where, good))  # type: ignore[arg-type]
                continue
            line = self.state.due_lines.setdefault(index, deque())
            outbox = self.outbox if self.outcomes else None
            queue, pending, count = self.state.queue, self.pending, self._count
            if touchpoint.clocked:
                risky = self.risky[index] = {}
                rule = ClockRule(index, touchpoint, queue, line, pending, count, outbox, risky=risky)
            elif touchpoint.kind == DEADLINE:
                rule = DeadlineRule(index, touchpoint, queue, line, pending, count, outbox)
            else:
                rule = NoRepeatRule(index, touchpoint, queue, line, pending, count, outbox)
            self.rules.append(rule)
            for match, rank in rule.roles(touchpoint):
                # A start of a deadline with due: carries its due instant, computed when it is queued.
                due = touchpoint.due if rank == START and touchpoint.kind == DEADLINE else None
                key_field = touchpoint.key
                for event_type in sorted(match.types):
                    actions = found.setdefault(event_type, [])
                    checks_key = not self._is_sure(event_type, key_field)  # type: ignore[arg-type]
                    role = Role(
                        len(actions),
                        index,
                        touchpoint.id,
                        match.where,
                        key_field,
                        checks_key,
                        attrgetter(key_field),
                        rank,
                        due,
                    )  # type: ignore[arg-type]
                    actions.append(role)
        # Leavings and answers wait for the watermark too, to be attributed in event-time order.
        contract = self.catalog.contract
        for event_type in sorted(contract.left | contract.answers):
            actions = found.setdefault(event_type, [])
            key_of = self._answer_key(event_type) if event_type in contract.answers else _leaving
            actions.append(Role(len(actions), ATTRIBUTION_RULE, ATTRIBUTION, None, "", False, key_of, IMPACT, None))
        self.dispatch = {
            event_type: Actions(
                tuple(action for action in actions if type(action) is Role),  # type: ignore[misc]
                tuple(action for action in actions if type(action) is Condition),  # type: ignore[misc]
            )
            for event_type, actions in sorted(found.items())
        }
        self.handlers: list[tuple[Callable | None, ...] | None] = [
            None if rule is None else rule.handlers() for rule in self.rules
        ]  # by rank
        self.handlers.append((None,) * IMPACT + (self._attribute,))  # ATTRIBUTION_RULE, the last

    def _is_sure(self, event_type: str, name: str) -> bool:
        """Whether every event of the type the decoder accepts has the field as a non-empty string (a
        required string, or a choice of strings)."""
        declared = self.catalog.contract.declaration(event_type)
        if declared is None:
            return False
        kinds = {f.name: f.kind for f in declared.required} | {field: kind for field, kind in COMMON}
        kind = kinds.get(name)
        return kind is STRING or (kind is not None and bool(kind.allowed) and all(kind.allowed))

    def _answer_key(self, event_type: str) -> Callable[[object], tuple]:
        """What keys an answer of the type in the queue: (survey, score, the fingerprint of the instance
        it is about through the catalog's ``about`` fields, the first set, or 0)."""
        names = self._about_fields.get(event_type, ()) if self._keyed else ()

        def key_of(fields: object) -> tuple:
            for name in names:
                about = getattr(fields, name, None)
                if type(about) is str and about:
                    return fields.survey, fields.score, fingerprint(about)  # type: ignore[attr-defined]
            return fields.survey, fields.score, 0  # type: ignore[attr-defined]

        return key_of

    def _attribute(self, at: int, event_id: str, key: str | tuple, customer: str, mine: CustomerState) -> None:
        """A leaving (key "") or an answer (key (survey, score, the fingerprint of the instance it is
        about or 0)), once the watermark has passed it."""
        if key:
            self.impact.answer(at, key[0], key[1], mine, key[2] if len(key) > 2 else 0)  # type: ignore[arg-type]
        else:
            self.impact.left(at, mine)

    def _about(self, event: Event) -> str | None:
        """The instance an event names through the catalog's ``about`` fields (the first set), if any."""
        for name in self._about_fields.get(event.kind, ()):
            value = getattr(event.fields, name, None)
            if type(value) is str and value:
                return value
        return None

    def _count(
        self,
        mine: CustomerState,
        index: int,
        touchpoint: str,
        good: bool,
        customer: str,
        at: int,
        key: str | None = None,
    ) -> None:
        """Count a decided instance (of ``key``) of the touchpoint (at ``index``) for the customer who
        owns it, and mark it at the instant of its outcome (``at``, engine.impact)."""
        if good:
            counts = mine.good
            if counts is None:
                counts = mine.good = {}
            if self._marks_good:  # (Impact.add, inlined)
                mark = at << self._mark_shift | self._mark_bits[index]
                if self._keyed and key:
                    mark |= fingerprint(key)
                marks, said = mine.recent, mine.said
                if said is not None and said[-1].at >= at:  # (an attribution it comes before: engine.impact)
                    self.impact.add(mine, mark, self._horizon())
                elif marks is None:
                    mine.recent = (mark,)
                elif len(marks) < TRIM_FROM and marks[0] >= mark - self._mark_keep:
                    # Nothing to trim (the watermark is not after ``at``). (Faster than (*marks, mark).)
                    mine.recent = marks + (mark,)  # noqa: RUF005
                else:
                    self.impact.add(mine, mark, self._horizon())
            self._totals[index][0] += 1
        else:
            counts = mine.bad
            if counts is None:
                counts = mine.bad = {}
            key_print = fingerprint(key) if self._keyed and key else 0
            before = self.impact.bad(mine, index, at, self._horizon(), key_print)
            if before is not None and self.track:
                self.latest_bad.append((customer, touchpoint, before, at))
            self._totals[index][1] += 1
        counts[touchpoint] = counts.get(touchpoint, 0) + 1
        if at < self._fair_since[index]:  # kept apart (engine.fair: the others are fair, counted)
            self.fair.add(touchpoint, good, at)  # type: ignore[union-attr]
        if self.track:
            self.dirty.add(customer)

    def _horizon(self) -> int | None:
        """No leaving or answer still to be attributed, and no event that is not late, is before this:
        the watermark, or the earliest entry still queued (while a release runs, or a step has moved
        the clock and not released yet). What impact keeps of a customer is trimmed up to here."""
        state = self.state
        watermark, queue = state.watermark, state.queue
        if watermark is None or not queue:
            return watermark
        return min(watermark, queue[0][0])

    # -- the step ---------------------------------------------------------------------------------------
    def step(self, event: Event) -> int:
        """Process one event; return 0, DUPLICATE, LATE (processed all the same), or TOO_OLD (older than
        the watermark minus the retention, with a retention: not processed, and nothing changed).

        An event is applied whole or not at all: if judging it raises (a rule's expression, say), what
        it had changed is taken back before the error goes on (``_take_back``), so the event leaves no
        trace and can be sent again once the cause is fixed. Conditions are counted and rule errors
        filed once every action has been judged, so that only queued entries can need taking back. What
        the watermark then releases is guarded entry by entry (see ``_release``)."""
        state = self.state
        at, watermark = event.at, state.watermark
        status = LATE if watermark is not None and at < watermark else 0
        if status and self.retention is not None and at < watermark - self.retention:  # type: ignore[operator]
            return TOO_OLD
        customer = event.customer
        mine = state.customers.get(customer)
        if mine is None:
            mine = state.customers[customer] = CustomerState()
        event_id = event.id
        seen = mine.seen
        if event_id in seen:
            return DUPLICATE
        seen[event_id] = at
        track = self.track
        if track:
            self.dirty.add(customer)

        before = watermark
        if state.min_at is None or at < state.min_at:  # (a restored first data stays: only earlier moves it)
            self._first(at)
        max_at = state.max_at
        if max_at is None or at > max_at:
            state.max_at = at
            if self.own_clock:
                candidate = at - self.lateness
                if watermark is None or candidate > watermark:
                    state.watermark = watermark = candidate
        held = state.held

        actions = self.dispatch.get(event.kind)
        if actions is not None:
            queue, fields = state.queue, event.fields
            verdicts = None  # conditions' verdicts, (condition, good), counted once every action is judged
            problems = None  # rule errors, (position, touchpoint, message), filed then
            try:
                for rank, index, key_of in actions.plain:
                    queued = make_entry(Queued, (at, rank, event_id, index, key_of(fields), customer, mine))
                    heappush(queue, queued)
                    if track:
                        if mine.queued is None:
                            mine.queued = set()
                        mine.queued.add(queued)
                for role in actions.checked:
                    where = role.where
                    if where is not None:
                        passes = where(event)
                        if not passes:
                            if passes is None:
                                problem = (role.position, role.touchpoint, f"where: {where.last_error}")
                                problems = [*(problems or ()), problem]
                            continue
                    if role.checks_key:
                        key = getattr(fields, role.key_field, None)
                        if type(key) is not str or not key:
                            problem = (role.position, role.touchpoint, f"no '{role.key_field}' to key on")
                            problems = [*(problems or ()), problem]
                            continue
                    else:
                        key = role.key_of(fields)
                    due = role.due
                    if due is not None:  # a deadline's due: the start's due instant, with its key
                        instant = due(event)
                        if instant is None:
                            problems = [*(problems or ()), (role.position, role.touchpoint, f"due: {due.last_error}")]
                            continue
                        key = (key, instant)
                    queued = make_entry(Queued, (at, role.rank, event_id, role.index, key, customer, mine))
                    heappush(queue, queued)
                    if track:
                        if mine.queued is None:
                            mine.queued = set()
                        mine.queued.add(queued)
                for condition in actions.conditions:
                    where = condition.where
                    if where is not None:
                        passes = where(event)
                        if not passes:
                            if passes is None:
                                problem = (condition.position, condition.touchpoint, f"where: {where.last_error}")
                                problems = [*(problems or ()), problem]
                            continue
                    good = condition.good
                    verdict = good(event)
                    if verdict is None:
                        problem = (condition.position, condition.touchpoint, f"good: {good.last_error}")
                        problems = [*(problems or ()), problem]
                    elif verdicts is None:
                        verdicts = [(condition, verdict)]
                    else:
                        verdicts.append((condition, verdict))
            except BaseException:
                self._take_back(event, mine, max_at, before, held)
                raise
            if verdicts is not None:
                about = self._about(event) if self._keyed else None
                for condition, verdict in verdicts:
                    touchpoint_id = condition.touchpoint
                    self._count(mine, condition.index, touchpoint_id, verdict, customer, at, about)
                    if self.outcomes:
                        self.outbox.append(
                            Outcome(touchpoint_id, verdict, JUDGED, customer, event_id, at, at, event_id)
                        )
            if problems is not None:
                for _, touchpoint_id, message in sorted(problems):  # (in catalog order)
                    self.errors.append(RuleError(touchpoint_id, event_id, message))

        # The customer's first event of a UTC day counts it active that day (customers active, engine.impact):
        # the days it holds are its days from the horizon's on (an event of an earlier one is late).
        if self.count_active:
            day, days = at // DAY, mine.days
            if days is None or day not in days:
                impact = self.impact
                day = impact.names.setdefault(day, day)  # (one object for each day customers hold)
                if days is None:
                    mine.days = (day,)
                else:  # (_horizon, inlined)
                    queue, horizon = state.queue, state.watermark
                    if queue and horizon is not None and queue[0][0] < horizon:
                        horizon = queue[0][0]
                    if len(days) == 1 and horizon is not None:  # (most: a day before, kept while the horizon is in it)
                        mine.days = (days[0], day) if (days[0] + 1) * DAY > horizon else (day,)
                    else:
                        floor = -1 if horizon is None else horizon // DAY
                        mine.days = (*[d for d in days if d >= floor], day)
                mine.active += 1
                impact.active_total += 1
        queue = state.queue
        if not status and held is None:  # (most steps) what is decided is what the watermark has passed
            if queue and watermark is not None and queue[0][0] <= watermark:
                self._release(watermark)
            return status
        if status:
            self._hold(at)
        elif self.own_clock and state.max_at - state.history[1] >= self.lateness:  # type: ignore[index,operator]
            state.held = state.history = None  # the input went on for the lateness: its history is read
        decided = self.mark()
        if decided is not None and queue and queue[0][0] <= decided:
            self._release(decided)
        return status

    def _first(self, at: int) -> None:
        """The first data is now at ``at`` (a state warms up from it)."""
        self.state.min_at = at
        if self.fair is not None:
            self.fair.first(at)
            self._fair_since = [self.fair.since[touchpoint_id] for touchpoint_id in self.ids]

    def mark(self) -> int | None:
        """What is decided: what the watermark has passed, or while history is held, what that has."""
        return _decided(self.state.watermark, self.state.held)

    def _hold(self, at: int) -> None:
        """A late event, history: hold what is decided so that nothing after its instant minus the
        lateness is (a replay: at the largest late instant of its history, minus the lateness)."""
        state = self.state
        if self.own_clock:
            history = state.history
            if history is None:
                history = state.history = [at, state.max_at]  # type: ignore[list-item]
            elif at > history[0]:
                history[0] = at
            history[1] = state.max_at  # type: ignore[call-overload]
            state.held = history[0] - self.lateness
        else:
            floor = at - self.lateness
            if state.held is None or floor < state.held:
                state.held = floor

    def advance(self, watermark: int | None, held: int | None = None) -> None:
        """Move the clock on to ``watermark`` (never back), hold what is decided at ``held`` while
        history is in flight (None: nothing held), and decide what that passes."""
        state = self.state
        if watermark is not None and (state.watermark is None or watermark > state.watermark):
            state.watermark = watermark
        state.held = held
        mark = self.mark()
        queue = state.queue
        if mark is not None and queue and queue[0][0] <= mark:
            self._release(mark)

    def finish(self, until: int | None = None) -> None:
        """End of a replay input: everything is read (nothing is held), and the watermark becomes the
        largest event time seen, or ``until`` (what a live worker whose watermark is there has
        decided; never back)."""
        state = self.state
        state.held = state.history = None
        target = state.max_at if until is None else until
        if target is not None and (state.watermark is None or target > state.watermark):
            state.watermark = target
        self._release(state.watermark)

    def _release(self, until: int | None) -> None:
        """Hand every queued event and due time up to ``until`` (what is decided) to its rule, in
        event-time order."""
        if until is None:
            return
        state = self.state
        queue, handlers, pop = state.queue, self.handlers, heapq.heappop
        lines, track, dirty = state.due_lines, self.track, self.dirty
        while queue and queue[0][0] <= until:
            entry = pop(queue)
            try:
                if type(entry) is Due:  # a due time (or a risk time, never in a line)
                    at, rank, customer, index, key, instance, mine = entry
                    if rank == DUE:
                        line = lines[index]
                        if line and line[0] is instance:  # the head of its due line: the next one open takes its place
                            line.popleft()
                            while line and not line[0].open:
                                line.popleft()  # decided before its due time: nothing to do, not even a heap push
                            if line:
                                head = line[0]
                                heappush(
                                    queue,
                                    make_entry(
                                        Due, (head.due, DUE, head.customer, index, head.key, head, head.customer_state)
                                    ),
                                )
                    if instance.open:
                        handlers[index][rank](at, customer, key, instance, mine)  # type: ignore[index]
                else:
                    at, rank, event_id, index, key, customer, mine = entry
                    if track:
                        queued = mine.queued
                        if queued is not None:
                            queued.discard(entry)
                            if not queued:
                                mine.queued = None
                        dirty.add(customer)
                    handlers[index][rank](at, event_id, key, customer, mine)  # type: ignore[index]
            except Exception as error:
                # A bug in a rule: this entry is dropped (put back, it would raise again at every step
                # and stall the partition), the others are decided.
                self._failed(entry, error)

    def _take_back(
        self, event: Event, mine: CustomerState, max_at: int | None, watermark: int | None, held: int | None
    ) -> None:
        """Undo what a step that raised had done: the event's queued entries, its id, the clock (but when
        it arrived: it did arrive); a customer the event had created goes again. (Conditions and rule
        errors are applied only once the step has judged every action.)"""
        state, event_id = self.state, event.id
        mine.seen.pop(event_id, None)
        state.max_at, state.watermark, state.held = max_at, watermark, held
        queue = state.queue
        kept = [
            entry
            for entry in queue
            if type(entry) is Due or entry.event_id != event_id or entry.customer_state is not mine
        ]
        if len(kept) < len(queue):
            queue[:] = kept
            heapq.heapify(queue)
        if mine.queued is not None:  # ids are unique within a customer: its entries of this id are the step's
            mine.queued = {entry for entry in mine.queued if entry.event_id != event_id} or None
        if mine.is_empty():
            del state.customers[event.customer]
            self.dirty.discard(event.customer)

    def _failed(self, entry: Queued | Due, error: Exception) -> None:
        """Record a rule that raised on a queued event or a due time. An instance whose due time failed
        is closed undecided, so that it is neither left open for ever nor scheduled again when its
        customer's record is put back (where it would raise again)."""
        index = entry.rule_index
        touchpoint = self.ids[index] if index != ATTRIBUTION_RULE else None
        customer = entry.customer
        if type(entry) is Due:  # a due or risk time: the event that opened the instance
            instance, mine = entry.instance, entry.customer_state
            event_id = instance.opened_by
            name = self.rules[index].prefix + entry.key  # type: ignore[union-attr]
            if entry.rank == DUE and instance.open and mine.open.get(name) is instance:
                del mine.open[name]
                instance.open = False
                self.pending[index] -= 1
                self.risky.get(index, {}).pop((customer, entry.key), None)
                if self.track:
                    self.dirty.add(customer)
        else:
            event_id = entry.event_id
        self.failures.append(Failure(DECIDE, error, event_id=event_id, customer=customer, touchpoint=touchpoint))

    def forget(self, before: int) -> tuple[list[str], list[str]]:
        """Forget event ids older than ``before`` (live keeps a day of them, in event time); return the
        customers changed and those freed. A customer left with nothing open, queued or remembered is
        freed: its counts move to ``folded``."""
        changed: list[str] = []
        freed: list[str] = []
        for more, gone in self.forget_in_chunks(before, None):
            changed += more
            freed += gone
        return changed, freed

    def forget_in_chunks(
        self, before: int, size: int | None, among: Iterable[str] | None = None
    ) -> Iterator[tuple[list[str], list[str]]]:
        """``forget`` in one pass over the customers (or those of ``among`` in memory), a chunk at a time:
        (changed, freed) for every ``size`` customers freed (and the rest last), each chunk's counts
        folded before it is given, so that a caller can store the counts naming the chunk's customers
        before it deletes them."""
        changed: list[str] = []
        freed: list[str] = []
        customers = self.state.customers
        impact = self.impact
        now = self._horizon()
        now = before if now is None else now
        if among is None:
            passed = list(customers.items())
        else:
            passed = [(customer, customers[customer]) for customer in among if customer in customers]
        for customer, mine in passed:
            if customers.get(customer) is not mine:
                continue  # gone since the pass began (unloaded or erased: the caller's)
            seen = mine.seen
            old = [event_id for event_id, at in seen.items() if at < before]
            if not old and seen:
                continue
            for event_id in old:
                del seen[event_id]
            if old:
                changed.append(customer)
                if mine.said is not None:
                    impact.forget(mine, before)
            if (mine.recent or mine.days) and not seen and impact.prune(mine, now) and not old:
                changed.append(customer)
            if not (seen or mine.open or mine.queued or mine.recent or mine.days):
                self._fold(mine)
                del customers[customer]
                freed.append(customer)
                if size is not None and len(freed) >= size:
                    yield self._forgotten(changed, freed)
                    changed, freed = [], []
        yield self._forgotten(changed, freed)

    def erase(self, customer: str) -> bool:
        """Erase a customer on request (docs/SECURITY.md, "Forgetting a customer"): its open instances
        go undecided (no outcome: the pending gauges drop), its queued events and due times leave the
        queue, and its remembered ids, marks, attributions and active days go. What it had counted
        stays, as a freed customer's does (``folded``): counts name nobody. A later event of the
        customer starts from nothing, as a new customer's. Call it between steps, the outbox drained
        (what is in it is counted as it is filed). Returns whether it held anything."""
        state = self.state
        mine = state.customers.pop(customer, None)
        if mine is None:
            return False
        self._close_open(mine)
        mine.open.clear()  # (an instance names its customer's state: what they hold goes with them)
        for risky in self.risky.values():
            for pair in [pair for pair in risky if pair[0] == customer]:
                del risky[pair]
        # Every entry of the queue and every instance of a due line names its customer's state: the
        # customer's go, and each due line keeps its head's due time in the heap (engine.state).
        kept = [entry for entry in state.queue if entry.customer_state is not mine]
        changed = len(kept) != len(state.queue)
        for index, line in state.due_lines.items():
            if any(instance.customer_state is mine for instance in line):
                head = line[0]
                others = [instance for instance in line if instance.customer_state is not mine]
                line.clear()
                line.extend(others)
                if line and line[0] is not head:
                    kept.append(self.rules[index].due_time(line[0]))  # type: ignore[union-attr]
                    changed = True
        if changed:
            state.queue[:] = kept
            heapq.heapify(state.queue)
        self._fold(mine)
        if self.track:
            self.dirty.add(customer)  # its record goes (a tombstone, live)
        return True

    def _close_open(self, mine: CustomerState) -> None:
        """A customer's open instances undecided and out of ``pending`` (their due times do nothing)."""
        for name, instance in mine.open.items():
            instance.open = False
            index = self._index.get(name.split(SEPARATOR, 1)[0])
            if index is not None:
                self.pending[index] -= 1

    def _fold(self, mine: CustomerState) -> None:
        """A customer leaving the state (freed, or erased on request): what it counted moves to
        ``folded`` (counts name nobody), and its impact marks go."""
        folded = self.folded
        for column, counts in ((0, mine.good), (1, mine.bad)):
            for touchpoint, count in (counts or {}).items():
                folded.setdefault(touchpoint, [0, 0])[column] += count
        self.impact.free(mine)

    def _forgotten(self, changed: list[str], freed: list[str]) -> tuple[list[str], list[str]]:
        if self.track:
            self.dirty.update(changed)
            self.dirty.update(freed)
        return changed, freed

    def compact(self) -> None:
        """Rebuild the customers' dict at its size: a dict keeps the table it grew to, so after many
        customers are freed it would hold their room for ever."""
        self.state.customers = dict(self.state.customers)

    # -- records: one customer's part of the state, for storage ------------------------------------------
    def record(self, customer: str) -> dict | None:
        """The customer's part of the state as JSON-ready data (None when there is nothing to keep)."""
        mine = self.state.customers.get(customer)
        if mine is None:
            return None
        return {**mine.record(self.ids), **self.impact.record(mine)}

    def load(self, customer: str, record: dict, counted: bool = False) -> None:
        """Put a stored customer record back: open instances, their due times, queued events, ids, counts.
        ``counted``: a customer unloaded before (``unload``) or counted at a restore (``count``), whose
        counts are in the totals already."""
        state = self.state
        if customer in state.customers:  # a state replaced: its instances at risk go with it
            for risky in self.risky.values():
                for pair in [pair for pair in risky if pair[0] == customer]:
                    del risky[pair]
        mine = state.customers[customer] = CustomerState()
        try:
            self._put_back(customer, record, mine, counted)
        except Exception:  # a record this version cannot read: nothing of it is left half put back
            self._close_open(mine)
            if mine.queued:
                state.queue[:] = [entry for entry in state.queue if entry.customer_state is not mine]
                heapq.heapify(state.queue)
            if state.customers.get(customer) is mine:
                del state.customers[customer]
            raise
        if counted:  # away (``unload``, ``count``): its instances were in ``pending`` already
            indices = self._away(record["open"])[0]
            if indices:
                for index in indices:
                    self.pending[index] -= 1
                self.away -= 1

    def _put_back(self, customer: str, record: dict, mine: CustomerState, counted: bool) -> None:
        state = self.state
        for touchpoint_id, key, *stored in record["open"]:
            rule = self._rule(touchpoint_id)
            if rule is None:
                continue  # a touchpoint no longer in the catalog
            rule.revive(stored, customer, key, mine)
        old_ranks = record.get("v", 1) < RECORD_VERSION
        for at, rank, event_id, touchpoint_id, key in record["queued"]:
            if rank == IMPACT and touchpoint_id == ATTRIBUTION:
                key = tuple(key) if type(key) is list else key
                entry = Queued(at, rank, event_id, ATTRIBUTION_RULE, key, customer, mine)
                if mine.queued is None:
                    mine.queued = set()
                mine.queued.add(entry)
                heappush(state.queue, entry)
                continue
            rule = self._rule(touchpoint_id)
            if rule is None:
                continue
            if old_ranks and rank == 1 and isinstance(rule, DeadlineRule):
                rank = END  # version 1 ranked a deadline's end 1
            if rank not in rule.ranks:
                continue  # a pause or resume queued before the touchpoint stopped pausing
            due_rule = isinstance(rule, ClockRule) and rule.uses_due
            if type(key) is list:
                key = tuple(key) if due_rule else key[0]  # a start with its due instant (due:)
            elif rank == START and due_rule:
                continue  # queued before its touchpoint had due: its due instant is unknown
            entry = Queued(at, rank, event_id, rule.index, key, customer, mine)
            if mine.queued is None:
                mine.queued = set()
            mine.queued.add(entry)
            heappush(state.queue, entry)
        for event_id, at in record["seen"]:
            mine.seen[event_id] = at
            if state.max_at is None or at > state.max_at:
                state.max_at = at
            if state.min_at is None or at < state.min_at:
                state.min_at = at
        mine.good, mine.bad = dict(record["good"]) or None, dict(record["bad"]) or None
        self.impact.load(mine, record, counted)
        if not counted:
            self._add_totals(mine.good, mine.bad)
        if self.own_clock and state.max_at is not None:
            candidate = state.max_at - self.lateness
            if state.watermark is None or candidate > state.watermark:
                state.watermark = candidate

    def _add_totals(self, good: dict[str, int] | None, bad: dict[str, int] | None) -> None:
        totals = self.totals
        for column, counts in ((0, good), (1, bad)):
            for touchpoint, count in (counts or {}).items():
                totals.setdefault(touchpoint, [0, 0])[column] += count

    def count(self, customer: str, record: dict) -> bool:
        """Leave a stored customer out of memory (a restore): what it counted goes into the totals, its
        instants into the clock's bounds and its open instances into ``pending``, as ``load`` would take
        them, and ``load(customer, record, counted=True)`` puts it back at its next event, or before the
        clock reaches what it has due (``waking``). Returns False, having done nothing, for a customer
        that must be loaded instead: one waiting on the watermark, or whose instances are due by what is
        decided (or that has instances open, on an engine keeping its own clock)."""
        if record["queued"]:
            return False
        indices, wake = self._away(record["open"])
        if indices:
            if not self._file_away(customer, wake):
                return False
            for index in indices:
                self.pending[index] += 1
        state = self.state
        for _, at in record["seen"]:
            if state.max_at is None or at > state.max_at:
                state.max_at = at
            if state.min_at is None or at < state.min_at:
                state.min_at = at
        self._add_totals(record["good"], record["bad"])
        self.impact.count(record)
        return True

    def unload(self, customer: str) -> bool:
        """Take a customer out of memory until its next event, its record stored (not ``dirty``) and
        nothing of it waiting on the watermark. One with instances open leaves only on an engine whose
        clock the caller moves (``own_clock=False``), with nothing at risk and nothing due by what is
        decided: its instances stay in ``pending`` and it is put back before the clock reaches their
        next due or risk time (``waking``). What it counted stays in the totals; ``load(customer,
        record, counted=True)`` puts it back. Returns whether it was unloaded."""
        mine = self.state.customers.get(customer)
        if mine is None or mine.queued or customer in self.dirty:
            return False
        if mine.open:
            for name in mine.open:
                touchpoint_id, key = name.split(SEPARATOR, 1)
                if (customer, key) in self.risky.get(self._index[touchpoint_id], ()):
                    return False
            if not self._file_away(customer, self._away(mine.open_record())[1]):
                return False
            lines, stale = self.state.due_lines, self._stale
            for name, instance in mine.open.items():
                # Its due time, in a due line or the heap, now does nothing; the instance no longer holds
                # the customer's state in memory.
                instance.open = False
                instance.customer_state = None  # type: ignore[assignment]
                index = self._index[name.split(SEPARATOR, 1)[0]]
                stale[index] += 1
                line = lines.get(index)
                if line is not None and len(line) >= LINE_REBUILD_FROM and stale[index] > len(line) // 2:
                    self._rebuild_line(index, line)
        del self.state.customers[customer]
        # The due times of its closed or decided instances, in the heap until their instants, name this
        # state: it is emptied so that they hold nothing more of the customer (its record has it all).
        mine.open.clear()
        mine.seen.clear()
        mine.good = mine.bad = mine.recent = mine.impact = mine.days = mine.said = None
        return True

    def _file_away(self, customer: str, wake: int | None) -> bool:
        """Count a customer with instances open away, filed to wake at ``wake`` (the first of their due
        or risk times: ``_away``); or, when it may not be away, return False."""
        if self.own_clock:
            return False  # (its clock moves in its steps: nothing would put the customer back in time)
        mark = self.mark()
        if wake is not None and mark is not None and wake <= mark:
            return False
        self.away += 1
        if wake is not None:
            heappush(self.wakes, (wake, customer))
            if len(self.wakes) > 2 * self.away + WAKES_REBUILD_FROM:
                self._rebuild_wakes()
        return True

    def _away(self, opened: list[list]) -> tuple[list[int], int | None]:
        """Instances as a record keeps them: the rule of each that ``load`` puts back, and the first
        instant one of them is due or at risk (None: only an event acts on them, as on a paused SLA
        clock)."""
        indices: list[int] = []
        wake = None
        for touchpoint_id, _, *stored in opened:
            rule = self._rule(touchpoint_id)
            if rule is None or not rule.keeps(stored):
                continue  # (``load`` drops it: not pending)
            indices.append(rule.index)
            at = rule.wake(stored)
            if at is not None and (wake is None or at < wake):
                wake = at
        return indices, wake

    def may_prune(self, record: dict) -> bool:
        """Whether retention could drop anything of a stored customer that remembers no id (its marks or
        active days, ``forget``)."""
        now = self._horizon()
        return now is not None and self.impact.may_prune(record, now)

    def waking(self, watermark: int | None, held: int | None = None) -> list[str]:
        """The customers away that must be back in memory (``load``) before ``advance(watermark, held)``:
        those with something due or at risk by what it will have decided. Each is given once."""
        wakes = self.wakes
        if not wakes:
            return []
        state = self.state
        if watermark is None or (state.watermark is not None and watermark < state.watermark):
            watermark = state.watermark
        mark = _decided(watermark, held)
        if mark is None:
            return []
        customers, found = state.customers, {}
        while wakes and wakes[0][0] <= mark:
            customer = heapq.heappop(wakes)[1]
            if customer not in customers:
                found[customer] = None
        return list(found)

    def wake_again(self, customer: str) -> None:
        """A customer ``waking`` gave that could not be put back (its record could not be read): given
        again by the next ``waking``, until it is."""
        mark = self.mark()
        heappush(self.wakes, (FIRST_INSTANT if mark is None else mark, customer))

    def _rebuild_line(self, index: int, line: deque[Instance]) -> None:
        """A due line without its closed instances; its new head's due time goes into the heap (the old
        head's, already there, then does nothing: engine.state)."""
        head = line[0]
        kept = [instance for instance in line if instance.open]
        line.clear()
        line.extend(kept)
        self._stale[index] = 0
        if line and line[0] is not head:
            heappush(self.state.queue, self.rules[index].due_time(line[0]))  # type: ignore[union-attr]

    def _rebuild_wakes(self) -> None:
        """The wake-up heap with one entry per customer still away, its earliest."""
        customers, earliest = self.state.customers, {}
        for at, customer in self.wakes:
            if customer not in customers and (customer not in earliest or at < earliest[customer]):
                earliest[customer] = at
        self.wakes = [(at, customer) for customer, at in earliest.items()]
        heapq.heapify(self.wakes)

    def _rule(self, touchpoint_id: str) -> DeadlineRule | NoRepeatRule | None:
        """The rule of a deadline or no_repeat touchpoint still in the catalog."""
        index = self._index.get(touchpoint_id)
        return None if index is None else self.rules[index]

    def saved(self) -> dict:
        """The engine's own part of its stored state, beside each customer's ``record``: its clock, and
        what the customers freed had counted. A worker keeps it in each partition's record
        (streams.partitions); ``resume`` takes it back, then ``load`` each customer, then ``settle``."""
        state = self.state
        return {
            "watermark": state.watermark,
            "held": state.held,
            "first": state.min_at,
            "newest": state.max_at,
            "late": state.history,  # (an engine keeping its own clock: the late history it holds for)
            "folded": self.folded,
            "impact": self.impact.folded,
            "active": self.impact.active_folded,
        }

    def resume(self, saved: dict) -> None:
        """Take back what ``saved`` gave, before the customers' records are loaded."""
        state = self.state
        self.fold(saved["folded"], saved.get("impact"), saved.get("active", 0))
        state.watermark = saved["watermark"]
        state.held = saved.get("held")
        state.history = saved.get("late")
        first, newest = saved.get("first"), saved.get("newest")
        if first is not None and (state.min_at is None or first < state.min_at):
            state.min_at = first
        if newest is not None and (state.max_at is None or newest > state.max_at):
            state.max_at = newest

    def settle(self) -> None:
        """After records are put back: what they filed at or before what is decided (risk instants;
        nothing else can be there) is taken at once, so a restored engine says what is at risk."""
        self._release(self.mark())

    def fold(
        self, counts: dict[str, list[int]], impact: dict[str, dict[str, float]] | None = None, active: int = 0
    ) -> None:
        """Take the counts and impact tallies of customers freed before (a partition's record) into
        ``folded`` and ``totals``."""
        for touchpoint, pair in counts.items():
            for column in (0, 1):
                self.folded.setdefault(touchpoint, [0, 0])[column] += pair[column]
                self.totals.setdefault(touchpoint, [0, 0])[column] += pair[column]
        self.impact.fold(impact or {}, active)

    # -- reading ----------------------------------------------------------------------------------------
    def at_risk_counts(self) -> dict[str, int]:
        """Instances at risk now, per touchpoint with at_risk (docs/SEMANTICS.md, "SLA clocks")."""
        return {self.ids[index]: len(risky) for index, risky in self.risky.items()}

    def at_risk(self) -> list[dict]:
        """Each instance at risk now: touchpoint, customer, key, and the time left at the watermark
        (open hours, with a calendar), soonest first."""
        watermark = self.state.watermark
        found = []
        for index, risky in self.risky.items():
            rule = self.rules[index]
            for (customer, key), instance in risky.items():
                left = rule.left(instance, watermark if watermark is not None else instance.opened_at)  # type: ignore[union-attr]
                found.append({"touchpoint": self.ids[index], "customer_id": customer, "key": key, "left": left})
        found.sort(key=lambda item: (item["left"], item["touchpoint"], item["customer_id"], item["key"]))
        return found

    def impact_totals(self) -> dict[str, dict[str, float]]:
        """Impact tallies per touchpoint, over every customer (freed ones too): engine.impact."""
        return self.impact.totals

    def customers_active(self) -> int:
        """Customers active, once per customer and UTC day, over every customer (freed ones too)."""
        return self.impact.active_total

    def pending_counts(self) -> dict[str, int]:
        """Open instances per touchpoint (conditions are never pending)."""
        return dict(zip(self.ids, self.pending, strict=True))

    def counts(self) -> dict[str, list[int]]:
        """[good, bad] per touchpoint, over every customer (freed ones too)."""
        return {touchpoint_id: list(pair) for touchpoint_id, pair in self.totals.items()}


def _decided(watermark: int | None, held: int | None) -> int | None:
    """What is decided at a watermark while history holds at ``held`` (None: nothing is held)."""
    return watermark if held is None or watermark is None or held > watermark else held
