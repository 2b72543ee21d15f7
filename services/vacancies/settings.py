"""The vacancies service's settings."""

from __future__ import annotations

from pydantic import AliasChoices, Field, SecretStr

from shared.settings import ServiceSettings


def _env(name: str) -> AliasChoices:
    return AliasChoices(f"FAIRSHARE_VACANCIES_{name}")


class VacanciesSettings(ServiceSettings):
    """Settings of the vacancies service (``FAIRSHARE_VACANCIES_*``)."""

    http_port: int = Field(default=8001, validation_alias=_env("PORT"), description="HTTP port.")
    secret_keys: SecretStr | None = Field(
        default=None,
        validation_alias=_env("SECRET_KEYS"),
        description=(
            "Fernet keys, comma separated, that encrypt organisations' web hook signing"
            " secrets in the database: the first encrypts, every one decrypts. Required (the"
            " service refuses to start without it); make one with `fairshare org"
            " new-secret-key`. To rotate: put a new key first, restart, run `fairshare org"
            " reencrypt-secrets`, then drop the old key."
        ),
    )
    max_body_bytes: int = Field(
        default=1_048_576,
        gt=0,
        validation_alias=_env("MAX_BODY_BYTES"),
        description="Larger request bodies are refused with 413 (500 sessions fit easily).",
    )
    rate_per_s: float = Field(
        default=50.0,
        gt=0,
        validation_alias=_env("RATE_PER_S"),
        description=(
            "Requests a second each organisation may make, sustained; only requests it"
            " signed (or sent with its API key) count."
        ),
    )
    rate_burst: float = Field(
        default=100.0,
        ge=1,
        validation_alias=_env("RATE_BURST"),
        description="Requests an organisation may make at once before the rate applies.",
    )
    failed_per_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=_env("FAILED_PER_S"),
        description=(
            "Unauthenticated requests a second one source address may have refused,"
            " sustained (bad or missing signature or API key, unknown organisation, body"
            " too large). Past it, that address gets 429; the organisations' own budgets"
            " are spent only by their authenticated requests."
        ),
    )
    failed_burst: float = Field(
        default=30.0,
        ge=1,
        validation_alias=_env("FAILED_BURST"),
        description="Unauthenticated refusals one address may have at once before 429.",
    )
    callback_base_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("CALLBACK_BASE_S"),
        description="First retry delay of a failed callback; doubles each time.",
    )
    callback_cap_s: float = Field(
        default=3600.0,
        gt=0,
        validation_alias=_env("CALLBACK_CAP_S"),
        description="Longest delay between two callback attempts.",
    )
    callback_window_s: float = Field(
        default=25 * 3600.0,
        gt=0,
        validation_alias=_env("CALLBACK_WINDOW_S"),
        description="How long a callback is retried before it is given up (at least 24 h).",
    )
    callback_timeout_s: float = Field(
        default=10.0,
        gt=0,
        validation_alias=_env("CALLBACK_TIMEOUT_S"),
        description="How long one callback attempt may take.",
    )
    poll_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=_env("POLL_S"),
        description="Longest wait between looks for due callbacks.",
    )
    unfilled_sweep_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=_env("UNFILLED_SWEEP_S"),
        description="How often sessions whose start passed unfilled are closed.",
    )
    timesheet_approval_hours: float = Field(
        default=72.0,
        gt=0,
        validation_alias=_env("TIMESHEET_APPROVAL_HOURS"),
        description="The ICB's period: a timesheet the practice has neither approved nor"
        " queried this many hours after it was submitted is approved automatically.",
    )
    timesheet_sweep_s: float = Field(
        default=60.0,
        gt=0,
        validation_alias=_env("TIMESHEET_SWEEP_S"),
        description="How often overdue timesheets are looked for and approved.",
    )
