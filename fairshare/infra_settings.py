"""Settings objects for command-line administration outside any one service."""

from __future__ import annotations

from shared.settings import ServiceSettings


def bare_settings(database_url: str, kafka_bootstrap: str = "127.0.0.1:9092") -> ServiceSettings:
    """Settings naming just the database (and broker) to administer."""
    return ServiceSettings.model_validate(
        {"FAIRSHARE_DATABASE_URL": database_url, "FAIRSHARE_KAFKA_BOOTSTRAP": kafka_bootstrap}
    )
