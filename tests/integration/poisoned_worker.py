"""`tpmon` with a test-only rule error: the engine raises on events whose id starts with 'poison-'.

The integration tests run a worker through this file to see what a bug in processing does to the live
pipeline (docs/EVENTS.md: the message is kept as internal_error and the worker goes on). Nothing of it
is in the product.
"""

from __future__ import annotations

from monitor.engine import Engine

_step = Engine.step


def _poisoned_step(self, event):  # type: ignore[no-untyped-def]
    if event.id.startswith("poison-"):
        raise RuntimeError(f"a test-only rule error on {event.id}")
    return _step(self, event)


Engine.step = _poisoned_step  # type: ignore[method-assign]

if __name__ == "__main__":
    from tpmon.cli import run

    run()
