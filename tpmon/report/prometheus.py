"""The review's evidence from a running Prometheus that scrapes the workers and evaluates tpmon's
rules (tpmon rules render): query_range over the recording rules.

- Outcomes, and customers in and out, per period: the rate rules of the largest window that divides
  the period and is at most the state window (1h; with --profile test, 1m), times the window, sampled
  one window apart and summed per period (each sample is the window that ends at it). The evidence
  ends at the last whole window; Prometheus evaluates rules every evaluation_interval, so each window
  is off by up to one interval. Counters count when a worker decides, so these are periods of the
  workers' clocks (a backlog read after downtime lands where it is read), not of event time.
- The spells broken: the state rule (touchpoint:tpmon_touchpoint_state:value) sampled over the span.
- Impact over the span: the increase of the impact counters (customers impacted are counted once a
  customer per UTC day), and the survey answers by side, as the worker's /touchpoints reads them.
- Stories: Prometheus keeps no journeys; with --worker, the latest customers each worker saw hurt by
  the vital few (its /stories), with their journeys (its /journeys).
"""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable

from monitor.catalog import Catalog
from monitor.conventions import (
    METRIC_CUSTOMERS_IMPACTED,
    METRIC_LEFT_AFTER_BAD,
    METRIC_SURVEY_ANSWERS,
    METRIC_SURVEY_SCORE,
    STATE_VALUES,
)
from monitor.durations import format_duration
from monitor.engine.impact import LEFT, impact_view
from monitor.events import format_timestamp
from monitor.journeys import Journey
from monitor.observe.prometheus import BAD, CUSTOMERS, GOOD, STATE
from monitor.observe.windows import STATE_WINDOW, WINDOWS, Profile
from monitor.review import Evidence, TouchpointEvidence, period_start
from monitor.review.model import Story, spells, too_many
from monitor.review.periods import bounds as period_bounds
from monitor.review.periods import index
from monitor.review.replayed import STORIES, story

from .workers import WorkerAccess

MAX_POINTS = 10_000  # Prometheus refuses a range query of more than 11,000 points a series
TIMEOUT = 30.0  # seconds a query may take
SECOND = 1_000_000
STATES = {value: state for state, value in STATE_VALUES.items()}


class PrometheusError(Exception):
    """Prometheus could not be asked, refused the query, or has nothing to say."""


class Client:
    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")

    def get(self, path: str, **params: str) -> list:
        address = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(address, timeout=TIMEOUT) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as error:
            if error.code == 404:
                raise PrometheusError(
                    f"{self.url} has no {path} (HTTP 404): give the address of a Prometheus server "
                    "(http://HOST:9090), not of a worker or of Grafana"
                ) from None
            try:
                detail = json.loads(error.read()).get("error", error.reason)
            except ValueError:
                detail = error.reason
            raise PrometheusError(f"Prometheus at {self.url} refused {params.get('query')!r}: {detail}") from None
        except (OSError, ValueError) as error:
            reason = getattr(error, "reason", error)
            raise PrometheusError(f"Prometheus at {self.url} cannot be reached: {reason}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus at {self.url} refused {params.get('query')!r}: {body.get('error')}")
        return body["data"]["result"]

    def range(self, query: str, start: int, end: int, step: int) -> list:
        return self.get(
            "/api/v1/query_range", query=query, start=_seconds(start), end=_seconds(end), step=_seconds(step)
        )

    def instant(self, query: str, at: int) -> list:
        return self.get("/api/v1/query", query=query, time=_seconds(at))


def _seconds(micros: int) -> str:
    return f"{micros / SECOND:.6f}".rstrip("0").rstrip(".")


def sampling_window(profile: Profile, period: int) -> str | None:
    """The recording window the periods are summed from: the largest that divides the period and is
    at most the state window."""
    fitting = [
        window
        for window in WINDOWS
        if profile.seconds(window) <= profile.seconds(STATE_WINDOW) and period % (profile.seconds(window) * SECOND) == 0
    ]
    return max(fitting, key=profile.seconds) if fitting else None


