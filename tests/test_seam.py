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


def test_a_paused_partition_resumes_where_it_would_have_read_next():
    """Resumed, a partition is sought to the offset it hands out next: after a seek and no delivery,
    the offset sought (one further lost a message after every rebalance), else after its last message."""
    import asyncio

    from faust.types import TP

    class Consumer:
        def __init__(self) -> None:
            self.next_offsets: dict[TP, int] = {}
            self.sought: list[tuple[TP, int]] = []
            self.paused: set[TP] = set()

        def pause_partitions(self, tps) -> None:  # type: ignore[no-untyped-def]
            self.paused |= set(tps)

        def resume_partitions(self, tps) -> None:  # type: ignore[no-untyped-def]
            self.paused -= set(tps)

        async def seek(self, tp: TP, offset: int) -> None:
            self.sought.append((tp, offset))

    class App:
        consumer = Consumer()

    positions = seam.ConsumerPositions(App(), ["orders"])  # type: ignore[arg-type]
    consumer = App.consumer
    after_seek, after_delivery, unknown = TP("orders", 0), TP("orders", 1), TP("orders", 2)
    consumer.next_offsets = {after_seek: 120, after_delivery: 57}
    asyncio.run(positions.pause({("orders", 0), ("orders", 1), ("orders", 2)}))
    assert consumer.paused == {after_seek, after_delivery, unknown} and consumer.sought == []
    asyncio.run(positions.pause(set()))
    assert consumer.paused == set()
    assert sorted(consumer.sought) == [(after_seek, 120), (after_delivery, 57)]
