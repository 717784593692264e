"""Grafana dashboards from the catalog, built with grafanalib and normalised to Grafana's published
dashboard schema: grafanalib still writes fields of the old JSON model (string datasources, rows,
sharedCrosshair...), which the schema refuses; the fields the schema knows are kept, nulls dropped."""

from __future__ import annotations

import json

from grafanalib._gen import DashboardEncoder
from grafanalib.core import (
    BarGauge,
    Dashboard,
    GridPos,
    RowPanel,
    Stat,
    Table,
    Target,
    Template,
    Templating,
    Time,
    TimeSeries,
)

from ..catalog.model import Catalog
from ..conventions import STAGES
from .prometheus import BAD, CUSTOMERS, DECIDED, ERRORS, GOOD, IMPACTED, JOURNEYS_BROKEN, RELIABILITY, STATE

DATASOURCE = {"type": "prometheus", "uid": "tpmon-prometheus"}
STATE_COLOURS = (
    ("0", "unknown", "#8e8e8e"),
    ("1", "broken", "#d44a3a"),
    ("2", "reliable", "#37872d"),
    ("3", "differentiating", "#1f60c4"),
)
ALLOWED = {
    "Dashboard": (
        "id",
        "uid",
        "title",
        "description",
        "tags",
        "timezone",
        "editable",
        "graphTooltip",
        "time",
        "timepicker",
        "refresh",
        "schemaVersion",
        "version",
        "panels",
        "templating",
        "annotations",
        "links",
    ),
    "Panel": (
        "type",
        "id",
        "targets",
        "title",
        "description",
        "transparent",
        "datasource",
        "gridPos",
        "links",
        "repeat",
        "repeatDirection",
        "maxPerRow",
        "maxDataPoints",
        "transformations",
        "interval",
        "timeFrom",
        "timeShift",
        "options",
        "fieldConfig",
    ),
    "RowPanel": ("type", "collapsed", "title", "gridPos", "id", "panels"),
    "VariableModel": (
        "type",
        "name",
        "label",
        "hide",
        "description",
        "query",
        "datasource",
        "multi",
        "options",
        "refresh",
        "sort",
        "includeAll",
        "regex",
        "definition",
    ),
    "FieldConfig": (
        "displayName",
        "description",
        "unit",
        "decimals",
        "min",
        "max",
        "mappings",
        "thresholds",
        "color",
        "links",
        "noValue",
        "custom",
    ),
    "TimePickerConfig": ("hidden", "refresh_intervals"),
}


def _target(expr: str, legend: str = "", instant: bool = False) -> Target:
    return Target(expr=expr, legendFormat=legend, refId="A", instant=instant)


def _state_mappings() -> list[dict]:
    return [
        {
            "type": "value",
            "options": {
                value: {"text": text, "color": colour, "index": int(value)} for value, text, colour in STATE_COLOURS
            },
        }
    ]


