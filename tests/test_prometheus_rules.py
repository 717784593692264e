"""Generated Prometheus rules and Alertmanager routing: committed, valid, and they fire when they should
(promtool and amtool from Debian's packages)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner
from ruamel.yaml import YAML

from tpmon.cli import main

from .conftest import ROOT

GENERATED = ROOT / "prometheus"
FILES = ("recording.yml", "touchpoints.yml", "alertmanager.yml")


def tool(name: str) -> str:
    path = shutil.which(name)
    assert path, f"{name} is not installed: `make deps` installs Debian's prometheus and prometheus-alertmanager"
    return path


def test_the_committed_files_are_what_the_catalog_renders(tmp_path):
    result = CliRunner().invoke(main, ["rules", "render", "--out", str(tmp_path), "--rules", str(ROOT / "rules")])
    assert result.exit_code == 0, result.output
    for name in FILES:
        assert (tmp_path / name).read_text() == (GENERATED / name).read_text(), (
            f"prometheus/{name} drifted: run `tpmon rules render --out prometheus`"
        )


def test_rendering_is_deterministic(tmp_path):
    for folder in ("a", "b"):
        CliRunner().invoke(main, ["rules", "render", "--out", str(tmp_path / folder)])
    assert all((tmp_path / "a" / n).read_text() == (tmp_path / "b" / n).read_text() for n in FILES)


def test_promtool_accepts_the_rules():
    result = subprocess.run(
        [tool("promtool"), "check", "rules", *(str(GENERATED / n) for n in FILES[:2])], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_amtool_accepts_the_alertmanager_config():
    result = subprocess.run(
        [tool("amtool"), "check-config", str(GENERATED / "alertmanager.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_alertmanager_routes_by_owner_and_pages_inhibit_tickets():
    config = YAML(typ="safe").load((GENERATED / "alertmanager.yml").read_text())
    routes = {route["matchers"][0]: route["receiver"] for route in config["route"]["routes"]}
    assert routes['owner="billing"'] == "team-billing"
    assert config["route"]["group_by"] == ["touchpoint", "severity"]  # an incident is one group, not one per alert
    assert config["inhibit_rules"] == [  # a worker down (a page without touchpoint) mutes no other ticket
        {
            "source_matchers": ['severity="page"', 'touchpoint=~".+"'],
            "target_matchers": ['severity="ticket"'],
            "equal": ["touchpoint"],
        }
    ]


# -- promtool unit tests, on bill-correct (objective 0.97: an error budget of 3%) ------------------------
LABELS = {"touchpoint": "bill-correct", "stage": "pay", "owner": "billing"}
SERIES = 'tpmon_touchpoint_outcomes_total{{touchpoint="bill-correct",stage="pay",owner="billing",outcome="{outcome}"}}'
# What a worker serves of bill-correct's state window, per partition.
WINDOW = (
    'tpmon_touchpoint_window_outcomes{{touchpoint="bill-correct",stage="pay",owner="billing",outcome="{outcome}",'
    'partition="{partition}"}}'
)
WARMING = 'tpmon_touchpoint_warming_up{{touchpoint="bill-correct",partition="{partition}"}}'


def window_series(good: str, bad: str, warming: str = "0", partition: int = 0) -> list[dict]:
    """bill-correct's window gauges of one partition, in promtool's value notation."""
    return [
        {"series": WINDOW.format(outcome="good", partition=partition), "values": good},
        {"series": WINDOW.format(outcome="bad", partition=partition), "values": bad},
        {"series": WARMING.format(partition=partition), "values": warming},
    ]


_NOW = re.compile(
    r'\{\{ with query "(?P<query>(?:[^"\\]|\\.)*)" \}\}\{\{ \. \| first \| value \| humanizePercentage \}\}'
    r"\{\{ else \}\}\?\{\{ end \}\}"
)


def rendered(text: str, figures: dict[str, str]) -> str:
    """An annotation as Alertmanager gets it: each recorded figure it reads (by its record's name) as
    ``figures`` says Prometheus prints it (humanizePercentage: 0.5 -> 50%)."""

    def figure(found: re.Match) -> str:
        query = found.group("query")
        name = next(name for name in figures if name in query)
        return figures[name]

    return _NOW.sub(figure, text)


def expected(alertname: str, severities: list[str], figures: dict[str, str], path: Path = GENERATED) -> dict:
    """The alerts promtool should see firing, with the annotations the generated rules give them."""
    groups = YAML(typ="safe").load((path / "touchpoints.yml").read_text())["groups"]
    rules = next(g["rules"] for g in groups if g["name"] == f"tpmon-{figures.get('touchpoint', 'bill-correct')}")
    alerts = []
    for severity in severities:
        rule = next(r for r in rules if r.get("alert") == alertname and r["labels"]["severity"] == severity)
        annotations = {key: rendered(value, figures) for key, value in rule["annotations"].items()}
        alerts.append({"exp_labels": rule["labels"], "exp_annotations": annotations})
    return {"alertname": alertname, "exp_alerts": alerts}


# A half-bad burn on bill-correct (an error budget of 3%): half bad now, no budget left.
HALF_BAD = {"errors": "50%", "budget_remaining": "0%", "reliability": "50%"}


def run_promtool(tmp_path: Path, tests: list[dict], every: str = "1m", path: Path = GENERATED) -> None:
    document = {
        "rule_files": [str(path / "recording.yml"), str(path / "touchpoints.yml")],
        "evaluation_interval": every,
        "tests": tests,
    }
    file = tmp_path / "unit.test.yml"
    with file.open("w") as stream:
        YAML().dump(document, stream)
    result = subprocess.run([tool("promtool"), "test", "rules", str(file)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_a_sustained_burn_pages_once_and_opens_one_ticket(tmp_path):
    """Half of 120 bills a minute wrong: one page (its two tiers firing are one alert) and one ticket
    (inhibited by the page in Alertmanager); broken, it does not page a second time."""
    burn = {
        "interval": "1m",
        "input_series": [{"series": SERIES.format(outcome=o), "values": "0+60x300"} for o in ("good", "bad")],
        "alert_rule_test": [
            {"eval_time": "70m", **expected("TouchpointBurnRate", ["page", "ticket"], HALF_BAD)},
            {"eval_time": "70m", "alertname": "TouchpointBroken", "exp_alerts": []},
        ],
    }
    run_promtool(tmp_path, [burn])


def test_a_slow_burn_pages_as_broken_and_only_so(tmp_path):
    """A tenth of the bills wrong (3x the budget: too slow for the page tiers, a ticket): broken pages."""
    slow = {
        "interval": "1m",
        "input_series": [
            {"series": SERIES.format(outcome="good"), "values": "0+108x300"},
            {"series": SERIES.format(outcome="bad"), "values": "0+12x300"},
            # The window (an hour) fills as the outcomes come, on two partitions.
            *window_series("0+54x60 3240x240", "0+6x60 360x240", partition=0),
            *window_series("0+54x60 3240x240", "0+6x60 360x240", partition=1),
        ],
        "alert_rule_test": [
            {"eval_time": "70m", **expected("TouchpointBurnRate", ["ticket"], TENTH_BAD)},
            {"eval_time": "70m", **expected("TouchpointBroken", ["page"], TENTH_BAD)},
        ],
    }
    run_promtool(tmp_path, [slow])


TENTH_BAD = {"errors": "10%", "budget_remaining": "0%", "reliability": "90%", "upper": "90.79%"}


def test_nothing_fires_at_low_volume(tmp_path):
    """Three bills in a night, all wrong: under min_events (20) in every window, nobody is paged."""
    quiet = {
        "interval": "2h",
        "input_series": [
            {"series": SERIES.format(outcome="bad"), "values": "0 1 2 3 3"},
            {"series": SERIES.format(outcome="good"), "values": "0 0 0 0 0"},
        ],
        "alert_rule_test": [
            {"eval_time": f"{hours}h", "alertname": alert, "exp_alerts": []}
            for hours in (2, 4, 6, 8)
            for alert in ("TouchpointBurnRate", "TouchpointBroken")
        ],
    }
    run_promtool(tmp_path, [quiet])


def test_a_quiet_touchpoint_pages_on_evidence_not_on_burn_rates(tmp_path):
    """Two bills an hour: the burn rates' pages never have min_events in an hour. A healthy day (one
    wrong bill) pages nobody; then six hours of every bill wrong: TouchpointBadOutcomes pages on the
    last day's outcomes (13 wrong of 37: confident evidence), which no burn-rate page can. In the test
    profile (an hour a minute), evaluated every 10 s: an alert reads recording rules of another group,
    which must be fresher than the 5 minutes Prometheus looks back."""
    CliRunner().invoke(main, ["rules", "render", "--out", str(tmp_path), "--profile", "test"])
    quiet = {
        "interval": "10s",
        "input_series": [
            {"series": SERIES.format(outcome="good"), "values": "0+0.33333333x144 48x84"},
            {"series": SERIES.format(outcome="bad"), "values": "0x72 1x72 1+0.33333333x36 13x48"},
        ],
        "alert_rule_test": [
            {"eval_time": "24m", "alertname": "TouchpointBadOutcomes", "exp_alerts": []},
            {"eval_time": "25m", "alertname": "TouchpointBadOutcomes", "exp_alerts": []},
            {"eval_time": "36m", **expected_low_volume(tmp_path)},
        ],
    }
    run_promtool(tmp_path, [quiet], every="10s", path=tmp_path)


def expected_low_volume(path: Path) -> dict:
    groups = YAML(typ="safe").load((path / "touchpoints.yml").read_text())["groups"]
    rules = next(g["rules"] for g in groups if g["name"] == "tpmon-bill-correct")
    (rule,) = [r for r in rules if r.get("alert") == "TouchpointBadOutcomes"]
    annotations = {key: text.replace("{{ $value | humanize }}", "13") for key, text in rule["annotations"].items()}
    return {
        "alertname": "TouchpointBadOutcomes",
        "exp_alerts": [{"exp_labels": rule["labels"], "exp_annotations": annotations}],
    }


# (good, bad, warming) in bill-correct's window (objective 97%, differentiating 99.5%, min_events 20)
STATE_CASES = [
    (30, 0, 0),
    (28, 2, 0),
    (25, 5, 0),
    (19, 0, 0),
    (500, 2, 0),
    (2000, 0, 0),
    (900, 100, 0),
    (0, 0, 0),
    (500, 500, 1),
    (100, 0, 1),
]


def test_the_recording_rule_states_what_monitor_state_says(tmp_path, catalog):
    """The same rule in PromQL and in Python: each case three minutes of window gauges, its state
    compared at the third (the state rule's group may see the window rules' figures of the minute before)."""
    from monitor.conventions import STATE_VALUES
    from monitor.state import judge

    good = " ".join(f"{g} {g} {g}" for g, _, _ in STATE_CASES)
    bad = " ".join(f"{b} {b} {b}" for _, b, _ in STATE_CASES)
    warming = " ".join(f"{w} {w} {w}" for _, _, w in STATE_CASES)
    touchpoint = catalog["bill-correct"]
    checks = []
    for minute, (g, b, w) in enumerate(STATE_CASES):
        state = judge(touchpoint, g, b, catalog.z, bool(w)).state
        checks.append(
            {
                "expr": 'touchpoint:tpmon_touchpoint_state:value{touchpoint="bill-correct"}',
                "eval_time": f"{3 * minute + 2}m",
                "exp_samples": [
                    {"labels": 'touchpoint:tpmon_touchpoint_state:value{touchpoint="bill-correct",stage="pay",'
                               'owner="billing"}', "value": STATE_VALUES[state]}
                ],
            }
        )  # fmt: skip
    states = [judge(touchpoint, g, b, catalog.z, bool(w)).state for g, b, w in STATE_CASES]
    assert {"unknown", "broken", "reliable", "differentiating", "warming up"} <= set(states), states
    cases = {"interval": "1m", "input_series": window_series(good, bad, warming), "promql_expr_test": checks}
    run_promtool(tmp_path, [cases])


# Two hours half bad, then 80 minutes good: nothing bad in the last hour, the budget still spent.
RECOVERED = {"errors": "0%", "budget_remaining": "0%", "reliability": "100%"}


def test_alerts_resolve_on_recovery(tmp_path):
    """Two hours of burn, then healthy: pages resolve first (short windows), then tickets."""
    recovery = {
        "interval": "1m",
        "input_series": [
            {"series": SERIES.format(outcome="good"), "values": "0+60x120 7200+120x80"},
            {"series": SERIES.format(outcome="bad"), "values": "0+60x120 7200+0x80"},
        ],
        "alert_rule_test": [
            {"eval_time": "110m", **expected("TouchpointBurnRate", ["page", "ticket"], HALF_BAD)},
            {"eval_time": "190m", **expected("TouchpointBurnRate", ["ticket"], RECOVERED)},
            {"eval_time": "190m", "alertname": "TouchpointBroken", "exp_alerts": []},
        ],
    }
    # Days later (coarser steps), every window holds healthy outcomes only: nothing fires.
    later = {
        "interval": "30m",
        "input_series": [
            {"series": SERIES.format(outcome="good"), "values": "0+1800x4 7200+3600x200"},
            {"series": SERIES.format(outcome="bad"), "values": "0+1800x4 7200+0x200"},
        ],
        "alert_rule_test": [{"eval_time": "4d", "alertname": "TouchpointBurnRate", "exp_alerts": []}],
    }
    run_promtool(tmp_path, [recovery])
    run_promtool(tmp_path, [later], every="30m")


@pytest.mark.parametrize("profile", ["production", "test"])
def test_both_profiles_are_valid(tmp_path, profile):
    CliRunner().invoke(main, ["rules", "render", "--out", str(tmp_path), "--profile", profile])
    result = subprocess.run(
        [tool("promtool"), "check", "rules", str(tmp_path / "recording.yml"), str(tmp_path / "touchpoints.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_internal_errors_open_a_ticket_while_they_happen(tmp_path):
    """One message failed at the engine's step: a ticket for the pipeline, gone ten minutes after."""
    groups = YAML(typ="safe").load((GENERATED / "touchpoints.yml").read_text())["groups"]
    pipeline = next(g["rules"] for g in groups if g["name"] == "tpmon-pipeline")
    (rule,) = [r for r in pipeline if r["alert"] == "TpmonInternalErrors"]
    failing = {
        "interval": "1m",
        "input_series": [
            {"series": 'tpmon_internal_errors_total{stage="judge"}', "values": "0 0 0 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1 1"}
        ],
        "alert_rule_test": [
            {"eval_time": "2m", "alertname": "TpmonInternalErrors", "exp_alerts": []},
            {
                "eval_time": "5m",
                "alertname": "TpmonInternalErrors",
                "exp_alerts": [
                    {
                        "exp_labels": {**rule["labels"], "stage": "judge"},
                        "exp_annotations": {
                            "summary": "tpmon failed to process some inputs (judge)",
                            "description": rule["annotations"]["description"]
                            .replace("{{ $labels.stage }}", "judge")
                            .replace("{{ $value | humanize }}", "1"),
                        },
                    }
                ],
            },
            {"eval_time": "18m", "alertname": "TpmonInternalErrors", "exp_alerts": []},
        ],
    }
    run_promtool(tmp_path, [failing])


