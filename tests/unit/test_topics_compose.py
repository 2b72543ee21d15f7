"""docker-compose.yml makes the topics once, in the one-shot `topics` job, before any
service starts; the services only check theirs (FAIRSHARE_TOPICS=require), with no
keeper. Without the setting (the tests, `fairshare dev`), services create them."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from fairshare.services import SERVICES
from shared.settings import ServiceSettings

COMPOSE = Path(__file__).resolve().parents[2] / "docker-compose.yml"


def _services() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load(COMPOSE.read_text())
    return dict(loaded["services"])


def test_every_service_waits_for_the_topics_job_and_only_requires_its_topics() -> None:
    services = _services()
    for name in SERVICES:
        service = services[name]
        assert service["depends_on"]["topics"] == {"condition": "service_completed_successfully"}, (
            name
        )
        assert service["environment"]["FAIRSHARE_TOPICS"] == "require", name


def test_the_topics_job_runs_once_as_soon_as_kafka_is_healthy() -> None:
    job = _services()["topics"]
    assert job["command"] == ["topics", "create"]
    assert job["restart"] == "no"
    assert job["depends_on"] == {"kafka": {"condition": "service_healthy"}}
    env = job["environment"]
    # The same broker, prefix and TLS/SASL settings as the services, and no database.
    services_env = _services()["vacancies"]["environment"]
    for name, value in services_env.items():
        if name.startswith(("FAIRSHARE_KAFKA_", "FAIRSHARE_TOPIC_PREFIX")):
            assert env[name] == value, name
    assert "FAIRSHARE_DATABASE_URL" not in env
    assert env["FAIRSHARE_TOPIC_REPLICATION"] == "${FAIRSHARE_TOPIC_REPLICATION:-1}"


def test_without_the_setting_services_create_their_topics(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The default: the tests start services on a fresh Tansu with topic prefixes no one
    created, and must keep working without setting anything."""
    monkeypatch.delenv("FAIRSHARE_TOPICS", raising=False)
    assert ServiceSettings().topics == "create"
    monkeypatch.setenv("FAIRSHARE_TOPICS", "require")
    assert ServiceSettings().topics == "require"
