"""Signed callbacks over real HTTP: retried with backoff from PostgreSQL, surviving a
restart of the service, stopped by 410, listed and replayed."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from standardwebhooks import Webhook
from standardwebhooks.webhooks import WebhookVerificationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from services.vacancies import SCHEMA, admin, callback_store
from shared.catalogue import Role, Sector, Urgency
from shared.db.pool import connect
from shared.events import SessionOffered
from tests.conftest import Infra
from tests.integration.helpers import eventually, served
from tests.integration.vacancies_support import (
    deliver_event,
    post,
    register,
    running_app,
    session_data,
)

pytestmark = pytest.mark.integration

FAST = {
    "FAIRSHARE_VACANCIES_CALLBACK_BASE_S": 0.3,
    "FAIRSHARE_VACANCIES_CALLBACK_CAP_S": 1.0,
    "FAIRSHARE_VACANCIES_POLL_S": 0.1,
}


@dataclass
class Receiver:
    """A rota system's callback endpoint: verifies every signature, fails on request."""

    secret: str = ""
    answers: list[int] = field(default_factory=list)  # status codes to give first, in order
    received: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0

    async def handle(self, request: Request) -> Response:
        body = await request.body()
        try:
            payload = Webhook(self.secret).verify(body, dict(request.headers))
        except WebhookVerificationError:
            self.bad_signatures += 1
            return Response(status_code=401)
        self.received.append({"id": request.headers["webhook-id"], "payload": payload})
        return Response(status_code=self.answers.pop(0) if self.answers else 204)


@pytest.fixture
async def receiver() -> AsyncIterator[tuple[Receiver, str]]:
    """A real HTTP server on loopback, for the length of the test."""
    target = Receiver()
    app = Starlette(routes=[Route("/hook", target.handle, methods=["POST"])])
    async with served(app) as url:
        yield target, f"{url}/hook"


def _offered(session_id: str, data: dict[str, str]) -> SessionOffered:
    return SessionOffered(
        offer_id=uuid.uuid4(),
        session_id=uuid.UUID(session_id),
        clinician_id=uuid.uuid4(),
        organisation="A81001",
        sector=Sector.GENERAL_PRACTICE,
        role=Role.GP,
        site_name="Hilltop Surgery",
        latitude=53.4,
        longitude=-2.2,
        rate_pence_per_hour=None,
        urgency=Urgency.ROUTINE,
        starts_at=datetime.fromisoformat(data["starts_at"]),
        ends_at=datetime.fromisoformat(data["ends_at"]),
        expires_at=datetime.now(UTC) + timedelta(hours=2),
        reasons=["test"],
    )


async def _log(infra: Infra, ods: str) -> list[Any]:
    conn = await connect(infra.dsn, SCHEMA)
    try:
        return list(await callback_store.list_callbacks(conn, organisation=ods, status=None))
    finally:
        await conn.close()


async def test_failed_callbacks_are_retried_across_a_restart_until_delivered(
    infra: Infra, topic_prefix: str, region: str, receiver: tuple[Receiver, str]
) -> None:
    """The receiver fails twice; the service is restarted after the first failure; the
    callback still arrives, correctly signed, with the same webhook-id every time."""
    target, url = receiver
    target.answers = [500, 503]
    data = session_data()
    async with running_app(infra, topic_prefix, **FAST) as (app, client):
        ods, secret, _ = await register(infra, region, callback_url=url)
        target.secret = secret
        session_id = (await post(client, ods, secret, "session.posted", data)).json()["session_id"]
        await deliver_event(app, "session.offered", _offered(session_id, data), region)

        async def first_failure() -> bool:
            log = await _log(infra, ods)
            return bool(log and log[0]["last_status"] == 500)

        await eventually(first_failure, timeout_s=15)
    # The service is down now; the next attempt waits in PostgreSQL.
    [row] = await _log(infra, ods)
    assert (row["status"], row["attempts"], row["last_status"]) == ("pending", 1, 500)
    async with running_app(infra, topic_prefix, **FAST):

        async def delivered() -> bool:
            return bool((await _log(infra, ods))[0]["status"] == "delivered")

        await eventually(delivered, timeout_s=20)
    [row] = await _log(infra, ods)
    assert row["attempts"] == 3
    assert target.bad_signatures == 0
    assert len({r["id"] for r in target.received}) == 1
    payload = target.received[-1]["payload"]
    assert payload["type"] == "session.offered"
    assert payload["data"]["session_id"] == session_id
    assert payload["data"]["external_id"] == "rota-1"


async def test_410_stops_delivery_and_replay_sends_again(
    infra: Infra, topic_prefix: str, region: str, receiver: tuple[Receiver, str]
) -> None:
    """410 Gone: no more attempts. A replay from the log sends it once more."""
    target, url = receiver
    target.answers = [410]
    data = session_data()
    async with running_app(infra, topic_prefix, **FAST) as (app, client):
        ods, secret, _ = await register(infra, region, callback_url=url)
        target.secret = secret
        session_id = (await post(client, ods, secret, "session.posted", data)).json()["session_id"]
        await deliver_event(app, "session.offered", _offered(session_id, data), region)

        async def gone() -> bool:
            return bool((await _log(infra, ods))[0]["status"] == "gone")

        await eventually(gone, timeout_s=15)
        await asyncio.sleep(1.0)  # time for retries that must not happen
        assert len(target.received) == 1

        [row] = await _log(infra, ods)
        conn = await connect(infra.dsn, SCHEMA)
        try:
            await admin.replay_callback(conn, row["id"], window=timedelta(hours=25))
        finally:
            await conn.close()

        async def redelivered() -> bool:
            return bool((await _log(infra, ods))[0]["status"] == "delivered")

        await eventually(redelivered, timeout_s=15)
        assert len(target.received) == 2
