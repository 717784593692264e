"""Every name other tools depend on, in one place: metrics, labels, topics, states, outcomes."""

from __future__ import annotations

# tpmon's own Kafka topics (defaults; the worker takes others from its settings). The source topics
# are the catalog's sources (rules/events.yaml).
DEAD_LETTER_TOPIC = "tpmon-rejects"
JOURNEYS_TOPIC = "tpmon-journeys"
FORGET_TOPIC = "tpmon-forget"  # requests to forget a customer (monitor.erasures), compacted, one partition

# Metric names (docs/METRICS.md: these do not change).
METRIC_OUTCOMES = "tpmon_touchpoint_outcomes_total"
METRIC_PENDING = "tpmon_touchpoint_pending"
METRIC_LATENCY = "tpmon_touchpoint_latency_seconds"
METRIC_OBJECTIVE = "tpmon_touchpoint_objective_ratio"
METRIC_EVENTS = "tpmon_events_total"
METRIC_REJECTED = "tpmon_events_rejected_total"
METRIC_DUPLICATES = "tpmon_events_duplicate_total"
METRIC_LATE = "tpmon_events_late_total"
METRIC_CUSTOMERS = "tpmon_customers_total"
METRIC_JOURNEYS_BROKEN = "tpmon_journeys_broken_total"
# Additions of our own.
METRIC_RULE_ERRORS = "tpmon_touchpoint_rule_errors_total"
METRIC_SOURCE_SILENT_OPEN = "tpmon_source_silent_open_seconds"
METRIC_WINDOW_OUTCOMES = "tpmon_touchpoint_window_outcomes"
METRIC_WARMING_UP = "tpmon_touchpoint_warming_up"
METRIC_DIFFERENTIATING = "tpmon_touchpoint_differentiating_ratio"
METRIC_MIN_EVENTS = "tpmon_touchpoint_min_events"
METRIC_INTERNAL_ERRORS = "tpmon_internal_errors_total"
METRIC_AT_RISK = "tpmon_touchpoint_at_risk"
METRIC_SOURCE_LAST_EVENT = "tpmon_source_last_event_timestamp_seconds"
METRIC_CUSTOMERS_ACTIVE = "tpmon_customers_active_total"
METRIC_CUSTOMERS_IMPACTED = "tpmon_touchpoint_customers_impacted_total"
METRIC_WINDOW_CUSTOMERS_IMPACTED = "tpmon_touchpoint_window_customers_impacted"
METRIC_LEFT_AFTER_BAD = "tpmon_touchpoint_left_after_bad_total"
METRIC_SURVEY_SCORE = "tpmon_touchpoint_survey_score"
METRIC_SURVEY_ANSWERS = "tpmon_touchpoint_survey_answers_total"
METRIC_FORGET_READER_UP = "tpmon_forget_reader_up"  # 1 while the forget topic is read (streams.erasures)
METRIC_FORGET_LAST_REQUEST = "tpmon_forget_last_request_offset"  # the last request applied by the worker

# Label names.
LABEL_TOUCHPOINT = "touchpoint"
LABEL_STAGE = "stage"
LABEL_OWNER = "owner"
LABEL_OUTCOME = "outcome"
LABEL_SOURCE = "source"
LABEL_TYPE = "type"
LABEL_REASON = "reason"
LABEL_DIRECTION = "direction"
LABEL_SURVEY = "survey"
LABEL_AFTER = "after"  # good or bad: the side of a survey answer (monitor.engine.impact)
LABEL_CLASS = "class"  # promoter, passive, detractor (nps), else all
LABEL_STAGE_OF_FAILURE = "stage"  # where processing failed (monitor.failures); not a journey stage

# Label values.
GOOD = "good"
BAD = "bad"
OUTCOMES = (GOOD, BAD)
JOINED = "joined"
LEFT = "left"
OTHER_TYPE = "other"

# The stages of the customer journey, in order.
STAGES = ("buy", "get", "pay", "help", "leave")

# Touchpoint states, with the number Prometheus recording rules use for each.
UNKNOWN = "unknown"
BROKEN = "broken"
RELIABLE = "reliable"
DIFFERENTIATING = "differentiating"
WARMING_UP = "warming up"  # its window, or the time it takes to decide, reaches before the first data
STATE_VALUES = {WARMING_UP: -1, UNKNOWN: 0, BROKEN: 1, RELIABLE: 2, DIFFERENTIATING: 3}

# The source name used for events read from a file by `tpmon replay`.
FILE_SOURCE = "file"
