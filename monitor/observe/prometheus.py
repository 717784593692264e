"""Prometheus recording and alerting rules from the catalog (names: level:metric:operations).

Recording rules (one group, the same for every touchpoint):
  touchpoint:tpmon_touchpoint_decided:rate<w>, ...:good:rate<w>, ...:bad:rate<w>
  touchpoint:tpmon_touchpoint_errors:ratio_rate<w>        bad / decided (the burn-rate input)
  touchpoint:tpmon_touchpoint_reliability:ratio_rate<w>   good / decided
  direction:tpmon_customers:rate<w>                       customers in and out
  touchpoint:tpmon_touchpoint_customers_impacted:increase1h   customers hit (each once)
  tpmon:tpmon_journeys_broken:increase1h
Impact, over a day (docs/SEMANTICS.md, "Impact"):
  touchpoint:tpmon_touchpoint_customers_impacted:increase1d   distinct customers a day
  touchpoint:tpmon_touchpoint_left_after_bad:increase1d
  tpmon:tpmon_customers_churn:ratio_increase1d              customers who left / customers active
  touchpoint:tpmon_touchpoint_churn_lift:ratio_increase1d   (left after bad / impacted) / the churn
  touchpoint:tpmon_touchpoint_survey_score:mean1d           by survey and after (good, bad)
  touchpoint:tpmon_touchpoint_nps:ratio_increase1d          NPS by after (good, bad)
  touchpoint:tpmon_touchpoint_survey_gap:mean1d             mean after good - mean after bad, by survey
Over each touchpoint's own state window, from the gauges the workers serve per partition
(tpmon_touchpoint_window_outcomes, tpmon_touchpoint_warming_up; docs/SEMANTICS.md, "State"):
  touchpoint:tpmon_touchpoint_window_good:sum, ...:window_decided:sum     the outcomes in the window
  touchpoint:tpmon_touchpoint_window_reliability:ratio                    good / decided
  touchpoint:tpmon_touchpoint_window_lower:wilson, ...:window_upper:wilson  the Wilson bounds at the
                                                                          catalog's confidence
  touchpoint:tpmon_touchpoint_warming_up:min                              1 while every partition warms up
  touchpoint:tpmon_touchpoint_decided:increase1d, ...:bad:increase1d, ...:upper:wilson1d   the last day's
  touchpoint:tpmon_touchpoint_window_customers_impacted:sum                 distinct customers with a bad
                                                                          outcome in the window
The vital few (monitor.state.vital_few, the same rule in PromQL: ``vital_few_rules``):
  touchpoint:tpmon_touchpoint_broken_customers_impacted:sum   the broken touchpoints' customers impacted
  touchpoint:tpmon_touchpoint_vital_few:customers_impacted    the vital few's, one rule per touchpoint
Per touchpoint (its constants come from the catalog):
  touchpoint:tpmon_touchpoint_state:value  -1 warming up, 0 unknown, 1 broken, 2 reliable,
                                           3 differentiating (monitor.state's rule); no value while all
                                           its sources are silent (the wall's "no data")
  touchpoint:tpmon_touchpoint_error_budget_remaining:ratio_rate3d   1 - bad share / budget, over 3d
Alerts per touchpoint: TouchpointBurnRate, one per severity (page: the 1h and 6h tiers; ticket: 1d
and 3d; each tier multi-window, with a minimum volume), so that an incident pages once;
TouchpointBroken from the state (a page, unless the burn rate already pages: one page at a time per
touchpoint, grouped as one incident by Alertmanager); TouchpointBadOutcomes for touchpoints too quiet
for burn rates (the last day's outcomes alone confident evidence of a reliability below the objective,
with at least LOW_VOLUME_BAD bad ones; on while the last hour holds fewer than min_events, or always, or
never: alerts.low_volume); TouchpointAtRisk where the touchpoint has at_risk. Descriptions carry the bad share now, the budget left and the drilldown.
For the pipeline: TpmonInternalErrors, TpmonWorkerDown, TpmonConsumerLagGrowing, TpmonRejectedSpike
and SourceSilent per source.
"""

