"""The Grafana dashboard and the example Prometheus configuration shipped in exporters/grafana."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from lcore.env import Environment
from lcore.exporters.prometheus import make_registry, render
from lcore.master import MasterRuntime, WorkerNode
from lcore.stats import RequestStats
from lcore.users import HttpUser

GRAFANA = Path(__file__).resolve().parent.parent / "exporters" / "grafana"
METRIC = re.compile(r"\b((?:lcore|process)_[a-z0-9_]+)")


class Reader(HttpUser):
    host = "http://127.0.0.1:1"


def dashboard() -> dict[str, Any]:
    return json.loads((GRAFANA / "lcore.json").read_text())


def expressions(board: dict[str, Any]) -> list[str]:
    return [t["expr"] for panel in board["panels"] for t in panel["targets"]]


def exported_names() -> set[str]:
    """Every sample name /metrics can show, from a runtime where everything has happened."""
    runtime = MasterRuntime(Environment(user_classes=[Reader]), endpoints=[], digest="x")
    runtime.workers["w1"] = WorkerNode("w1", "box", 1, 2, 0, state="running", cpu=50.0)
    runtime.start_time = 1.0
    stats = RequestStats()
    stats.record("GET", "/", 12.0, 10, "boom")
    stats.log_exception("ValueError", "Traceback")
    runtime.stats_merged.merge("w1", stats.take_delta())
    text = render(make_registry(runtime))[0].decode()
    return {s.name for family in text_string_to_metric_families(text) for s in family.samples}


def promtool() -> str | None:
    path = shutil.which("promtool")
    if path is None and os.environ.get("CI") == "true":
        pytest.fail("promtool is not installed (run-tests.sh installs Debian's prometheus)")
    return path


def test_dashboard_uses_a_prometheus_datasource_variable() -> None:
    board = dashboard()
    assert board["uid"] and board["title"] and board["panels"]
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    for panel in board["panels"]:
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]
    titles = " ".join(p["title"] for p in board["panels"]).lower()
    for topic in ("requests per second", "failures", "percentile", "users", "worker cpu"):
        assert topic in titles


def test_every_metric_the_dashboard_queries_is_exported() -> None:
    exported = exported_names()
    named = {name for expr in expressions(dashboard()) for name in METRIC.findall(expr)}
    assert named, "no metric found in the dashboard's queries"
    assert named <= exported, f"not exported: {sorted(named - exported)}"
    assert {"lcore_requests_total", "lcore_worker_cpu_usage_ratio"} <= named


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard()["panels"]:
        g = panel["gridPos"]
        assert g["x"] + g["w"] <= 24, panel["title"]
        cells = {
            (x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])
        }
        assert not cells & taken, panel["title"]
        taken |= cells


def test_queries_are_valid_promql(tmp_path: Path) -> None:
    path = promtool()
    if path is None:
        pytest.skip("promtool is not installed")
    rules = [
        {
            "record": f"lcore:dashboard_query_{i}",
            "expr": expr.replace("$__rate_interval", "1m")
            .replace("$job", ".*")
            .replace("$instance", ".*"),
        }
        for i, expr in enumerate(expressions(dashboard()))
    ]
    rule_file = tmp_path / "rules.yml"
    rule_file.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        [path, "check", "rules", str(rule_file)], capture_output=True, text=True, timeout=30
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_example_scrape_config() -> None:
    config = yaml.safe_load((GRAFANA / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
    assert job["static_configs"][0]["targets"] == ["localhost:8089"]
    path = promtool()
    if path is None:
        pytest.skip("promtool is not installed")
    result = subprocess.run(
        [path, "check", "config", str(GRAFANA / "prometheus.yml")],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
