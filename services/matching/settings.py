"""The matching service's settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field

from shared.settings import ServiceSettings


class MatchingSettings(ServiceSettings):
    """Settings of the matching service (``FAIRSHARE_MATCHING_*``)."""

    http_port: int = Field(
        default=8003,
        validation_alias=AliasChoices("FAIRSHARE_MATCHING_PORT"),
        description="Port of the health and planning API.",
    )
    sweep_s: float = Field(
        default=15.0,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_MATCHING_SWEEP_S"),
        description="How often expired offers' time is planned again, so they move on.",
    )
    plan_in_subprocess: bool = Field(
        default=True,
        validation_alias=AliasChoices("FAIRSHARE_MATCHING_PLAN_IN_SUBPROCESS"),
        description="Compute plans in a worker process, not a thread of the service's own.",
    )
    full_sweep_s: float = Field(
        default=300.0,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_MATCHING_FULL_SWEEP_S"),
        description="How often every region with open sessions is planned whole.",
    )
    debounce_s: float = Field(
        default=0.2,
        ge=0,
        validation_alias=AliasChoices("FAIRSHARE_MATCHING_DEBOUNCE_S"),
        description="How long a region's re-plan waits for more events after the first.",
    )
    plan_duty: float = Field(
        default=0.3,
        gt=0,
        le=1,
        validation_alias=AliasChoices("FAIRSHARE_MATCHING_PLAN_DUTY"),
        description=(
            "Most of the time a region's re-plans may take: after a plan of d seconds the"
            " next waits d * (1 / duty - 1), so a flood of events can't keep a core busy."
        ),
    )
    plan_poll_s: float = Field(
        default=0.05,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_MATCHING_PLAN_POLL_S"),
        description="How often the planner looks for re-plans that have fallen due.",
    )
