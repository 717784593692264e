"""tpmon rules: check the catalog."""

from __future__ import annotations

from pathlib import Path

import click
from rich.markup import escape

from monitor.catalog import validate_catalog
from monitor.catalog.errors import ERROR, WARNING
from monitor.durations import format_duration
from monitor.observe.alertmanager import EXAMPLE_WEBHOOK, alertmanager_config
from monitor.observe.prometheus import rule_files
from monitor.observe.text import yaml_text
from monitor.observe.windows import PROFILES

from ..output import err, fail, out
from ..paths import default_rules
from .catalog import catalog_or_exit


@click.group()
def rules() -> None:
    """Check and render the touchpoint catalog."""


@rules.command()
@click.argument("path", required=False, type=click.Path(path_type=Path))
@click.option("--strict", is_flag=True, help="Treat warnings as errors.")
@click.option(
    "--sample",
    "samples",
    multiple=True,
    metavar="SOURCE=FILE",
    help="Decode the lines of FILE (JSONL) as messages of SOURCE and check the declarations on them: a "
    "pointer that names nothing in any message of its type is an error. Repeat for several sources; a "
    "bare FILE holds self-describing lines.",
)
def validate(path: Path | None, strict: bool, samples: tuple[str, ...]) -> None:
    """Check a catalog (default: rules/) and print every error with file, line and field path.

    With --sample, also decode sample messages with it: for each sample, the lines read, decoded and
    rejected (by reason, with the first of each); then, at its declaration, every field the decoder
    found in none of the messages of its type (an error when it is required: a typo in a pointer, say),
    each declared type of the source never seen and each type seen that no declaration names (warnings).

    Exits 1 when there are errors (or warnings, with --strict).
    """
    path = path or default_rules()
    catalog, problems = validate_catalog(path)
    read = []
    if catalog is not None and samples:
        from monitor.catalog.samples import Declared, read_sample, sample_problems

        from .replay import inputs_or_exit

        for given, (source, file) in zip(samples, inputs_or_exit(samples, catalog), strict=True):
            if str(file) == "-":
                fail("--sample reads files, not standard input")
            with file.open("rb") as lines:
                read.append(read_sample(catalog, source, given, lines))
        problems = sorted([*problems, *sample_problems(catalog, read, Declared(catalog.files))])
    errors = [p for p in problems if p.severity == ERROR]
    warnings = [p for p in problems if p.severity == WARNING]
    for problem in problems:
        style = "red" if problem.severity == ERROR else "yellow"
        err.print(f"[{style}]{problem}[/]", soft_wrap=True)
    for sample in read:
        out.print(escape(f"sample {sample.summary()}"), soft_wrap=True)
    if catalog is not None:
        kinds = sorted({t.kind for t in catalog.touchpoints})
        out.print(
            f"{path}: {len(catalog.touchpoints)} touchpoints ({', '.join(kinds)}), "
            f"lateness {format_duration(catalog.lateness)}, {len(warnings)} warning(s)"
            + (f", {len(errors)} error(s) in the samples" if errors else "")
        )
    else:
        err.print(f"{path}: {len(errors)} error(s), {len(warnings)} warning(s)")
        if samples:
            err.print("the samples are checked once the catalog has no errors")
    if errors or (strict and warnings):
        raise SystemExit(1)


@rules.command()
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write into."
)
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path), help="Catalog file or folder [default: rules/]."
)
@click.option(
    "--profile",
    default="production",
    show_default=True,
    type=click.Choice(sorted(PROFILES)),
    help="test: every window divided by 60, for tests and demos.",
)
@click.option(
    "--webhook",
    default=EXAMPLE_WEBHOOK,
    show_default=True,
    help="Base URL of the teams' webhook receivers in alertmanager.yml.",
)
def render(out_dir: Path, rules_path: Path | None, profile: str, webhook: str) -> None:
    """Write Prometheus recording and alerting rules, and an example alertmanager.yml, for the catalog."""
    catalog = catalog_or_exit(rules_path)
    chosen = PROFILES[profile]
    files = {name: yaml_text(content, "rules render") for name, content in rule_files(catalog, chosen).items()}
    files["alertmanager.yml"] = yaml_text(alertmanager_config(catalog, webhook, chosen), "rules render")
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (out_dir / name).write_text(text)
    out.print(f"wrote {', '.join(sorted(files))} to {out_dir}")
