"""Loading the catalog for a command, with every problem shown when it is broken."""

from __future__ import annotations

from pathlib import Path

from monitor.catalog import Catalog, validate_catalog
from monitor.catalog.errors import ERROR

from ..output import err
from ..paths import default_rules


def catalog_or_exit(path: Path | None) -> Catalog:
    path = path or default_rules()
    catalog, problems = validate_catalog(path)
    if catalog is None:
        for problem in problems:
            if problem.severity == ERROR:
                err.print(f"[red]{problem}[/]", soft_wrap=True)
        err.print(f"[bold red]error:[/] the catalog at {path} has errors; see `tpmon rules validate {path}`")
        raise SystemExit(1)
    return catalog
