"""The live pipeline's start-up time and sustained throughput, on a local broker started here.

    python bench/live_pipeline.py [--events 100000]

1. Start-up: from starting the broker to the first event processed by a fresh worker (the broker
   starts, the worker starts and joins, one event is produced, /metrics shows it counted).
2. Throughput: a backfill of simulated events is produced first; a fresh worker (one process, so one
   core for its Python) then consumes it; events/s from its first counted event to the last.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from monitor.durations import parse_duration  # noqa: E402
from monitor.simulate import Simulation  # noqa: E402
from tpmon.broker import LocalKafka, free_port  # noqa: E402

TPMON = [sys.executable, "-m", "tpmon.cli"]


def counted(port: int) -> float:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as response:
            text = response.read().decode()
    except OSError:
        return -1
    total = 0.0
    for line in text.splitlines():
        if line.startswith(("tpmon_events_total{", "tpmon_events_duplicate_total{")):
            total += float(line.rsplit(" ", 1)[1])
    return total


def env_for(name: str, bootstrap: str, port: int, data: Path) -> dict[str, str]:
    return {
        **os.environ,
        "TPMON_BOOTSTRAP": bootstrap,
        "TPMON_APP_ID": name,
        "TPMON_TOPICS": ",".join(f"{name}-{s}" for s in ("orders", "bills", "calls", "tickets")),
        "TPMON_EVENTS_TOPIC": f"{name}-events",
        "TPMON_JOURNEYS_TOPIC": f"{name}-journeys",
        "TPMON_DEAD_LETTER_TOPIC": f"{name}-rejects",
        "TPMON_WEB_PORT": str(port),
        "TPMON_DATA_DIR": str(data / name),
        "TPMON_RULES": str(ROOT / "rules"),
    }


def wait(check, timeout: float) -> float:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit("timed out")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=100_000)
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "live.json")
    args = parser.parse_args()
    data = Path(tempfile.mkdtemp(prefix="tpmon-bench-"))
    broker = LocalKafka(data / "kafka", free_port())
    workers: list[subprocess.Popen] = []
    try:
        started = time.monotonic()
        bootstrap = broker.start()
        broker_up = time.monotonic()
        port = free_port()
        env = env_for("startup", bootstrap, port, data)
        workers.append(
            subprocess.Popen([*TPMON, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        one = data / "one.jsonl"
        one.write_bytes(next(iter(Simulation(customers=1, seed=1).lines())) + b"\n")
        subprocess.run([*TPMON, "produce", str(one)], env=env, check=True, capture_output=True)
        first = wait(lambda: counted(port) >= 1, 180)
        startup = {"broker_start_s": round(broker_up - started, 1), "to_first_event_s": round(first - started, 1)}

        customers = max(1, round(args.events / 4.5))
        backfill = data / "backfill.jsonl"
        with backfill.open("wb") as stream:
            for line in Simulation(customers=customers, duration=parse_duration("1h"), seed=5).lines():
                stream.write(line + b"\n")
        lines = backfill.read_bytes().count(b"\n")
        port = free_port()
        env = env_for("throughput", bootstrap, port, data)
        subprocess.run([*TPMON, "produce", str(backfill)], env=env, check=True, capture_output=True)
        workers.append(
            subprocess.Popen([*TPMON, "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
        begin = wait(lambda: counted(port) >= 1, 180)
        end = wait(lambda: counted(port) >= lines, 3600)
        rate = lines / (end - begin)
        result = {**startup, "events": lines, "worker_events_per_s": round(rate)}
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        print("| measure | value |\n|---|---|")
        print(f"| broker start | {startup['broker_start_s']} s |")
        print(f"| broker start to first event processed by a fresh worker | {startup['to_first_event_s']} s |")
        print(f"| one worker, sustained, backfill of {lines:,} events | {rate:,.0f} events/s |")
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(30)
        broker.stop()


if __name__ == "__main__":
    main()