from __future__ import annotations

from ..catalog.model import DEFAULT_GRAFANA, Catalog, Touchpoint
from ..conventions import (
    METRIC_AT_RISK,
    METRIC_CUSTOMERS,
    METRIC_CUSTOMERS_ACTIVE,
    METRIC_CUSTOMERS_IMPACTED,
    METRIC_EVENTS,
    METRIC_FORGET_READER_UP,
    METRIC_INTERNAL_ERRORS,
    METRIC_JOURNEYS_BROKEN,
    METRIC_LEFT_AFTER_BAD,
    METRIC_OUTCOMES,
    METRIC_REJECTED,
    METRIC_SOURCE_LAST_EVENT,
    METRIC_SOURCE_SILENT_OPEN,
    METRIC_SURVEY_ANSWERS,
    METRIC_SURVEY_SCORE,
    METRIC_WARMING_UP,
    METRIC_WINDOW_CUSTOMERS_IMPACTED,
    METRIC_WINDOW_OUTCOMES,
    STATE_VALUES,
)
from ..durations import format_duration
from ..state import VITAL_SHARE
from .windows import PROFILES, STATE_WINDOW, WINDOWS, Profile

DRILLDOWN_UID = "tpmon-touchpoint-drilldown"  # monitor.observe.grafana's
BUDGET = "touchpoint:tpmon_touchpoint_error_budget_remaining:ratio_rate3d"
BUDGET_WINDOW = "3d"
METRIC_LAG = "tpmon_consumer_lag"
LAG_FLOOR = 1000  # messages behind before a growing backlog is worth a ticket
REJECTED_SHARE = 0.05  # of a source's messages
REJECTED_FLOOR = 20  # rejects in the window, so that two bad lines at night open nothing
DECIDED = "touchpoint:tpmon_touchpoint_decided:rate{w}"
GOOD = "touchpoint:tpmon_touchpoint_good:rate{w}"
BAD = "touchpoint:tpmon_touchpoint_bad:rate{w}"
ERRORS = "touchpoint:tpmon_touchpoint_errors:ratio_rate{w}"
RELIABILITY = "touchpoint:tpmon_touchpoint_reliability:ratio_rate{w}"
CUSTOMERS = "direction:tpmon_customers:rate{w}"
IMPACTED = "touchpoint:tpmon_touchpoint_customers_impacted:increase" + STATE_WINDOW
JOURNEYS_BROKEN = "tpmon:tpmon_journeys_broken:increase" + STATE_WINDOW
IMPACTED_DAY = "touchpoint:tpmon_touchpoint_customers_impacted:increase1d"
LEFT_AFTER_BAD = "touchpoint:tpmon_touchpoint_left_after_bad:increase1d"
CHURN = "tpmon:tpmon_customers_churn:ratio_increase1d"
LIFT = "touchpoint:tpmon_touchpoint_churn_lift:ratio_increase1d"
SURVEY_MEAN = "touchpoint:tpmon_touchpoint_survey_score:mean1d"
NPS = "touchpoint:tpmon_touchpoint_nps:ratio_increase1d"
SURVEY_GAP = "touchpoint:tpmon_touchpoint_survey_gap:mean1d"
STATE = "touchpoint:tpmon_touchpoint_state:value"
WINDOW_GOOD = "touchpoint:tpmon_touchpoint_window_good:sum"
WINDOW_DECIDED = "touchpoint:tpmon_touchpoint_window_decided:sum"
WINDOW_RELIABILITY = "touchpoint:tpmon_touchpoint_window_reliability:ratio"
WINDOW_LOWER = "touchpoint:tpmon_touchpoint_window_lower:wilson"
WINDOW_UPPER = "touchpoint:tpmon_touchpoint_window_upper:wilson"
WARMING = "touchpoint:tpmon_touchpoint_warming_up:min"
WINDOW_IMPACTED = "touchpoint:tpmon_touchpoint_window_customers_impacted:sum"
BROKEN_IMPACTED = "touchpoint:tpmon_touchpoint_broken_customers_impacted:sum"
VITAL_FEW = "touchpoint:tpmon_touchpoint_vital_few:customers_impacted"
LOW_VOLUME_WINDOW = "1d"  # TouchpointBadOutcomes judges the outcomes of the last day
LOW_VOLUME_BAD = 3  # ...with at least this many bad: one or two bad outcomes page nobody
DAY_DECIDED = "touchpoint:tpmon_touchpoint_decided:increase1d"
DAY_BAD = "touchpoint:tpmon_touchpoint_bad:increase1d"
DAY_UPPER = "touchpoint:tpmon_touchpoint_upper:wilson1d"
BY = "touchpoint, stage, owner"


