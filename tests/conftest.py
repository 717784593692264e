from __future__ import annotations

from pathlib import Path

import pytest

from monitor.catalog import Catalog, load_catalog

ROOT = Path(__file__).resolve().parent.parent


def shared_schema(name: str) -> Path:
    """A schema from ../shared/schemas (beside the repository, as on developers' machines and in CI)."""
    path = ROOT.parent / "shared" / "schemas" / name
    assert path.exists(), f"{path} is missing: the tests read the published schemas from ../shared/schemas"
    return path


@pytest.fixture(scope="session")
def catalog() -> Catalog:
    return load_catalog(ROOT / "rules")
