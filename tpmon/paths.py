"""Where things are by default."""

from __future__ import annotations

import os
from pathlib import Path


def default_rules() -> Path:
    """$TPMON_RULES, else ./rules when it exists, else the catalog shipped with tpmon."""
    configured = os.environ.get("TPMON_RULES")
    if configured:
        return Path(configured)
    local = Path("rules")
    if local.is_dir():
        return local
    return shipped_rules()


def shipped_rules() -> Path:
    """The folder of the catalog installed with tpmon. ``rules`` is a namespace package (a folder of
    YAML), whose path an editable install extends with an entry that is not a folder, which
    importlib.resources refuses: the first entry that is a folder is it."""
    import rules

    for entry in rules.__path__:
        if Path(entry).is_dir():
            return Path(entry)
    raise FileNotFoundError("the catalog shipped with tpmon is not installed (no rules folder)")
