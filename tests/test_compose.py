"""docker-compose.yml (Docker cannot run here): valid against the Compose specification, and wired to
the generated files."""

from __future__ import annotations

import shutil
import subprocess
import sys

import pytest
from ruamel.yaml import YAML

from monitor.observe.prometheus import PARTITION_SERIES

from .conftest import ROOT


def compose() -> dict:
    return YAML(typ="safe").load((ROOT / "docker-compose.yml").read_text())


def test_valid_against_the_compose_specification():
    """The Compose specification's schema as check-jsonschema vendors it (a dev dependency)."""
    checked = subprocess.run(
        [
            sys.executable,
            "-m",
            "check_jsonschema",
            "--builtin-schema",
            "vendor.compose-spec",
            str(ROOT / "docker-compose.yml"),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


def test_every_file_it_mounts_is_in_the_repository():
    for name, service in compose()["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts {source}, which is missing"
        if "build" in service:
            assert (ROOT / service["build"] / "Dockerfile").exists()


def test_the_worker_scales():
    worker = compose()["services"]["worker"]
    assert "container_name" not in worker and "ports" not in worker  # so `--scale worker=3` works
    prometheus = YAML(typ="safe").load((ROOT / "prometheus" / "prometheus.yml").read_text())
    job = next(j for j in prometheus["scrape_configs"] if j["job_name"] == "tpmon")
    assert job["dns_sd_configs"][0]["names"] == ["worker"]
    # A partition's series continue on whichever worker takes it over (docs/METRICS.md).
    assert job["metric_relabel_configs"] == PARTITION_SERIES


def test_the_stack_has_what_the_customer_room_needs():
    assert {"kafka", "worker", "simulator", "prometheus", "alertmanager", "grafana"} <= set(compose()["services"])
    assert "3000:3000" in compose()["services"]["grafana"]["ports"]


def test_promtool_accepts_the_compose_prometheus_config(tmp_path):
    # The config names rule files by their path in the container: check it with the files beside it.
    config = (
        (ROOT / "prometheus" / "prometheus.yml")
        .read_text()
        .replace("/etc/prometheus/rules/", str(ROOT / "prometheus") + "/")
    )
    (tmp_path / "prometheus.yml").write_text(config)
    result = subprocess.run(
        [shutil.which("promtool") or "promtool", "check", "config", str(tmp_path / "prometheus.yml")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_stacks_workers_start_on_its_network():
    """The image listens beyond loopback, which a worker refuses without a web configuration that
    authenticates: the local stack says it accepts that (docs/SECURITY.md), the image alone does not."""
    from streams.settings import Settings
    from tpmon.commands.worker import web_config_or_exit

    stack = {name: str(value) for name, value in compose()["services"]["worker"]["environment"].items()}
    assert web_config_or_exit(Settings.load(stack)) is None  # starts, warning
    image = [line for line in (ROOT / "Dockerfile").read_text().splitlines() if line.startswith("ENV ")]
    assert any("TPMON_WEB_HOST=0.0.0.0" in line for line in image)
    assert not any("TPMON_INSECURE_WEB" in line for line in image)
    with pytest.raises(SystemExit):
        web_config_or_exit(Settings.load({"TPMON_WEB_HOST": "0.0.0.0"}))
