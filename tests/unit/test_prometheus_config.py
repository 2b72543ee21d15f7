"""deploy/prometheus and deploy/grafana hold together: promtool accepts the scrape config,
every alert fires in its unit test, every dashboard query is PromQL that Prometheus
parses, and every series the rules and the dashboards ask for is one the services
export.

promtool comes from Debian's prometheus package, which `make` installs; without it
these tests fail rather than skip."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import yaml

from services.matching import gauges as matching_gauges
from services.monitor import gauges as monitor_gauges
from shared.metrics import Metrics

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
PROMETHEUS = DEPLOY / "prometheus"
DASHBOARDS = sorted((DEPLOY / "grafana" / "dashboards").glob("*.json"))
DATASOURCE = DEPLOY / "grafana" / "provisioning" / "datasources" / "prometheus.yml"
SERVICES = {"vacancies": 8001, "bank": 8002, "matching": 8003, "monitor": 8004}
# Series Prometheus makes itself rather than scrapes.
BUILT_IN = {"up", "ALERTS"}
# Grafana's variables, as a panel's query may hold them, and a value Prometheus takes.
GRAFANA_VARIABLES = {
    "$region": ".*",
    "$__range": "1h",
    "$__rate_interval": "1m",
    "$__interval": "1m",
}


def _promtool(*args: str) -> str:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make` installs Debian's prometheus package"
    done = subprocess.run(
        [promtool, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_promtool_accepts_the_scrape_config_and_its_rules() -> None:
    """`promtool check config` (which checks the rule files it names too); each of the
    four services is a job scraping its compose name and port."""
    out = _promtool("check", "config", "prometheus.yml")
    assert "SUCCESS" in out
    config = yaml.safe_load((PROMETHEUS / "prometheus.yml").read_text())
    jobs = {
        job["job_name"]: [t for c in job["static_configs"] for t in c["targets"]]
        for job in config["scrape_configs"]
    }
    assert jobs == {name: [f"{name}:{port}"] for name, port in SERVICES.items()}
    compose = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())
    assert set(SERVICES) <= set(compose["services"])


def test_every_alert_fires_in_its_unit_test() -> None:
    """`promtool test rules` passes, and every alert of alerts.yml is expected to fire
    somewhere in alerts_test.yml (a rule left out would be tested by nothing)."""
    _promtool("test", "rules", "alerts_test.yml")
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    alerts = {r["alert"] for g in rules["groups"] for r in g["rules"] if "alert" in r}
    tests = yaml.safe_load((PROMETHEUS / "alerts_test.yml").read_text())
    fired = {
        case["alertname"]
        for test in tests["tests"]
        for case in test.get("alert_rule_test", ())
        if case.get("exp_alerts")
    }
    assert alerts, "no alerts?"
    assert fired == alerts


def _exported() -> set[str]:
    """Every sample name the four services can export."""
    names: set[str] = set()
    metrics = Metrics()
    matching_gauges.register(metrics)
    monitor_gauges.register(metrics)
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }
    for family in metrics.registry.collect():
        names.update(family.name + s for s in suffixes.get(family.type, ("",)))
    return names


def _series_in(expr: str) -> set[str]:
    """Metric names a PromQL expression reads (ours are all prefixed)."""
    return set(re.findall(r"\b(fairshare_[a-z0-9_]+|process_[a-z0-9_]+|up|ALERTS)\b", expr))


def _dashboards() -> dict[str, dict[str, Any]]:
    """Every provisioned dashboard, by file name."""
    return {path.name: json.loads(path.read_text()) for path in DASHBOARDS}


def _exprs(dashboard: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in dashboard["panels"] for t in p["targets"]]


def test_rules_and_dashboard_ask_only_for_series_the_services_export() -> None:
    """A metric renamed in code but not in deploy/ would leave an alert or a panel
    silently empty: every name they use must be exported (or made by Prometheus)."""
    exported = _exported() | BUILT_IN
    assert {"fairshare_consumer_lag", "fairshare_messages_total"} <= exported
    rules = yaml.safe_load((PROMETHEUS / "alerts.yml").read_text())
    used = {n for g in rules["groups"] for r in g["rules"] for n in _series_in(r["expr"])}
    assert used, "no series found: the pattern is wrong"
    assert used <= exported, f"alerts.yml asks for what is not exported: {sorted(used - exported)}"
    assert {"fairshare-operators.json", "fairshare-icb.json"} <= set(_dashboards())
    for name, dashboard in _dashboards().items():
        in_panels = {n for e in _exprs(dashboard) for n in _series_in(e)}
        assert in_panels, f"{name}: no series found: the pattern is wrong"
        assert in_panels <= exported, f"{name} asks for what is not exported: " + str(
            sorted(in_panels - exported)
        )


def test_every_panel_query_is_promql_that_prometheus_parses(tmp_path: Path) -> None:
    """Each panel's query, its Grafana variables given values, is written as a recording
    rule and checked by `promtool check rules`: a typo in PromQL fails here, not on a
    dashboard in production."""
    rules = []
    for name, dashboard in _dashboards().items():
        for panel in dashboard["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                assert "$" not in expr, f"{name} {panel['title']}: a variable left: {expr}"
                record = (
                    f"dashboard:{Path(name).stem.replace('-', '_')}_{panel['id']}_{target['refId']}"
                )
                rules.append({"record": record, "expr": expr})
    (tmp_path / "panels.yml").write_text(
        yaml.safe_dump({"groups": [{"name": "panels", "rules": rules}]})
    )
    promtool = shutil.which("promtool")
    assert promtool, "promtool is missing: `make` installs Debian's prometheus package"
    done = subprocess.run(
        [promtool, "check", "rules", "panels.yml"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"{len(rules)} rules found" in done.stdout


def test_each_dashboard_is_a_provisioned_dashboard_on_the_provisioned_source() -> None:
    """Dashboard uids and panel ids unique, panels not overlapping on the grid, every
    panel and query on the data source provisioning makes."""
    source = yaml.safe_load(DATASOURCE.read_text())["datasources"][0]["uid"]
    uids = {name: d["uid"] for name, d in _dashboards().items()}
    assert len(set(uids.values())) == len(uids)
    assert uids["fairshare-operators.json"] == "fairshare-operators"
    assert uids["fairshare-icb.json"] == "fairshare-icb"
    for name, dashboard in _dashboards().items():
        ids = [p["id"] for p in dashboard["panels"]]
        assert len(ids) == len(set(ids)), name
        cells: dict[tuple[int, int], str] = {}
        for panel in dashboard["panels"]:
            assert panel["datasource"]["uid"] == source, panel["title"]
            assert panel["targets"], panel["title"]
            for target in panel["targets"]:
                assert target["datasource"]["uid"] == source, panel["title"]
            pos = panel["gridPos"]
            assert pos["x"] + pos["w"] <= 24, (name, panel["title"])
            for x in range(pos["x"], pos["x"] + pos["w"]):
                for y in range(pos["y"], pos["y"] + pos["h"]):
                    assert (x, y) not in cells, (name, panel["title"], cells.get((x, y)))
                    cells[(x, y)] = panel["title"]
