"""Timesheets end to end over the real broker and database: a clinician confirms worked
sessions in the bank; vacancies takes them from Kafka and calls the practice back
(signed); the practice queries one (the clinician corrects it) and approves it, and the
other is approved automatically once its period passes; the bank shows each pay state.
Other clinicians and organisations are refused; one timesheet a booking, by the database."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import pytest

from services.bank import SCHEMA as BANK
from services.vacancies import SCHEMA as VACANCIES
from shared.db.pool import connect
from tests.conftest import Infra
from tests.integration.bank_support import deliver, filled, new_clinician, offered, running_bank
from tests.integration.helpers import eventually
from tests.integration.test_vacancies_callbacks import FAST, Receiver, receiver
from tests.integration.vacancies_support import post, register, running_app, session_data

__all__ = ["receiver"]  # the fixture, shared
pytestmark = pytest.mark.integration


async def _sql(infra: Infra, schema: str, query: str, *args: Any) -> Any:
    conn = await connect(infra.dsn, schema)
    try:
        return await conn.execute(query, *args)
    finally:
        await conn.close()


async def test_a_worked_session_is_submitted_queried_corrected_and_approved(
    infra: Infra, topic_prefix: str, region: str, receiver: tuple[Receiver, str]
) -> None:
    target, url = receiver
    fast = {**FAST, "FAIRSHARE_VACANCIES_TIMESHEET_SWEEP_S": 0.2}
    async with (
        running_app(infra, topic_prefix, **fast) as (_, practice),
        running_bank(infra, topic_prefix) as (bank, phone),
    ):
        ods, secret, key = await register(infra, region, callback_url=url)
        other_ods, other_secret, other_key = await register(infra, region)
        target.secret = secret
        me, auth, _ = await new_clinician(infra, region)
        _, someone_else, _ = await new_clinician(infra, region)
        bookings = []
        for n, hours_ahead in enumerate((-6.0, -12.0, 2.0)):
            posted = await post(practice, ods, secret, "session.posted", session_data(f"r{n}"))
            offer = offered(me, hours_ahead=hours_ahead).model_copy(
                update={"session_id": uuid.UUID(posted.json()["session_id"]), "organisation": ods}
            )
            await deliver(bank, "session.offered", offer, region)
            await deliver(bank, "session.filled", filled(offer), region)
            bookings.append(offer)
        queried, automatic, upcoming = bookings

        def sheet(offer: Any) -> str:
            return f"/api/bookings/{offer.offer_id}/timesheet"

        # Refusals: someone else's booking, a session not over, impossible hours, NUL.
        assert (await phone.get(sheet(queried), headers=someone_else)).status_code == 404
        assert (await phone.post(sheet(queried), headers=someone_else)).status_code == 404
        assert (await phone.post(sheet(upcoming), headers=auth)).status_code == 409
        start = queried.starts_at
        for bad in (
            {"started_at": start.isoformat(), "ended_at": (start - timedelta(hours=1)).isoformat()},
            {"break_minutes": 240},
            {"ended_at": (queried.ends_at + timedelta(hours=4)).isoformat()},
            {"note": "late\u0000"},
        ):
            refused = await phone.post(sheet(queried), json=bad, headers=auth)
            assert refused.status_code == 422, bad
            assert refused.headers["content-type"].startswith("application/problem+json")

        # Pre-filled from the booking; one call when nothing changed.
        shown = (await phone.get(sheet(queried), headers=auth)).json()
        assert (shown["pay_state"], shown["break_minutes"]) == ("worked", 0)
        assert shown["started_at"] == queried.starts_at.isoformat()
        first = await phone.post(sheet(queried), headers=auth)
        assert first.status_code == 201, first.text
        assert first.json()["pay_state"] == "submitted"
        assert (await phone.post(sheet(queried), headers=auth)).status_code == 409
        late_end = automatic.ends_at + timedelta(minutes=30)
        changed = {"ended_at": late_end.isoformat(), "break_minutes": 20, "note": "Home visit"}
        assert (await phone.post(sheet(automatic), json=changed, headers=auth)).status_code == 201

        # Vacancies hears them over Kafka and calls the practice back, signed.
        async def two_callbacks() -> list[Any]:
            got = [r["payload"] for r in target.received]
            return [p for p in got if p["type"] == "timesheet.submitted"][1:]

        await eventually(two_callbacks, timeout_s=30)
        assert target.bad_signatures == 0
        by_session = {
            p["payload"]["data"]["session_id"]: p["payload"]["data"] for p in target.received
        }
        called = by_session[str(automatic.session_id)]
        assert (called["break_minutes"], called["note"]) == (20, "Home visit")
        assert called["ended_at"] == late_end.isoformat()
        read = {"Authorization": f"Bearer {key}"}
        listed = (await practice.get(f"/organisations/{ods}/timesheets", headers=read)).json()
        ids = {t["session_id"]: t["timesheet_id"] for t in listed}
        assert {t["state"] for t in listed} == {"submitted"}
        queried_id, automatic_id = ids[str(queried.session_id)], ids[str(automatic.session_id)]

        # Another organisation can neither read nor answer them.
        theirs = {"Authorization": f"Bearer {other_key}"}
        assert (
            await practice.get(
                f"/organisations/{other_ods}/timesheets/{queried_id}", headers=theirs
            )
        ).status_code == 404
        assert (
            await practice.get(f"/organisations/{ods}/timesheets/{queried_id}", headers=theirs)
        ).status_code == 404
        approve = {"timesheet_id": queried_id, "approved_by": "Mallory"}
        stolen = await post(practice, other_ods, other_secret, "timesheet.approved", approve)
        assert stolen.status_code == 404

        # The practice queries one (a reason is required); the other runs out of time.
        no_reason = {"timesheet_id": queried_id}
        assert (
            await post(practice, ods, secret, "timesheet.queried", no_reason)
        ).status_code == 422
        why = {"timesheet_id": queried_id, "reason": "We closed at 12:30", "queried_by": "Ann"}
        answered = await post(practice, ods, secret, "timesheet.queried", why)
        assert (answered.status_code, answered.json()["state"]) == (200, "queried")
        await _sql(
            infra,
            VACANCIES,
            "UPDATE timesheets SET due_at = now() - interval '1 second' WHERE id = $1",
            uuid.UUID(automatic_id),
        )

        async def answers_heard() -> dict[str, Any]:
            rows = (await phone.get("/api/timesheets", headers=auth)).json()
            states = {r["session_id"]: r for r in rows}
            q, a = states[str(queried.session_id)], states[str(automatic.session_id)]
            return states if (q["pay_state"], a["pay_state"]) == ("queried", "approved") else {}

        states = await eventually(answers_heard, timeout_s=30)
        assert states[str(queried.session_id)]["query_reason"] == "We closed at 12:30"
        auto = states[str(automatic.session_id)]
        assert (auto["approved_automatically"], auto["approved_by"]) == (True, None)
        assert datetime.fromisoformat(auto["approved_at"]) > datetime.fromisoformat(
            auto["submitted_at"]
        )
        assert upcoming.offer_id not in {r["offer_id"] for r in states.values()}

        # The clinician corrects it; an approval of the old revision is refused.
        fix = {"ended_at": (queried.ends_at - timedelta(minutes=30)).isoformat()}
        corrected = await phone.post(sheet(queried), json=fix, headers=auth)
        assert (corrected.status_code, corrected.json()["revision"]) == (201, 2)

        async def revision_two() -> bool:
            got = await practice.get(f"/organisations/{ods}/timesheets/{queried_id}", headers=read)
            return bool(got.json()["revision"] == 2 and got.json()["state"] == "submitted")

        await eventually(revision_two, timeout_s=30)
        old = {"timesheet_id": queried_id, "revision": 1}
        assert (await post(practice, ods, secret, "timesheet.approved", old)).status_code == 409
        approve = {"timesheet_id": queried_id, "revision": 2, "approved_by": "Dr Lee"}
        assert (await post(practice, ods, secret, "timesheet.approved", approve)).json()[
            "outcome"
        ] == "approved"
        again = await post(practice, ods, secret, "timesheet.approved", approve)
        assert again.json()["outcome"] == "unchanged"

        async def approved() -> dict[str, Any]:
            row = (await phone.get(sheet(queried), headers=auth)).json()
            return row if row["pay_state"] == "approved" else {}

        final = await eventually(approved, timeout_s=30)
        assert (final["approved_by"], final["approved_automatically"]) == ("Dr Lee", False)
        assert final["ended_at"] == fix["ended_at"]

        # One timesheet a booking, whatever the code does.
        for schema, table_copy in (
            (BANK, "INSERT INTO timesheets SELECT gen_random_uuid(), offer_id, clinician_id,"),
            (VACANCIES, "INSERT INTO timesheets SELECT gen_random_uuid(), offer_id, session_id,"),
        ):
            rest = {
                BANK: " session_id, revision, started_at, ended_at, break_minutes, note, state,"
                " submitted_at, answered_at, answered_by, automatic, query_reason FROM timesheets"
                " WHERE offer_id = $1",
                VACANCIES: " organisation, region, clinician_id, revision, started_at, ended_at,"
                " break_minutes, note, submitted_at, due_at, state, answered_at, answered_by,"
                " automatic, query_reason FROM timesheets WHERE offer_id = $1",
            }[schema]
            with pytest.raises(asyncpg.UniqueViolationError):
                await _sql(infra, schema, table_copy + rest, queried.offer_id)