#: What a Prometheus scraping the workers keeps of their series: a partition's series continue on the
#: worker that takes it over, so they go without the worker's address (docs/METRICS.md, "Scraping").
PARTITION_SERIES = [{"source_labels": ["partition"], "regex": ".+", "target_label": "instance", "replacement": ""}]


def scrape_job(
    targets: list[str], scheme: str = "http", basic_auth: dict | None = None, tls_config: dict | None = None
) -> dict:
    """The scrape configuration of the workers at ``targets`` (HOST:PORT each). Workers with a web
    configuration (docs/SECURITY.md) are scraped with ``scheme`` https when they serve TLS, ``basic_auth``
    ({"username": ..., "password_file": ...}) when they ask for a password and ``tls_config`` (its
    "ca_file": the CA of their certificates; "cert_file" and "key_file" when they ask for one)."""
    job: dict = {"job_name": "tpmon"}
    if scheme != "http":
        job["scheme"] = scheme
    if basic_auth:
        job["basic_auth"] = dict(basic_auth)
    if tls_config:
        job["tls_config"] = dict(tls_config)
    return {**job, "static_configs": [{"targets": targets}], "metric_relabel_configs": PARTITION_SERIES}


def wilson(reliability: str, decided: str, z: float, side: str) -> str:
    """PromQL of the one-sided Wilson bound (side "+": upper, "-": lower) of a reliability over
    ``decided`` outcomes at the normal quantile z, as monitor.state.wilson computes it."""
    z2 = z * z
    return (
        f"(\n  {reliability} + {z2 / 2:.6g} / {decided}\n"
        f"  {side} {z:.6g} * sqrt({reliability} * (1 - {reliability}) / {decided} + {z2 / 4:.6g} / ({decided} * {decided}))\n"
        f") / (1 + {z2:.6g} / {decided})"
    )


def window_rules(z: float) -> list[dict]:
    """The outcomes in each touchpoint's own window, added up over the partitions, and their bounds."""
    by = f"sum by ({BY})"
    return [
        {"record": WINDOW_GOOD, "expr": f'{by} ({METRIC_WINDOW_OUTCOMES}{{outcome="good"}})'},
        {"record": WINDOW_DECIDED, "expr": f"{by} ({METRIC_WINDOW_OUTCOMES})"},
        {"record": WINDOW_RELIABILITY, "expr": f"{WINDOW_GOOD} / ({WINDOW_DECIDED} > 0)"},
        {"record": WINDOW_LOWER, "expr": wilson(WINDOW_RELIABILITY, WINDOW_DECIDED, z, "-")},
        {"record": WINDOW_UPPER, "expr": wilson(WINDOW_RELIABILITY, WINDOW_DECIDED, z, "+")},
        # Warming up while every partition with data is (one whose data reaches back far enough speaks).
        {"record": WARMING, "expr": f"min by (touchpoint) ({METRIC_WARMING_UP})"},
        # A customer lives in one partition: the partitions' distinct customers add up.
        {"record": WINDOW_IMPACTED, "expr": f"sum by (touchpoint) ({METRIC_WINDOW_CUSTOMERS_IMPACTED})"},
    ]


