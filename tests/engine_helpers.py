from __future__ import annotations

from collections.abc import Iterable

from monitor.catalog import Catalog
from monitor.durations import parse_duration
from monitor.engine import Engine
from monitor.events import Event


def run(
    catalog: Catalog, events: Iterable[Event], touchpoint: str, lateness: str = "30s", finish: bool = True
) -> tuple[list[tuple[str, str, str]], int]:
    """(outcome, reason, key) of one touchpoint, in decision order, and how many stay pending."""
    engine = Engine(catalog, lateness=parse_duration(lateness))
    for event in events:
        engine.step(event)
    if finish:
        engine.finish()
    decided = [(o.outcome, o.reason, o.key) for o in engine.outbox if o.touchpoint == touchpoint]
    return decided, engine.pending[catalog.ids.index(touchpoint)]
