"""tpmon dashboards: Grafana dashboards and provisioning, generated from the catalog."""

from __future__ import annotations

import json
from pathlib import Path

import click

from monitor.observe.grafana import DATASOURCE
from monitor.observe.grafana import dashboards as build
from monitor.observe.text import yaml_text

from ..output import out
from .catalog import catalog_or_exit

DATASOURCE_FILE = {
    "apiVersion": 1,
    "datasources": [
        {
            "name": "Prometheus",
            "type": "prometheus",
            "uid": DATASOURCE["uid"],
            "access": "proxy",
            "url": "http://prometheus:9090",
            "isDefault": True,
        }
    ],
}
PROVIDER_FILE = {
    "apiVersion": 1,
    "providers": [
        {
            "name": "tpmon",
            "folder": "Customer Room",
            "type": "file",
            "disableDeletion": False,
            "options": {"path": "/var/lib/grafana/dashboards/tpmon"},
        }
    ],
}


@click.group()
def dashboards() -> None:
    """Grafana dashboards for the Customer Room, drilldown and reliability reviews."""


@dashboards.command()
@click.option(
    "--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path), help="Folder to write into."
)
@click.option(
    "--rules", "rules_path", type=click.Path(path_type=Path), help="Catalog file or folder [default: rules/]."
)
def render(out_dir: Path, rules_path: Path | None) -> None:
    """Write the dashboards (JSON) and Grafana provisioning files (datasource, dashboard provider)."""
    catalog = catalog_or_exit(rules_path)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, dashboard in build(catalog).items():
        (out_dir / name).write_text(json.dumps(dashboard, indent=2, sort_keys=True) + "\n")
    provisioning = out_dir / "provisioning"
    (provisioning / "datasources").mkdir(parents=True, exist_ok=True)
    (provisioning / "dashboards").mkdir(parents=True, exist_ok=True)
    (provisioning / "datasources" / "prometheus.yml").write_text(yaml_text(DATASOURCE_FILE, "dashboards render"))
    (provisioning / "dashboards" / "tpmon.yml").write_text(yaml_text(PROVIDER_FILE, "dashboards render"))
    out.print(f"wrote 3 dashboards and their provisioning to {out_dir}")
