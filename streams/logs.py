"""The worker's log: plain lines (no terminal colours, so a log file reads as text), and the Kafka
client's repeated complaints collapsed.

A broker gone for 36 s made the client log about 2,350 ERROR and WARNING lines, one per failed attempt.
``Repeats`` lets the first of each kind through (same logger, level and message template) and drops
the rest for ``WINDOW`` seconds; the next one after that says how many were dropped. What tpmon itself
says about the outage comes from ``streams.link``. At start, until the group's coordinator exists, the
client logs ``Group Coordinator Request failed`` while Kafka creates its offsets topic: expected, so
shown only at debug level during the first ``STARTING`` seconds. Faust's timers running late
(``Timer ... is overlapping``) are not shown at all.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any

WINDOW = 60.0  # seconds a kind of message is not repeated
STARTING = 30.0  # seconds after start when the coordinator's absence is expected
FORMAT = "[%(asctime)s] [%(process)s] [%(levelname)s] %(name)s: %(message)s"
NOISY = ("aiokafka", "faust", "mode")
EXPECTED_AT_START = ("Group Coordinator Request failed", "Marking the coordinator dead")
# Faust's timers say when a run took longer than their interval (its commit, waiting on a broker that is
# away): nothing to act on, and what matters of it tpmon says itself (streams.link).
NOT_A_FAULT = ("Timer %s is overlapping",)


class Repeats(logging.Filter):
    def __init__(self, window: float = WINDOW, clock: Any = time.monotonic) -> None:
        super().__init__()
        self.window = window
        self.clock = clock
        self.started = clock()
        self.seen: dict[tuple[str, int, str], tuple[float, int]] = {}  # kind -> (first shown, dropped since)

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.name.startswith(NOISY) or record.levelno < logging.WARNING:
            return True
        now = self.clock()
        template = str(record.msg)
        if now - self.started < STARTING and template.startswith(EXPECTED_AT_START):
            return False
        if template.startswith(NOT_A_FAULT):
            return False
        kind = (record.name, record.levelno, template)
        shown = self.seen.get(kind)
        if shown is not None and now - shown[0] < self.window:
            self.seen[kind] = (shown[0], shown[1] + 1)
            return False
        if shown is not None and shown[1]:
            record.msg = f"{template} ({shown[1]} more like this in the last {now - shown[0]:.0f} s)"
        self.seen[kind] = (now, 0)
        return True


def logging_config(level: str) -> dict[str, Any]:
    """A ``logging.config.dictConfig`` for the worker (mode's ``Worker(logging_config=...)``): one plain
    stream handler on stderr, with ``Repeats``."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"repeats": {"()": Repeats}},
        "formatters": {"plain": {"format": FORMAT}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "plain",
                "filters": ["repeats"],
            }
        },
        "root": {"level": level.upper(), "handlers": ["stderr"]},
        # Each request to forget a customer is said whatever the level: who asked, for whom (streams.erasures).
        "loggers": {"tpmon.forget": {"level": "INFO"}},
    }


@contextlib.contextmanager
def quiet_client_logs() -> Iterator[None]:
    """For commands that do not configure logging (produce, simulate): the Kafka client's warnings go
    to stderr through ``Repeats`` instead of one line per failed attempt."""
    client = logging.getLogger("aiokafka")
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    handler.addFilter(Repeats())
    propagate = client.propagate
    client.addHandler(handler)
    client.propagate = False
    try:
        yield
    finally:
        client.removeHandler(handler)
        client.propagate = propagate