def evidence(
    catalog: Catalog,
    url: str,
    since: int,
    period: int,
    profile: Profile,
    now: int,
    say: Callable[[str], None],
    since_at: int | None = None,
) -> Evidence:
    """The evidence from ``since`` before ``now`` (or from the instant ``since_at``) to ``now``, the
    periods the catalog's time zone's days and weeks: query_range samples one window apart from the
    first period's start (local midnight), so a 23- or 25-hour day holds 23 or 25 windows of an hour."""
    client = Client(url)
    zone = catalog.timezone
    window = sampling_window(profile, period)
    if window is None:
        smallest = format_duration(profile.seconds(WINDOWS[0]) * SECOND)
        raise PrometheusError(
            f"--period {format_duration(period)} is not a whole number of any recording window of the "
            f"{profile.name} profile (the smallest is {smallest})"
        )
    width = profile.seconds(window) * SECOND
    start = period_start(now - since if since_at is None else since_at, period, zone)
    end = start + (now - start) // width * width  # the last whole window
    if end <= start:
        raise PrometheusError(f"the span from {format_timestamp(start)} is shorter than one window ({window})")
    bounds = period_bounds(start, end, period, zone)
    periods = len(bounds) - 1
    problem = too_many(periods, period)
    if problem:
        raise PrometheusError(problem)
    say(f"asking Prometheus at {client.url} about {format_timestamp(start)} to {format_timestamp(end)}")
    factor = width // SECOND

    def per_period(query: str, label: str) -> dict[str, list[int]]:
        found: dict[str, list[float]] = {}
        for chunk_start, chunk_end in _chunks(start + width, end, width):
            for series in client.range(f"({query}) * {factor}", chunk_start, chunk_end, width):
                name = series["metric"].get(label, "")
                counts = found.setdefault(name, [0.0] * periods)
                for stamp, value in series["values"]:
                    at = round(float(stamp) * SECOND)
                    number = float(value)
                    slot = index(bounds, at - 1)
                    if math.isfinite(number) and 0 <= slot < periods:
                        counts[slot] += number
        return {name: [round(count) for count in counts] for name, counts in found.items()}

    good = per_period(f"sum by (touchpoint) ({GOOD.format(w=window)})", "touchpoint")
    bad = per_period(f"sum by (touchpoint) ({BAD.format(w=window)})", "touchpoint")
    customers = per_period(CUSTOMERS.format(w=window), "direction")
    say("reading the states and the impact")
    step = max(SECOND, -(-(end - start) // MAX_POINTS) // SECOND * SECOND)
    states: dict[str, dict[int, str]] = {}
    for chunk_start, chunk_end in _chunks(start, end, step):
        for series in client.range(f"max by (touchpoint) ({STATE})", chunk_start, chunk_end, step):
            mine = states.setdefault(series["metric"].get("touchpoint", ""), {})
            for stamp, value in series["values"]:
                mine[round(float(stamp) * SECOND)] = STATES.get(int(float(value)), "unknown")
    if not any(sum(counts) for counts in (*good.values(), *bad.values())):
        raise PrometheusError(
            f"Prometheus at {client.url} has no tpmon outcomes from {format_timestamp(start)} to "
            f"{format_timestamp(end)}: does it scrape the workers, and load the rules of `tpmon rules render` "
            f"(profile {profile.name})?"
        )
    grid = list(range(start, end + 1, step))
    impact = _impact(client, end - start, end)
    touchpoints = {}
    for touchpoint in catalog.touchpoints:
        mine = states.get(touchpoint.id, {})
        touchpoints[touchpoint.id] = TouchpointEvidence(
            good.get(touchpoint.id, [0] * periods),
            bad.get(touchpoint.id, [0] * periods),
            spells([(at, mine.get(at)) for at in grid]),
            impact.get(touchpoint.id, impact_view({}, 0)),
        )
    return Evidence(
        f"Prometheus at {client.url}",
        start,
        period,
        end,
        touchpoints,
        customers.get("joined", [0] * periods),
        customers.get("left", [0] * periods),
        window=profile.seconds(STATE_WINDOW) * SECOND,
        impacted_per="each customer once a day",
        zone=zone,
        notes=[
            f"From the recording rules of the {profile.name} profile, up to the last whole {window} window; "
            "outcomes count in the period a worker decided them (a backlog it caught up on, in the period it "
            "caught up in)."
        ],
    )


def _chunks(start: int, end: int, step: int) -> list[tuple[int, int]]:
    """[start, end] cut into ranges of at most MAX_POINTS samples ``step`` apart."""
    chunks, width = [], step * (MAX_POINTS - 1)
    while start <= end:
        chunks.append((start, min(end, start + width)))
        start += width + step
    return chunks


def _impact(client: Client, span: int, at: int) -> dict[str, dict]:
    """Each touchpoint's impact over the span, in the shape of monitor.engine.impact.impact_view."""
    window = f"{max(span // SECOND, 1)}s"
    named: dict[str, dict[str, float]] = {}

    def add(query: str, name: Callable[[dict], str]) -> dict[str, float]:
        found: dict[str, float] = {}
        for series in client.instant(query, at):
            value = float(series["value"][1])
            if math.isfinite(value):
                touchpoint = series["metric"].get("touchpoint", "")
                key = name(series["metric"])
                tallies = named.setdefault(touchpoint, {})
                tallies[key] = tallies.get(key, 0) + value
                found[touchpoint] = found.get(touchpoint, 0) + value
        return found

    impacted = add(f"sum by (touchpoint) (increase({METRIC_CUSTOMERS_IMPACTED}[{window}]))", lambda m: "impacted")
    add(f"sum by (touchpoint) (increase({METRIC_LEFT_AFTER_BAD}[{window}]))", lambda m: LEFT)
    by_side = "touchpoint, survey, after"
    add(f"sum by ({by_side}) (increase({METRIC_SURVEY_SCORE}_sum[{window}]))", lambda m: _side(m, "sum"))
    add(f"sum by ({by_side}) (increase({METRIC_SURVEY_SCORE}_count[{window}]))", lambda m: _side(m, "answers"))
    add(
        f'sum by ({by_side}, class) (increase({METRIC_SURVEY_ANSWERS}{{class=~"promoter|detractor"}}[{window}]))',
        lambda m: _side(m, m.get("class", "")),
    )
    counted = {  # increases are extrapolated: counts are whole again, sums of scores stay as they are
        touchpoint: {name: value if name.endswith("/sum") else round(value) for name, value in tallies.items()}
        for touchpoint, tallies in named.items()
    }
    return {
        touchpoint: impact_view(tallies, round(impacted.get(touchpoint, 0))) for touchpoint, tallies in counted.items()
    }


def _side(metric: dict, name: str) -> str:
    return f"{metric.get('survey', '')}/{metric.get('after', '')}/{name}"


def stories(
    workers: tuple[str, ...],
    order: list[str],
    say: Callable[[str], None],
    catalog: Catalog,
    access: WorkerAccess | None = None,
) -> tuple[list[Story], list[str]]:
    """Stories from the workers' /stories and /journeys (Prometheus keeps none): for each touchpoint of
    ``order``, the latest customer a worker saw hurt by it, at most STORIES and each customer once;
    and notes on workers that did not answer. ``access``: the credentials and CA the workers ask for."""
    access = access or WorkerAccess()
    told: list[Story] = []
    notes: list[str] = []
    silent: set[str] = set()
    for touchpoint in order:
        for worker in workers:
            if len(told) == STORIES or worker in silent:
                continue
            base = worker.rstrip("/")
            try:
                latest = access.json(f"{base}/stories/{urllib.parse.quote(touchpoint)}")["stories"]
                taken = {story.customer for story in told}
                chosen = next((entry for entry in latest if entry["customer_id"] not in taken), None)
                if chosen is None:
                    continue
                journey = Journey.from_record(access.json(base + chosen["journey"]), catalog.decoder)
            except urllib.error.HTTPError as error:
                if error.code == 404:  # that journey expired (or lives on another worker): no story here
                    continue
                silent.add(worker)
                hint = " (give --worker-user and TPMON_WORKER_PASSWORD)" if error.code == 401 else ""
                notes.append(f"The worker at {worker} refused a story: {error.code} {error.reason}{hint}.")
                continue
            except (OSError, ValueError, KeyError, TypeError) as error:
                silent.add(worker)
                notes.append(f"The worker at {worker} gave no stories ({getattr(error, 'reason', error)}).")
                continue
            told.append(story(journey, touchpoint, catalog.contract))
            break
    if told:
        say(f"read {len(told)} customers' journeys from the workers")
    return told, notes