def test_a_slow_incident_warns_at_risk_before_the_first_breach(tmp_path):
    """examples/support-hours: tickets pile up unanswered. Five instances at risk (alerts.at_risk 3)
    open TouchpointAtRisk at minute 12; the first missed deadline comes at minute 40, the page later."""
    CliRunner().invoke(
        main, ["rules", "render", "--out", str(tmp_path), "--rules", str(ROOT / "examples" / "support-hours")]
    )
    labels = 'touchpoint="first-response",stage="help",owner="support"'

    def series(outcome: str) -> str:
        return "tpmon_touchpoint_outcomes_total{" + labels + f',outcome="{outcome}"' + "}"

    slow = {
        "interval": "1m",
        "input_series": [
            {"series": "tpmon_touchpoint_at_risk{touchpoint=\"first-response\"}", "values": "0x9 5x80"},
            {"series": series("good"), "values": "0+2x90"},
            {"series": series("bad"), "values": "0x39 0+3x50"},
        ],
        "alert_rule_test": [
            {"eval_time": "11m", "alertname": "TouchpointAtRisk", "exp_alerts": []},
            {
                "eval_time": "12m",
                "alertname": "TouchpointAtRisk",
                "exp_alerts": [
                    {
                        "exp_labels": {"touchpoint": "first-response", "stage": "help", "owner": "support",
                                       "severity": "ticket"},
                        "exp_annotations": _at_risk_annotations(tmp_path, "5"),
                    }
                ],
            },
            {"eval_time": "39m", "alertname": "TouchpointBurnRate", "exp_alerts": []},
        ],
    }  # fmt: skip
    run_promtool(tmp_path, [slow], path=tmp_path)


