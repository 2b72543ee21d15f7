"""Kafka transport security from settings: TLS, and SASL (SCRAM or PLAIN) over it.

One FastStream security object is built from the settings; the broker takes it as is,
and every raw aiokafka client (the topic admin, the outbox's offset reader, the
monitor's replay) takes the keyword arguments FastStream itself derives from it
(``parse_security``), so the two can't drift apart. The local Tansu broker speaks
plaintext only (no TLS, no SCRAM: ../shared/notes/infrastructure.md), so PLAINTEXT
stays the default; production sets the protocol and credentials.
"""

from __future__ import annotations

from typing import Any

from aiokafka.helpers import create_ssl_context
from faststream.kafka.security import parse_security
from faststream.security import (
    BaseSecurity,
    SASLPlaintext,
    SASLScram256,
    SASLScram512,
)

from shared.settings import ServiceSettings

_SASL = {"PLAIN": SASLPlaintext, "SCRAM-SHA-256": SASLScram256, "SCRAM-SHA-512": SASLScram512}


def broker_security(settings: ServiceSettings) -> BaseSecurity | None:
    """The FastStream security for the settings' protocol; None for plaintext."""
    protocol = settings.kafka_security_protocol
    if protocol == "PLAINTEXT":
        return None
    tls = protocol in ("SSL", "SASL_SSL")
    context = (
        create_ssl_context(
            cafile=settings.kafka_ssl_cafile,
            certfile=settings.kafka_ssl_certfile,
            keyfile=settings.kafka_ssl_keyfile,
        )
        if tls
        else None
    )
    if protocol == "SSL":
        return BaseSecurity(ssl_context=context, use_ssl=True)
    # The settings' validator has made sure these are set for the SASL protocols.
    assert settings.kafka_sasl_mechanism is not None
    assert settings.kafka_sasl_username is not None
    assert settings.kafka_sasl_password is not None
    sasl = _SASL[settings.kafka_sasl_mechanism]
    return sasl(
        settings.kafka_sasl_username,
        settings.kafka_sasl_password.get_secret_value(),
        ssl_context=context,
        use_ssl=tls,
    )


def client_options(security: BaseSecurity | None) -> dict[str, Any]:
    """Keyword arguments for a raw aiokafka client (consumer, admin) with ``security``."""
    options: dict[str, Any] = parse_security(security)
    return options
