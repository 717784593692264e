"""The engine when its own code raises (a bug, docs/EVENTS.md): an event is applied whole or not at all,
and a rule that raises while deciding loses its one entry, never the partition's clock."""

from __future__ import annotations

import contextlib
import dataclasses

import pytest

from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.engine.outcome import RuleError
from monitor.engine.state import DUE
from monitor.failures import DECIDE
from tests.builders import DAY, HOUR, event

LATENESS = parse_duration("30s")


class Poisoned(Exception):
    pass


def poison(engine: Engine, event_type: str, position: int, what: str = "where") -> None:
    """Make the filter (or condition) of the event type's action at ``position`` (in catalog order) raise
    on events whose id starts with 'poison'."""
    actions = engine.dispatch[event_type]
    (action,) = [a for a in (*actions.roles, *actions.conditions) if a.position == position]
    original = getattr(action, what)

    def raising(event):  # type: ignore[no-untyped-def]
        if event.id.startswith("poison"):
            raise Poisoned(event.id)
        return True if original is None else original(event)

    replaced = dataclasses.replace(action, **{what: raising})
    engine.dispatch[event_type] = dataclasses.replace(
        actions,
        roles=tuple(replaced if a is action else a for a in actions.roles),
        conditions=tuple(replaced if a is action else a for a in actions.conditions),
    )


def history() -> list:
    return [
        event("customer.joined", 0, customer="c1"),
        event("ticket.opened", 10, customer="c1", ticket_id="t1"),
        event("call.ended", 20, customer="c1", call_id="k1", resolved=True),
        event("bill.issued", 30, customer="c2", bill_id="b1"),
        event("ticket.resolved", 2 * HOUR, customer="c1", ticket_id="t1"),
        event("order.placed", 3 * HOUR, customer="c2", order_id="o1"),
    ]


def stepped(catalog, events, poisoned=None):  # type: ignore[no-untyped-def]
    engine = Engine(catalog, lateness=LATENESS, track=True)
    healthy = dict(engine.dispatch)
    if poisoned:
        poison(engine, *poisoned)
    for e in events:
        with contextlib.suppress(Poisoned):
            engine.step(e)
    engine.dispatch = healthy  # the bug is fixed
    return engine


POISONS = [
    ("a ticket's third action (two queued before it)", "ticket.opened", 2, "where", "ticket_id", "t2"),
    ("a ticket's first action", "ticket.opened", 0, "where", "ticket_id", "t2"),
    ("a call's trigger (filed before its condition is judged)", "call.ended", 1, "where", "call_id", "k2"),
    ("a call's condition itself, after its trigger was filed", "call.ended", 0, "good", "call_id", "k2"),
]


@pytest.mark.parametrize(
    ("event_type", "position", "what", "key", "value"), [p[1:] for p in POISONS], ids=[p[0] for p in POISONS]
)
def test_an_event_whose_step_raises_leaves_no_trace(catalog, event_type, position, what, key, value):
    extra = {"resolved": True} if event_type == "call.ended" else {}
    bad = event(event_type, 40, customer="c3", event_id="poison-1", **{key: value}, **extra)
    events = history()
    with_poison = stepped(catalog, [*events[:3], bad, *events[3:]], (event_type, position, what))
    without = stepped(catalog, events)
    assert stored(with_poison) == stored(without)
    assert with_poison.pending == without.pending and with_poison.errors == without.errors == []
    # Sent again once the cause is fixed, it is judged as if it had come the first time (not a duplicate).
    fixed = event(event_type, 40, customer="c3", event_id="poison-1", **{key: value}, **extra)
    assert with_poison.step(fixed) != 1
    everything = stepped(catalog, [*events, fixed])
    with_poison.finish()
    everything.finish()
    assert with_poison.counts() == everything.counts()


