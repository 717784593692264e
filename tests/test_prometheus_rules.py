"""Generated Prometheus rules and Alertmanager routing: committed, valid, and they fire when they should
(promtool and amtool from Debian's packages)."""

from __future__ import annotations

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
    assert config["inhibit_rules"] == [
        {"source_matchers": ['severity="page"'], "target_matchers": ['severity="ticket"'], "equal": ["touchpoint"]}
    ]


# -- promtool unit tests, on bill-correct (objective 0.97: an error budget of 3%) ------------------------
LABELS = {"touchpoint": "bill-correct", "stage": "pay", "owner": "billing"}
SERIES = 'tpmon_touchpoint_outcomes_total{{touchpoint="bill-correct",stage="pay",owner="billing",outcome="{outcome}"}}'


def expected(alertname: str, tiers: list[str]) -> dict:
    """The alerts promtool should see firing, with the annotations the generated rules give them."""
    groups = YAML(typ="safe").load((GENERATED / "touchpoints.yml").read_text())["groups"]
    rules = next(g["rules"] for g in groups if g["name"] == "tpmon-bill-correct")
    alerts = []
    for tier in tiers:
        rule = next(r for r in rules if r.get("alert") == alertname and r["labels"]["tier"] == tier)
        alerts.append({"exp_labels": rule["labels"], "exp_annotations": rule["annotations"]})
    return {"alertname": alertname, "exp_alerts": alerts}


def run_promtool(tmp_path: Path, tests: list[dict], every: str = "1m") -> None:
    document = {
        "rule_files": [str(GENERATED / "recording.yml"), str(GENERATED / "touchpoints.yml")],
        "evaluation_interval": every,
        "tests": tests,
    }
    path = tmp_path / "unit.test.yml"
    with path.open("w") as stream:
        YAML().dump(document, stream)
    result = subprocess.run([tool("promtool"), "test", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def test_every_tier_fires_on_a_sustained_burn(tmp_path):
    """Half of 120 bills a minute wrong: all four tiers and the broken state fire."""
    burn = {
        "interval": "1m",
        "input_series": [{"series": SERIES.format(outcome=o), "values": "0+60x300"} for o in ("good", "bad")],
        "alert_rule_test": [
            {"eval_time": "70m", **expected("TouchpointBurnRate", ["1h", "6h", "1d", "3d"])},
            {"eval_time": "70m", **expected("TouchpointBroken", ["state"])},
        ],
    }
    run_promtool(tmp_path, [burn])


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


def test_alerts_resolve_on_recovery(tmp_path):
    """Two hours of burn, then healthy: pages resolve first (short windows), then tickets."""
    recovery = {
        "interval": "1m",
        "input_series": [
            {"series": SERIES.format(outcome="good"), "values": "0+60x120 7200+120x80"},
            {"series": SERIES.format(outcome="bad"), "values": "0+60x120 7200+0x80"},
        ],
        "alert_rule_test": [
            {"eval_time": "110m", **expected("TouchpointBurnRate", ["1h", "6h", "1d", "3d"])},
            {"eval_time": "190m", **expected("TouchpointBurnRate", ["1d", "3d"])},
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
    (rule,) = next(g["rules"] for g in groups if g["name"] == "tpmon-pipeline")
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
                            "runbook_url": rule["annotations"]["runbook_url"],
                        },
                    }
                ],
            },
            {"eval_time": "18m", "alertname": "TpmonInternalErrors", "exp_alerts": []},
        ],
    }
    run_promtool(tmp_path, [failing])