def recording_rules(profile: Profile, z: float) -> dict:
    rules: list[dict] = window_rules(z)
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
    state_window, day = profile.window(STATE_WINDOW), profile.window("1d")
    # The last day's outcomes and the upper bound of their reliability (TouchpointBadOutcomes).
    rules += [
        {"record": DAY_DECIDED, "expr": f"sum by ({BY}) (increase({METRIC_OUTCOMES}[{day}]))"},
        {"record": DAY_BAD, "expr": f'sum by ({BY}) (increase({METRIC_OUTCOMES}{{outcome="bad"}}[{day}]))'},
        {"record": DAY_UPPER, "expr": wilson(f"(1 - {DAY_BAD} / ({DAY_DECIDED} > 0))", DAY_DECIDED, z, "+")},
    ]
    # The customers-impacted counter counts a customer once per UTC day: its increase over an hour or
    # a day counts each customer hit once (twice at most, across midnight).
    rules += [
        {"record": IMPACTED, "expr": f"sum by (touchpoint) (increase({METRIC_CUSTOMERS_IMPACTED}[{state_window}]))"},
        {"record": JOURNEYS_BROKEN, "expr": f"sum(increase({METRIC_JOURNEYS_BROKEN}[{state_window}]))"},
    ]
    by_side = "touchpoint, survey, after"
    score = METRIC_SURVEY_SCORE
    nps = METRIC_SURVEY_ANSWERS + '{survey="nps"'
    rules += [
        {"record": IMPACTED_DAY, "expr": f"sum by (touchpoint) (increase({METRIC_CUSTOMERS_IMPACTED}[{day}]))"},
        {"record": LEFT_AFTER_BAD, "expr": f"sum by (touchpoint) (increase({METRIC_LEFT_AFTER_BAD}[{day}]))"},
        {
            "record": CHURN,
            "expr": f'sum(increase({METRIC_CUSTOMERS}{{direction="left"}}[{day}]))\n'
            f"/ sum(increase({METRIC_CUSTOMERS_ACTIVE}[{day}]))",
        },
        # Leavings after bad per customer impacted, a day's flows (in a steady state, the share of those
        # hurt who leave within the attribution window), against everyone's churn; no value while no
        # customer was impacted or nobody left.
        {"record": LIFT, "expr": f"({LEFT_AFTER_BAD} / ({IMPACTED_DAY} > 0)) / scalar({CHURN} > 0)"},
        {
            "record": SURVEY_MEAN,
            "expr": f"sum by ({by_side}) (increase({score}_sum[{day}]))\n"
            f"/ (sum by ({by_side}) (increase({score}_count[{day}])) > 0)",
        },
        {
            "record": NPS,
            "expr": f'100 * (\n  sum by ({by_side}) (increase({nps},class="promoter"}}[{day}]))\n'
            f'  - sum by ({by_side}) (increase({nps},class="detractor"}}[{day}]))\n)\n'
            f"/ (sum by ({by_side}) (increase({nps}}}[{day}])) > 0)",
        },
        {
            "record": SURVEY_GAP,
            "expr": f'sum by (touchpoint, survey) ({SURVEY_MEAN}{{after="good"}})\n'
            f'- sum by (touchpoint, survey) ({SURVEY_MEAN}{{after="bad"}})',
        },
    ]
    return {"name": "tpmon-touchpoints", "rules": rules}


def state_rule(touchpoint: Touchpoint, profile: Profile, catalog: Catalog | None = None) -> dict:
    """monitor.state's rule over the touchpoint's window: -1 warming up, 0 unknown (under min_events),
    1 broken (the upper bound below the objective), 3 differentiating (the lower bound at or above its
    line), else 2 reliable; 0 without any data; no value at all (the wall's "no data") while every
    source that feeds the touchpoint is silent."""
    t = f'{{touchpoint="{touchpoint.id}"}}'
    values = STATE_VALUES
    expr = (
        f"  (min({WARMING}{t}) == 1) * 0 + {values['warming up']}\n"
        f"or\n  (sum({WINDOW_DECIDED}{t}) < {touchpoint.min_events}) * 0 + {values['unknown']}\n"
        f"or\n  (sum({WINDOW_UPPER}{t}) < {touchpoint.objective:g}) * 0 + {values['broken']}\n"
        f"or\n  (sum({WINDOW_LOWER}{t}) >= {touchpoint.differentiating:g}) * 0 + {values['differentiating']}\n"
        f"or\n  sum({WINDOW_DECIDED}{t}) * 0 + {values['reliable']}\n"
        f"or\n  vector({values['unknown']})"
    )
    silent = [_silent(source, profile) for source in _sources(catalog, touchpoint)]
    expr = f"(\n{expr}\n)"
    if silent:
        expr = f"{expr}\nunless on ()\n(\n  " + "\n  and on ()\n  ".join(silent) + "\n)"
    return {"record": STATE, "expr": expr, "labels": _labels(touchpoint)}


