from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parent.parent


def grafana_schema() -> Path:
    """Grafana's published dashboard schema: TPMON_GRAFANA_SCHEMA, or ../shared/schemas beside the
    repository (developers' machines and CI). Without either, the one test that needs it is skipped."""
    given = os.environ.get("TPMON_GRAFANA_SCHEMA")
    path = Path(given) if given else ROOT.parent / "shared" / "schemas" / "grafana-dashboard.schema.json"
    if not path.exists():
        pytest.skip(f"Grafana's dashboard schema is not at {path} (set TPMON_GRAFANA_SCHEMA to check against it)")
    return path


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(ROOT / "rules")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first: in the processes of `make test` each then runs beside the others,
    not after them all."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("longest") else 1)
