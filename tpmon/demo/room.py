"""The terminal Customer Room: each touchpoint's state over its own window, from the workers' gauges.

The workers serve, per partition, the outcomes decided in each touchpoint's state window and whether it
is warming up (tpmon_touchpoint_window_outcomes, tpmon_touchpoint_warming_up); ``Room`` adds them up and
judges them with ``monitor.state.judge``, as the recording rule touchpoint:tpmon_touchpoint_state:value
does. Customers impacted are the distinct customers with a bad outcome in each touchpoint's window
(tpmon_touchpoint_window_customers_impacted, added up); left after bad is a counter: its increase over
the last ``window`` seconds of polls.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field

from rich.console import Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from monitor.catalog import Catalog
from monitor.conventions import STAGES
from monitor.journeys import Journey, story  # noqa: F401  (the stories the wall shows)
from monitor.state import Verdict, judge, vital_few

NO_DATA = "no data"  # fed only by sources that went silent (their silent_after): never shown as reliable

STYLE = {
    "broken": "bold white on red",
    "reliable": "bold white on green",
    "differentiating": "bold white on blue",
    "unknown": "black on grey50",
    "warming up": "black on grey62",
    NO_DATA: "black on grey70",
}


@dataclass
class Snapshot:
    at: float
    window: dict[str, tuple[int, int]] = field(default_factory=dict)  # touchpoint -> (good, bad) in its window
    warming: dict[str, bool] = field(default_factory=dict)  # touchpoint -> every partition warming up
    joined: int = 0
    left: int = 0
    journeys_broken: int = 0
    events: int = 0
    last_event: dict[str, float] = field(default_factory=dict)  # source -> Unix seconds, newest of the workers
    impacted: dict[str, int] = field(default_factory=dict)  # touchpoint -> distinct customers impacted in its window
    left_after_bad: dict[str, int] = field(default_factory=dict)


@dataclass
class Room:
    catalog: Catalog
    window: float  # seconds
    history: deque[Snapshot] = field(default_factory=deque)
    stories: deque[str] = field(default_factory=lambda: deque(maxlen=5))
    worst: dict[str, str] = field(default_factory=dict)
    broken_spells: dict[str, int] = field(default_factory=dict)
    _last_state: dict[str, str] = field(default_factory=dict)

    def add(self, snapshot: Snapshot) -> None:
        self.history.append(snapshot)
        while len(self.history) > 2 and self.history[1].at <= snapshot.at - self.window:
            self.history.popleft()
        for touchpoint_id, state in self.states().items():
            if state == "broken" and self._last_state.get(touchpoint_id) != "broken":
                self.broken_spells[touchpoint_id] = self.broken_spells.get(touchpoint_id, 0) + 1
            order = (NO_DATA, "warming up", "unknown", "differentiating", "reliable", "broken")
            if order.index(state) > order.index(self.worst.get(touchpoint_id, "unknown")):
                self.worst[touchpoint_id] = state
            self._last_state[touchpoint_id] = state

    def verdicts(self) -> dict[str, Verdict]:
        """Each touchpoint's state over its window, and why (monitor.state.judge)."""
        last = self.history[-1] if self.history else Snapshot(0)
        return {
            t.id: judge(t, *last.window.get(t.id, (0, 0)), self.catalog.z, last.warming.get(t.id, False))
            for t in self.catalog.touchpoints
        }

    def _window(self, of: str) -> dict[str, int]:
        """A per-touchpoint counter's increase over the window."""
        if not self.history:
            return {}
        first, last = getattr(self.history[0], of), getattr(self.history[-1], of)
        if len(self.history) == 1:
            first = {}
        return {t: count - first.get(t, 0) for t, count in last.items()}

    def vital_few(self) -> list[tuple[str, int, int]]:
        """The vital few now (monitor.state.vital_few over each touchpoint's window, as the wall's): (touchpoint,
        customers impacted, left after bad)."""
        impacted = self.history[-1].impacted if self.history else {}
        left = self._window("left_after_bad")
        return [(t, impacted.get(t, 0), left.get(t, 0)) for t in vital_few(self.states(), impacted)]

    def states(self) -> dict[str, str]:
        last = self.history[-1] if self.history else Snapshot(0)
        quiet = self.catalog.fed_only_by(self.catalog.silent_sources(last.last_event, time.time()))
        return {t: NO_DATA if t in quiet else verdict.state for t, verdict in self.verdicts().items()}

    # -- rendering ------------------------------------------------------------------------------------
    def render(self, title: str) -> Group:
        verdicts, states = self.verdicts(), self.states()
        stages = [s for s in STAGES if any(t.stage == s for t in self.catalog.touchpoints)]
        stages += sorted({t.stage for t in self.catalog.touchpoints} - set(stages))
        grid = Table.grid(padding=(0, 1))
        for stage in stages:
            tiles = []
            for touchpoint in (t for t in self.catalog.touchpoints if t.stage == stage):
                verdict = verdicts[touchpoint.id]
                ratio = verdict.reliability
                state = states[touchpoint.id]
                body = Text(justify="center")
                body.append(f"{touchpoint.id}\n", style="bold")
                body.append(f"{state.upper()}\n")
                body.append(
                    ("-" if ratio is None else f"{ratio:.1%}") + f" of {verdict.decided} / {touchpoint.window.text}"
                )
                tiles.append(Panel(body, style=STYLE[state], width=26, padding=(0, 1)))
            grid.add_row(Text(stage.upper(), style="bold cyan"), *tiles)
        last = self.history[-1] if self.history else Snapshot(0)
        footer = Text(
            f"customers in {last.joined}  out {last.left}   broken journeys {last.journeys_broken}   "
            f"events judged {last.events}   (each state over its touchpoint's window, broken only on "
            f"{self.catalog.confidence:.0%} confident evidence)"
        )
        stories = Text("\n".join(self.stories) if self.stories else "(none yet)")
        vital = Text()
        for touchpoint_id, impacted, left in self.vital_few():
            vital.append(f" {touchpoint_id} ", style=STYLE["broken"])
            vital.append(f" {impacted} customers impacted, {left} of them left since   ")
        return Group(
            Text(title, style="bold"),
            grid,
            footer,
            Panel(
                vital if vital else Text("(nothing broken)"),
                title="The vital few: fix these first",
                border_style="yellow",
            ),
            Panel(stories, title="Latest customer stories (journeys hit by a broken touchpoint)", border_style="red"),
        )

    def line(self, elapsed: float) -> str:
        """One plain line for a terminal that is not a TTY (logs, CI)."""
        states = self.states()
        broken = [t for t, s in states.items() if s == "broken"]
        parts = [f"{t}={s}" for t, s in states.items() if s != "unknown"]
        vital = ", ".join(f"{t} ({impacted} customers)" for t, impacted, _ in self.vital_few())
        return f"[{elapsed:5.0f}s] broken: {', '.join(broken) or 'none'} | vital few: {vital or 'none'} | " + " ".join(
            parts
        )
