"""tpmon rules: check the catalog."""

from __future__ import annotations

from pathlib import Path

import click

from monitor.catalog import validate_catalog
from monitor.catalog.errors import ERROR, WARNING
from monitor.durations import format_duration

from ..output import err, out
from ..paths import default_rules


@click.group()
def rules() -> None:
    """Check and render the touchpoint catalog."""


@rules.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
def validate(path: Path | None, strict: bool) -> None:
    """Check a catalog (default: rules/) and print every error with file, line and field path.

    Exits 1 when there are errors (or warnings, with --strict).
    """
    path = path or default_rules()
    catalog, problems = validate_catalog(path)
    errors = [p for p in problems if p.severity == ERROR]
    warnings = [p for p in problems if p.severity == WARNING]
    for problem in problems:
        style = "red" if problem.severity == ERROR else "yellow"
        err.print(f"[{style}]{problem}[/]", soft_wrap=True)
    if catalog is not None:
        kinds = sorted({t.kind for t in catalog.touchpoints})
        out.print(
            f"{path}: {len(catalog.touchpoints)} touchpoints ({', '.join(kinds)}), "
            f"lateness {format_duration(catalog.lateness)}, {len(warnings)} warning(s)"
        )
    else:
        err.print(f"{path}: {len(errors)} error(s), {len(warnings)} warning(s)")
    if errors or (strict and warnings):
        raise SystemExit(1)