def customer_room(catalog: Catalog) -> Dashboard:
    """The wall: a tile per touchpoint by stage, coloured by state; reliability against objective;
    broken journeys; customers in and out; touchpoints ranked by customers impacted."""
    panels: list = []
    y = 0
    stages = [s for s in STAGES if any(t.stage == s for t in catalog.touchpoints)]
    stages += sorted({t.stage for t in catalog.touchpoints} - set(stages))
    for stage in stages:
        panels.append(RowPanel(title=f"{stage.capitalize()}", gridPos=GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        members = [t for t in catalog.touchpoints if t.stage == stage]
        width = max(4, 24 // max(1, len(members)))
        for index, touchpoint in enumerate(members):
            panels.append(
                Stat(
                    title=touchpoint.id,
                    description=f"{touchpoint.description} Owner: {touchpoint.owner}. Objective {touchpoint.objective:.1%}.",
                    dataSource="prometheus",
                    targets=[_target(f'{STATE}{{touchpoint="{touchpoint.id}"}}', instant=True)],
                    gridPos=GridPos(h=4, w=width, x=(index * width) % 24, y=y + (index * width) // 24 * 4),
                    colorMode="background",
                    graphMode="none",
                    textMode="value",
                    reduceCalc="lastNotNull",
                    mappings=_state_mappings(),
                    thresholds=[{"value": None, "color": "#8e8e8e"}],
                )
            )
        y += 4 * ((len(members) * width + 23) // 24)
    panels.append(RowPanel(title="The whole journey", gridPos=GridPos(h=1, w=24, x=0, y=y)))
    y += 1
    panels.append(
        BarGauge(
            title="Reliability against objective (1h)",
            dataSource="prometheus",
            targets=[_target(f"{RELIABILITY.format(w='1h')}", "{{touchpoint}}", instant=True)],
            gridPos=GridPos(h=10, w=12, x=0, y=y),
            format="percentunit",
            min=0,
            max=1,
            thresholds=[{"value": None, "color": "red"}, {"value": 0.9, "color": "green"}],
        )
    )
    panels.append(
        Table(
            title="Touchpoints by customers impacted (1h)",
            dataSource="prometheus",
            targets=[_target(f"sort_desc({IMPACTED})", "{{touchpoint}}", instant=True)],
            gridPos=GridPos(h=10, w=12, x=12, y=y),
        )
    )
    y += 10
    panels.append(
        Stat(
            title="Broken journeys (1h)",
            dataSource="prometheus",
            targets=[_target(JOURNEYS_BROKEN, instant=True)],
            gridPos=GridPos(h=6, w=6, x=0, y=y),
            colorMode="value",
            graphMode="none",
            reduceCalc="lastNotNull",
        )
    )
    panels.append(
        TimeSeries(
            title="Customers in and out (per hour)",
            dataSource="prometheus",
            targets=[_target(f"{CUSTOMERS.format(w='1h')} * 3600", "{{direction}}")],
            gridPos=GridPos(h=6, w=18, x=6, y=y),
        )
    )
    return Dashboard(
        title="Customer Room",
        uid="tpmon-customer-room",
        description="Every moment of truth, its state now: broken, reliable or differentiating.",
        tags=["tpmon"],
        panels=panels,
        refresh="10s",
        time=Time("now-6h", "now"),
    )


def drilldown(catalog: Catalog) -> Dashboard:
    """One touchpoint in depth, chosen with the template variable."""
    t = '{touchpoint="$touchpoint"}'
    variable = Template(
        name="touchpoint",
        label="Touchpoint",
        query="label_values(tpmon_touchpoint_objective_ratio, touchpoint)",
        dataSource="prometheus",
        default=catalog.touchpoints[0].id,
    )
    panels = [
        TimeSeries(title="Outcomes per second", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=0),
                   targets=[Target(expr=f"{GOOD.format(w='5m')}{t}", legendFormat="good", refId="A"),
                            Target(expr=f"{BAD.format(w='5m')}{t}", legendFormat="bad", refId="B")]),
        TimeSeries(title="Reliability and objective", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=12, y=0), unit="percentunit",
                   targets=[Target(expr=f"{RELIABILITY.format(w='1h')}{t}", legendFormat="reliability (1h)", refId="A"),
                            Target(expr=f"max(tpmon_touchpoint_objective_ratio{t})", legendFormat="objective", refId="B")]),
        TimeSeries(title="Burn rate (error budget consumption)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=8),
                   targets=[Target(expr=f"{ERRORS.format(w=w)}{t} / on (touchpoint) group_left () (1 - max by (touchpoint) (tpmon_touchpoint_objective_ratio{t}))", legendFormat=w, refId=ref)
                            for w, ref in (("5m", "A"), ("1h", "B"), ("6h", "C"), ("1d", "D"))]),
        TimeSeries(title="Latency, start to end (deadlines)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=12, y=8), unit="s",
                   targets=[Target(expr=f"histogram_quantile({q}, sum by (le) (rate(tpmon_touchpoint_latency_seconds_bucket{t}[5m])))", legendFormat=f"p{int(q * 100)}", refId=ref)
                            for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))]),
        TimeSeries(title="Open instances (pending)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=16),
                   targets=[_target(f"sum(tpmon_touchpoint_pending{t})", "pending")]),
        TimeSeries(title="Decided outcomes per hour", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=12, y=16),
                   targets=[_target(f"{DECIDED.format(w='1h')}{t} * 3600", "decided")]),
    ]  # fmt: skip
    return Dashboard(
        title="Touchpoint drilldown",
        uid="tpmon-touchpoint-drilldown",
        description="Rates, reliability, burn rate, latency and open instances of one touchpoint.",
        tags=["tpmon"],
        templating=Templating(list=[variable]),
        panels=panels,
        refresh="30s",
        time=Time("now-24h", "now"),
    )


