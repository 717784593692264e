"""Rule windows, with a profile that shrinks them for tests and demos."""

from __future__ import annotations

from dataclasses import dataclass

from ..durations import format_duration, parse_duration

#: Every window the recording rules compute, in the production profile.
WINDOWS = ("5m", "30m", "1h", "2h", "6h", "1d", "3d")
#: The window the touchpoint state, customers impacted and the wall use.
STATE_WINDOW = "1h"


@dataclass(frozen=True)
class Profile:
    """``scale`` divides every window: 60 turns 1h into 1m (the "test" profile)."""

    name: str
    scale: int = 1

    def window(self, window: str) -> str:
        return format_duration(parse_duration(window) // self.scale)

    def seconds(self, window: str) -> int:
        return parse_duration(window) // self.scale // 1_000_000


# test: an hour a minute (the integration tests); demo: an hour in 30 seconds, so that `tpmon demo`
# tells its incident day in three minutes, each incident long against the wall's window.
PROFILES = {"production": Profile("production"), "test": Profile("test", 60), "demo": Profile("demo", 120)}
