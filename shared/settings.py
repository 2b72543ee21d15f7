"""The typed settings every service shares; each service extends it with its own."""

from __future__ import annotations

from typing import Literal

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection and runtime settings read from ``FAIRSHARE_*`` environment variables."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers, comma separated.",
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("FAIRSHARE_DATABASE_URL"),
        description="PostgreSQL connection URI; each service keeps to its own schema.",
    )
    topic_prefix: str = Field(
        default="",
        validation_alias=AliasChoices("FAIRSHARE_TOPIC_PREFIX"),
        description="Prefix for every topic name, to isolate test runs on one broker.",
    )
    log_format: Literal["auto", "console", "json"] = Field(
        default="auto",
        validation_alias=AliasChoices("FAIRSHARE_LOG_FORMAT"),
        description="Console on a terminal and JSON otherwise, unless forced.",
    )
    http_host: str = Field(
        default="127.0.0.1",
        validation_alias=AliasChoices("FAIRSHARE_HTTP_HOST"),
        description="Address the service's HTTP server binds.",
    )
    topic_check_s: float = Field(
        default=5.0,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_TOPIC_CHECK_S"),
        description="How often topics are checked and recreated (Tansu loses them on restart).",
    )
    outbox_poll_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_OUTBOX_POLL_S"),
        description="Longest wait between outbox sweeps when no NOTIFY wakes the relay.",
    )
    outbox_gather_s: float = Field(
        default=0.05,
        ge=0,
        validation_alias=AliasChoices("FAIRSHARE_OUTBOX_GATHER_S"),
        description=(
            "How long the relay waits after a NOTIFY before publishing, so that events"
            " committed close together go to the broker as one batch."
        ),
    )
    stall_s: float = Field(
        default=30.0,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_STALL_S"),
        description="A consumer or relay making no progress this long reports unready.",
    )
    consumer_max_attempts: int = Field(
        default=5,
        ge=1,
        validation_alias=AliasChoices("FAIRSHARE_CONSUMER_MAX_ATTEMPTS"),
        description="Attempts at a message whose handler fails for a lasting reason, before"
        " it is dead-lettered (failures that pass, such as the database away, retry on).",
    )
    consumer_session_timeout_ms: int = Field(
        default=6000,
        ge=1000,
        validation_alias=AliasChoices("FAIRSHARE_CONSUMER_SESSION_TIMEOUT_MS"),
        description=(
            "How long the broker waits for a silent group member before handing its"
            " partitions to the others. 6 s, Apache Kafka's smallest allowed by default"
            " (group.min.session.timeout.ms), not aiokafka's 10 s: a killed instance's"
            " partitions then move in about 11 s instead of 18 (measured on Tansu)."
            " Heartbeats go every third of it; planning runs off the event loop, so a"
            " long plan does not miss them."
        ),
    )
    consumer_retry_s: float = Field(
        default=0.5,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_CONSUMER_RETRY_S"),
        description="First wait before a failed message is tried again; doubles to 30 s.",
    )
    prune_every_s: float = Field(
        default=3600.0,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_PRUNE_EVERY_S"),
        description="How often published outbox rows and old inbox rows are pruned.",
    )
    lag_check_s: float = Field(
        default=1.0,
        gt=0,
        validation_alias=AliasChoices("FAIRSHARE_LAG_CHECK_S"),
        description="How often a consumer measures its lag and checks its positions.",
    )
    metrics_ttl_s: float = Field(
        default=1.0,
        ge=0,
        validation_alias=AliasChoices("FAIRSHARE_METRICS_TTL_S"),
        description=(
            "How long /metrics reuses the figures that cost a query or a broker round trip"
            " (outbox backlog, consumer lag, business gauges), however many scrape it."
        ),
    )
