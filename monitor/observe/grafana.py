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
    Text,
    Time,
    TimeSeries,
)

from ..catalog.model import Catalog
from ..conventions import STAGES
from .prometheus import (
    BAD,
    CHURN,
    CUSTOMERS,
    DECIDED,
    DRILLDOWN_UID,
    ERRORS,
    GOOD,
    JOURNEYS_BROKEN,
    LEFT_AFTER_BAD,
    LIFT,
    NPS,
    RELIABILITY,
    STATE,
    SURVEY_GAP,
    SURVEY_MEAN,
    VITAL_FEW,
    WINDOW_DECIDED,
    WINDOW_IMPACTED,
    WINDOW_LOWER,
    WINDOW_RELIABILITY,
    WINDOW_UPPER,
)

DATASOURCE = {"type": "prometheus", "uid": "tpmon-prometheus"}
WORKER = "http://localhost:6066"  # a worker's web address, as docker-compose publishes it (the stories)
STATE_COLOURS = (
    ("-1", "warming up", "#b0bec5"),
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


TILE = 7  # a tile's height: its state, then its reliability and volume beneath


def _tile(touchpoint, width: int, x: int, y: int) -> list[Stat]:  # type: ignore[no-untyped-def]
    """A touchpoint's tile: its state (the colour; NO DATA while its sources are silent; a click opens
    its drilldown), and beneath it its reliability against the objective (red under it, blue from
    differentiating) and its volume over its own state window, and at risk when it has at_risk. (Panels
    of their own rather than one with overrides: each keeps its unit and colours.)"""
    t = f'{{touchpoint="{touchpoint.id}"}}'
    link = {
        "title": f"{touchpoint.id}: drilldown",
        "type": "link",
        "url": f"/d/{DRILLDOWN_UID}?var-touchpoint={touchpoint.id}",
        "icon": "dashboard",
        "tooltip": "Rates, burn rate, latency, impact and stories",
        "tags": [],
        "asDropdown": False,
        "targetBlank": False,
        "includeVars": False,
        "keepTime": True,
    }
    state = Stat(
        title=touchpoint.id,
        description=f"{touchpoint.description} Owner: {touchpoint.owner}. Its state over {touchpoint.window.describe()}: "
        "broken only on confident evidence of a reliability below the objective (its drilldown says n and the "
        "bounds); NO DATA while every source that feeds it is silent. Click for its drilldown.",
        dataSource="prometheus",
        targets=[_target(f"{STATE}{t}", instant=True)],
        gridPos=GridPos(h=4, w=width, x=x, y=y),
        colorMode="background",
        graphMode="none",
        textMode="value",
        reduceCalc="lastNotNull",
        mappings=_state_mappings(),
        noValue="NO DATA",
        thresholds=[{"value": None, "color": "#8e8e8e"}],
        links=[link],
    )
    small = [
        Stat(
            title=f"reliability (objective {touchpoint.objective:.1%})",
            description=f"Good outcomes over {touchpoint.window.describe()}, against the objective of "
            f"{touchpoint.objective:.1%} (differentiating from {touchpoint.differentiating:.1%}).",
            dataSource="prometheus",
            targets=[_target(f"{WINDOW_RELIABILITY}{t}", instant=True)],
            colorMode="value",
            graphMode="none",
            reduceCalc="lastNotNull",
            format="percentunit",
            decimals=1,
            noValue="-",
            thresholds=[
                {"value": None, "color": "#d44a3a"},
                {"value": touchpoint.objective, "color": "#37872d"},
                {"value": touchpoint.differentiating, "color": "#1f60c4"},
            ],
        ),
        _count(
            f"decided ({touchpoint.window.text})",
            f"Outcomes decided over {touchpoint.window.describe()}: the volume the state stands on.",
            f"sum({WINDOW_DECIDED}{t})",
        ),
    ]
    if touchpoint.at_risk is not None:
        small.append(
            _count(
                "at risk",
                "Open instances with at most the touchpoint's at_risk left.",
                f"sum(tpmon_touchpoint_at_risk{t})",
                warn_from=1,
            )
        )
    step = width // len(small)
    for index, panel in enumerate(small):
        panel.gridPos = GridPos(
            h=TILE - 4, w=step if index < len(small) - 1 else width - step * index, x=x + index * step, y=y + 4
        )
    return [state, *small]


def _count(title: str, description: str, expr: str, warn_from: float | None = None) -> Stat:
    """A small count beneath a tile: grey, or amber from ``warn_from``."""
    steps = [{"value": None, "color": "#8e8e8e"}]
    if warn_from is not None:
        steps.append({"value": warn_from, "color": "#e0b400"})
    return Stat(
        title=title,
        description=description,
        dataSource="prometheus",
        targets=[_target(expr, instant=True)],
        colorMode="value",
        graphMode="none",
        reduceCalc="lastNotNull",
        decimals=0,
        noValue="0",
        thresholds=steps,
    )


def _vital(expr: str) -> str:
    """``expr`` for the vital few now (monitor.observe.prometheus.vital_few_rules)."""
    return f"{expr} and on (touchpoint) {VITAL_FEW}"


def customer_room(catalog: Catalog) -> Dashboard:
    """The wall: a tile per touchpoint by stage (state, reliability against objective, volume, at risk,
    a link to its drilldown); the vital few; alerts firing; customers in and out; pipeline health."""
    panels: list = []
    y = 0
    stages = [s for s in STAGES if any(t.stage == s for t in catalog.touchpoints)]
    stages += sorted({t.stage for t in catalog.touchpoints} - set(stages))
    for stage in stages:
        panels.append(RowPanel(title=f"{stage.capitalize()}", gridPos=GridPos(h=1, w=24, x=0, y=y)))
        y += 1
        members = [t for t in catalog.touchpoints if t.stage == stage]
        width = max(6, 24 // max(1, len(members)))
        for index, touchpoint in enumerate(members):
            panels += _tile(touchpoint, width, (index * width) % 24, y + (index * width) // 24 * TILE)
        y += TILE * ((len(members) * width + 23) // 24)

    panels.append(RowPanel(title="What matters most now", gridPos=GridPos(h=1, w=24, x=0, y=y)))
    # The survey whose gap the table shows: nps when the catalog's answers name it, else the first.
    surveys = catalog.contract.surveys
    gap_survey = "nps" if "nps" in surveys or not surveys else surveys[0]
    y += 1
    vital = Table(
        title="The vital few: broken touchpoints by customers impacted",
        description="The broken touchpoints that hurt the most customers (distinct customers with a bad outcome "
        "in each touchpoint's window), cut where they cover 80% of the customers broken touchpoints hurt: the "
        "vital few, as replay and /touchpoints name them. With those of them who left after a bad outcome "
        "(a day), the churn lift (their churn against everyone's) and the survey gap (mean score after good "
        "minus after bad, a day). Fix the first ones first.",
        dataSource="prometheus",
        targets=[
            Target(
                expr=f"sort_desc({VITAL_FEW})",
                legendFormat="{{touchpoint}}",
                refId="A",
                instant=True,
                format="table",
            ),
            Target(expr=_vital(LEFT_AFTER_BAD), legendFormat="{{touchpoint}}", refId="B", instant=True, format="table"),
            Target(expr=_vital(LIFT), legendFormat="{{touchpoint}}", refId="C", instant=True, format="table"),
            Target(
                expr=_vital(f'sum by (touchpoint) ({SURVEY_GAP}{{survey="{gap_survey}"}})'),
                legendFormat="{{touchpoint}}",
                refId="D",
                instant=True,
                format="table",
            ),
        ],
        transformations=[
            {"id": "merge", "options": {}},
            {
                "id": "organize",
                "options": {
                    "excludeByName": {"Time": True},
                    "renameByName": {
                        "Value #A": "customers impacted (its window)",
                        "Value #B": "left after bad (1d)",
                        "Value #C": "churn lift",
                        "Value #D": f"survey gap ({gap_survey})",
                    },
                },
            },
        ],
        gridPos=GridPos(h=8, w=14, x=0, y=y),
    )
    panels.append(vital)
    panels.append(
        Table(
            title="Alerts firing",
            description="Pages and tickets firing now (Prometheus's ALERTS), by touchpoint and owner.",
            dataSource="prometheus",
            targets=[
                Target(
                    expr='sum by (alertname, severity, touchpoint, owner, source) (ALERTS{alertstate="firing"})',
                    refId="A",
                    instant=True,
                    format="table",
                )
            ],
            transformations=[{"id": "organize", "options": {"excludeByName": {"Time": True, "Value": True}}}],
            gridPos=GridPos(h=8, w=10, x=14, y=y),
        )
    )
    y += 8
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
            title="Touchpoints by customers impacted (each in its window)",
            description="Distinct customers with a bad outcome of the touchpoint in its state window.",
            dataSource="prometheus",
            targets=[_target(f"sort_desc({WINDOW_IMPACTED})", "{{touchpoint}}", instant=True)],
            gridPos=GridPos(h=10, w=12, x=12, y=y),
        )
    )
    y += 10
    panels.append(RowPanel(title="Customers", gridPos=GridPos(h=1, w=24, x=0, y=y)))
    y += 1
    panels.append(
        Stat(
            title="Broken journeys (1h)",
            dataSource="prometheus",
            targets=[_target(JOURNEYS_BROKEN, instant=True)],
            gridPos=GridPos(h=6, w=4, x=0, y=y),
            colorMode="value",
            graphMode="none",
            reduceCalc="lastNotNull",
        )
    )
    panels.append(
        Stat(
            title="Churn (1d)",
            description="Customers who left over the last day, of the customers active (with an event) in it.",
            dataSource="prometheus",
            targets=[_target(CHURN, instant=True)],
            gridPos=GridPos(h=6, w=4, x=4, y=y),
            colorMode="value",
            graphMode="none",
            reduceCalc="lastNotNull",
            format="percentunit",
        )
    )
    panels.append(
        TimeSeries(
            title="Customers in and out (per hour)",
            dataSource="prometheus",
            targets=[_target(f"{CUSTOMERS.format(w='1h')} * 3600", "{{direction}}")],
            gridPos=GridPos(h=6, w=16, x=8, y=y),
        )
    )
    y += 6
    panels.append(RowPanel(title="Pipeline health", gridPos=GridPos(h=1, w=24, x=0, y=y)))
    y += 1
    health = (
        ("Events in (per second)", "sum by (source) (rate(tpmon_events_total[5m]))", "{{source}}"),
        (
            "Rejected (per second)",
            "sum by (source, reason) (rate(tpmon_events_rejected_total[5m]))",
            "{{source}} {{reason}}",
        ),
        ("Late (per second)", "sum by (source) (rate(tpmon_events_late_total[5m]))", "{{source}}"),
        ("Consumer lag (messages)", "sum by (topic) (tpmon_consumer_lag)", "{{topic}}"),
    )
    for index, (title, expr, legend) in enumerate(health):
        panels.append(
            TimeSeries(
                title=title,
                dataSource="prometheus",
                targets=[_target(expr, legend)],
                gridPos=GridPos(h=6, w=6, x=index * 6, y=y),
            )
        )
    y += 6
    if any(t.at_risk is not None for t in catalog.touchpoints):
        panels.append(
            BarGauge(
                title="At risk now",
                description="Open instances with at most their touchpoint's at_risk left (touchpoints with at_risk).",
                dataSource="prometheus",
                targets=[_target("sum by (touchpoint) (tpmon_touchpoint_at_risk)", "{{touchpoint}}", instant=True)],
                gridPos=GridPos(h=6, w=24, x=0, y=y),
            )
        )
    return Dashboard(
        title="Customer Room",
        uid="tpmon-customer-room",
        description="Every moment of truth, its state now: broken, reliable or differentiating; which matter most.",
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
    worker = Template(
        name="worker",
        label="Worker",
        type="textbox",
        query=WORKER,
        default=WORKER,
    )
    panels = [
        TimeSeries(title="Outcomes per second", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=0),
                   targets=[Target(expr=f"{GOOD.format(w='5m')}{t}", legendFormat="good", refId="A"),
                            Target(expr=f"{BAD.format(w='5m')}{t}", legendFormat="bad", refId="B")]),
        TimeSeries(title="Reliability over its window, its bounds, and the objective", dataSource="prometheus",
                   description="The state's evidence: broken while the upper bound is under the objective, "
                   "differentiating while the lower bound is at or above its line (docs/SEMANTICS.md, \"State\").",
                   gridPos=GridPos(h=8, w=12, x=12, y=0), unit="percentunit",
                   targets=[Target(expr=f"{WINDOW_RELIABILITY}{t}", legendFormat="reliability (its window)", refId="A"),
                            Target(expr=f"{WINDOW_UPPER}{t}", legendFormat="upper bound", refId="C"),
                            Target(expr=f"{WINDOW_LOWER}{t}", legendFormat="lower bound", refId="D"),
                            Target(expr=f"max(tpmon_touchpoint_objective_ratio{t})", legendFormat="objective", refId="B")]),
        TimeSeries(title="Burn rate (error budget consumption)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=8),
                   targets=[Target(expr=f"{ERRORS.format(w=w)}{t} / on (touchpoint) group_left () (1 - max by (touchpoint) (tpmon_touchpoint_objective_ratio{t}))", legendFormat=w, refId=ref)
                            for w, ref in (("5m", "A"), ("1h", "B"), ("6h", "C"), ("1d", "D"))]),
        TimeSeries(title="Latency, start to end (deadlines)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=12, y=8), unit="s",
                   targets=[Target(expr=f"histogram_quantile({q}, sum by (le) (rate(tpmon_touchpoint_latency_seconds_bucket{t}[5m])))", legendFormat=f"p{int(q * 100)}", refId=ref)
                            for q, ref in ((0.5, "A"), (0.9, "B"), (0.99, "C"))]),
        TimeSeries(title="Open instances (pending)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=16),
                   targets=[_target(f"sum(tpmon_touchpoint_pending{t})", "pending")]),
        TimeSeries(title="Decided outcomes: per hour, and in its state window (n)", dataSource="prometheus",
                   gridPos=GridPos(h=8, w=12, x=12, y=16),
                   targets=[_target(f"{DECIDED.format(w='1h')}{t} * 3600", "decided per hour"),
                            Target(expr=f"{WINDOW_DECIDED}{t}", legendFormat="in its window (n)", refId="B")]),
        RowPanel(title="Impact", gridPos=GridPos(h=1, w=24, x=0, y=24)),
        TimeSeries(title="Customers impacted (in its window) and left after bad (1d)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=25),
                   targets=[Target(expr=f"{WINDOW_IMPACTED}{t}", legendFormat="customers impacted (its window)", refId="A"),
                            Target(expr=f"{LEFT_AFTER_BAD}{t}", legendFormat="left after bad (1d)", refId="C")]),
        TimeSeries(title="Churn lift after bad (1d): their churn against everyone's", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=12, y=25),
                   targets=[_target(f"{LIFT}{t}", "lift")]),
        TimeSeries(title="Survey mean score after good and after bad (1d)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=0, y=33),
                   targets=[_target(f"{SURVEY_MEAN}{t}", "{{survey}} after {{after}}")]),
        TimeSeries(title="NPS after good and after bad (1d)", dataSource="prometheus", gridPos=GridPos(h=8, w=12, x=12, y=33),
                   targets=[_target(f"{NPS}{t}", "NPS after {{after}}")]),
        Text(title="Latest stories", gridPos=GridPos(h=5, w=24, x=0, y=41), mode="markdown",
             content="The customers behind the numbers: the latest journeys with a bad outcome of **$touchpoint**, "
                     "reconstructed by the worker ([${worker}/stories/$touchpoint](${worker}/stories/$touchpoint); "
                     "each story links its whole journey, `/journeys/<customer_id>`). Set the worker's address above."),
    ]  # fmt: skip
    return Dashboard(
        title="Touchpoint drilldown",
        uid="tpmon-touchpoint-drilldown",
        description="Rates, reliability, burn rate, latency, open instances, impact and stories of one touchpoint.",
        tags=["tpmon"],
        templating=Templating(list=[variable, worker]),
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
