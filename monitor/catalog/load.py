"""Read catalog YAML (a file or a folder of them), report every problem with file, line and field path.

The steps: parse YAML keeping positions -> check each file and each touchpoint against the versioned
spec -> check what needs the event contract or the whole catalog -> map to the internal model.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from pathlib import Path

from pydantic import TypeAdapter, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.error import MarkedYAMLError
from ruamel.yaml.parser import Parser
from ruamel.yaml.scanner import Scanner

from ..calendars import Calendar
from ..contract import Contract, Decoder
from ..contract.declare import Declarations
from ..conventions import STAGES
from ..durations import format_duration, parse_duration
from ..events import Event
from ..window import DEFAULT_TIMEZONE, DEFAULT_WINDOW, Window, parse_window, parse_zone
from .clocks import read_calendars
from .errors import ERROR, WARNING, CatalogInvalid, Problem, format_path
from .expressions import MISSING, WHOLE_EVENT, Environment, Expression, ExpressionError, type_failure
from .journeys import cut_short, default_retention
from .model import (
    CONDITION,
    DEADLINE,
    DEFAULT_ATTRIBUTION,
    DEFAULT_CONFIDENCE,
    DEFAULT_GRAFANA,
    DEFAULT_LATENESS,
    DEFAULT_MAX_FUTURE,
    DROP,
    Catalog,
    JourneySettings,
    Match,
    Touchpoint,
    tiers,
)
from .spec import (
    KIND_SPECS,
    CatalogFileSpec,
    DeadlineSpec,
    EventMatchSpec,
    ImpactSpec,
    JourneysSpec,
    TouchpointSpec,
    _event_match,
    _Touchpoint,
)

Path_ = tuple[str | int, ...]


@dataclass(frozen=True)
class _Contract:
    """What checking touchpoints needs of the catalog's declarations."""

    contract: Contract
    decoder: Decoder
    environment: Environment
    calendars: dict[str, Calendar]
    runbook: str | None = None  # the catalog's runbook template
    calendar_names: frozenset[str] = frozenset()  # every calendar written, valid or not
    window: Window | None = None  # the catalog's default state window (None: it has an error)


_TOUCHPOINT = TypeAdapter(TouchpointSpec)
_ROLES = {"deadline": ("start", "end"), "no_repeat": ("trigger", "repeat"), "condition": ("on", None)}


class _Constructor(RoundTripConstructor):
    """Dates stay text (2026-04-03), checked where they are used, with their line: YAML's own
    timestamps would turn 2026-13-01 into an error of the whole file."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", RoundTripConstructor.construct_yaml_str)


def _yaml() -> YAML:
    yaml = YAML(typ="rt")
    yaml.Constructor = _Constructor
    # Positions without comments: the round-trip scanner's gathering of comments, which nothing here
    # reads, was two fifths of reading a catalog (a replay's start-up).
    yaml.Scanner, yaml.Parser = Scanner, Parser
    return yaml


class _Report:
    """Collects problems for one file, turning field paths into line numbers."""

    def __init__(self, file: str, lines: dict[Path_, int], sink: list[Problem]) -> None:
        self.file, self.lines, self.sink = file, lines, sink

    def line_of(self, path: Path_) -> int:
        for end in range(len(path), -1, -1):
            if path[:end] in self.lines:
                return self.lines[path[:end]]
        return 0

    def add(self, path: Path_, message: str, severity: str = ERROR) -> None:
        self.sink.append(Problem(self.file, self.line_of(path), format_path(path), message, severity))

    def warn(self, path: Path_, message: str) -> None:
        self.add(path, message, WARNING)


def _plain(node: object, path: Path_, lines: dict[Path_, int]) -> object:
    """ruamel's round-trip tree -> plain Python values, recording the line of every key and item."""
    if isinstance(node, CommentedMap):
        lines.setdefault(path, node.lc.line + 1)
        result = {}
        for key in node:
            child = (*path, str(key))
            lines[child] = node.lc.key(key)[0] + 1
            result[str(key)] = _plain(node[key], child, lines)
        return result
    if isinstance(node, CommentedSeq):
        lines.setdefault(path, node.lc.line + 1)
        items = []
        for index, item in enumerate(node):
            child = (*path, index)
            lines[child] = node.lc.item(index)[0] + 1
            items.append(_plain(item, child, lines))
        return items
    if isinstance(node, bool) or node is None:
        return node
    for plain_type in (int, float, str):
        if isinstance(node, plain_type):
            return plain_type(node)
    return node


