"""Where things are by default."""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path


def default_rules() -> Path:
    """$TPMON_RULES, else ./rules when it exists, else the catalog shipped with tpmon."""
    configured = os.environ.get("TPMON_RULES")
    if configured:
        return Path(configured)
    local = Path("rules")
    if local.is_dir():
        return local
    return Path(str(resources.files("rules")))
