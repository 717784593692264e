"""`tpmon rules validate --sample`: a catalog checked on sample messages finds the pointers that name
nothing (a typo), the types never seen and the types no declaration names, each at its declaration."""

from __future__ import annotations

import orjson
import pytest
from click.testing import CliRunner

from monitor.catalog import load_catalog
from monitor.catalog.errors import ERROR, WARNING
from monitor.catalog.samples import Declared, read_sample, sample_problems
from monitor.durations import parse_duration
from monitor.simulate import Simulation
from tests.builders import CONTRACT
from tpmon.cli import main

from .conftest import ROOT

CATALOG = """version: 1
sources:
  - name: policies
    time: epoch_ms
    fields:
      event_id: /id
      type: /kind
      customer_id: /policyholder/id
      occurred_at: /at
  - name: contact
    format: cloudevents
events:
  - type: policy.renewed
    source: policies
    fields:
      policy_id: {kind: string, at: /policy/number}
    optional:
      channel: string
  - type: policy.lapsed
    source: policies
    fields:
      policy_id: {kind: string, at: /policy/number}
  - type: call.taken
    source: contact
    fields:
      queue: string
touchpoints:
  - id: renewal-named
    stage: pay
    owner: billing
    description: A renewal names its policy.
    kind: condition
    on: [policy.renewed, policy.lapsed]
    good: policy_id != ""
    objective: 0.95
  - id: call-queued
    stage: help
    owner: contact
    description: A call names its queue.
    kind: condition
    on: call.taken
    good: queue != ""
    objective: 0.95
"""


def renewal(number: int, kind: str = "policy.renewed", **extra: object) -> bytes:
    data = {
        "id": f"e{number}",
        "kind": kind,
        "policyHolder": {"id": f"c{number}"},
        "at": 1796803200000 + number,
        "policy": {"number": f"p{number}"},
    }
    return orjson.dumps({**data, **extra})


def call(number: int, **data: object) -> bytes:
    event = {"specversion": "1.0", "id": f"k{number}", "type": "call.taken", "source": "pbx", "subject": "c1"}
    return orjson.dumps({**event, "time": "2026-12-01T10:00:00Z", "data": {"queue": "claims", **data}})


@pytest.fixture
def policies(tmp_path):  # type: ignore[no-untyped-def]
    (tmp_path / "catalog.yaml").write_text(CATALOG)
    return tmp_path


def checked(folder, samples):  # type: ignore[no-untyped-def]
    catalog = load_catalog(folder)
    read = [read_sample(catalog, source, f"{source}=sample.jsonl", lines) for source, lines in samples]
    problems = sample_problems(catalog, read, Declared(catalog.files))
    return read, [(p.line, p.path, p.severity, p.message) for p in problems]


def test_a_pointer_with_a_typo_is_an_error_at_its_declaration_with_a_did_you_mean(policies):
    read, problems = checked(policies, [("policies", [renewal(n) for n in range(4)])])
    assert read[0].lines == 4 and read[0].decoded == 0 and read[0].rejected == {"missing_field": 4}
    errors = [p for p in problems if p[2] == ERROR]
    assert errors == [
        (
            8,
            "sources[0].fields.customer_id",
            ERROR,
            "field 'customer_id' (at /policyholder/id) is in none of the 4 messages of policies=sample.jsonl; "
            "did you mean '/policyHolder/id'?",
        )
    ]
    assert "rejected (missing_field 4 (first at line 1: field 'customer_id' (at /policyholder/id) is missing))" in (
        read[0].summary()
    )


def test_a_type_field_never_found_is_an_error_an_optional_one_a_warning(policies):
    fixed = (policies / "catalog.yaml").read_text().replace("/policyholder/id", "/policyHolder/id")
    (policies / "catalog.yaml").write_text(
        fixed.replace("at: /policy/number}\n    optional", "at: /policy/nr}\n    optional")
    )
    read, problems = checked(policies, [("policies", [renewal(n) for n in range(3)])])
    assert read[0].rejected == {"missing_field": 3}
    assert (16, "events[0].fields.policy_id", ERROR) in [p[:3] for p in problems]
    said = {p[1]: p for p in problems}
    assert "(at /policy/nr) is in none of its 3 messages" in said["events[0].fields.policy_id"][3]
    assert "did you mean '/policy/number'?" in said["events[0].fields.policy_id"][3]
    assert said["events[0].optional.channel"][2] == WARNING
    assert said["events[1].type"][2:] == (
        WARNING,
        "'policy.lapsed' is in none of the 3 messages of policies=sample.jsonl",
    )


