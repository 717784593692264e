"""Personal fields (``personal: true``): checked when the catalog loads; never in a story, the review,
the metrics or a log line; in journeys only when the catalog keeps them, and then on /journeys only for
the worker's personal readers (docs/SECURITY.md)."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import orjson
import pytest
from click.testing import CliRunner
from prometheus_client import generate_latest

from monitor.catalog import load_catalog
from monitor.catalog.errors import ERROR
from monitor.catalog.load import validate_catalog
from monitor.events import Event, format_timestamp, parse_timestamp
from monitor.journeys import Journeys, describe
from monitor.personal import check_web_users, for_reader, parse_user_names, remove_at
from tests.worker_helpers import Message, Worker
from tpmon.cli import main

from .conftest import ROOT

EMAIL = "personal-canary@example.org"
NOTE = "call me at home, canary-street 7"
COMMENT = "canary comment from a customer"
CANARIES = (EMAIL, NOTE, COMMENT)

# A flat source whose contact type carries an e-mail (personal, the first field a story without a
# template would show) and a CloudEvents source whose note is personal and found at its own pointer.
CRM = """\
version: 1
sources:
  - name: crm
  - name: letters
    format: cloudevents
events:
  - type: contact.updated
    source: crm
    fields:
      email: {kind: string, personal: true}
      channel: string
  - type: letter.sent
    source: letters
    fields:
      letter_id: string
      note: {kind: string, at: /data/body/note, personal: true}
"""
START = parse_timestamp("2026-11-22T10:00:00Z")
NOW = START + 3_600_000_000  # (microseconds) an hour after the events


def at(seconds: float) -> str:
    return format_timestamp(START + round(seconds * 1_000_000))  # type: ignore[operator]


def catalog_dir(tmp: Path, personal: str | None = None) -> Path:
    """The shipped catalog with the two sources above, and ``journeys: {personal: ...}`` when given."""
    folder = tmp / f"rules-{personal or 'default'}"
    shutil.copytree(ROOT / "rules", folder)
    (folder / "crm.yaml").write_text(CRM + (f"journeys: {{personal: {personal}}}\n" if personal else ""))
    return folder


def messages(customer: str, seconds: float = 0) -> list[tuple[str, bytes]]:
    """(source, message): a wrong bill (bill-correct is bad, so the customer has a story), a contact
    update, a letter and a survey answer, each carrying a canary in a personal field."""
    return [
        (
            "crm",
            orjson.dumps(
                {
                    "event_id": f"{customer}-1",
                    "type": "contact.updated",
                    "customer_id": customer,
                    "occurred_at": at(seconds),
                    "email": EMAIL,
                    "channel": "web",
                }
            ),
        ),
        (
            "letters",
            orjson.dumps(
                {
                    "specversion": "1.0",
                    "id": f"{customer}-2",
                    "type": "letter.sent",
                    "source": "/letters",
                    "subject": customer,
                    "time": at(seconds + 1),
                    "data": {"letter_id": f"L-{customer}", "body": {"note": NOTE, "pages": 2}},
                }
            ),
        ),
        (
            "bills",
            orjson.dumps(
                {
                    "event_id": f"{customer}-3",
                    "type": "bill.issued",
                    "customer_id": customer,
                    "occurred_at": at(seconds + 2),
                    "bill_id": f"B-{customer}",
                    "amount": 99.0,
                    "expected_amount": 10.0,
                }
            ),
        ),
        (
            "surveys",
            orjson.dumps(
                {
                    "event_id": f"{customer}-4",
                    "type": "survey.answered",
                    "customer_id": customer,
                    "occurred_at": at(seconds + 3),
                    "survey_id": f"S-{customer}",
                    "survey": "nps",
                    "score": 2,
                    "comment": COMMENT,
                }
            ),
        ),
    ]


def leaks(text: str | bytes) -> list[str]:
    text = text.decode() if isinstance(text, bytes) else text
    return [canary for canary in CANARIES if canary in text]


@pytest.fixture(scope="module")
def folders(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    tmp = tmp_path_factory.mktemp("personal")
    return {personal or "default": catalog_dir(tmp, personal) for personal in (None, "keep", "drop")}


# -- the catalog ---------------------------------------------------------------------------------------

EVENTS_HEAD = "version: 1\nsources:\n  - name: crm\nevents:\n  - type: contact.updated\n    source: crm\n"
TOUCHPOINT = """\
version: 1
touchpoints:
  - id: contact-ok
    stage: help
    owner: crm
    description: Contacts come by a channel we answer.
    kind: condition
    on: contact.updated
    good: channel != "fax" && email != ""
    objective: 0.9
