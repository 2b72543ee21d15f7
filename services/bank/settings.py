"""The bank service's settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class BankSettings(ServiceSettings):
    """Settings of the bank service (``FAIRSHARE_BANK_*``)."""

    http_port: int = Field(
        default=8002,
        validation_alias=AliasChoices("FAIRSHARE_BANK_PORT"),
        description="Port of the clinicians' API and app.",
    )
    signin_per_s: float = Field(
        default=0.2,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_BANK_SIGNIN_PER_S"),
        description="Sign-in attempts a second allowed from one address (12 a minute).",
    )
    signin_burst: float = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("FAIRSHARE_BANK_SIGNIN_BURST"),
        description="Sign-in attempts one address may make at once.",
    )
    pattern_sweep_s: float = Field(
        default=3600,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_BANK_PATTERN_SWEEP_S"),
        description="How often weekly patterns are extended to eight weeks ahead.",
    )
