"""Every benchmark, side by side in one run: `make bench` (python -m bench.run).

    python -m bench.run [--events 200000] [--replay-customers 145000] [--month-customers 30000]
                        [--rates 1000,10000] [--memory 100000,1000000] [--out bench/results/bench.json]
                        [--smoke] [--bootstrap HOST:PORT]

One local Kafka broker (started here and stopped at the end or on Ctrl-C, unless --bootstrap names one)
and one pre-produced set of source topics serve every Kafka measurement:

1. ceiling: raw aiokafka getmany + orjson + a dict update per event;
2. baseline: a plain Faust agent doing the same;
3. tpmon worker end to end, first event counted until every outcome is visible in /metrics;
4. replay core against a bare parse + dict loop over one file (bench/replay_throughput.py), with the
   shipped catalog and with its ticket deadlines on SLA clocks; and over a customer base's 20 days
   (bench/month.py: the file of docs/PERFORMANCE.md's replay figures against a46f3ca);
5. detection latency at the offered rates (bench/latency.py);
6. memory per pending instance, core and worker (bench/memory.py);
7. scaling: 2 workers against 1, same topics (4 partitions);
8. state: memory and scrape after a million customers gone quiet, restart with a million stored, and
   memory catching up days of backlog (bench/state.py);
9. impact: the customers attribution holds a day on, and their bytes (bench/impact.py);
10. customers held by the worker's partitions, memory store against the RocksDB store: memory held and
    once quiet, and the rate (bench/held.py).

Prints a markdown table and writes the figures as JSON. ``--smoke`` runs everything tiny, for the test
suite: it checks that the benchmarks still run, not how fast.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import os
import platform
import shutil
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

from bench import held as held_state
from bench import impact, latency, memory, month, pipeline, replay_throughput, state
from monitor.catalog import load_catalog
from tpmon.broker import LocalKafka, free_port

ROOT = pipeline.ROOT


def machine() -> dict:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    return {"cpu": cpu, "cores": os.cpu_count(), "python": platform.python_version(), "system": platform.platform()}


def run(args: argparse.Namespace) -> dict:
    catalog = load_catalog(ROOT / "rules")
    root = Path(tempfile.mkdtemp(prefix="tpmon-bench-"))
    broker = None if args.bootstrap else LocalKafka(root / "kafka", free_port())
    results: dict = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if args.smoke:  # a short lateness and sweep: the smoke run's watermarks pass and its customers go quickly
        pipeline.QUICK.update(TPMON_LATENESS="2s", TPMON_SWEEP_INTERVAL="2")
    try:
        bootstrap = args.bootstrap or broker.start()
        stage = pipeline.Stage.prepare(bootstrap, root, catalog, args.events)
        step("pre-produced", f"{stage.events:,} events on {len(stage.topics)} topics x {pipeline.PARTITIONS}")

        ceiling = pipeline.ceiling(stage)
        step("1 ceiling", f"{ceiling:,.0f} events/s")
        baseline = pipeline.faust_baseline(stage)
        step("2 plain Faust agent", f"{baseline:,.0f} events/s")
        one = pipeline.tpmon_workers(stage, 1)
        step("3 tpmon, 1 worker", f"{one['events_per_s']:,.0f} events/s")
        two = pipeline.tpmon_workers(stage, 2)
        step("7 tpmon, 2 workers", f"{two['events_per_s']:,.0f} events/s")
        results["throughput"] = {
            "events": stage.events,
            "partitions": pipeline.PARTITIONS,
            "ceiling_events_per_s": round(ceiling),
            "faust_agent_events_per_s": round(baseline),
            "tpmon_events_per_s": round(one["events_per_s"]),
            "tpmon_startup_s": round(one["startup_s"], 1),
            "ratio_tpmon_to_ceiling": round(one["events_per_s"] / ceiling, 3),
            "ratio_tpmon_to_faust_agent": round(one["events_per_s"] / baseline, 2),
            "tpmon_2_workers_events_per_s": round(two["events_per_s"]),
            "scaling_2_to_1": round(two["events_per_s"] / one["events_per_s"], 2),
        }

        cached = ROOT / "bench" / "results" / f"waiting-{args.replay_customers}.jsonl"  # simulated once, kept
        replay_file = root / "replay.jsonl" if args.smoke else cached
        clocked = replay_throughput.clocked_catalog(ROOT / "rules", root / "clocked")
        replay = replay_throughput.measure(replay_file, args.replay_customers, args.rounds, catalog, clocked)
        step("4 replay", f"ratio {replay['ratio']}; on SLA clocks {replay['clocked_ratio']}")
        results["replay"] = replay
        customers, days = args.month_customers, args.month_days
        month_file = (
            root / "month.jsonl" if args.smoke else ROOT / "bench" / "results" / f"month-{customers}-{days}d.jsonl"
        )
        base = month.measure(month_file, args.rounds, catalog, customers, days)  # written once, kept
        step(f"4 replay, {customers:,} customers over {days} days", f"{base['events']:,} events, ratio {base['ratio']}")
        results["replay_month"] = base

        detections = []
        for rate in args.rates:
            found = latency.detection(stage, rate, seconds=args.probe_seconds)
            step(
                f"5 detection at {rate:,}/s",
                f"from due p50 {found.p50:.3f} s, p99 {found.p99:.3f} s; "
                f"after the inputs p50 {found.after_inputs_p50:.3f} s, p99 {found.after_inputs_p99:.3f} s",
            )
            detections.append({k: (None if v == math.inf else v) for k, v in asdict(found).items()})
        results["detection"] = detections

        sizes = []
        for count in args.memory:
            core = memory.core(count)
            live = memory.worker(stage, count)
            step(
                f"6 memory, {count:,}",
                f"core {core['bytes_per_instance']:,.0f} B, worker {live['bytes_per_instance']:,.0f} B",
            )
            sizes.append({"open_instances": count, "core": core, "worker": live})
        results["memory"] = sizes

        quiet = state.quiet(stage, args.state_customers)
        step(
            f"8 {args.state_customers:,} customers gone quiet",
            f"{quiet['rss_after_freed_mb']} MB against {quiet['idle_rss_mb']} MB idle, scrape {quiet['scrape_after_freed_ms']} ms",
        )
        quiet_c = state.quiet(stage, args.state_customers, allocator="malloc")
        step(
            f"8 {args.state_customers:,} customers gone quiet, PYTHONMALLOC=malloc",
            f"{quiet_c['rss_after_freed_mb']} MB against {quiet_c['idle_rss_mb']} MB idle",
        )
        kept = state.restart(stage, args.state_customers)
        step(
            f"8 {args.state_customers:,} customers stored",
            f"scrape {kept['scrape_with_stored_ms']} ms, restart to first event {kept['restart_to_first_event_s']} s",
        )
        held_restarts = [state.restart_held(stage, count, compacted=not args.smoke) for count in args.restart_customers]
        for measured in held_restarts:
            step(
                f"8 restart with {measured['held']:,} customers held ({measured['changelog_records']:,} changelog records)",
                f"ready {measured['restart_to_ready_s']} s, first event judged {measured['restart_to_first_event_s']} s",
            )
        behind = state.backlog(stage, args.backlog_days, args.backlog_customers)
        step(
            f"8 a {args.backlog_days}-day backlog", f"peak {behind['peak_rss_mb']} MB, idle {behind['idle_rss_mb']} MB"
        )
        results["state"] = {
            "quiet": quiet,
            "quiet_c_allocator": quiet_c,
            "restart": kept,
            "restart_held": held_restarts,
            "backlog": behind,
        }

        held = impact.measure(2_000 if args.smoke else 20_000)
        step(
            "9 impact state",
            f"{held['held']:,} of {held['customers']:,} held, {held['bytes_per_held_customer']:,.0f} B each "
            f"({held['impact_bytes_per_held_customer']:,.0f} B of impact)",
        )
        results["impact"] = held

        customers = held_state.measure(args.held_customers)
        for row in customers:
            step(
                f"10 {row['scenario']} held, {row['variant']} store",
                f"{row['held']:,} held ({row['in_memory']:,} in memory): {row['held_mib']} MiB, "
                f"{row['quiet_mib']} MiB once quiet (idle {row['idle_mib']}), {row['events_per_s']:,} ev/s",
            )
        results["held"] = customers
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(root, ignore_errors=True)
    return results


def step(what: str, figure: str) -> None:
    print(f"  {what}: {figure}", flush=True)


def table(results: dict) -> str:
    t, r = results["throughput"], results["replay"]
    rows = [
        ("| measure | value | target |", "|---|---|---|"),
        (
            f"| 1. ceiling: aiokafka getmany + orjson + dict, {t['events']:,} events | {t['ceiling_events_per_s']:,} ev/s | |",
        ),
        (f"| 2. plain Faust agent, same work | {t['faust_agent_events_per_s']:,} ev/s | |",),
        (f"| 3. tpmon worker end to end (1 worker) | {t['tpmon_events_per_s']:,} ev/s | |",),
        (f"| ratio 3/1 | **{t['ratio_tpmon_to_ceiling']}** | ≥ 0.25 |",),
        (f"| ratio 3/2 | **{t['ratio_tpmon_to_faust_agent']}** | |",),
        (f"| 4. bare parse + dict loop, {r['events']:,} events | {r['bare_events_per_s']:,} ev/s | |",),
        (f"| 4. replay core | {r['replay_events_per_s']:,} ev/s | |",),
        (f"| ratio replay / bare | **{r['ratio']}** (rounds {r['ratios_by_round']}) | ≥ 0.2 |",),
    ]
    m = results["replay_month"]
    rows.append(
        (
            f"| 4. replay, {m['customers']:,} customers over {m['days']} days ({m['events']:,} events): replay core, "
            f"ratio replay / bare | {m['replay_events_per_s']:,} ev/s, **{m['ratio']}** (rounds {m['ratios_by_round']}); "
            f"`tpmon replay --json` {m['cli_events_per_s_with_startup']:,} ev/s | |",
        )
    )
    for d in results["detection"]:
        p50, p99, a50, a99 = (
            f"{v:.3f} s" if v is not None else "undecided"
            for v in (d["p50"], d["p99"], d["after_inputs_p50"], d["after_inputs_p99"])
        )
        late = f", {d['undecided']} of {d['probes']} probes undecided" if d["undecided"] else ""
        rows.append(
            (
                f"| 5. detection at {d['offered']:,} ev/s offered ({d['generated']:,.0f} sent, {d['achieved']:,.0f} counted{late}) "
                f"| from due + lateness: p50 {p50}, **p99 {p99}**; after the inputs allowed it: p50 {a50}, **p99 {a99}** "
                "| p99 ≤ lateness; after the inputs ≤ 0.14 s |",
            )
        )
    for m in results["memory"]:
        rows.append(
            (
                f"| 6. bytes per pending instance, {m['open_instances']:,} open | core **{m['core']['bytes_per_instance']:,.0f}**, "
                f"worker **{m['worker']['bytes_per_instance']:,.0f}** | ≤ 500 |",
            )
        )
    rows.append(
        (
            f"| 7. 2 workers vs 1 ({t['partitions']} partitions, {results['machine']['cores']} cores) | "
            f"{t['tpmon_2_workers_events_per_s']:,} ev/s, **x{t['scaling_2_to_1']}** | |",
        )
    )
    s = results["state"]
    q, c, k, b = s["quiet"], s["quiet_c_allocator"], s["restart"], s["backlog"]
    rows += [
        (
            f"| 8. worker memory, {q['customers']:,} customers gone quiet past the retention, against idle | "
            f"{q['rss_after_freed_mb']} MB / {q['idle_rss_mb']} MB = **{q['ratio_to_idle']}** (all counted: {q['rss_all_counted_mb']} MB) | ≤ 1.1 |",
        ),
        (
            f"| 8. the same with the C allocator (PYTHONMALLOC=malloc) | "
            f"{c['rss_after_freed_mb']} MB / {c['idle_rss_mb']} MB = **{c['ratio_to_idle']}** | ≤ 1.1 |",
        ),
        (
            f"| 8. scrape of /metrics: idle, {q['customers']:,} seen and freed, {k['customers']:,} stored | "
            f"{q['scrape_idle_ms']} ms, {q['scrape_after_freed_ms']} ms, **{k['scrape_with_stored_ms']} ms** | < 50 ms |",
        ),
        (
            f"| 8. restart with {k['stored']:,} customers stored: to owning its partitions, to the first event counted | "
            f"{k['restart_to_owning_s']} s, **{k['restart_to_first_event_s']} s** | |",
        ),
        *(
            (
                f"| 8. restart with {r['held']:,} customers held (a simulated day, {r['events']:,} events; customers "
                f"changelog {r['changelog_records_written']:,} records written, {r['changelog_records']:,} read after "
                f"compaction): to ready, to the first event judged | {r['restart_to_ready_s']} s, "
                f"**{r['restart_to_first_event_s']} s** | 10 s at 20k, 30 s at 200k |",
            )
            for r in s["restart_held"]
        ),
        (
            f"| 8. memory catching up a {b['days']}-day backlog ({b['events']:,} events in {b['seconds']} s): idle, peak, end | "
            f"{b['idle_rss_mb']} MB, **{b['peak_rss_mb']} MB**, {b['end_rss_mb']} MB | |",
        ),
    ]
    h = results["impact"]
    rows.append(
        (
            f"| 9. impact: customers of a simulated day held a day on (their outcomes within the attribution window), "
            f"engine state per held customer, of which impact | {h['held']:,} of {h['customers']:,}, "
            f"{h['bytes_per_held_customer']:,.0f} B, **{h['impact_bytes_per_held_customer']:,.0f} B** | |",
        )
    )
    return "\n".join(line for row in rows for line in row)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=200_000, help="simulated events pre-produced to Kafka")
    parser.add_argument("--replay-customers", type=int, default=145_000, help="about 7 events each (replay file)")
    parser.add_argument("--month-customers", type=int, default=30_000, help="about 11 events each (bench.month)")
    parser.add_argument("--month-days", type=int, default=20, help="the days bench.month's customers span")
    parser.add_argument("--rounds", type=int, default=3, help="replay rounds (bare and replay alternate)")
    parser.add_argument("--rates", default="1000,10000", help="offered events/s for detection latency")
    parser.add_argument("--probe-seconds", type=float, default=20.0, help="how long probes are sent, per rate")
    parser.add_argument("--memory", default="100000,1000000", help="open instances for the memory measure")
    parser.add_argument("--state-customers", type=int, default=1_000_000, help="customers for the state measures")
    parser.add_argument(
        "--restart-customers", default="20000,200000", help="customers held for the restart measures (a day each)"
    )
    parser.add_argument("--held-customers", type=int, default=1_000_000, help="customers held by the partitions (10)")
    parser.add_argument("--backlog-days", type=int, default=10, help="days of simulated backlog")
    parser.add_argument("--backlog-customers", type=int, default=20_000, help="customers in the backlog")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "bench.json")
    parser.add_argument("--smoke", action="store_true", help="everything tiny: checks the benchmarks run")
    parser.add_argument("--bootstrap", help="use this Kafka (its topics get a bench- prefix) instead of starting one")
    args = parser.parse_args()
    if args.smoke:
        args.events, args.replay_customers, args.rounds = 2_000, 300, 1
        args.month_customers, args.month_days = 200, 2
        args.rates, args.probe_seconds, args.memory = "200", 1.0, "1000"
        args.state_customers, args.backlog_days, args.backlog_customers = 1000, 1, 100
        args.restart_customers, args.held_customers = "100", 200
    # The client retries a produce to a topic created a moment ago; its warnings about it are noise here.
    logging.getLogger("aiokafka").setLevel(logging.ERROR)
    args.rates = [int(rate) for rate in args.rates.split(",")]
    args.memory = [int(count) for count in args.memory.split(",")]
    args.restart_customers = [int(count) for count in args.restart_customers.split(",")]
    print("tpmon benchmarks (Ctrl-C stops them and the broker)", flush=True)
    try:
        results = run(args)
    except KeyboardInterrupt:
        raise SystemExit("interrupted; nothing written") from None
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print()
    print(table(results))
    print(f"\n{args.out}")


if __name__ == "__main__":
    main()