"""
KEYED = """\
version: 1
touchpoints:
  - id: contact-once
    stage: help
    owner: crm
    description: One update per e-mail a day.
    kind: no_repeat
    trigger: contact.updated
    repeat: contact.updated
    key: email
    within: 1d
    objective: 0.9
"""
SURVEY_PERSONAL = """\
  - type: survey.answered
    source: crm
    fields:
      survey_id: string
      survey: [nps]
      score: {kind: number, personal: true}
surveys: [survey.answered]
"""

LOADS = [
    pytest.param(
        "    fields: {email: {kind: string, personal: yes}, channel: string}\n",
        TOUCHPOINT,
        ("events[0].fields.email.personal", "must be true or false"),
        id="personal-must-be-a-boolean",
    ),
    pytest.param(
        "    fields: {email: {kind: string, personal: 1}, channel: string}\n",
        TOUCHPOINT,
        ("events[0].fields.email.personal", "must be true or false"),
        id="personal-one-is-not-true",
    ),
    pytest.param(
        "    fields: {email: {kind: string, personal: true}, channel: string}\n    story: 'update by {email}'\n",
        TOUCHPOINT,
        ("events[0].story", "'{email}' is a personal field of 'contact.updated'"),
        id="a-story-cannot-name-a-personal-field",
    ),
    pytest.param(
        "    fields: {email: {kind: string, personal: true}, channel: string}\n",
        KEYED,
        ("touchpoints[0].key", "'email' is a personal field of 'contact.updated'"),
        id="a-touchpoint-cannot-key-on-a-personal-field",
    ),
    pytest.param(
        "    fields: {email: {kind: string, personal: true}, channel: string}\n" + SURVEY_PERSONAL,
        TOUCHPOINT,
        ("surveys[0]", "declares survey or score personal"),
        id="an-answers-score-cannot-be-personal",
    ),
    pytest.param(
        "    fields: {email: {kind: string, personal: true}, channel: string}\njourneys: {personal: forget}\n",
        TOUCHPOINT,
        ("journeys.personal", "must be keep or drop"),
        id="journeys-personal-is-keep-or-drop",
    ),
]


@pytest.mark.parametrize(("declared", "touchpoints", "expected"), LOADS)
def test_a_catalog_says_where_a_personal_field_is_misused(
    tmp_path: Path, declared: str, touchpoints: str, expected: tuple[str, str]
) -> None:
    (tmp_path / "events.yaml").write_text(EVENTS_HEAD + declared)
    (tmp_path / "touchpoints.yaml").write_text(touchpoints)
    catalog, problems = validate_catalog(tmp_path)
    errors = [(p.file, p.path, p.message) for p in problems if p.severity == ERROR]
    assert catalog is None
    path, message = expected
    assert any(found_path == path and message in text for _, found_path, text in errors), errors
    assert all(file.endswith(".yaml") for file, _, _ in errors)


@pytest.mark.parametrize(
    ("setting", "keeps"),
    [pytest.param("", False, id="drop-by-default"), pytest.param("journeys: {personal: keep}\n", True, id="keep")],
)
def test_a_condition_may_read_a_personal_field_and_journeys_drop_them_unless_kept(
    tmp_path: Path, setting: str, keeps: bool
) -> None:
    (tmp_path / "events.yaml").write_text(
        EVENTS_HEAD + "    fields: {email: {kind: string, personal: true}, channel: string}\n" + setting
    )
    (tmp_path / "touchpoints.yaml").write_text(TOUCHPOINT)
    catalog = load_catalog(tmp_path)
    assert catalog.journeys.keeps_personal is keeps
    assert catalog.contract.personal_names_of("contact.updated") == {"email"}


def test_the_shipped_catalog_declares_the_survey_comment_personal(catalog) -> None:  # type: ignore[no-untyped-def]
    assert catalog.contract.personal_names_of("survey.answered") == {"comment"}
    assert not catalog.journeys.keeps_personal


# -- journey entries -----------------------------------------------------------------------------------


def decoded(catalog, source: str, raw: bytes) -> Event:  # type: ignore[no-untyped-def]
    found = catalog.decoder.decode(raw, source)
    assert isinstance(found, Event), found
    return found


ENTRIES = [
    pytest.param("default", "crm", 0, ("email",), ("email",), id="flat-dropped-by-default"),
    pytest.param("drop", "letters", 1, ("note",), ("data", "body", "note"), id="cloudevent-at-a-pointer-dropped"),
    pytest.param("drop", "surveys", 3, ("comment",), ("comment",), id="shipped-survey-comment-dropped"),
    pytest.param("keep", "crm", 0, (), (), id="flat-kept"),
    pytest.param("keep", "letters", 1, (), (), id="cloudevent-kept"),
]


@pytest.mark.parametrize(("setting", "source", "index", "gone", "raw_path"), ENTRIES)
def test_a_journey_entry_drops_personal_fields_from_its_view_and_its_raw_message(
    folders: dict[str, Path], setting: str, source: str, index: int, gone: tuple[str, ...], raw_path: tuple
) -> None:
    catalog = load_catalog(folders[setting])
    journeys = Journeys.of(catalog)
    _, raw = messages("c-1")[index]
    journeys.add_event(decoded(catalog, source, raw))
    ((_, view),) = journeys.get("c-1").views()  # type: ignore[union-attr]
    for name in gone:
        assert name not in view["fields"]
    if gone:
        assert not leaks(orjson.dumps(view))
        parent = view["raw"]
        for token in raw_path[:-1]:
            parent = parent[token]
        assert raw_path[-1] not in parent
        assert view["raw"]["customer_id" if source != "letters" else "subject"] == "c-1"  # the rest stays
    else:
        assert leaks(orjson.dumps(view))
    if source == "letters":
        assert view["raw"]["data"]["body"]["pages"] == 2


def test_a_story_without_a_template_skips_personal_fields_even_when_journeys_keep_them(
    folders: dict[str, Path],
) -> None:
    catalog = load_catalog(folders["keep"])
    journeys = Journeys.of(catalog)
    for source, raw in messages("c-1"):
        journeys.add_event(decoded(catalog, source, raw))
    said = [describe(view, catalog.contract) for _, view in journeys.get("c-1").views()]  # type: ignore[union-attr]
    assert said[0] == "channel web"
    assert not leaks(" ".join(said))


@pytest.mark.parametrize(
    ("document", "pointer", "left"),
    [
        pytest.param({"a": {"b": 1, "c": 2}}, ("a", "b"), {"a": {"c": 2}}, id="nested"),
        pytest.param({"a": [1, {"b": 1}]}, ("a", "1", "b"), {"a": [1, {}]}, id="through-a-list"),
        pytest.param({"a": 1}, ("x", "y"), {"a": 1}, id="absent"),
        pytest.param({"a": "text"}, ("a", "b"), {"a": "text"}, id="not-a-container"),
    ],
)
def test_remove_at_takes_out_what_a_pointer_names(document: dict, pointer: tuple, left: dict) -> None:
    remove_at(document, pointer)
    assert document == left


# -- /journeys ----------------------------------------------------------------------------------------


READERS = [
    pytest.param("alice", ("alice", "bob"), True, id="a-reader-sees-them"),
    pytest.param("carol", ("alice", "bob"), False, id="another-user-does-not"),
    pytest.param(None, ("alice",), False, id="without-a-web-configuration-nobody"),
    pytest.param("", ("alice",), False, id="an-empty-user-is-nobody"),
    pytest.param("alice", (), False, id="no-readers-nobody"),
]


@pytest.mark.parametrize(("user", "readers", "sees"), READERS)
def test_journeys_show_kept_personal_fields_only_to_personal_readers(
    folders: dict[str, Path], user: str | None, readers: tuple[str, ...], sees: bool
) -> None:
    catalog = load_catalog(folders["keep"])
    journeys = Journeys.of(catalog)
    for source, raw in messages("c-1"):
        journeys.add_event(decoded(catalog, source, raw))
    record = orjson.loads(orjson.dumps(journeys.get("c-1").record()))  # type: ignore[union-attr]
    shown = orjson.dumps(for_reader(record, catalog.contract, user, readers))
    assert bool(leaks(shown)) is sees
    assert b"B-c-1" in shown  # the rest of the journey is there either way


@pytest.mark.parametrize(
    ("readers", "users", "unknown"),
    [
        pytest.param(("alice",), {"alice", "bob"}, None, id="known"),
        pytest.param(("alice", "mallory"), {"alice"}, "mallory", id="one-unknown"),
        pytest.param(("alice",), set(), "alice", id="no-web-users"),
    ],
)
def test_personal_readers_must_be_web_users(readers: tuple[str, ...], users: set[str], unknown: str | None) -> None:
    if unknown is None:
        check_web_users(readers, users)
    else:
        with pytest.raises(ValueError, match=unknown):
            check_web_users(readers, users)


def test_personal_readers_are_read_from_a_comma_separated_setting() -> None:
    from streams.settings import Settings

    assert parse_user_names(" alice, bob,,alice ") == ("alice", "bob")
    assert Settings.load(env={"TPMON_PERSONAL_READERS": "alice,bob"}).readers == ("alice", "bob")
    assert Settings.load(env={}).readers == ()


# -- the worker, without Kafka: journeys, stories, metrics, logs --------------------------------------


@pytest.mark.parametrize(("setting", "kept"), [("default", False), ("keep", True)])
def test_a_worker_keeps_personal_values_out_of_stories_metrics_and_logs(
    folders: dict[str, Path], setting: str, kept: bool, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    catalog = load_catalog(folders[setting])
    worker = Worker(catalog)
    for number in range(3):
        customer = f"c-{number}"
        worker.run([Message(source, raw, key=customer.encode()) for source, raw in messages(customer)], NOW)
    stories = worker.views.latest_stories("bill-correct")
    assert {story["customer_id"] for story in stories} == {"c-0", "c-1", "c-2"}
    assert not leaks(orjson.dumps(stories))
    assert not leaks(generate_latest(worker.registry))
    assert not leaks(caplog.text)
    stored = b"".join(worker.journeys.data.values())
    assert bool(leaks(stored)) is kept


# -- replay and the review ------------------------------------------------------------------------------


def test_replay_journeys_and_the_review_hold_no_personal_value(folders: dict[str, Path], tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    lines = []
    for number in range(30):  # enough bad bills for bill-correct to be broken in the review
        lines += [raw for _, raw in messages(f"c-{number:02d}", seconds=number * 60)]  # (each self-describing)
    events.write_bytes(b"\n".join(lines) + b"\n")
    folder = folders["default"]
    runner = CliRunner()
    journeys = tmp_path / "journeys.jsonl"
    replayed = runner.invoke(main, ["replay", str(events), "--rules", str(folder), "--journeys", str(journeys)])
    assert replayed.exit_code == 0, replayed.output
    written = journeys.read_bytes()
    assert b"B-c-00" in written and not leaks(written)
    assert not leaks(replayed.output)
    html, figures = tmp_path / "review.html", tmp_path / "review.json"
    reviewed = runner.invoke(
        main, ["report", str(events), "--rules", str(folder), "--out", str(html), "--json", str(figures)]
    )
    assert reviewed.exit_code == 0, reviewed.output
    review = html.read_text()
    assert "c-0" in review  # a customer's story is told
    assert not leaks(review) and not leaks(figures.read_bytes()) and not leaks(reviewed.output)


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        pytest.param(7, "wrong_type", id="a-number-for-a-string"),
        pytest.param("", "missing_field", id="empty"),
    ],
)
def test_a_reject_names_a_personal_field_without_quoting_its_value(
    folders: dict[str, Path], value: object, reason: str
) -> None:
    catalog = load_catalog(folders["default"])
    _, raw = messages("c-1")[0]
    message = orjson.loads(raw)
    message["email"] = value
    rejected = catalog.decoder.decode(orjson.dumps(message), "crm")
    assert not isinstance(rejected, Event)
    assert rejected.reason == reason and "'email'" in rejected.detail and "personal" in rejected.detail
    assert repr(value) not in rejected.detail


def test_a_personal_choice_is_not_quoted_either(tmp_path: Path) -> None:
    (tmp_path / "events.yaml").write_text(
        EVENTS_HEAD
        + "    fields: {email: {kind: string, personal: true}, channel: {kind: [web, app], personal: true}}\n"
    )
    (tmp_path / "touchpoints.yaml").write_text(TOUCHPOINT)
    catalog = load_catalog(tmp_path)
    message = {
        "event_id": "e1",
        "type": "contact.updated",
        "customer_id": "c-1",
        "occurred_at": at(0),
        "email": EMAIL,
        "channel": "secret-channel",
    }
    rejected = catalog.decoder.decode(orjson.dumps(message), "crm")
    assert not isinstance(rejected, Event) and "secret-channel" not in rejected.detail, rejected


def test_a_journey_kept_with_personal_fields_is_written_again_without_them_once_the_catalog_drops_them(
    folders: dict[str, Path],
) -> None:
    from monitor.journeys import Journey

    kept, dropped = load_catalog(folders["keep"]), load_catalog(folders["drop"])
    journeys = Journeys.of(kept)
    for source, raw in messages("c-1"):
        journeys.add_event(decoded(kept, source, raw))
    record = orjson.loads(orjson.dumps(journeys.get("c-1").record()))  # type: ignore[union-attr]
    assert leaks(orjson.dumps(record))
    again = Journey.from_record(record, dropped.decoder, Journeys.of(dropped).drop)
    written = orjson.dumps(again.record())
    assert not leaks(written) and b"B-c-1" in written and len(again.events) == 4
