"""Durations as people write them in a catalog or on the command line ("2m", "48h", "1h30m").

Inside the core every instant and duration is an integer number of microseconds, so that
comparisons such as ``E <= S + D`` are exact.
"""

from __future__ import annotations

import re

MICROS = 1_000_000

_UNITS = {
    "us": 1,
    "ms": 1_000,
    "s": MICROS,
    "m": 60 * MICROS,
    "h": 3600 * MICROS,
    "d": 86400 * MICROS,
    "w": 7 * 86400 * MICROS,
}
_PART = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h|d|w)")


def parse_duration(text: str) -> int:
    """Return the duration in microseconds; raise ValueError with a readable message."""
    if not isinstance(text, str):
        raise ValueError(f"a duration is written as text such as '2m' or '48h', not {text!r}")
    compact = text.strip()
    if not compact:
        raise ValueError("a duration cannot be empty; write e.g. '30s', '2m', '48h' or '5d'")
    total = 0.0
    position = 0
    for part in _PART.finditer(compact):
        if part.start() != position:
            break
        total += float(part.group(1)) * _UNITS[part.group(2)]
        position = part.end()
    if position != len(compact) or position == 0:
        raise ValueError(
            f"'{text}' is not a duration; write a number and a unit (us, ms, s, m, h, d, w), e.g. '2m' or '1h30m'"
        )
    return round(total)


def format_duration(micros: int) -> str:
    """The shortest exact spelling: 120_000_000 -> '2m', 5_400_000_000 -> '1h30m'."""
    if micros == 0:
        return "0s"
    sign = "-" if micros < 0 else ""
    rest = abs(micros)
    parts = []
    for unit in ("d", "h", "m", "s", "ms", "us"):
        size = _UNITS[unit]
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return sign + "".join(parts)
