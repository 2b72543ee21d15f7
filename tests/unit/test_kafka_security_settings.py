"""Kafka security settings: what each protocol gives the clients, and what is refused.

TLS itself is exercised across a real broker in tests/integration/test_kafka_security.py;
SASL can't be (the local broker has no SCRAM), so its mapping is checked here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from shared.messaging.security import broker_security, client_options
from shared.settings import ServiceSettings


def _settings(**env: str) -> ServiceSettings:
    return ServiceSettings.model_validate(
        {f"FAIRSHARE_KAFKA_{k.upper()}": v for k, v in env.items()}
    )


def test_plaintext_by_default_adds_nothing() -> None:
    assert broker_security(_settings()) is None
    assert client_options(None) == {}


def test_sasl_over_tls_with_scram_reaches_every_client(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    trustme.CA().cert_pem.write_to_path(str(cafile))
    settings = _settings(
        security_protocol="SASL_SSL",
        sasl_mechanism="SCRAM-SHA-512",
        sasl_username="matching",
        sasl_password="s3cret",
        ssl_cafile=str(cafile),
    )
    options = client_options(broker_security(settings))
    assert options["security_protocol"] == "SASL_SSL"
    assert options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert (options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "matching",
        "s3cret",
    )
    assert options["ssl_context"] is not None


def test_sasl_without_tls_has_no_tls_context() -> None:
    settings = _settings(
        security_protocol="SASL_PLAINTEXT",
        sasl_mechanism="PLAIN",
        sasl_username="bank",
        sasl_password="pw",
    )
    options = client_options(broker_security(settings))
    assert (options["security_protocol"], options["sasl_mechanism"]) == ("SASL_PLAINTEXT", "PLAIN")
    assert options["ssl_context"] is None


def test_sasl_without_credentials_is_refused_naming_what_is_missing_and_no_secret() -> None:
    with pytest.raises(ValidationError) as refused:
        _settings(security_protocol="SASL_SSL", sasl_password="do-not-print-me")
    text = str(refused.value)
    assert "FAIRSHARE_KAFKA_SASL_MECHANISM" in text
    assert "FAIRSHARE_KAFKA_SASL_USERNAME" in text
    assert "PASSWORD" not in text.split("needs", 1)[1]
    assert "do-not-print-me" not in text


def test_password_is_not_shown_in_the_settings_repr() -> None:
    settings = _settings(
        security_protocol="SASL_SSL", sasl_mechanism="PLAIN", sasl_username="u", sasl_password="pw9"
    )
    assert "pw9" not in repr(settings)
