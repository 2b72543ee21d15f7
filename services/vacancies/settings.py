"""The vacancies service's settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class VacanciesSettings(ServiceSettings):
    """Settings of the vacancies service (``FAIRSHARE_VACANCIES_*``)."""

    http_port: int = Field(
        default=8001,
        validation_alias=AliasChoices("FAIRSHARE_VACANCIES_PORT"),
        description="Port of the web hook and API.",
    )
