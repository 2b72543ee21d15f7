"""docker-compose.yml publishes only what a person or a load balancer needs, and passes
every Kafka security setting through to the services."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from shared.settings import ServiceSettings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return loaded


def test_only_the_front_doors_are_published_and_on_loopback_by_default() -> None:
    services = _compose()["services"]
    published = {name: svc.get("ports", []) for name, svc in services.items() if svc.get("ports")}
    # Practices' web hooks, clinicians' app, the ICB's dashboards; never matching,
    # Kafka or PostgreSQL.
    assert set(published) <= {"vacancies", "bank", "monitor", "prometheus", "grafana"}
    assert {"vacancies", "bank", "monitor"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert str(port).startswith("${FAIRSHARE_PUBLISH_HOST:-127.0.0.1}:"), (name, port)


def test_every_kafka_security_setting_reaches_the_services() -> None:
    env = _compose()["x-service"]["environment"]
    wanted = {
        str(field.validation_alias.choices[0])  # type: ignore[union-attr]
        for name, field in ServiceSettings.model_fields.items()
        if name.startswith(("kafka_security", "kafka_sasl", "kafka_ssl_cafile"))
    }
    assert wanted == {
        "FAIRSHARE_KAFKA_SECURITY_PROTOCOL",
        "FAIRSHARE_KAFKA_SASL_MECHANISM",
        "FAIRSHARE_KAFKA_SASL_USERNAME",
        "FAIRSHARE_KAFKA_SASL_PASSWORD",
        "FAIRSHARE_KAFKA_SSL_CAFILE",
    }
    assert wanted <= set(env)


def test_an_unset_option_passed_as_empty_means_unset(monkeypatch: pytest.MonkeyPatch) -> None:
    """Compose gives ``${X:-}`` as ""; the settings take that as not set."""
    monkeypatch.setenv("FAIRSHARE_KAFKA_SASL_MECHANISM", "")
    monkeypatch.setenv("FAIRSHARE_KAFKA_SSL_CAFILE", "")
    settings = ServiceSettings()
    assert (settings.kafka_sasl_mechanism, settings.kafka_ssl_cafile) == (None, None)