def _at_risk_annotations(path: Path, value: str) -> dict:
    groups = YAML(typ="safe").load((path / "touchpoints.yml").read_text())["groups"]
    rules = next(g["rules"] for g in groups if g["name"] == "tpmon-first-response")
    (rule,) = [r for r in rules if r.get("alert") == "TouchpointAtRisk"]
    return {key: text.replace("{{ $value }}", value) for key, text in rule["annotations"].items()}


def test_a_source_that_stops_sending_is_silent_after_its_silent_after(tmp_path):
    """calls sends every minute for 20 minutes, then nothing: SourceSilent (15m) fires after minute 35,
    and the touchpoints fed only by calls have no state (the wall's "no data"), not unknown."""
    groups = YAML(typ="safe").load((GENERATED / "touchpoints.yml").read_text())["groups"]
    pipeline = next(g["rules"] for g in groups if g["name"] == "tpmon-pipeline")
    (rule,) = [r for r in pipeline if r["alert"] == "SourceSilent" and r["labels"]["source"] == "calls"]
    quiet = {
        "interval": "1m",
        "input_series": [
            {"series": 'tpmon_source_last_event_timestamp_seconds{source="calls"}', "values": "0+60x20 1200x40"},
            {"series": 'tpmon_source_last_event_timestamp_seconds{source="orders"}', "values": "0+60x60"},
        ],
        "alert_rule_test": [
            {"eval_time": "34m", "alertname": "SourceSilent", "exp_alerts": []},
            {
                "eval_time": "36m",
                "alertname": "SourceSilent",
                "exp_alerts": [{"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]}],
            },
        ],
        "promql_expr_test": [
            {
                "expr": 'touchpoint:tpmon_touchpoint_state:value{touchpoint="call-answered"}',
                "eval_time": "30m",
                "exp_samples": [
                    {"labels": 'touchpoint:tpmon_touchpoint_state:value{touchpoint="call-answered",stage="help",'
                               'owner="contact-center"}', "value": 0}
                ],
            },
            {"expr": 'touchpoint:tpmon_touchpoint_state:value{touchpoint="call-answered"}', "eval_time": "40m",
             "exp_samples": []},
            {"expr": 'count(touchpoint:tpmon_touchpoint_state:value{stage="buy"})', "eval_time": "40m",
             "exp_samples": [{"labels": "{}", "value": 1}]},  # order-confirmed, fed by orders
        ],
    }  # fmt: skip
    run_promtool(tmp_path, [quiet])


def test_the_default_factors_never_make_a_low_objective_an_error(tmp_path):
    """An objective of 0.8 with the default factors: a warning saying which tiers it derived."""
    (tmp_path / "events.yaml").symlink_to(ROOT / "rules" / "events.yaml")
    (tmp_path / "t.yaml").write_text(
        "version: 1\ntouchpoints:\n  - {id: calls, stage: help, owner: cc, description: d, kind: condition,\n"
        "     on: call.ended, good: resolved, objective: 0.8}\n"
    )
    done = CliRunner().invoke(main, ["rules", "validate", str(tmp_path)])
    assert done.exit_code == 0, done.output
    assert (
        "the default page factors (14.4, 6) cannot fire below an objective of 0.931; it pages at 4.5x over 1h "
        "and 1.88x over 6h (90% and 38% of outcomes bad): set alerts.page to choose"
    ) in done.output


def test_factors_the_catalog_gives_that_can_never_fire_are_an_error(tmp_path):
    (tmp_path / "events.yaml").symlink_to(ROOT / "rules" / "events.yaml")
    (tmp_path / "t.yaml").write_text(
        "version: 1\ntouchpoints:\n  - {id: calls, stage: help, owner: cc, description: d, kind: condition,\n"
        "     on: call.ended, good: resolved, objective: 0.8, alerts: {page: [6, 3]}}\n"
    )
    done = CliRunner().invoke(main, ["rules", "validate", str(tmp_path)])
    assert done.exit_code == 1
    assert "the page tier over 1h can never fire: 6 x (1 - 0.8) = 1.20 >= 1; lower its factor below 5.00" in done.output


# -- the vital few: monitor.state.vital_few and the wall's table, on the same numbers ----------------------
# Each case: touchpoint -> (state wanted, distinct customers impacted in its window). The others: no data.
VITAL_CASES = [
    pytest.param({"bill-correct": ("broken", 50), "call-answered": ("broken", 30), "order-confirmed": ("broken", 20),
                  "payment-succeeded": ("reliable", 400)}, id="cut where 80% of the broken ones' customers are covered"),
    pytest.param({"call-answered": ("broken", 10), "bill-correct": ("broken", 10), "order-confirmed": ("broken", 1)},
                 id="a tie ranks by id"),
    pytest.param({"call-resolved": ("broken", 0), "bill-correct": ("broken", 0)}, id="none hurt: the first by id"),
    pytest.param({"bill-correct": ("broken", 90), "ticket-resolved": ("broken", 9), "call-answered": ("broken", 1)},
                 id="one covers most"),
    pytest.param({"bill-correct": ("reliable", 70)}, id="nothing broken: none"),
]  # fmt: skip


@pytest.mark.parametrize("case", VITAL_CASES)
def test_the_walls_vital_few_names_what_monitor_state_vital_few_names(tmp_path, catalog, case):
    """The recording rules and the customer room's vital few table (its query, as generated) against
    ``monitor.state.vital_few`` on the same states and customers impacted: each touchpoint's window
    outcomes make it broken (all bad) or not (all good), and its customers impacted come from two
    partitions, which the rules add up."""
    import json

    from monitor.state import judge, vital_few

    room = json.loads((ROOT / "dashboards" / "customer-room.json").read_text())
    table = next(p for p in room["panels"] if p.get("title", "").startswith("The vital few"))
    query = next(t["expr"] for t in table["targets"] if t["refId"] == "A")
    series = []
    states, impacted = {}, {}
    for touchpoint_id, (state, customers) in case.items():
        t = catalog[touchpoint_id]
        n = max(200, t.min_events)
        good, bad = (0, n) if state == "broken" else (n, 0)
        states[touchpoint_id] = judge(t, good, bad, catalog.z).state
        assert (states[touchpoint_id] == "broken") == (state == "broken")
        impacted[touchpoint_id] = customers
        labels = f'touchpoint="{t.id}",stage="{t.stage}",owner="{t.owner}"'
        for outcome, value in (("good", good), ("bad", bad)):
            series.append(
                {"series": f'tpmon_touchpoint_window_outcomes{{{labels},outcome="{outcome}",partition="0"}}',
                 "values": f"{value}x6"}
            )  # fmt: skip
        for partition, share in ((0, customers // 3), (1, customers - customers // 3)):
            series.append(
                {"series": f'tpmon_touchpoint_window_customers_impacted{{touchpoint="{t.id}",partition="{partition}"}}',
                 "values": f"{share}x6"}
            )  # fmt: skip
    named = vital_few(states, impacted)
    exp = [
        {
            "labels": f'touchpoint:tpmon_touchpoint_vital_few:customers_impacted{{touchpoint="{t}"}}',
            "value": impacted[t],
        }
        for t in named
    ]
    checks = [{"expr": query, "eval_time": "5m", "exp_samples": exp}]
    run_promtool(tmp_path, [{"interval": "1m", "input_series": series, "promql_expr_test": checks}])


def test_a_worker_that_cannot_read_the_requests_to_forget_opens_a_ticket(tmp_path):
    """One worker reads the forget topic, the other has not for 15 minutes: a ticket names that one,
    after the rule's 10 minutes, and not before."""
    reading = {
        "interval": "1m",
        "input_series": [
            {"series": 'tpmon_forget_reader_up{job="tpmon", instance="w1:6066"}', "values": "1x30"},
            {"series": 'tpmon_forget_reader_up{job="tpmon", instance="w2:6066"}', "values": "1x5 0x25"},
        ],
        "alert_rule_test": [
            {"eval_time": "10m", "alertname": "TpmonForgetReaderDown", "exp_alerts": []},
            {
                "eval_time": "20m",
                "alertname": "TpmonForgetReaderDown",
                "exp_alerts": [
                    {
                        "exp_labels": {"severity": "ticket", "tier": "pipeline", "job": "tpmon", "instance": "w2:6066"},
                        "exp_annotations": {
                            "summary": "a tpmon worker cannot read the requests to forget customers (w2:6066)",
                            "description": (
                                "The worker at w2:6066 has not read the forget topic for 10m (an ACL taken away, "
                                "the topic deleted?): customers asked to be forgotten meanwhile keep their journeys "
                                "on its partitions until it reads again. Its log says why (docs/SECURITY.md)."
                            ),
                        },
                    }
                ],
            },
        ],
    }
    run_promtool(tmp_path, [reading])