def _message(error: dict, kind: str | None) -> str:
    kind_of_error, message = error["type"], error["msg"]
    if kind_of_error == "missing":
        return "is required"
    if kind_of_error == "extra_forbidden":
        model = KIND_SPECS.get(kind or "") if kind else None
        field_name = error["loc"][-1]
        if error["loc"][:-1] and error["loc"][-2] in ("start", "end", "trigger", "repeat", "on"):
            allowed = sorted(EventMatchSpec.model_fields)
        elif model is not None:
            allowed = sorted(model.model_fields)
        elif error["loc"][:-1] == ("impact",):
            allowed = sorted(ImpactSpec.model_fields)
        elif error["loc"][:-1] == ("journeys",):
            allowed = sorted(JourneysSpec.model_fields)
        else:
            allowed = sorted(CatalogFileSpec.model_fields)
        close = difflib.get_close_matches(str(field_name), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else f"; allowed here: {', '.join(allowed)}"
        return f"is not a field{hint}"
    if kind_of_error == "literal_error" and error["loc"] == ("version",):
        return f"must be 1 (the catalog format this tpmon reads), not {error['input']!r}"
    if kind_of_error == "literal_error" and error["loc"] == ("journeys", "personal"):
        return (
            f"must be keep or drop (whether journeys keep the fields declared personal: true), not {error['input']!r}"
        )
    if kind_of_error == "string_pattern_mismatch":
        return f"must be lowercase letters and digits joined by '-', such as 'bill-correct', not {error['input']!r}"
    if kind_of_error == "union_tag_not_found":
        return "is required: one of deadline, no_repeat, condition"
    if kind_of_error == "union_tag_invalid":
        return f"must be one of deadline, no_repeat, condition, not {error['input'].get('kind')!r}"
    if message.startswith("Value error, "):
        return message[len("Value error, ") :]
    return message[0].lower() + message[1:]


def _validation_problems(report: _Report, error: ValidationError, prefix: Path_) -> None:
    for item in error.errors():
        loc = item["loc"]
        kind = None
        # Discriminated unions put the chosen kind into the location: take it out of the path.
        if loc and loc[0] in _ROLES:
            kind, loc = str(loc[0]), loc[1:]
        path = (*prefix, *loc)
        if item["type"] in ("union_tag_not_found", "union_tag_invalid"):
            path = (*prefix, "kind")
        report.add(path, _message({**item, "loc": loc}, kind))


def _type_problems(report: _Report, path: Path_, types: list[str], known: _Contract) -> None:
    declared = known.contract.types
    for index, event_type in enumerate(types):
        if event_type not in declared:
            close = difflib.get_close_matches(event_type, sorted(declared), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            report.add(
                (*path, "types", index),
                f"'{event_type}' is not a declared event type (events: in the catalog), so no rule ever sees it{hint}",
            )


def _samples(event_type: str, known: _Contract) -> list[Event]:
    """Two plausible events of a type, booleans true in one and false in the other."""
    samples = []
    for index in (0, 1):
        data = {name: kind.samples[index] for name, kind in known.contract.fields_of(event_type).items()}
        data["type"] = event_type
        sample = known.decoder.from_fields(data)
        assert isinstance(sample, Event), sample
        samples.append(sample)
    return samples


def _expression(
    report: _Report, path: Path_, text: str, types: list[str], known: _Contract, instant: bool = False
) -> Expression | None:
    try:
        expression = Expression(text, known.environment, instant)
    except ExpressionError as error:
        report.add(path, f"is not a valid CEL expression: {error}")
        return None
    # Try it on sample events of each type, for what type checking cannot see: a field the type never
    # carries (a likely mistake: warned), numbers (dyn) where no function takes them (an error, unless
    # it reads the event's map, whose extra fields have any kind). A failure of the sample values
    # alone is not the expression's: it is never reported.
    for event_type in types:
        if event_type not in known.contract.types:
            continue
        for sample in _samples(event_type, known):
            if expression(sample) is None and type_failure(expression.last_error):
                message = f"cannot be evaluated on '{event_type}' events: {expression.last_error}"
                if "double, int64" in message or "int64, double" in message:
                    message += " (numbers are doubles: write 1.0, not 1, beside them)"
                if expression.last_error.startswith(MISSING) or WHOLE_EVENT in expression.variables:
                    report.warn(path, message)
                else:
                    report.add(path, message)
                break
    return expression


def _match(report: _Report, path: Path_, spec: EventMatchSpec, known: _Contract) -> Match | None:
    _type_problems(report, path, spec.types, known)
    where = _expression(report, (*path, "where"), spec.where, spec.types, known) if spec.where else None
    if spec.where and where is None:
        return None
    return Match(frozenset(spec.types), where)


def _touchpoint(report: _Report, path: Path_, spec: _Touchpoint, known: _Contract) -> Touchpoint | None:
    kind = spec.kind  # type: ignore[attr-defined]
    opens_role, closes_role = _ROLES[kind]
    opens_spec: EventMatchSpec = getattr(spec, opens_role)
    closes_spec: EventMatchSpec | None = getattr(spec, closes_role) if closes_role else None
    problems_before = len(report.sink)
    opens = _match(report, (*path, opens_role), opens_spec, known)
    closes = _match(report, (*path, closes_role), closes_spec, known) if closes_spec else None  # type: ignore[arg-type]

    good = None
    if kind == CONDITION:
        good = _expression(report, (*path, "good"), spec.good, opens_spec.types, known)  # type: ignore[attr-defined]
        if good is not None and not good.variables:
            report.warn((*path, "good"), "names no field of the event: every event gets the same outcome")
    else:
        key = spec.key  # type: ignore[attr-defined]
        roles = [(opens_role, opens_spec), (closes_role, closes_spec)]
        roles += [(role, getattr(spec, role, None)) for role in ("pause", "resume") if getattr(spec, role, None)]
        for role, match in roles:
            for event_type in match.types:  # type: ignore[union-attr]
                if event_type not in known.contract.types:
                    continue
                fields = known.contract.fields_of(event_type)
                if key not in fields:
                    hint = difflib.get_close_matches(key, sorted(fields), n=1)
                    report.add(
                        (*path, "key"),
                        f"'{event_type}' events (in {role}) have no field '{key}' to key on"
                        + (f"; did you mean '{hint[0]}'?" if hint else ""),
                    )
                elif key in known.contract.personal_names_of(event_type):
                    report.add(
                        (*path, "key"),
                        f"'{key}' is a personal field of '{event_type}' (personal: true): a touchpoint's key is "
                        "written in every outcome (the outcomes topic, journeys, the review), so it cannot be "
                        "personal; key on an identifier such as an order or ticket id",
                    )
                elif key not in known.contract.required_fields_of(event_type):
                    report.warn(
                        (*path, "key"), f"'{key}' is optional on '{event_type}' events: those without it are skipped"
                    )

    clock = _clock(report, path, spec, opens_spec, known) if kind == DEADLINE else _Clock()
    window = known.window
    if spec.window is not None:  # (checked even when the catalog's own window is not valid)
        try:
            window = parse_window(spec.window, window.zone if window is not None else None)
        except ValueError as error:
            report.add((*path, "window"), str(error))

    differentiating = spec.differentiating
    if differentiating is None:
        differentiating = round(spec.objective + (1 - spec.objective) / 2, 6)
    elif differentiating <= spec.objective:
        report.add(
            (*path, "differentiating"),
            f"must be above the objective ({differentiating:g} <= {spec.objective:g})",
        )
    if spec.objective == 1:
        report.warn((*path, "objective"), "an objective of 1 breaks the touchpoint at its first bad outcome")
    elif spec.objective < 0.5:
        report.warn(
            (*path, "objective"), f"an objective of {spec.objective:g} accepts more bad outcomes than good ones"
        )
    page, ticket = (_factors(report, path, spec, severity) for severity in ("page", "ticket"))
    if spec.min_events < 5:
        report.warn(
            (*path, "min_events"), f"with min_events {spec.min_events}, a handful of outcomes decides the state"
        )
    if not spec.description:
        report.warn(path, "has no description: the people paged for it will want one")

    if len(report.sink) != problems_before and any(p.severity == ERROR for p in report.sink[problems_before:]):
        return None
    return Touchpoint(
        id=spec.id,
        stage=spec.stage,
        owner=spec.owner,
        description=spec.description,
        kind=kind,
        objective=spec.objective,
        differentiating=differentiating,
        min_events=spec.min_events,
        opens=opens,  # type: ignore[arg-type]
        closes=closes,
        key=getattr(spec, "key", None),
        within=parse_duration(spec.within) if getattr(spec, "within", None) else None,  # type: ignore[attr-defined]
        good=good,
        tiers=tiers(page, ticket),
        source=f"{report.file}:{report.line_of(path)}",
        calendar=clock.calendar,
        pause=clock.pause,
        resume=clock.resume,
        due=clock.due,
        at_risk=clock.at_risk,
        at_risk_alert=spec.alerts.at_risk,
        window=window,  # type: ignore[arg-type]  (None only with an error, and then no touchpoint)
        low_volume=spec.alerts.low_volume,
        runbook=spec.runbook or (known.runbook.replace("{touchpoint}", spec.id) if known.runbook else ""),
    )


_HIGHEST = 0.9  # a derived tier fires when this share of outcomes is bad over its windows


def _factors(report: _Report, path: Path_, spec: _Touchpoint, severity: str) -> tuple[float, float]:
    """A severity's two burn-rate factors. Factors the catalog gives that can never fire (factor x
    (1 - objective) >= 1: more than every outcome bad) are an error; the defaults, for an objective too
    low for them, are scaled down until the faster tier fires at 90% bad, with a warning that says so."""
    factors: tuple[float, float] = getattr(spec.alerts, severity)
    budget = 1 - spec.objective
    fastest = max(factors) * budget
    if fastest < 1:
        return factors
    windows = ("1h", "6h") if severity == "page" else ("1d", "3d")
    if severity in spec.alerts.model_fields_set:
        tier = windows[factors.index(max(factors))]
        report.add(
            (*path, "alerts", severity),
            f"the {severity} tier over {tier} can never fire: {max(factors):g} x (1 - {spec.objective:g}) = "
            f"{fastest:.2f} >= 1; lower its factor below {1 / budget:.2f}",
        )
        return factors
    scale = _HIGHEST / fastest
    derived = (round(factors[0] * scale, 2), round(factors[1] * scale, 2))
    report.warn(
        (*path, "objective"),
        f"the default {severity} factors ({factors[0]:g}, {factors[1]:g}) cannot fire below an objective of "
        f"{1 - 1 / max(factors):.3g}; it {severity}s at {derived[0]:g}x over {windows[0]} and {derived[1]:g}x over "
        f"{windows[1]} ({derived[0] * budget:.0%} and {derived[1] * budget:.0%} of outcomes bad): set "
        f"alerts.{severity} to choose",
    )
    return derived


@dataclass(frozen=True)
class _Clock:
    calendar: Calendar | None = None
    pause: Match | None = None
    resume: Match | None = None
    due: Expression | None = None
    at_risk: int | None = None


def _clock(report: _Report, path: Path_, spec: DeadlineSpec, starts: EventMatchSpec, known: _Contract) -> _Clock:
    """A deadline's SLA clock: within or due, a calendar, pause and resume, at_risk (every problem said)."""
    if spec.within is None and spec.due is None:
        report.add(path, "needs within (a duration, such as 4h) or due (an expression giving the due instant)")
    elif spec.within is not None and spec.due is not None:
        report.add((*path, "due"), "is given with within: a deadline has one or the other")
    due = None
    if spec.due is not None:
        due = _expression(report, (*path, "due"), spec.due, starts.types, known, instant=True)
        for setting in ("calendar", "pause", "resume"):
            if getattr(spec, setting) is not None:
                report.add(
                    (*path, setting),
                    "applies to within only: a due instant from the start neither pauses nor counts open hours",
                )
    calendar = None
    if spec.calendar is not None:
        calendar = known.calendars.get(spec.calendar)
        names = sorted(known.calendar_names)
        if calendar is None and spec.calendar in known.calendar_names:
            report.add((*path, "calendar"), f"calendar '{spec.calendar}' has errors (said where it is defined)")
        elif calendar is None:
            hint = difflib.get_close_matches(spec.calendar, names, n=1)
            defined = f" (the catalog defines {', '.join(names)})" if names else " (it defines none: add calendars:)"
            report.add(
                (*path, "calendar"),
                f"'{spec.calendar}' is not a calendar of the catalog"
                + (f"; did you mean '{hint[0]}'?" if hint else defined),
            )
    for given, missing in (("pause", "resume"), ("resume", "pause")):
        if getattr(spec, given) is not None and getattr(spec, missing) is None:
            report.add((*path, given), f"needs a {missing} too: a paused clock must be able to run again")
    pause = _match(report, (*path, "pause"), spec.pause, known) if spec.pause else None
    resume = _match(report, (*path, "resume"), spec.resume, known) if spec.resume else None
    at_risk = parse_duration(spec.at_risk) if spec.at_risk else None
    if at_risk is not None and spec.within is not None and at_risk >= parse_duration(spec.within):
        report.warn(
            (*path, "at_risk"), f"is not less than within ({spec.within}): every instance is at risk from its start"
        )
    return _Clock(calendar, pause, resume, due, at_risk)


def _types_named(raw: dict) -> set[str]:
    """The event types a touchpoint as written names in its roles, whether or not it is valid."""
    named: set[str] = set()
    for role in ("start", "end", "trigger", "repeat", "on", "pause", "resume"):
        match = _event_match(raw.get(role))
        types = match.get("types") if isinstance(match, dict) else None
        if isinstance(types, list):
            named.update(t for t in types if isinstance(t, str))
    return named


def _contract_warnings(
    declarations: Declarations, contract: Contract, environment: Environment, used: set[str]
) -> None:
    """What is declared but does nothing, and field names whose kinds differ between types. A type
    with a ``story:`` and no touchpoint is declared for the customers' stories: no warning."""
    counted = contract.joined | contract.left | contract.answers
    for event_type, (say, path) in declarations.event_paths().items():
        declaration = contract.declaration(event_type)
        if (
            event_type not in used
            and event_type not in counted
            and declaration is not None
            and declaration.story is None
        ):
            say(  # type: ignore[call-arg]
                path,
                f"no touchpoint uses '{event_type}': its events are checked and kept in journeys only (give it "
                "a story: if that is what it is for)",
                WARNING,
            )
    for say, path, name in declarations.unused_sources():
        say(path, f"no event type is declared in source '{name}'", WARNING)  # type: ignore[call-arg]
    for name, uses in sorted(environment.conflicts.items()):
        kinds = ", ".join(f"{kind} on '{event_type}'" for event_type, kind in uses)
        event_type = uses[0][0]
        say, path = declarations.event_paths()[event_type]
        say(
            (*path, "fields", name),
            f"field '{name}' has different kinds ({kinds}): in expressions it is dyn, compared as it comes",
            WARNING,  # type: ignore[call-arg]
        )


def _files(path: Path) -> list[Path]:
    if path.is_dir():
        return sorted(p for p in path.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [path]


IMPACT_SETTINGS = ("attribution", "left", "surveys", "about")


def validate_catalog(path: str | Path) -> tuple[Catalog | None, list[Problem]]:
    """Check a catalog; return the catalog (None when it has errors) and every problem, sorted."""
    root = Path(path)
    problems: list[Problem] = []
    if not root.exists():
        problems.append(Problem(str(root), 0, "(file)", "no such file or folder"))
        return None, problems
    files = _files(root)
    if not files:
        problems.append(Problem(str(root), 0, "(file)", "holds no catalog files (*.yaml)"))
        return None, problems

    touchpoints: list[Touchpoint] = []
    first_seen: dict[str, str] = {}
    lateness_seen: dict[int, str] = {}
    max_future_seen: dict[int, str] = {}
    runbook_seen: dict[str, str] = {}
    grafana_seen: dict[str, str] = {}
    retention_seen: dict[int, str] = {}  # journeys.retention
    personal_seen: dict[str, str] = {}  # journeys.personal
    impact_seen: dict[str, dict] = {name: {} for name in IMPACT_SETTINGS}  # impact's settings, as runbook's
    about_lines: list[int] = []  # the line of each field of the first impact.about
    state_seen: dict[str, dict[object, tuple[str, int]]] = {"window": {}, "timezone": {}, "confidence": {}}
    declarations = Declarations()
    calendars: dict[str, tuple[Calendar, str]] = {}
    calendar_names: set[str] = set()
    read: list[tuple[_Report, list]] = []  # each file's report and its touchpoints, checked once all are read
    for file in files:
        name = str(file)
        lines: dict[Path_, int] = {}
        report = _Report(name, lines, problems)
        try:
            tree = _yaml().load(file.read_bytes())
        except MarkedYAMLError as error:
            mark = error.problem_mark or error.context_mark
            line = mark.line + 1 if mark else 0
            problems.append(Problem(name, line, "(file)", f"is not valid YAML: {error.problem or error}"))
            continue
        except (OSError, UnicodeDecodeError) as error:
            problems.append(Problem(name, 0, "(file)", f"cannot be read: {error}"))
            continue
        except ValueError as error:  # a scalar YAML reads as a date that does not exist: 2026-13-01
            problems.append(Problem(name, 0, "(file)", f"is not valid YAML: {error} (a date that does not exist?)"))
            continue
        data = _plain(tree, (), lines)
        if not isinstance(data, dict):
            report.add((), "must be a mapping with 'version: 1' and a list of touchpoints")
            continue
        try:
            file_spec = CatalogFileSpec.model_validate(data)
            raw_touchpoints = file_spec.touchpoints
            for setting, seen in (("lateness", lateness_seen), ("max_future", max_future_seen)):
                value = getattr(file_spec, setting)
                if value is not None:
                    seen.setdefault(parse_duration(value), f"{name}:{report.line_of((setting,))}")
            for setting, texts in (("runbook", runbook_seen), ("grafana", grafana_seen)):
                value = getattr(file_spec, setting)
                if value is not None:
                    texts.setdefault(value, f"{name}:{report.line_of((setting,))}")
            for setting, seen in state_seen.items():
                value = getattr(file_spec, setting)
                if value is not None:
                    seen.setdefault(value, (name, report.line_of((setting,))))
            if file_spec.impact is not None:
                for setting, seen in impact_seen.items():
                    value = getattr(file_spec.impact, setting)
                    if value is not None:
                        value = tuple(value) if setting == "about" else parse_duration(value)
                        if not value:  # a window of 0s attributes nothing; about: [] keys nothing
                            report.add(
                                ("impact", setting),
                                "must be more than 0s" if setting != "about" else "must name a field",
                            )
                            continue
                        seen.setdefault(value, f"{name}:{report.line_of(('impact', setting))}")
                        if setting == "about" and not about_lines:
                            about_lines += [report.line_of(("impact", "about", i)) for i in range(len(value))]
            if file_spec.journeys is not None and file_spec.journeys.retention is not None:
                where = ("journeys", "retention")
                retention_seen.setdefault(
                    parse_duration(file_spec.journeys.retention), f"{name}:{report.line_of(where)}"
                )
            if file_spec.journeys is not None and file_spec.journeys.personal is not None:
                where = ("journeys", "personal")
                personal_seen.setdefault(file_spec.journeys.personal, f"{name}:{report.line_of(where)}")
        except ValidationError as error:
            _validation_problems(report, error, ())
            # Still check the touchpoints, so that one run shows every error.
            raw_touchpoints = data.get("touchpoints") if isinstance(data.get("touchpoints"), list) else []
        declarations.read(data, report.add, lambda path, report=report: f"{report.file}:{report.line_of(path)}")
        if isinstance(data.get("calendars"), dict):
            calendar_names.update(data["calendars"])
        for name, (calendar, where) in read_calendars(data.get("calendars"), report.add).items():
            if name in calendars:
                report.add(where, f"calendar '{name}' is already defined at {calendars[name][1]}")
            else:
                calendars[name] = (calendar, f"{report.file}:{report.line_of(where)}")
        read.append((report, raw_touchpoints))

    contract = declarations.contract()
    if not contract.events and not any(p.severity == ERROR for p in problems):
        problems.append(
            Problem(str(root), 0, "events", "the catalog declares no event types: add an events.yaml (docs/EVENTS.md)")
        )
    zone, window, confidence = _state_settings(state_seen, problems)
    environment = Environment(contract, zone)
    known = _Contract(
        contract,
        Decoder(contract),
        environment,
        {name: found for name, (found, _) in calendars.items()},
        next(iter(runbook_seen), None),
        frozenset(calendar_names),
        window,
    )
    used: set[str] = set()
    for report, raw_touchpoints in read:
        for index, raw in enumerate(raw_touchpoints):
            path: Path_ = ("touchpoints", index)
            if not isinstance(raw, dict):
                report.add(path, "must be a mapping describing one touchpoint")
                continue
            used |= _types_named(raw)  # (with an error too: its types are used, once it is fixed)
            try:
                spec = _TOUCHPOINT.validate_python(raw)
            except ValidationError as error:
                _validation_problems(report, error, path)
                continue
            if spec.id in first_seen:
                report.add((*path, "id"), f"'{spec.id}' is already defined at {first_seen[spec.id]}")
                continue
            first_seen[spec.id] = f"{report.file}:{report.line_of((*path, 'id'))}"
            touchpoint = _touchpoint(report, path, spec, known)
            if touchpoint is not None:
                touchpoints.append(touchpoint)
    _contract_warnings(declarations, contract, environment, used)
    about = _about(impact_seen["about"], about_lines, contract, touchpoints, problems)
    for say, where, name in declarations.source_calendars():
        if name not in known.calendars:
            names = sorted(known.calendar_names)
            hint = difflib.get_close_matches(name, names, n=1)
            if name in known.calendar_names:
                say(where, f"calendar '{name}' has errors (said where it is defined)")  # type: ignore[call-arg]
            else:
                say(
                    where,
                    f"'{name}' is not a calendar of the catalog"
                    + (
                        f"; did you mean '{hint[0]}'?"
                        if hint
                        else f" (it defines {', '.join(names) or 'none: add calendars:'})"
                    ),
                )  # type: ignore[call-arg]

    for setting, seen in (
        ("lateness", lateness_seen),
        ("max_future", max_future_seen),
        *((f"impact.{setting}", seen) for setting, seen in impact_seen.items()),
        ("journeys.retention", retention_seen),
    ):
        if len(seen) > 1:
            where = ", ".join(
                f"{format_duration(v) if isinstance(v, int) else list(v)} at {at}" for v, at in seen.items()
            )
            problems.append(Problem(str(root), 0, setting, f"is set to different values: {where}"))
    for setting, texts in (("runbook", runbook_seen), ("grafana", grafana_seen), ("journeys.personal", personal_seen)):
        if len(texts) > 1:
            where = ", ".join(f"{v!r} at {at}" for v, at in texts.items())
            problems.append(Problem(str(root), 0, setting, f"is set to different values: {where}"))
        for value, at in texts.items():
            if setting != "journeys.personal" and not value.startswith(("http://", "https://")):
                file, _, line = at.rpartition(":")
                problems.append(Problem(file, int(line), setting, f"must be an http(s) URL, not {value!r}"))
    if not first_seen and not any(p.severity == ERROR for p in problems):
        problems.append(Problem(str(root), 0, "touchpoints", "the catalog defines no touchpoint"))
    problems.sort()
    if any(p.severity == ERROR for p in problems):
        return None, problems
    lateness = next(iter(lateness_seen), DEFAULT_LATENESS)
    max_future = next(iter(max_future_seen), DEFAULT_MAX_FUTURE)
    retention = _journey_retention(tuple(touchpoints), lateness, retention_seen, problems)
    # The journey's order (buy, get, pay, help, leave), then other stages; files keep their own order.
    rank = {stage: index for index, stage in enumerate(STAGES)}
    touchpoints.sort(key=lambda t: (rank.get(t.stage, len(rank)), t.stage if t.stage not in rank else ""))
    catalog = Catalog(
        tuple(touchpoints),
        lateness,
        tuple(str(f) for f in files),
        max_future,
        contract,
        dict(known.calendars),
        next(iter(grafana_seen), DEFAULT_GRAFANA).rstrip("/"),
        next(iter(impact_seen["left"]), next(iter(impact_seen["attribution"]), DEFAULT_ATTRIBUTION)),
        zone,
        confidence,
        journeys=JourneySettings(retention, next(iter(personal_seen), DROP)),
        attribution_surveys=next(
            iter(impact_seen["surveys"]), next(iter(impact_seen["attribution"]), DEFAULT_ATTRIBUTION)
        ),
        about=about,
    )
    return catalog, problems


def _journey_retention(
    touchpoints: tuple[Touchpoint, ...], lateness: int, seen: dict[int, str], problems: list[Problem]
) -> int:
    """The journeys' retention: the one set, with a warning when it is shorter than a touchpoint can take
    from a start to its outcome; else the catalog's longest (monitor.catalog.journeys)."""
    if not seen:
        return default_retention(touchpoints, lateness)
    retention, at = next(iter(seen.items()))
    cut = cut_short(touchpoints, lateness, retention)
    if cut:
        file, _, line = at.rpartition(":")
        problems.append(
            Problem(
                file,
                int(line),
                "journeys.retention",
                f"{format_duration(retention)} is shorter than some touchpoints take from a start to its outcome "
                f"(plus the lateness, {format_duration(lateness)}): their stories would lose their start: "
                + ", ".join(cut),
                WARNING,
            )
        )
        problems.sort()
    return retention


def _about(
    seen: dict[tuple[str, ...], str],
    lines: list[int],
    contract: Contract,
    touchpoints: list[Touchpoint],
    problems: list[Problem],
) -> tuple[str, ...]:
    """``impact: {about: [FIELD...]}``: each a string field declared on a survey answer type (the
    instance an answer is about: engine.impact), naming the instance of some touchpoint (the key of a
    deadline or no_repeat, or a field of a condition's events): else a warning, for an answer carrying
    it would be attributed to nothing (``survey_id``, named by mistake, to no touchpoint at all)."""
    if len(seen) != 1:
        return ()
    ((fields, at),) = seen.items()
    file = at.rpartition(":")[0]
    declared = {
        f.name: f for d in contract.events if d.type in contract.answers for f in d.fields
    }  # the answers' fields, required or optional
    fields_of = {d.type: {f.name for f in d.fields} for d in contract.events}

    def names_an_instance(name: str) -> bool:
        return any(
            (t.kind == CONDITION and any(name in fields_of.get(kind, ()) for kind in t.opens.types))
            or (t.kind != CONDITION and t.key == name)
            for t in touchpoints
        )

    for index, name in enumerate(fields):
        found = declared.get(name)
        where = format_path(("impact", "about", index))
        if found is None:
            close = difflib.get_close_matches(name, sorted(declared), n=1)
            hint = f"; did you mean '{close[0]}'?" if close else ""
            types = ", ".join(sorted(contract.answers)) or "none: declare surveys:"
            message = f"'{name}' is not a field of the survey answer types ({types}){hint}"
            problems.append(Problem(file, lines[index], where, message))
        elif found.kind.name not in ("string", "choice"):
            message = f"'{name}' must be a string field (an instance's key), not {found.kind.name}"
            problems.append(Problem(file, lines[index], where, message))
        elif not names_an_instance(name):
            message = (
                f"'{name}' names the instance of no touchpoint (the key of none, a field of no condition's "
                "events): an answer carrying it is attributed to no touchpoint"
            )
            problems.append(Problem(file, lines[index], where, message, WARNING))
    return tuple(fields)


def _state_settings(seen: dict[str, dict[object, tuple[str, int]]], problems: list[Problem]):  # type: ignore[no-untyped-def]
    """The catalog's time zone, default window and confidence, each said once (every problem said)."""
    for setting, values in seen.items():
        if len(values) > 1:
            where = ", ".join(f"{value!r} at {file}:{line}" for value, (file, line) in values.items())
            problems.append(Problem(next(iter(values.values()))[0], 0, setting, f"is set to different values: {where}"))
    zone = parse_zone(DEFAULT_TIMEZONE)
    for text, (file, line) in seen["timezone"].items():
        try:
            zone = parse_zone(str(text))
        except ValueError as error:
            problems.append(Problem(file, line, "timezone", str(error)))
    window: Window | None = parse_window(DEFAULT_WINDOW, zone)
    for text, (file, line) in seen["window"].items():
        try:
            window = parse_window(str(text), zone)
        except ValueError as error:
            problems.append(Problem(file, line, "window", str(error)))
            window = None
    confidence = DEFAULT_CONFIDENCE
    for value, (file, line) in seen["confidence"].items():
        confidence = float(value)  # type: ignore[arg-type]
        if confidence < 0.9:
            problems.append(
                Problem(file, line, "confidence", f"at {confidence:g}, chance alone shows states often", WARNING)
            )
    return zone, window, confidence


def load_catalog(path: str | Path) -> Catalog:
    """The catalog at path; raises CatalogInvalid with every problem when it has errors."""
    catalog, problems = validate_catalog(path)
    if catalog is None:
        raise CatalogInvalid(problems)
    return catalog
