"""The engine: a step function over (state, event, now) that turns events into outcomes.

``Engine.step`` dedups the event, moves the clock, judges conditions at once, files deadline and
no_repeat events into the reorder buffer, then releases everything the watermark has passed. Outcomes
and rule errors are appended to ``outbox`` and ``errors``; the caller drains them.

Time: ``at`` values are event times in microseconds; ``now`` is the wall clock in microseconds, given by
the caller (live) or None (replay, where the clock is event time alone).
"""

from __future__ import annotations

import heapq
from heapq import heappush

from ..catalog.model import CONDITION, DEADLINE, Catalog
from ..events import Event
from .outcome import JUDGED, Outcome, RuleError
from .rules import DeadlineRule, NoRepeatRule
from .state import EngineState

DUPLICATE = 1
LATE = 2

_CONDITION, _QUEUED = 0, 1


class Engine:
    """One engine per partition (live) or per input (replay)."""

    def __init__(
        self,
        catalog: Catalog,
        state: EngineState | None = None,
        *,
        lateness: int | None = None,
        dedup_retention: int | None = None,
    ) -> None:
        self.catalog = catalog
        self.lateness = catalog.lateness if lateness is None else lateness
        self.dedup_retention = dedup_retention  # None: remember every id (replay)
        self.state = state or EngineState.empty(len(catalog.touchpoints))
        self.outbox: list = []
        self.errors: list[RuleError] = []
        self._compile()

    # -- plan -------------------------------------------------------------------------------------------
    def _compile(self) -> None:
        """Bind rules to the state and build the dispatch table: event type -> what to do with it."""
        state = self.state
        self.handlers: list[tuple | None] = []
        dispatch: dict[str, list[tuple]] = {}
        for index, touchpoint in enumerate(self.catalog.touchpoints):
            if touchpoint.kind == CONDITION:
                self.handlers.append(None)
                for event_type in sorted(touchpoint.opens.types):
                    dispatch.setdefault(event_type, []).append(
                        (_CONDITION, index, touchpoint.id, touchpoint.opens.where, touchpoint.good, None, 0)
                    )
                continue
            rule_class = DeadlineRule if touchpoint.kind == DEADLINE else NoRepeatRule
            rule = rule_class(index, touchpoint, state.open[index], state.queue, self.outbox)
            self.handlers.append(rule.handlers())
            roles = ((touchpoint.opens, rule.OPENER_RANK), (touchpoint.closes, 1 - rule.OPENER_RANK))
            for match, rank in roles:
                for event_type in sorted(match.types):  # type: ignore[union-attr]
                    dispatch.setdefault(event_type, []).append(
                        (_QUEUED, index, touchpoint.id, match.where, None, touchpoint.key, rank)  # type: ignore[union-attr]
                    )
        self.dispatch = {event_type: tuple(actions) for event_type, actions in dispatch.items()}

    @property
    def within(self) -> list[int | None]:
        return [t.within for t in self.catalog.touchpoints]

    def snapshot(self) -> dict:
        return self.state.to_dict()

    @classmethod
    def restore(cls, catalog: Catalog, data: dict, **options: int | None) -> Engine:
        state = EngineState.from_dict(data, [t.within for t in catalog.touchpoints])
        return cls(catalog, state, **options)  # type: ignore[arg-type]

    # -- the step ---------------------------------------------------------------------------------------
    def step(self, event: Event, now: int | None = None) -> int:
        """Process one event; return 0, DUPLICATE, or LATE (processed all the same)."""
        state = self.state
        event_id = event.id
        seen = state.seen
        known = len(seen)
        seen.add(event_id)
        if len(seen) == known:
            return DUPLICATE
        at = event.at
        if self.dedup_retention is not None:
            state.seen_order.append((at, event_id))

        watermark = state.watermark
        status = LATE if watermark is not None and at < watermark else 0
        max_at = state.max_at
        if max_at is None or at > max_at:
            state.max_at = at
            candidate = at - self.lateness
            if watermark is None or candidate > watermark:
                state.watermark = watermark = candidate
        state.last_arrival = now

        actions = self.dispatch.get(event.kind)
        if actions is not None:
            queue = state.queue
            for kind, index, touchpoint_id, where, good, key_field, rank in actions:
                if where is not None:
                    passes = where(event)
                    if not passes:
                        if passes is None:
                            self.errors.append(RuleError(touchpoint_id, event_id, f"where: {where.last_error}"))
                        continue
                if kind == _CONDITION:
                    verdict = good(event)
                    if verdict is None:
                        self.errors.append(RuleError(touchpoint_id, event_id, good.last_error))
                    else:
                        self.outbox.append(
                            Outcome(touchpoint_id, verdict, JUDGED, event.customer, event_id, at, at, event_id)
                        )
                    continue
                key = getattr(event.fields, key_field, None)
                if type(key) is not str or not key:
                    self.errors.append(RuleError(touchpoint_id, event_id, f"no '{key_field}' to key on"))
                    continue
                heappush(queue, (at, rank, event_id, index, key, event.customer))

        queue = state.queue
        if queue and queue[0][0] <= watermark:  # type: ignore[operator]
            self._release(watermark)
        return status

    def tick(self, now: int) -> None:
        """Let the wall clock move an idle clock (SPEC section 3).

        Once nothing has arrived for ``lateness``, the watermark moves on from ``max_at - lateness`` at
        the wall clock's rate, counted from the last arrival, and never beyond ``now - lateness``. Live,
        where event time follows the wall clock, a quiet source's deadline is decided at due + lateness;
        a backfill far in the past only moves on by the length of its pauses.
        """
        state = self.state
        if state.max_at is None or state.last_arrival is None:
            return
        quiet_for = now - state.last_arrival
        if quiet_for < self.lateness:
            return
        candidate = min(state.max_at - self.lateness + quiet_for, now - self.lateness)
        if state.watermark is None or candidate > state.watermark:
            state.watermark = candidate
            self._release(candidate)

    def finish(self) -> None:
        """End of a replay input: the watermark becomes the largest event time seen."""
        state = self.state
        if state.max_at is not None:
            state.watermark = state.max_at
            self._release(state.max_at)

    def pending(self) -> list[int]:
        """Undecided instances per touchpoint, in catalog order (conditions are never pending)."""
        return [len(instances) for instances in self.state.open]

    def _release(self, watermark: int | None) -> None:
        """Hand every queued event and due time up to the watermark to its rule, in event-time order."""
        if watermark is None:
            return
        queue, handlers, pop = self.state.queue, self.handlers, heapq.heappop
        while queue and queue[0][0] <= watermark:
            time, rank, event_id, index, key, last = pop(queue)
            handlers[index][rank](time, event_id, key, last)  # type: ignore[index]
        if self.dedup_retention is not None:
            self._forget(watermark - self.dedup_retention)

    def _forget(self, before: int) -> None:
        order, seen = self.state.seen_order, self.state.seen
        while order and order[0][0] < before:
            seen.discard(order.popleft()[1])
