"""The one seam to faust-streaming: a new version that changes an internal tpmon relies on fails here,
naming it, instead of somewhere in a live worker."""

from __future__ import annotations

from importlib.metadata import version

from streams import seam


def test_the_pinned_versions_are_installed():
    assert (version("faust-streaming"), version("aiokafka")) == (seam.FAUST_VERSION, seam.AIOKAFKA_VERSION), (
        "streams/seam.py was written against other versions: read each internal it lists, then its fingerprints"
    )


def test_no_internal_tpmon_relies_on_has_changed():
    changed = seam.internals_changed()
    assert changed == [], "changed since streams/seam.py was written: " + "; ".join(changed)
