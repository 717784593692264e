"""The touchpoint catalog: YAML read into a versioned model, checked, then mapped to the internal model."""

from .errors import CatalogInvalid, Problem
from .load import load_catalog, validate_catalog
from .model import Catalog, Touchpoint

__all__ = ["Catalog", "CatalogInvalid", "Problem", "Touchpoint", "load_catalog", "validate_catalog"]