def vital_few_rules(catalog: Catalog) -> dict:
    """monitor.state.vital_few in PromQL, over each touchpoint's state and distinct customers impacted in
    its window: the broken touchpoints ranked by customers impacted (most first, then id), cut at the
    shortest prefix that covers VITAL_SHARE of their sum. PromQL has no running sum, so each touchpoint
    has its own rule, written from the catalog's ids: it is in the vital few when no broken touchpoint
    ranks before it, or when those that do cover less than VITAL_SHARE of the sum. Its value is its
    customers impacted. (A group of its own, after the touchpoints' states.)"""
    broken = BROKEN_IMPACTED
    rules: list[dict] = [
        {"record": broken, "expr": f"{WINDOW_IMPACTED}\nand on (touchpoint)\n({STATE} == {STATE_VALUES['broken']})"}
    ]
    ids = sorted(catalog.ids)
    for touchpoint in catalog.touchpoints:
        mine = f'scalar({broken}{{touchpoint="{touchpoint.id}"}})'
        ahead = []  # the broken touchpoints ranked before it: more customers, or as many and an id before
        earlier = [other for other in ids if other < touchpoint.id]
        later = [other for other in ids if other > touchpoint.id]
        if earlier:
            ahead.append(f'{broken}{{touchpoint=~"{"|".join(earlier)}"}} >= {mine}')
        if later:
            ahead.append(f'{broken}{{touchpoint=~"{"|".join(later)}"}} > {mine}')
        before = " or ".join(f"({term})" for term in ahead) or "vector(0) < 0"
        expr = (
            f'sum({broken}{{touchpoint="{touchpoint.id}"}})\nand on ()\n(\n'
            f"  (sum({before}) or vector(0)) < {VITAL_SHARE} * scalar(sum({broken}))\n"
            f"  or\n  (count({before}) or vector(0)) == 0\n)"
        )
        rules.append({"record": VITAL_FEW, "expr": expr, "labels": {"touchpoint": touchpoint.id}})
    return {"name": "tpmon-vital-few", "rules": rules}


def _sources(catalog: Catalog | None, touchpoint: Touchpoint) -> list:
    if catalog is None:
        return []
    names = catalog.sources_of(touchpoint)
    return [source for source in catalog.contract.sources if source.name in names]


def _silent(source, profile: Profile, by: str = "") -> str:  # type: ignore[no-untyped-def]
    """True while a source has sent nothing for its silent_after (what SourceSilent says); with a
    calendar, counted in its open hours, as the workers measure it (PromQL knows no time zones)."""
    seconds = source.silent_after // profile.scale // 1_000_000
    if source.calendar:
        return f'min{by} ({METRIC_SOURCE_SILENT_OPEN}{{source="{source.name}"}}) > {seconds}'
    selector = METRIC_SOURCE_LAST_EVENT + '{source="' + source.name + '"}'
    return f"time() - max{by} ({selector}) > {seconds}"


def budget_rule(touchpoint: Touchpoint) -> dict:
    """What is left of the error budget over the longest window: 1 - bad share / (1 - objective)
    (negative when overspent)."""
    t = f'{{touchpoint="{touchpoint.id}"}}'
    return {
        "record": BUDGET,
        "expr": f"1 - sum({ERRORS.format(w=BUDGET_WINDOW)}{t}) / {1 - touchpoint.objective:.6g}",
        "labels": _labels(touchpoint),
    }


