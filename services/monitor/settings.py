"""The monitor service's settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class MonitorSettings(ServiceSettings):
    """Settings of the monitor service (``FAIRSHARE_MONITOR_*``)."""

    http_port: int = Field(
        default=8004,
        validation_alias=AliasChoices("FAIRSHARE_MONITOR_PORT"),
        description="Port of the dashboard.",
    )
