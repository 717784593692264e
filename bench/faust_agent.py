"""The baseline: a plain Faust agent doing the ceiling's per-event work (a JSON parse and a dict update).

    python bench/faust_agent.py BOOTSTRAP TOPICS EXPECTED RESULT.json

Consumes the comma-separated TOPICS from the beginning in a fresh group, one event at a time as an
agent written the obvious way does; once EXPECTED events are in it writes its events/s (first event
to last) to RESULT.json and stops itself. Run by bench/pipeline.py, in a process of its own.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path

import faust
import orjson


def main() -> None:
    bootstrap, topics, expected, result = sys.argv[1], sys.argv[2].split(","), int(sys.argv[3]), Path(sys.argv[4])
    app = faust.App(
        f"bench-faust-{uuid.uuid4().hex[:8]}",
        broker=f"kafka://{bootstrap}",
        store="memory://",
        autodiscover=False,
        web_enabled=False,
        datadir=tempfile.mkdtemp(prefix="bench-faust-"),
        key_serializer="raw",
        value_serializer="raw",
        consumer_auto_offset_reset="earliest",
    )
    source = app.topic(*topics, key_type=bytes, value_type=bytes)
    counts: dict[str, int] = {}
    seen = [0, 0.0]

    @app.agent(source)
    async def count(stream: faust.StreamT) -> None:
        async for value in stream:
            event = orjson.loads(value)
            customer = event["customer_id"]
            counts[customer] = counts.get(customer, 0) + 1
            seen[0] += 1
            if seen[0] == 1:
                seen[1] = time.perf_counter()
            elif seen[0] == expected:
                seconds = time.perf_counter() - seen[1]
                result.write_text(json.dumps({"events": expected, "seconds": seconds}))
                os.kill(os.getpid(), signal.SIGTERM)

    faust.Worker(app, loglevel="warning", quiet=True).execute_from_commandline()


if __name__ == "__main__":
    main()