def test_a_step_that_raises_leaves_the_customer_it_would_have_created_out(catalog):
    engine = Engine(catalog, lateness=LATENESS, track=True)
    poison(engine, "ticket.opened", 1)
    with pytest.raises(Poisoned):
        engine.step(event("ticket.opened", 0, customer="new", event_id="poison-2", ticket_id="t"))
    assert "new" not in engine.state.customers and engine.state.max_at is None and not engine.state.queue


def test_a_rule_that_raises_while_deciding_loses_that_entry_only(catalog):
    engine = Engine(catalog, lateness=LATENESS)
    index = catalog.ids.index("order-confirmed")
    handlers = list(engine.handlers[index])
    expire = handlers[DUE]

    def failing_expire(due, customer, key, instance, state):  # type: ignore[no-untyped-def]
        if key == "o-poison":
            raise Poisoned(key)
        expire(due, customer, key, instance, state)

    handlers[DUE] = failing_expire
    engine.handlers[index] = tuple(handlers)
    for order in ("o1", "o-poison", "o3"):
        engine.step(event("order.placed", 0, customer=f"c-{order}", order_id=order))
    engine.step(event("customer.joined", DAY, customer="later"))
    (failure,) = engine.failures
    assert failure.stage == DECIDE and failure.touchpoint == "order-confirmed" and failure.customer == "c-o-poison"
    assert isinstance(failure.error, Poisoned)
    assert engine.counts()["order-confirmed"] == [0, 2]  # the two others were decided
    assert engine.pending[index] == 0  # and that one closed, undecided
    engine.step(event("customer.joined", 2 * DAY, customer="even-later"))
    assert len(engine.failures) == 1  # dropped, not retried at every step


def test_taking_a_step_back_keeps_the_rule_errors_of_others(catalog):
    """Ids are unique per customer only: another customer's rule error for the same id stays."""
    engine = Engine(catalog, lateness=LATENESS, track=True)
    engine.errors.append(RuleError("bill-correct", "poison-3", "c1's, not yet drained"))
    poison(engine, "ticket.opened", 1)
    with pytest.raises(Poisoned):
        engine.step(event("ticket.opened", 1, customer="c2", event_id="poison-3", ticket_id="t"))
    assert [e.event_id for e in engine.errors] == ["poison-3"]


def test_an_instance_whose_due_time_raises_is_closed_undecided(catalog):
    engine = Engine(catalog, lateness=LATENESS, track=True)
    index = catalog.ids.index("order-confirmed")
    handlers = list(engine.handlers[index])

    def failing_expire(due, customer, key, instance, state):  # type: ignore[no-untyped-def]
        raise Poisoned(key)

    handlers[DUE] = failing_expire
    engine.handlers[index] = tuple(handlers)
    engine.step(event("order.placed", 0, customer="c1", order_id="o1"))
    engine.step(event("customer.joined", DAY, customer="later"))
    assert len(engine.failures) == 1 and engine.pending[index] == 0
    assert engine.record("c1")["open"] == []  # not scheduled again when the record is put back


def stored(engine: Engine) -> tuple[dict, dict]:
    """What a worker would store of the engine: its saved part and each customer's record."""
    return engine.saved(), {customer: engine.record(customer) for customer in engine.state.customers}


def test_the_roles_with_nothing_to_check_are_filed_from_their_plain_entries(catalog):
    """Actions.plain holds the roles without where, key check or due, as (rank, rule, key reader);
    Actions.checked the others; both follow roles when an action is replaced (dataclasses.replace)."""
    engine = Engine(catalog, lateness=LATENESS)
    for actions in engine.dispatch.values():
        plain = [r for r in actions.roles if r.where is None and not r.checks_key and r.due is None]
        assert actions.plain == tuple((r.rank, r.index, r.key_of) for r in plain)
        assert actions.checked == tuple(r for r in actions.roles if all(r is not p for p in plain))
    before = engine.dispatch["ticket.opened"]
    poison(engine, "ticket.opened", 0)  # its first role is given a where
    after = engine.dispatch["ticket.opened"]
    assert len(after.plain) == len(before.plain) - 1
    assert [role.position for role in after.checked] == [0]
