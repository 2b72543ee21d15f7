"""The vacancies web hook over the real database and broker: signatures, idempotency,
problem details, and the event it publishes."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from structlog.testing import capture_logs

from services.vacancies import SCHEMA
from services.vacancies.admin import add_organisation
from services.vacancies.app import create_app
from services.vacancies.domain import Organisation
from services.vacancies.settings import VacanciesSettings
from shared.catalogue import Sector
from shared.db.pool import connect
from shared.events.registry import topic_for
from tests.conftest import Infra
from tests.integration.helpers import read_topic, settings_for
from tests.integration.vacancies_support import signed

pytestmark = pytest.mark.integration


@pytest.fixture
async def app(infra: Infra, topic_prefix: str) -> AsyncIterator[FastAPI]:
    """The vacancies app with its lifespan running (pool, broker, relay)."""
    application = create_app(settings_for(VacanciesSettings, infra, topic_prefix))
    async with application.router.lifespan_context(application):
        yield application


@pytest.fixture
async def client(app: FastAPI) -> AsyncIterator[httpx.AsyncClient]:
    """An HTTP client talking to the app in-process."""
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://vacancies") as c:
        yield c


@pytest.fixture
async def org(infra: Infra, app: FastAPI, region: str) -> tuple[str, str]:
    """A registered practice: its ODS code and web hook secret."""
    ods = "A" + str(uuid.uuid4().int)[:5]
    conn = await connect(infra.dsn, SCHEMA)
    try:
        secret, _ = await add_organisation(
            conn,
            Organisation(ods, "Test Surgery", Sector.GENERAL_PRACTICE, region, 53.4, -2.2, True),
        )
    finally:
        await conn.close()
    return ods, secret


def _delivery(external_id: str = "rota-1", **data: Any) -> bytes:
    start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=3)
    body = {
        "type": "session.posted",
        "timestamp": datetime.now(UTC).isoformat(),
        "data": {
            "external_id": external_id,
            "role": "gp",
            "starts_at": start.isoformat(),
            "ends_at": (start + timedelta(hours=4, minutes=10)).isoformat(),
            **data,
        },
    }
    return json.dumps(body).encode()


async def _count_sessions(infra: Infra, ods: str) -> int:
    conn = await connect(infra.dsn, SCHEMA)
    try:
        count: int = await conn.fetchval(
            "SELECT count(*) FROM sessions WHERE organisation = $1", ods
        )
        return count
    finally:
        await conn.close()


async def test_signed_session_is_stored_and_published(
    client: httpx.AsyncClient, org: tuple[str, str], infra: Infra, topic_prefix: str, region: str
) -> None:
    """A correctly signed delivery: 202, one session, `session.posted` keyed by region,
    and one log line for the request carrying its webhook-id."""
    ods, secret = org
    body = _delivery()
    headers = signed(secret, body)
    with capture_logs() as logs:
        response = await client.post(f"/webhooks/{ods}", content=body, headers=headers)
    assert response.status_code == 202, response.text
    [line] = [entry for entry in logs if entry["event"] == "request handled"]
    assert (line["status"], line["request_id"]) == (202, headers["webhook-id"])
    session_id = response.json()["session_id"]
    records = await read_topic(
        infra.bootstrap,
        topic_for("session.posted", topic_prefix),
        want=1,
        event_type="session.posted",
    )
    assert [json.loads(r.value)["data"]["session_id"] for r in records] == [session_id]
    assert records[0].key == region.encode()


@pytest.mark.parametrize("fault", ["unsigned", "wrong-secret", "stale", "tampered"])
async def test_bad_signatures_get_401_and_store_nothing(
    client: httpx.AsyncClient, org: tuple[str, str], infra: Infra, fault: str
) -> None:
    """Unsigned, wrongly signed, stale (over 5 minutes) or altered: 401, nothing stored."""
    ods, secret = org
    body = _delivery()
    headers = {
        "unsigned": {"content-type": "application/json"},
        "wrong-secret": signed("whsec_" + "QUJD" * 8, body),
        "stale": signed(secret, body, age_s=6 * 60),
        "tampered": signed(secret, body),
    }[fault]
    sent = body.replace(b"rota-1", b"rota-2") if fault == "tampered" else body
    response = await client.post(f"/webhooks/{ods}", content=sent, headers=headers)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert await _count_sessions(infra, ods) == 0


async def test_repeated_webhook_id_returns_the_first_answer_and_stores_once(
    client: httpx.AsyncClient, org: tuple[str, str], infra: Infra
) -> None:
    """A retried delivery (same webhook-id) gets the same answer; one session exists."""
    ods, secret = org
    body = _delivery()
    headers = signed(secret, body, msg_id="msg_retry_1")
    first = await client.post(f"/webhooks/{ods}", content=body, headers=headers)
    again = await client.post(f"/webhooks/{ods}", content=body, headers=headers)
    assert (first.status_code, first.json()) == (again.status_code, again.json())
    assert await _count_sessions(infra, ods) == 1


async def test_malformed_json_is_422_problem(
    client: httpx.AsyncClient, org: tuple[str, str]
) -> None:
    """Not JSON at all: 422 problem+json."""
    ods, secret = org
    body = b'{"type": "session.posted", '
    response = await client.post(f"/webhooks/{ods}", content=body, headers=signed(secret, body))
    assert response.status_code == 422
    assert response.json()["status"] == 422


async def test_invalid_fields_are_named(
    client: httpx.AsyncClient, org: tuple[str, str], infra: Infra
) -> None:
    """Each bad field is named with the rule it broke; nothing is stored."""
    ods, secret = org
    body = _delivery(role="wizard", starts_at="yesterday")
    response = await client.post(f"/webhooks/{ods}", content=body, headers=signed(secret, body))
    assert response.status_code == 422
    fields = {e["field"] for e in response.json()["errors"]}
    assert {"data.role", "data.starts_at"} <= fields
    past = datetime.now(UTC) - timedelta(days=1)
    body = _delivery(starts_at=past.isoformat(), ends_at=(past - timedelta(hours=1)).isoformat())
    response = await client.post(f"/webhooks/{ods}", content=body, headers=signed(secret, body))
    assert response.status_code == 422
    messages = {e["field"]: e["message"] for e in response.json()["errors"]}
    assert "after starts_at" in messages["data.ends_at"]
    assert "future" in messages["data.starts_at"]
    assert await _count_sessions(infra, ods) == 0


async def test_unknown_organisation_is_401(client: httpx.AsyncClient) -> None:
    """An ODS code nobody registered looks exactly like a bad signature."""
    body = _delivery()
    response = await client.post(
        "/webhooks/Z99999", content=body, headers=signed("whsec_" + "QUJD" * 8, body)
    )
    assert response.status_code == 401


async def test_deactivated_organisation_is_403(
    client: httpx.AsyncClient, org: tuple[str, str], infra: Infra
) -> None:
    """A deactivated organisation's correctly signed post is refused with 403."""
    ods, secret = org
    conn = await connect(infra.dsn, SCHEMA)
    try:
        await conn.execute("UPDATE organisations SET active = false WHERE ods_code = $1", ods)
    finally:
        await conn.close()
    body = _delivery()
    response = await client.post(f"/webhooks/{ods}", content=body, headers=signed(secret, body))
    assert response.status_code == 403