def test_a_clean_sample_says_only_what_it_did_not_see(policies):
    fixed = (policies / "catalog.yaml").read_text().replace("/policyholder/id", "/policyHolder/id")
    (policies / "catalog.yaml").write_text(fixed)
    lines = [renewal(1, channel="web"), renewal(2, "policy.lapsed"), renewal(3, "policy.renewd"), b"{cut", b""]
    read, problems = checked(policies, [("policies", lines), ("contact", [call(1), call(2)])])
    assert [(r.lines, r.decoded, dict(r.rejected)) for r in read] == [(4, 3, {"malformed_json": 1}), (2, 2, {})]
    assert [p[2] for p in problems] == [WARNING]
    assert (
        problems[0][1] == "sources[0].fields.type" and "'policy.renewd', which no declaration names" in problems[0][3]
    )
    assert "did you mean 'policy.renewed'?" in problems[0][3]


def test_a_cloudevent_without_its_time_or_a_field_of_its_type_says_which(policies):
    lines = [orjson.dumps({**orjson.loads(call(n)), "time": None, "data": {"q": "x"}}) for n in range(2)]
    _, problems = checked(policies, [("contact", lines)])
    said = {(p[1], p[3].split(" is in none")[0]) for p in problems if p[2] == ERROR}
    assert said == {
        ("sources[1].name", "field 'occurred_at' (at /time)"),
        ("events[2].fields.queue", "field 'queue' of 'call.taken' (at /data/queue)"),
    }


def test_the_shipped_catalog_fits_the_simulated_events_of_every_source(tmp_path):
    lines = list(Simulation(customers=200, duration=parse_duration("2d"), seed=3).lines())
    by_source: dict[str, list[bytes]] = {}
    for line in lines:
        by_source.setdefault(CONTRACT.source_of_type(orjson.loads(line)["type"]), []).append(line)  # type: ignore[arg-type]
    args = []
    for source, mine in sorted(by_source.items()):
        (tmp_path / f"{source}.jsonl").write_bytes(b"\n".join(mine) + b"\n")
        args += ["--sample", f"{source}={tmp_path / f'{source}.jsonl'}"]
    done = CliRunner().invoke(main, ["rules", "validate", str(ROOT / "rules"), *args])
    assert done.exit_code == 0, done.output
    said = [line for line in done.stdout.splitlines() if line.startswith("sample ")]
    assert len(said) == len(by_source) and all(line.endswith("decoded, 0 rejected") for line in said)
    assert " error" not in done.output


def test_validate_with_a_sample_exits_1_on_a_pointer_that_names_nothing(policies):
    sample = policies / "policies.jsonl"
    sample.write_bytes(b"\n".join(renewal(n) for n in range(3)) + b"\n")
    runner = CliRunner()
    done = runner.invoke(main, ["rules", "validate", str(policies), "--sample", f"policies={sample}"])
    assert done.exit_code == 1
    assert "sources[0].fields.customer_id: field 'customer_id' (at /policyholder/id) is in none" in done.stderr
    assert f"sample policies={sample}: 3 lines, 0 decoded, 3 rejected" in done.stdout
    fixed = (policies / "catalog.yaml").read_text().replace("/policyholder/id", "/policyHolder/id")
    (policies / "catalog.yaml").write_text(fixed)
    args = ["rules", "validate", str(policies), "--sample", f"policies={sample}"]
    assert runner.invoke(main, args).exit_code == 0  # warnings only: policy.lapsed never seen
    assert runner.invoke(main, [*args, "--strict"]).exit_code == 1
    wrong = runner.invoke(main, ["rules", "validate", str(policies), "--sample", f"policy={sample}"])
    assert wrong.exit_code == 2 and "did you mean 'policies'?" in wrong.output
