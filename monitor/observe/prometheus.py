"""Prometheus recording and alerting rules from the catalog (names: level:metric:operations).

Recording rules (one group, the same for every touchpoint):
  touchpoint:tpmon_touchpoint_decided:rate<w>, ...:good:rate<w>, ...:bad:rate<w>
  touchpoint:tpmon_touchpoint_errors:ratio_rate<w>        bad / decided (the burn-rate input)
  touchpoint:tpmon_touchpoint_reliability:ratio_rate<w>   good / decided
  direction:tpmon_customers:rate<w>                       customers in and out
  touchpoint:tpmon_touchpoint_customers_impacted:increase1h   bad outcomes: customers hit
  tpmon:tpmon_journeys_broken:increase1h
Per touchpoint (its constants come from the catalog):
  touchpoint:tpmon_touchpoint_state:value  0 unknown, 1 broken, 2 reliable, 3 differentiating
Alerts per touchpoint: TouchpointBurnRate, one per tier (multi-window, multi-burn-rate, with a
minimum volume), and TouchpointBroken from the state. For the pipeline itself: TpmonInternalErrors,
when processing failed for a reason outside the event contract (a bug; the inputs are kept as
internal_error in the dead letters).
"""

from __future__ import annotations

from ..catalog.model import Catalog, Touchpoint
from ..conventions import (
    METRIC_CUSTOMERS,
    METRIC_INTERNAL_ERRORS,
    METRIC_JOURNEYS_BROKEN,
    METRIC_OUTCOMES,
    STATE_VALUES,
)
from .windows import PROFILES, STATE_WINDOW, WINDOWS, Profile

RUNBOOK_BASE = "https://runbooks.example.com/touchpoints"
DECIDED = "touchpoint:tpmon_touchpoint_decided:rate{w}"
GOOD = "touchpoint:tpmon_touchpoint_good:rate{w}"
BAD = "touchpoint:tpmon_touchpoint_bad:rate{w}"
ERRORS = "touchpoint:tpmon_touchpoint_errors:ratio_rate{w}"
RELIABILITY = "touchpoint:tpmon_touchpoint_reliability:ratio_rate{w}"
CUSTOMERS = "direction:tpmon_customers:rate{w}"
IMPACTED = "touchpoint:tpmon_touchpoint_customers_impacted:increase" + STATE_WINDOW
JOURNEYS_BROKEN = "tpmon:tpmon_journeys_broken:increase" + STATE_WINDOW
STATE = "touchpoint:tpmon_touchpoint_state:value"
BY = "touchpoint, stage, owner"


def recording_rules(profile: Profile) -> dict:
    rules: list[dict] = []
    for w in WINDOWS:
        window = profile.window(w)
        selector = f"{METRIC_OUTCOMES}[{window}]"
        rules += [
            {"record": DECIDED.format(w=w), "expr": f"sum by ({BY}) (rate({selector}))"},
            {
                "record": GOOD.format(w=w),
                "expr": f'sum by ({BY}) (rate({METRIC_OUTCOMES}{{outcome="good"}}[{window}]))',
            },
            {"record": BAD.format(w=w), "expr": f'sum by ({BY}) (rate({METRIC_OUTCOMES}{{outcome="bad"}}[{window}]))'},
            {"record": ERRORS.format(w=w), "expr": f"{BAD.format(w=w)} / {DECIDED.format(w=w)}"},
            {"record": RELIABILITY.format(w=w), "expr": f"{GOOD.format(w=w)} / {DECIDED.format(w=w)}"},
            {"record": CUSTOMERS.format(w=w), "expr": f"sum by (direction) (rate({METRIC_CUSTOMERS}[{window}]))"},
        ]
    state_window = profile.window(STATE_WINDOW)
    rules += [
        {"record": IMPACTED, "expr": f'sum by ({BY}) (increase({METRIC_OUTCOMES}{{outcome="bad"}}[{state_window}]))'},
        {"record": JOURNEYS_BROKEN, "expr": f"sum(increase({METRIC_JOURNEYS_BROKEN}[{state_window}]))"},
    ]
    return {"name": "tpmon-touchpoints", "rules": rules}


