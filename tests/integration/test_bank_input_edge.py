"""Input that once reached the bank's database and answered 500, each named as it was
sent: now 422 problem+json naming the field, and nothing stored. Found by
tests/integration/test_services_schemathesis.py (and issue 13's own run of it), and a
date overflow found while fixing those."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest

from services.bank import SCHEMA, SERVICE
from services.bank import app as bank_app
from services.bank.app import create_app
from services.bank.settings import BankSettings
from shared.db.pool import create_pool
from shared.runtime import emitter_for, migrate
from tests.conftest import Infra
from tests.integration.bank_support import new_clinician
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(bank_app.__file__).with_name("migrations")


@dataclass
class Bank:
    """The bank's HTTP API over the real database, and a signed-in clinician."""

    client: httpx.AsyncClient
    pool: asyncpg.Pool
    clinician_id: uuid.UUID
    headers: dict[str, str]


@pytest.fixture
async def bank(infra: Infra, region: str) -> AsyncIterator[Bank]:
    """The bank's own app on the real database, without Kafka: these requests are
    refused before anything is published, and the outbox would hold it if not."""
    settings = settings_for(BankSettings, infra, "")
    await migrate(settings, schema=SCHEMA, migrations_dir=MIGRATIONS)
    pool = await create_pool(infra.dsn, SCHEMA)
    app = create_app(settings)
    app.state.runtime = SimpleNamespace(
        pool=pool, emitter=emitter_for(settings, service=SERVICE, schema=SCHEMA)
    )
    clinician_id, headers, _ = await new_clinician(infra, region)
    try:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://bank"
        ) as client:
            yield Bank(client, pool, clinician_id, headers)
    finally:
        await pool.close()


def _fields(answer: httpx.Response) -> set[str]:
    assert answer.status_code == 422, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    return {error["field"] for error in answer.json()["errors"]}


@pytest.mark.parametrize(
    ("start", "end", "named"),
    [
        # Schemathesis' input: by their offsets, 04:45:45+14:21 is before 02:42:37+00:21,
        # so the model let it through, and the database's `end_time > start_time` (on
        # the clock readings) refused it: CheckViolationError, 500.
        ("04:45:45+14:21", "02:42:37+00:21", {"start_time", "end_time"}),
        ("09:00Z", "17:00Z", {"start_time", "end_time"}),
        ("09:00", "17:00+01:00", {"end_time"}),
    ],
)
async def test_weekly_pattern_times_with_a_utc_offset_are_refused(
    bank: Bank, start: str, end: str, named: set[str]
) -> None:
    body = {"weekday": 0, "start_time": start, "end_time": end}
    answer = await bank.client.post("/api/availability/patterns", json=body, headers=bank.headers)
    assert _fields(answer) == named
    assert not await bank.pool.fetchval(
        "SELECT count(*) FROM patterns WHERE clinician_id = $1", bank.clinician_id
    )


@pytest.mark.parametrize(
    ("dates", "named"),
    [
        # A day added to the last date of the calendar: OverflowError, 500.
        ({"valid_until": "9999-12-31"}, "valid_until"),
        ({"valid_from": "9999-12-31"}, "valid_from"),
        # Before today, with valid_from left out (so today): stored, never offered.
        ({"valid_until": "2020-01-06"}, "valid_until"),
    ],
)
async def test_weekly_pattern_dates_that_cannot_be_are_refused(
    bank: Bank, dates: dict[str, str], named: str
) -> None:
    body = {"weekday": 0, "start_time": "09:00", "end_time": "17:00", **dates}
    answer = await bank.client.post("/api/availability/patterns", json=body, headers=bank.headers)
    assert _fields(answer) == {named}
    assert not await bank.pool.fetchval(
        "SELECT count(*) FROM patterns WHERE clinician_id = $1", bank.clinician_id
    )


@pytest.mark.parametrize(
    ("changes", "named"),
    [
        # Schemathesis' input: e-mail's pattern allowed NUL, PostgreSQL text does not
        # (CharacterNotInRepertoireError, 500).
        (
            {
                "register_number": None,
                "email": "\u0097Kh2\u00c9@\u008b\U0002d1f5\u00d9\U0008bf7c:\U0001f60d\u00c1"
                "\u00dc.\u00ffZ\u0082Q3\u001d\u00cf\uabdc\u0000",
            },
            "email",
        ),
        ({"email": "priya\u0000@example.org"}, "email"),
        # With no register to check it against, the number went to the database as sent.
        ({"register": None, "register_number": "2012\u0000345"}, "register_number"),
    ],
)
async def test_a_nul_character_in_contact_details_is_refused(
    bank: Bank, changes: dict[str, Any], named: str
) -> None:
    before = await bank.client.get("/api/me", headers=bank.headers)
    answer = await bank.client.patch("/api/me", json=changes, headers=bank.headers)
    assert _fields(answer) == {named}
    after = await bank.client.get("/api/me", headers=bank.headers)
    assert after.json() == before.json()