def review(catalog: Catalog) -> Dashboard:
    """Weekly trends per touchpoint, for cross-functional reliability reviews."""
    panels = []
    for index, touchpoint in enumerate(catalog.touchpoints):
        t = f'{{touchpoint="{touchpoint.id}"}}'
        panels.append(
            TimeSeries(
                title=f"{touchpoint.id} ({touchpoint.owner})",
                dataSource="prometheus",
                gridPos=GridPos(h=7, w=12, x=(index % 2) * 12, y=(index // 2) * 7),
                unit="percentunit",
                targets=[
                    Target(expr=f"{RELIABILITY.format(w='1d')}{t}", legendFormat="reliability (1 day)", refId="A"),
                    Target(
                        expr=f"avg_over_time({RELIABILITY.format(w='1d')}{t}[7d])",
                        legendFormat="7-day average",
                        refId="B",
                    ),
                    Target(expr=f"max(tpmon_touchpoint_objective_ratio{t})", legendFormat="objective", refId="C"),
                ],
            )
        )
    return Dashboard(
        title="Reliability review",
        uid="tpmon-reliability-review",
        description="Daily reliability and its weekly average per touchpoint, against the objective.",
        tags=["tpmon"],
        panels=panels,
        refresh="5m",
        time=Time("now-30d", "now"),
    )


def _pick(data: dict, kind: str) -> dict:
    return {key: value for key, value in data.items() if key in ALLOWED[kind] and value is not None}


def _clean(value: object) -> object:
    if isinstance(value, dict):
        return {key: _clean(item) for key, item in value.items() if item is not None}
    if isinstance(value, list):
        return [_clean(item) for item in value]
    return value


def _panel(panel: dict) -> dict:
    if panel.get("type") == "row":
        row = _pick(panel, "RowPanel")
        row.setdefault("collapsed", False)
        row["panels"] = [_panel(p) for p in row.get("panels", [])]
        return row
    cleaned = _pick(panel, "Panel")
    cleaned["datasource"] = DATASOURCE
    cleaned["targets"] = [{**_clean(target), "datasource": DATASOURCE} for target in panel.get("targets", [])]
    field_config = panel.get("fieldConfig") or {"defaults": {}, "overrides": []}
    defaults = _pick(_clean(field_config.get("defaults", {})), "FieldConfig")  # type: ignore[arg-type]
    if "thresholds" in defaults:
        defaults["thresholds"]["steps"] = [
            {"value": step.get("value"), "color": step["color"]} for step in defaults["thresholds"]["steps"]
        ]
    cleaned["fieldConfig"] = {"defaults": defaults, "overrides": field_config.get("overrides", [])}
    if "options" in cleaned:
        cleaned["options"] = _clean(cleaned["options"])
    for key in ("links", "transformations"):
        if not cleaned.get(key):
            cleaned.pop(key, None)
    return cleaned


def normalise(dashboard: Dashboard) -> dict:
    """grafanalib's dashboard -> JSON that Grafana's published schema accepts."""
    data = json.loads(json.dumps(dashboard.auto_panel_ids().to_json_data(), cls=DashboardEncoder))
    result = _pick(data, "Dashboard")
    result["panels"] = [_panel(p) for p in data.get("panels", [])]
    variables = []
    for variable in data.get("templating", {}).get("list", []):
        picked = _pick(_clean(variable), "VariableModel")  # type: ignore[arg-type]
        picked["datasource"] = DATASOURCE
        picked["options"] = []
        variables.append(picked)
    result["templating"] = {"list": variables}
    result["annotations"] = {"list": []}
    result["timepicker"] = _pick(data.get("timepicker", {}), "TimePickerConfig")
    result["schemaVersion"] = 39
    result.pop("id", None)
    result["links"] = []
    return result


def dashboards(catalog: Catalog) -> dict[str, dict]:
    """File name -> dashboard JSON (normalised)."""
    return {
        "customer-room.json": normalise(customer_room(catalog)),
        "touchpoint-drilldown.json": normalise(drilldown(catalog)),
        "reliability-review.json": normalise(review(catalog)),
    }
