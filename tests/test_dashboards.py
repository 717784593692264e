"""Dashboards: valid against Grafana's published schema, laid out without overlap, stable uids, committed."""

from __future__ import annotations

import json

import jsonschema
import pytest
from click.testing import CliRunner

from tpmon.cli import main

from .conftest import ROOT, grafana_schema

COMMITTED = ROOT / "dashboards"
NAMES = ("customer-room.json", "touchpoint-drilldown.json", "reliability-review.json")


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dashboards")
    result = CliRunner().invoke(main, ["dashboards", "render", "--out", str(folder), "--rules", str(ROOT / "rules")])
    assert result.exit_code == 0, result.output
    return folder


def panels_of(dashboard: dict) -> list[dict]:
    found = []
    for panel in dashboard["panels"]:
        found.append(panel)
        found.extend(panel.get("panels", []))
    return found


@pytest.mark.parametrize("name", NAMES)
def test_valid_against_grafanas_schema(rendered, name):
    schema = json.loads(grafana_schema().read_text())
    errors = [
        f"{list(e.absolute_path)}: {e.message}"
        for e in jsonschema.Draft7Validator(schema).iter_errors(json.loads((rendered / name).read_text()))
    ]
    assert errors == []


@pytest.mark.parametrize("name", NAMES)
def test_panels_do_not_overlap(rendered, name):
    cells: dict[tuple[int, int], str] = {}
    for panel in panels_of(json.loads((rendered / name).read_text())):
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel.get('title')} overlaps {cells[x, y]}"
                cells[x, y] = panel.get("title", "")


def test_uids_are_stable_and_unique(rendered):
    uids = [json.loads((rendered / name).read_text())["uid"] for name in NAMES]
    assert uids == ["tpmon-customer-room", "tpmon-touchpoint-drilldown", "tpmon-reliability-review"]
    panel_ids = [[p["id"] for p in panels_of(json.loads((rendered / n).read_text()))] for n in NAMES]
    assert all(len(ids) == len(set(ids)) for ids in panel_ids)


def test_the_wall_has_a_tile_per_touchpoint_grouped_by_stage(rendered, catalog):
    wall = json.loads((rendered / "customer-room.json").read_text())
    rows = [p["title"] for p in wall["panels"] if p["type"] == "row"]
    assert rows[:5] == ["Buy", "Get", "Pay", "Help", "Leave"]
    tiles = [p for p in wall["panels"] if p["type"] == "stat" and p["title"] in catalog.ids]
    assert [p["title"] for p in tiles] == list(catalog.ids)
    # Each tile: its state, with a link to its drilldown, and beneath it its reliability and volume.
    panels = wall["panels"]
    for tile in tiles:
        assert tile["links"][0]["url"].endswith("var-touchpoint=" + tile["title"])
        beneath = [p for p in panels if p["gridPos"]["y"] == tile["gridPos"]["y"] + tile["gridPos"]["h"]]
        under = [
            p
            for p in beneath
            if tile["gridPos"]["x"] <= p["gridPos"]["x"] < tile["gridPos"]["x"] + tile["gridPos"]["w"]
        ]
        assert [p["title"].split(" ")[0] for p in under] == ["reliability", "decided"], tile["title"]
        assert all(f'touchpoint="{tile["title"]}"' in p["targets"][0]["expr"] for p in under)


def test_the_committed_dashboards_are_what_the_catalog_renders(rendered):
    for path in sorted(rendered.rglob("*")):
        if path.is_file():
            relative = path.relative_to(rendered)
            assert (COMMITTED / relative).read_text() == path.read_text(), (
                f"dashboards/{relative} drifted: run `tpmon dashboards render --out dashboards`"
            )
