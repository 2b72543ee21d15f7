"""docker-compose.yml's optional `observability` profile: Prometheus with deploy/'s scrape
config and alert rules, Grafana with deploy/'s provisioning and dashboards, mounted
where each expects them, and nothing of it needed to run Fairshare without it.

No Docker engine runs here, so this reads the file as compose would; the image has not
been started with it (deploy/README.md, "Checked, not run")."""

from __future__ import annotations

import re
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlsplit

import yaml

ROOT = Path(__file__).resolve().parents[2]
PROFILE = "observability"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return loaded


def _mounts(service: dict[str, Any]) -> dict[str, str]:
    """A service's bind mounts: container path -> host path (relative to the repo)."""
    mounts = {}
    for volume in service.get("volumes", []):
        source, target, *_ = volume.split(":")
        if source.startswith("./"):
            mounts[target] = source[2:]
    return mounts


def _flag(command: list[str], name: str) -> str:
    values = [c.split("=", 1)[1] for c in command if c.startswith(f"--{name}=")]
    assert len(values) == 1, name
    return values[0]


def test_only_prometheus_and_grafana_are_in_the_profile_and_nothing_needs_them() -> None:
    services = _compose()["services"]
    profiled = {name for name, s in services.items() if PROFILE in s.get("profiles", [])}
    assert profiled == {"prometheus", "grafana"}
    for name, service in services.items():
        if name not in profiled:
            # Other profiles exist (the admin commands' one-off container), but nothing
            # outside this one may need Prometheus or Grafana to start.
            assert not set(service.get("depends_on", {})) & profiled, name
    # A required variable (${X:?}) would stop `docker compose up` without the profile
    # too: compose interpolates the whole file before it picks the services.
    for name in profiled:
        assert not re.search(r"\$\{[^}]*:\?", yaml.safe_dump(services[name])), name


def test_prometheus_runs_the_scrape_config_and_rules_of_deploy() -> None:
    prometheus = _compose()["services"]["prometheus"]
    mounts = _mounts(prometheus)
    config_path = PurePosixPath(_flag(prometheus["command"], "config.file"))
    assert mounts[str(config_path)] == "deploy/prometheus/prometheus.yml"
    config = yaml.safe_load((ROOT / mounts[str(config_path)]).read_text())
    assert config["rule_files"]
    for rule_file in config["rule_files"]:
        inside = config_path.parent / rule_file
        assert mounts[str(inside)] == f"deploy/prometheus/{rule_file}", rule_file
    for host in mounts.values():
        assert (ROOT / host).is_file(), host
    # Scraped by compose name and each service's own port.
    services = _compose()["services"]
    for job in config["scrape_configs"]:
        for group in job["static_configs"]:
            for target in group["targets"]:
                name, port = target.split(":")
                env = services[name]["environment"]
                assert env[f"FAIRSHARE_{name.upper()}_PORT"] == port, target
    # It asks for no sign-in, so it is not published; Grafana reads it inside.
    assert "ports" not in prometheus
    assert any(v.endswith(":/prometheus") for v in prometheus["volumes"])


def test_grafana_provisions_the_data_source_and_both_dashboards() -> None:
    services = _compose()["services"]
    grafana = services["grafana"]
    mounts = _mounts(grafana)
    assert mounts["/etc/grafana/provisioning"] == "deploy/grafana/provisioning"
    provisioning = ROOT / mounts["/etc/grafana/provisioning"]
    provider = yaml.safe_load((provisioning / "dashboards" / "fairshare.yml").read_text())
    dashboards_in = provider["providers"][0]["options"]["path"]
    assert mounts[dashboards_in] == "deploy/grafana/dashboards"
    home = PurePosixPath(grafana["environment"]["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"])
    assert str(home.parent) == dashboards_in
    assert (ROOT / mounts[dashboards_in] / home.name).is_file()
    names = {p.name for p in (ROOT / mounts[dashboards_in]).glob("*.json")}
    assert {"fairshare-operators.json", "fairshare-icb.json"} <= names
    source = yaml.safe_load((provisioning / "datasources" / "prometheus.yml").read_text())
    url = urlsplit(source["datasources"][0]["url"])
    assert url.hostname in services
    assert "prometheus" in services[str(url.hostname)]["image"]
    assert url.port == 9090  # Prometheus's default listen address; the command keeps it
    assert not any(c.startswith("--web.listen-address") for c in services["prometheus"]["command"])
    assert grafana["depends_on"]["prometheus"]["condition"] == "service_healthy"
    assert "healthcheck" in services["prometheus"]


def test_grafana_has_no_default_password_and_no_anonymous_access() -> None:
    grafana = _compose()["services"]["grafana"]
    env = grafana["environment"]
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == "${GRAFANA_ADMIN_PASSWORD:-}"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    # Without the password it stops with a reason instead of starting as admin/admin.
    guard = " ".join(grafana["entrypoint"])
    assert '[ -n "$$GF_SECURITY_ADMIN_PASSWORD" ] ||' in guard
    assert "exit 64" in guard
    assert 'exec /run.sh "$$@"' in guard
    # Published as the other front doors are: on the host's loopback unless told.
    assert grafana["ports"] == ["${FAIRSHARE_PUBLISH_HOST:-127.0.0.1}:3000:3000"]
