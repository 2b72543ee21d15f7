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
    session_hours: float = Field(
        default=12,
        gt=0,
        le=24 * 30,
        validation_alias=AliasChoices("FAIRSHARE_MONITOR_SESSION_HOURS"),
        description="How long a viewer stays signed in (a working day, by default).",
    )
    signin_per_s: float = Field(
        default=0.2,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_MONITOR_SIGNIN_PER_S"),
        description="Sign-in attempts a second allowed from one address (12 a minute).",
    )
    signin_burst: float = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("FAIRSHARE_MONITOR_SIGNIN_BURST"),
        description="Sign-in attempts one address may make at once.",
    )
    secure_cookie: bool = Field(
        default=False,
        validation_alias=AliasChoices("FAIRSHARE_MONITOR_SECURE_COOKIE"),
        description=(
            "Mark the session cookie Secure even when the request came over plain http:"
            " set it behind a proxy that ends TLS (forwarded headers are not believed)."
        ),
    )