def state_rule(touchpoint: Touchpoint, profile: Profile) -> dict:
    """0 unknown (under min_events), 1 broken, 2 reliable, 3 differentiating, over the state window."""
    t = f'{{touchpoint="{touchpoint.id}"}}'
    decided = f"sum({DECIDED.format(w=STATE_WINDOW)}{t}) * {profile.seconds(STATE_WINDOW)}"
    reliability = f"sum({RELIABILITY.format(w=STATE_WINDOW)}{t})"
    expr = (
        f"(\n  ({decided} >= bool {touchpoint.min_events})\n"
        f"  * (1 + ({reliability} >= bool {touchpoint.objective:g}) + ({reliability} >= bool {touchpoint.differentiating:g}))\n"
        ") or vector(0)"
    )
    return {"record": STATE, "expr": expr, "labels": _labels(touchpoint)}


def alert_rules(touchpoint: Touchpoint, profile: Profile) -> list[dict]:
    t = f'{{touchpoint="{touchpoint.id}"}}'
    budget = 1 - touchpoint.objective
    alerts = []
    for tier in touchpoint.tiers:
        threshold = f"({tier.factor:g} * {budget:.6g})"
        long_errors, short_errors = ERRORS.format(w=tier.long) + t, ERRORS.format(w=tier.short) + t
        volume = f"{DECIDED.format(w=tier.long)}{t} * {profile.seconds(tier.long)}"
        expr = (
            f"(\n  {long_errors} > {threshold}\n  and\n  {short_errors} > {threshold}\n)\n"
            f"and on (touchpoint)\n{volume} >= {touchpoint.min_events}"
        )
        alerts.append(
            {
                "alert": "TouchpointBurnRate",
                "expr": expr,
                "labels": {**_labels(touchpoint), "severity": tier.severity, "tier": tier.name},
                "annotations": {
                    "summary": f"{touchpoint.id} is burning its error budget {tier.factor:g}x too fast ({tier.name})",
                    "description": (
                        f"{touchpoint.description} Over the last {profile.window(tier.long)} and "
                        f"{profile.window(tier.short)}, more than {tier.factor * budget:.2%} of outcomes were bad "
                        f"({tier.factor:g} times the {budget:.2%} the objective allows). Owner: {touchpoint.owner}."
                    ),
                    "runbook_url": f"{RUNBOOK_BASE}/{touchpoint.id}",
                },
            }
        )
    alerts.append(
        {
            "alert": "TouchpointBroken",
            "expr": f"{STATE}{t} == {STATE_VALUES['broken']}",
            "for": profile.window("5m"),
            "labels": {**_labels(touchpoint), "severity": "page", "tier": "state"},
            "annotations": {
                "summary": f"{touchpoint.id} is broken",
                "description": (
                    f"{touchpoint.description} Its reliability over {profile.window(STATE_WINDOW)} is below the "
                    f"objective of {touchpoint.objective:.2%}. Owner: {touchpoint.owner}."
                ),
                "runbook_url": f"{RUNBOOK_BASE}/{touchpoint.id}",
            },
        }
    )
    return alerts


def pipeline_rules(profile: Profile) -> dict:
    """Alerts on tpmon itself, for whoever runs it (no owner: the default route)."""
    window = profile.window("10m")
    return {
        "name": "tpmon-pipeline",
        "rules": [
            {
                "alert": "TpmonInternalErrors",
                "expr": f"sum by (stage) (increase({METRIC_INTERNAL_ERRORS}[{window}])) > 0",
                "labels": {"severity": "ticket", "tier": "pipeline"},
                "annotations": {
                    "summary": "tpmon failed to process some inputs ({{ $labels.stage }})",
                    "description": (
                        "Processing raised for a reason outside the event contract (a bug in tpmon) at stage "
                        "{{ $labels.stage }} (failures over the last "
                        + window
                        + ": {{ $value | humanize }}). The workers go on; "
                        "the inputs are kept in the dead-letter topic as internal_error, the worker's log has the "
                        "traceback. `tpmon rejects --reason internal_error` lists them."
                    ),
                    "runbook_url": f"{RUNBOOK_BASE}/tpmon-internal-errors",
                },
            }
        ],
    }


def _labels(touchpoint: Touchpoint) -> dict:
    return {"touchpoint": touchpoint.id, "stage": touchpoint.stage, "owner": touchpoint.owner}


def rule_files(catalog: Catalog, profile: Profile = PROFILES["production"]) -> dict[str, dict]:
    """File name -> Prometheus rule file content, in a stable order."""
    files = {"recording.yml": {"groups": [recording_rules(profile)]}}
    groups = []
    for touchpoint in catalog.touchpoints:
        groups.append(
            {
                "name": f"tpmon-{touchpoint.id}",
                "rules": [state_rule(touchpoint, profile), *alert_rules(touchpoint, profile)],
            }
        )
    files["touchpoints.yml"] = {"groups": [*groups, pipeline_rules(profile)]}
    return files
