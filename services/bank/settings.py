"""The bank service's settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class BankSettings(ServiceSettings):
    """Settings of the bank service (``FAIRSHARE_BANK_*``)."""

    http_port: int = Field(
        default=8002,
        validation_alias=AliasChoices("FAIRSHARE_BANK_PORT"),
        description="Port of the clinicians' API.",
    )
