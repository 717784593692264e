"""A touchpoint's state window: a rolling duration or a calendar period (docs/SEMANTICS.md, "State").

A window is checked when it is built (``parse_window``) and applied by instants alone, so the engine,
a replay and the review cut the same outcomes into the same windows. Outcomes are counted in buckets
by the instant of the outcome:

- a rolling window ``W`` (``1h``, ``7d``...) has buckets of ``W / STEPS`` aligned on the epoch; the
  window at instant ``t`` is the bucket holding ``t`` and the ``STEPS - 1`` before it: the last ``W``,
  moving in steps of ``W / STEPS`` (the last hour, in steps of 5 minutes);
- a calendar window (``day``, ``week``, ``month``) has one bucket per period, from local midnight
  (weeks from Monday) in the catalog's time zone: the window at ``t`` is the period holding ``t``.

Instants are integers of microseconds since the epoch, as everywhere in the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .durations import MICROS, format_duration, parse_duration

STEPS = 12  # a rolling window moves in twelfths of itself
PERIODS = ("day", "week", "month")
DEFAULT_WINDOW = "1h"
DEFAULT_TIMEZONE = "UTC"
_SHORTEST = 60 * MICROS  # a window shorter than this holds a handful of outcomes at any volume


@dataclass(frozen=True)
class Window:
    """``span``: microseconds of a rolling window, None for a calendar ``period``."""

    text: str
    span: int | None
    period: str | None
    zone: ZoneInfo

    @property
    def step(self) -> int | None:
        """A rolling window's bucket width (None for a calendar period: one bucket per period)."""
        return self.span // STEPS if self.span is not None else None

    def bucket(self, at: int) -> int:
        """The start of the bucket that counts an outcome at ``at``."""
        step = self.step
        if step is not None:
            return at - at % step
        return self._period_start(at)

    def start(self, at: int) -> int:
        """The first instant of the window at ``at`` (its earliest bucket's start)."""
        step = self.step
        if step is not None:
            return self.bucket(at) - (STEPS - 1) * step
        return self._period_start(at)

    def moves(self, at: int) -> int:
        """The first instant after ``at`` in another bucket: where the window moves on (every instant
        from ``at`` to it is in ``at``'s bucket)."""
        step = self.step
        if step is not None:
            return self.bucket(at) + step
        # From the period's start, past its longest length (a day of 25 hours, a week of 169, a month of
        # 745) and short of the next period's end (23 hours at least, 167, 671): in the next period.
        past = {"day": 36, "week": 7 * 24 + 12, "month": 31 * 24 + 12}[self.period]  # type: ignore[index]
        return self._period_start(self._period_start(at) + past * 3600 * MICROS)

    def _period_start(self, at: int) -> int:
        local = datetime.fromtimestamp(at // MICROS, self.zone)
        day = local.date()
        if self.period == "week":
            day -= timedelta(days=day.weekday())
        elif self.period == "month":
            day = day.replace(day=1)
        midnight = datetime(day.year, day.month, day.day, tzinfo=self.zone)
        return int(midnight.timestamp()) * MICROS

    def scaled(self, factor: int) -> Window:
        """A rolling window divided by ``factor`` (a calendar period is what it is)."""
        if self.span is None or factor == 1:
            return self
        span = self.span // factor
        return Window(format_duration(span), span, None, self.zone)

    def describe(self) -> str:
        """How people read it: 'the last 1h', 'this week (Europe/Berlin)'."""
        if self.span is not None:
            return f"the last {format_duration(self.span)}"
        return f"this {self.period} ({self.zone.key})"


def parse_zone(text: str) -> ZoneInfo:
    """An IANA time zone name; ValueError with a readable message otherwise."""
    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ValueError(f"'{text}' is not an IANA time zone name (such as 'UTC' or 'Europe/Berlin')") from error


def parse_window(text: str, zone: ZoneInfo | None = None) -> Window:
    """``1h``, ``7d``, ``28d`` (rolling) or ``day``, ``week``, ``month`` (calendar, in ``zone``)."""
    zone = zone or ZoneInfo(DEFAULT_TIMEZONE)
    if not isinstance(text, str):
        raise ValueError(f"a window is a duration such as '1h' or '7d', or one of {', '.join(PERIODS)}; not {text!r}")
    written = text.strip()
    if written in PERIODS:
        return Window(written, None, written, zone)
    try:
        span = parse_duration(written)
    except ValueError:
        raise ValueError(
            f"'{text}' is not a window: write a duration such as '1h', '1d' or '7d', or one of {', '.join(PERIODS)}"
        ) from None
    if span < _SHORTEST:
        raise ValueError(f"a window of {written} is too short to judge a touchpoint on: at least 1m")
    return Window(written, span, None, zone)
