"""The typed settings every service shares; each service extends it with its own."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import (
    AliasChoices,
    Field,
    IPvAnyNetwork,
    SecretStr,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ServiceSettings(BaseSettings):
    """Connection and runtime settings read from ``FAIRSHARE_*`` environment variables."""

    # hide_input_in_errors: a refused setting must not print the others (a password).
    # env_ignore_empty: compose passes unset options as "" (FAIRSHARE_KAFKA_SASL_*), and
    # those mean "not set", not an empty value to validate.
    model_config = SettingsConfigDict(
        extra="ignore", frozen=True, hide_input_in_errors=True, env_ignore_empty=True
    )

    kafka_bootstrap: str = Field(
        default="127.0.0.1:9092",
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_BOOTSTRAP"),
        description="Kafka bootstrap servers, comma separated.",
    )
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = Field(
        default="PLAINTEXT",
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_SECURITY_PROTOCOL"),
        description=(
            "How the services reach Kafka: PLAINTEXT (the local broker, loopback only),"
            " SSL (TLS), SASL_SSL (TLS with SASL credentials) or SASL_PLAINTEXT."
        ),
    )
    kafka_sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = Field(
        default=None,
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_SASL_MECHANISM"),
        description="SASL mechanism for the SASL protocols; SCRAM-SHA-512 is recommended.",
    )
    kafka_sasl_username: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_SASL_USERNAME"),
        description="The service's Kafka user (one per service, so ACLs can tell them apart).",
    )
    kafka_sasl_password: SecretStr | None = Field(
        default=None,
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_SASL_PASSWORD"),
        description="The Kafka user's password; never logged (a SecretStr).",
    )
    kafka_ssl_cafile: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_SSL_CAFILE"),
        description="CA bundle that signed the brokers' certificates; the system's if unset.",
    )
    kafka_ssl_certfile: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_SSL_CERTFILE"),
        description="Client certificate, for brokers that require mutual TLS.",
    )
    kafka_ssl_keyfile: str | None = Field(
        default=None,
        validation_alias=AliasChoices("FAIRSHARE_KAFKA_SSL_KEYFILE"),
        description="The client certificate's private key.",
    )
    database_url: str = Field(
        default="postgresql://postgres@127.0.0.1:5432/postgres",
        validation_alias=AliasChoices("FAIRSHARE_DATABASE_URL"),
        description=(
            "PostgreSQL connection URI, as the service's own role (fairshare_<service>),"
            " which owns its schema and nothing else (shared/db/roles.py)."
        ),
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
    trusted_proxies: Annotated[tuple[IPvAnyNetwork, ...], NoDecode] = Field(
        default=(),
        validation_alias=AliasChoices("FAIRSHARE_TRUSTED_PROXIES"),
        description=(
            "Addresses or CIDR networks of the reverse proxies in front of the service,"
            " comma separated. Only a connection from one of them may name the client"
            " (X-Forwarded-For) and the scheme (X-Forwarded-Proto). Empty, the default:"
            " no one is believed, and every rate limit counts the connection's own address."
        ),
    )
    topics: Literal["create", "require"] = Field(
        default="create",
        validation_alias=AliasChoices("FAIRSHARE_TOPICS"),
        description=(
            "create: the service creates its topics at start and recreates them every"
            " FAIRSHARE_TOPIC_CHECK_S while running (the embedded Tansu broker, which loses"
            " them on restart: `fairshare dev` and the tests). require: production; topics"
            " are made once by `fairshare topics create`, and a service whose topics are"
            " missing stops at start, naming them."
        ),
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

    @field_validator("trusted_proxies", mode="before")
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        """The variable is a comma-separated list (NoDecode keeps it from being read as
        JSON); each item is then checked as an address or network, so a typo stops the
        service at start instead of trusting nothing, or too much, in silence."""
        if isinstance(value, str):
            return tuple(item.strip() for item in value.split(",") if item.strip())
        return value

    @model_validator(mode="after")
    def _sasl_complete(self) -> ServiceSettings:
        """SASL needs a mechanism and credentials: refused at start, naming what is
        missing, rather than failing on the first connection with the broker's reason."""
        if self.kafka_security_protocol.startswith("SASL_"):
            missing = [
                env
                for env, value in (
                    ("FAIRSHARE_KAFKA_SASL_MECHANISM", self.kafka_sasl_mechanism),
                    ("FAIRSHARE_KAFKA_SASL_USERNAME", self.kafka_sasl_username),
                    ("FAIRSHARE_KAFKA_SASL_PASSWORD", self.kafka_sasl_password),
                )
                if not value
            ]
            if missing:
                msg = f"{self.kafka_security_protocol} needs {', '.join(missing)}"
                raise ValueError(msg)
        return self
