"""Whether the worker reaches Kafka: said once each way in the log, and as metrics.

During an outage the Kafka client logs every failed attempt (thousands of lines a minute, see
``streams.logs`` for how those are collapsed) and nothing says plainly that Kafka is gone. The link is
judged from the consumer's connections (``streams.seam.ConsumerPositions.connected``) once a second:
lost when none has been connected for ``LOST_AFTER`` seconds (a reconnect that succeeds at once is
not an outage), back at the first connection after that. Time is passed in.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge

LOST_AFTER = 3.0  # seconds without a connection before Kafka is said to be lost

log = logging.getLogger("tpmon.kafka")


class KafkaLink:
    def __init__(
        self,
        bootstrap: str,
        registry: CollectorRegistry | None = None,
        say: Callable[[str], None] | None = None,
    ) -> None:
        self.bootstrap = bootstrap
        self.say = say or log.warning
        self.up = True
        self.since: float | None = None  # when the connections were first seen down (None: connected)
        self.lost_at: float | None = None
        self.gauge = Gauge("tpmon_kafka_up", "1 while the worker reaches Kafka, 0 during an outage.", registry=registry)
        self.outages = Counter("tpmon_kafka_outages", "Times the worker lost Kafka.", registry=registry)
        self.gauge.set(1)

    def update(self, connected: bool | None, now: float) -> None:
        """``connected``: whether any connection to the cluster is up (None: not known, e.g. starting)."""
        if connected is None:
            return
        if connected:
            self.since = None
            if not self.up:
                self.up = True
                self.gauge.set(1)
                lasted = now - (self.lost_at or now)
                self.say(f"Kafka at {self.bootstrap} is back after {lasted:.0f} s; catching up")
            return
        if self.since is None:
            self.since = now
        if self.up and now - self.since >= LOST_AFTER:
            self.up = False
            self.lost_at = self.since
            self.gauge.set(0)
            self.outages.inc()
            self.say(
                f"Kafka at {self.bootstrap} lost: no connection for {now - self.since:.0f} s. Nothing is "
                "decided meanwhile (the inputs are not idle while Kafka cannot say where they end); "
                "retrying until it is back"
            )
