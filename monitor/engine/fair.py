"""What a replay's state is judged on: the outcomes decided on data alone (docs/SEMANTICS.md, "Warming up").

An outcome whose instant is before ``Touchpoint.decided_by(first data)`` may stand for an instance
that opened before the data began, whose other outcome is missing: a 14-day no_repeat decides only
its bad outcomes in its first 14 days. Such outcomes are kept apart, by their instant,
until the first data moves earlier (late history), which makes more of them fair; every later
outcome is fair for good, since the first data only ever moves earlier. What is kept apart spans at
most the touchpoint's decision time, whatever the length of the input.

An engine that counts every outcome anyway (``counted``: its totals) gives ``add`` only the outcomes
kept apart, and what is fair is what it counted less those: one comparison per outcome.
"""

from __future__ import annotations

from ..catalog.model import Touchpoint


class Fair:
    def __init__(self, touchpoints: tuple[Touchpoint, ...], counted: dict[str, list[int]] | None = None) -> None:
        self.touchpoints = {t.id: t for t in touchpoints}
        self.since: dict[str, int | None] = dict.fromkeys(self.touchpoints)  # decided_by(first data)
        self.early: dict[str, dict[int, list[int]]] = {t: {} for t in self.touchpoints}  # instant -> [good, bad]
        # [good, bad] per touchpoint, fair: counted here, or ``counted`` less what is kept apart.
        self.counted = counted
        self._counts: dict[str, list[int]] = {t: [0, 0] for t in self.touchpoints}

    @property
    def counts(self) -> dict[str, list[int]]:
        """[good, bad] per touchpoint, of the outcomes that are fair."""
        if self.counted is None:
            return self._counts
        found = {}
        for touchpoint_id in self.touchpoints:
            good, bad = self.counted.get(touchpoint_id, (0, 0))
            for early_good, early_bad in self.early[touchpoint_id].values():
                good -= early_good
                bad -= early_bad
            found[touchpoint_id] = [good, bad]
        return found

    def first(self, at: int) -> None:
        """The first data is now ``at``: outcomes kept apart that are fair from now on are counted."""
        for touchpoint_id, touchpoint in self.touchpoints.items():
            since = self.since[touchpoint_id] = touchpoint.decided_by(at)
            early, counts = self.early[touchpoint_id], self._counts[touchpoint_id]
            for instant in [instant for instant in early if instant >= since]:
                good, bad = early.pop(instant)
                counts[0] += good
                counts[1] += bad

    def add(self, touchpoint: str, good: bool, at: int) -> None:
        since = self.since.get(touchpoint)
        if since is not None and at >= since:
            self._counts[touchpoint][0 if good else 1] += 1
            return
        pair = self.early[touchpoint].setdefault(at, [0, 0])
        pair[0 if good else 1] += 1
