from __future__ import annotations

import os
from pathlib import Path

import pytest

from monitor.catalog import Catalog, load_catalog
from tests.builders import DiskStores, MemoryStores

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


@pytest.fixture(params=["memory", "rocksdb"], ids=["memory store", "rocksdb store"])
def stores(request, tmp_path):  # type: ignore[no-untyped-def]
    """A worker's stores, new at each call (``stores(partitions)``), on either store a worker keeps them in
    (TPMON_STORE): Faust's memory store, or tpmon's RocksDB store in a folder of the test's own. A crash
    (``crashed``) keeps what each changelog holds; on disk, the new worker opens the folder the dead one
    left and recovers it from its checkpoints (tests.builders)."""
    opened: list[DiskStores] = []

    def new_stores(partitions: int = 4) -> MemoryStores | DiskStores:
        if request.param == "memory":
            return MemoryStores()
        return DiskStores(tmp_path / f"worker{len(opened)}", partitions, opened=opened)

    yield new_stores
    for mine in opened:
        mine.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The longest tests first: in the processes of `make test` each then runs beside the others,
    not after them all."""
    items.sort(key=lambda item: 0 if item.get_closest_marker("longest") else 1)