def _now(record: str, touchpoint: Touchpoint, how: str = "humanizePercentage", clamp: bool = False) -> str:
    """An alert template that reads a touchpoint's recorded figure when the alert is sent."""
    query = f'{record}{{touchpoint="{touchpoint.id}"}}'
    if clamp:
        query = f"clamp_min({query}, 0)"
    return f'{{{{ with query "{_quoted(query)}" }}}}{{{{ . | first | value | {how} }}}}{{{{ else }}}}?{{{{ end }}}}'


def _quoted(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _links(touchpoint: Touchpoint, grafana: str) -> dict:
    links = {"dashboard": f"{grafana}/d/{DRILLDOWN_UID}?var-touchpoint={touchpoint.id}"}
    if touchpoint.runbook:
        links["runbook_url"] = touchpoint.runbook
    return links


def low_volume_rule(touchpoint: Touchpoint, profile: Profile, z: float, confidence: float, grafana: str) -> dict | None:
    """TouchpointBadOutcomes: the last day's outcomes alone are confident evidence of a reliability below
    the objective (monitor.state's rule over a day, at least LOW_VOLUME_BAD of them bad). Burn rates
    need hundreds of outcomes an hour; this needs a handful, and asks for more the more there are. On
    while the last hour holds fewer outcomes than min_events (the burn rates' volume guard), unless the
    catalog says always (alerts.low_volume: true) or never (false)."""
    if touchpoint.low_volume is False:
        return None
    t = f'{{touchpoint="{touchpoint.id}"}}'
    span = profile.window(LOW_VOLUME_WINDOW)
    expr = (
        f"sum({DAY_BAD}{t}) >= {LOW_VOLUME_BAD}\nand on ()\nsum({DAY_DECIDED}{t}) >= {touchpoint.min_events}\n"
        f"and on ()\nsum({DAY_UPPER}{t}) < {touchpoint.objective:g}"
    )
    if touchpoint.low_volume is None:
        hour = f"sum({DECIDED.format(w='1h')}{t}) * {profile.seconds('1h')}"
        expr += f"\nand on ()\n{hour} < {touchpoint.min_events}"
    return {
        "alert": "TouchpointBadOutcomes",
        "expr": expr,
        "for": profile.window("5m"),
        "labels": {**_labels(touchpoint), "severity": "page"},
        "annotations": {
            "summary": f"{touchpoint.id}: too many bad outcomes for its volume",
            "description": (
                f"{touchpoint.description} Over the last {span}, {{{{ $value | humanize }}}} outcomes were bad: with so few "
                f"decided, that is {confidence:.0%} confident evidence of a reliability below the objective of "
                f"{touchpoint.objective:.2%} (too few outcomes an hour for the burn-rate alerts). Owner: "
                f"{touchpoint.owner}."
            ),
            **_links(touchpoint, grafana),
        },
    }


def alert_rules(
    touchpoint: Touchpoint, profile: Profile, grafana: str = DEFAULT_GRAFANA, z: float = 2.326, confidence: float = 0.99
) -> list[dict]:
    """One TouchpointBurnRate alert per severity (its two tiers, either firing); TouchpointBroken, a page
    unless the burn rate pages already, so that an incident pages once; TouchpointAtRisk, a ticket
    before the breaches."""
    t = f'{{touchpoint="{touchpoint.id}"}}'
    budget = 1 - touchpoint.objective
    alerts = []
    now_bad = _now(ERRORS.format(w=STATE_WINDOW), touchpoint)
    budget_left = _now(BUDGET, touchpoint, clamp=True)
    for severity in ("page", "ticket"):
        tiers = [tier for tier in touchpoint.tiers if tier.severity == severity]
        conditions = []
        for tier in tiers:
            threshold = f"({tier.factor:g} * {budget:.6g})"
            long_errors, short_errors = ERRORS.format(w=tier.long) + t, ERRORS.format(w=tier.short) + t
            volume = f"{DECIDED.format(w=tier.long)}{t} * {profile.seconds(tier.long)}"
            conditions.append(
                f"(\n  {long_errors} > {threshold}\n  and\n  {short_errors} > {threshold}\n"
                f"  and on (touchpoint)\n  {volume} >= {touchpoint.min_events}\n)"
            )
        if severity == "page":
            paging = "\nor\n".join(conditions)
        said = " or ".join(
            f"more than {tier.factor * budget:.2%} over {profile.window(tier.long)} and {profile.window(tier.short)}"
            f" ({tier.factor:g}x the budget)"
            for tier in tiers
        )
        alerts.append(
            {
                "alert": "TouchpointBurnRate",
                "expr": "\nor\n".join(conditions),
                "labels": {**_labels(touchpoint), "severity": severity},
                "annotations": {
                    "summary": f"{touchpoint.id} is burning its error budget too fast ({severity})",
                    "description": (
                        f"{touchpoint.description} Bad outcomes: {said}; over the last "
                        f"{profile.window(STATE_WINDOW)}, {now_bad} were bad against the {budget:.2%} the "
                        f"objective allows. Error budget left over {profile.window(BUDGET_WINDOW)}: {budget_left}. "
                        f"Owner: {touchpoint.owner}."
                    ),
                    **_links(touchpoint, grafana),
                },
            }
        )
    # Broken pages too, but not while the burn rate pages: at most one page per touchpoint at a time,
    # and Alertmanager groups a touchpoint's pages as one incident (monitor.observe.alertmanager).
    window = (
        touchpoint.window.describe()
        if touchpoint.window.span is None
        else f"the last {profile.window(touchpoint.window.text)}"
    )
    alerts.append(
        {
            "alert": "TouchpointBroken",
            "expr": f"{STATE}{t} == {STATE_VALUES['broken']}\nunless on (touchpoint)\n(\n{paging}\n)",
            "for": profile.window("5m"),
            "labels": {**_labels(touchpoint), "severity": "page"},
            "annotations": {
                "summary": f"{touchpoint.id} is broken",
                "description": (
                    f"{touchpoint.description} Over {window}, its reliability is "
                    f"{_now(WINDOW_RELIABILITY, touchpoint)}, and at most {_now(WINDOW_UPPER, touchpoint)} at "
                    f"{confidence:.0%} confidence: below the objective of {touchpoint.objective:.2%}. Error budget "
                    f"left over {profile.window(BUDGET_WINDOW)}: {budget_left}. Owner: {touchpoint.owner}."
                ),
                **_links(touchpoint, grafana),
            },
        }
    )
    low = low_volume_rule(touchpoint, profile, z, confidence, grafana)
    if low is not None:
        alerts.append(low)
    if touchpoint.at_risk is not None:
        alerts.append(
            {
                "alert": "TouchpointAtRisk",
                "expr": f"sum by ({BY}) ({METRIC_AT_RISK}{t}) >= {touchpoint.at_risk_alert}",
                "for": profile.window("2m"),
                "labels": {**_labels(touchpoint), "severity": "ticket"},
                "annotations": {
                    "summary": f"{touchpoint.id}: instances at risk of missing their deadline",
                    "description": (
                        f"{touchpoint.description} {{{{ $value }}}} open instances have at most "
                        f"{format_duration(touchpoint.at_risk)} left (alert from {touchpoint.at_risk_alert}); the "
                        f"workers' /touchpoints lists them with customer, key and time left. Owner: "
                        f"{touchpoint.owner}."
                    ),
                    **_links(touchpoint, grafana),
                },
            }
        )
    return alerts


def pipeline_rules(profile: Profile, catalog: Catalog | None = None) -> dict:
    """Alerts on tpmon itself and its inputs, for whoever runs it (no owner: the default route)."""
    window = profile.window("10m")
    rules: list[dict] = [
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
            },
        },
        {
            "alert": "TpmonWorkerDown",
            "expr": 'up{job="tpmon"} == 0',
            "for": profile.window("2m"),
            "labels": {"severity": "page", "tier": "pipeline"},
            "annotations": {
                "summary": "a tpmon worker is down ({{ $labels.instance }})",
                "description": (
                    "Prometheus cannot scrape the worker at {{ $labels.instance }}. Its partitions move to the "
                    "other workers after the session timeout; with none left, no touchpoint is judged and the "
                    "wall goes stale."
                ),
            },
        },
        {
            "alert": "TpmonForgetReaderDown",
            "expr": f"{METRIC_FORGET_READER_UP} == 0",
            "for": window,
            "labels": {"severity": "ticket", "tier": "pipeline"},
            "annotations": {
                "summary": "a tpmon worker cannot read the requests to forget customers ({{ $labels.instance }})",
                "description": (
                    f"The worker at {{{{ $labels.instance }}}} has not read the forget topic for {window} (an ACL "
                    "taken away, the topic deleted?): customers asked to be forgotten meanwhile keep their "
                    "journeys on its partitions until it reads again. Its log says why (docs/SECURITY.md)."
                ),
            },
        },
        {
            "alert": "TpmonConsumerLagGrowing",
            "expr": (
                f"sum by (topic) ({METRIC_LAG}) > {LAG_FLOOR}\nand\nsum by (topic) (deriv({METRIC_LAG}[{window}])) > 0"
            ),
            "for": window,
            "labels": {"severity": "ticket", "tier": "pipeline"},
            "annotations": {
                "summary": "tpmon is falling behind on {{ $labels.topic }}",
                "description": (
                    "{{ $value | humanize }} messages of {{ $labels.topic }} are not yet processed and the "
                    f"backlog has grown for {window}: the workers cannot keep up (add workers: "
                    "`docker compose up --scale worker=N`), or one is stuck. Deadlines are decided late meanwhile."
                ),
            },
        },
        {
            "alert": "TpmonRejectedSpike",
            "expr": (
                f"sum by (source) (rate({METRIC_REJECTED}[{window}]))\n"
                f"/\n(sum by (source) (rate({METRIC_REJECTED}[{window}])) + sum by (source) "
                f"(rate({METRIC_EVENTS}[{window}])))\n> {REJECTED_SHARE}\n"
                f"and\nsum by (source) (increase({METRIC_REJECTED}[{window}])) >= {REJECTED_FLOOR}"
            ),
            "for": profile.window("5m"),
            "labels": {"severity": "ticket", "tier": "pipeline"},
            "annotations": {
                "summary": "many inputs of {{ $labels.source }} are rejected",
                "description": (
                    "{{ $value | humanizePercentage }} of the messages of {{ $labels.source }} were rejected over "
                    f"the last {window} (a producer changed its format?). They are kept whole in the dead-letter "
                    "topic with the reason: `tpmon rejects` lists them."
                ),
            },
        },
    ]
    for source in catalog.contract.sources if catalog is not None else ():
        silent = source.silent_after // profile.scale // 1_000_000
        rules.append(
            {
                "alert": "SourceSilent",
                "expr": _silent(source, profile, by=" by (source)"),
                "labels": {"severity": "ticket", "tier": "pipeline", "source": source.name},
                "annotations": {
                    "summary": f"source {source.name} has sent nothing for {format_duration(silent * 1_000_000)}",
                    "description": (
                        f"No valid event of {source.name} reached tpmon for more than its silent_after "
                        f"({format_duration(silent * 1_000_000)}). The touchpoints fed only by it show no data. "
                        "Is the producer down, or sending to another topic?"
                    ),
                },
            }
        )
    return {"name": "tpmon-pipeline", "rules": rules}


def _labels(touchpoint: Touchpoint) -> dict:
    return {"touchpoint": touchpoint.id, "stage": touchpoint.stage, "owner": touchpoint.owner}


def rule_files(catalog: Catalog, profile: Profile = PROFILES["production"]) -> dict[str, dict]:
    """File name -> Prometheus rule file content, in a stable order."""
    files = {"recording.yml": {"groups": [recording_rules(profile, catalog.z)]}}
    groups = []
    for touchpoint in catalog.touchpoints:
        groups.append(
            {
                "name": f"tpmon-{touchpoint.id}",
                "rules": [
                    state_rule(touchpoint, profile, catalog),
                    budget_rule(touchpoint),
                    *alert_rules(touchpoint, profile, catalog.grafana, catalog.z, catalog.confidence),
                ],
            }
        )
    files["touchpoints.yml"] = {"groups": [*groups, vital_few_rules(catalog), pipeline_rules(profile, catalog)]}
    return files
