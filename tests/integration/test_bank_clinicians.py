"""The bank for clinicians over the real database and broker: sign-in, every endpoint's
authorisation, patterns, withdrawing booked time, declining, cancelling, transfers."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from tests.conftest import Infra
from tests.integration.bank_support import (
    deliver,
    filled,
    new_clinician,
    offered,
    outbox,
    running_bank,
)

pytestmark = pytest.mark.integration


async def test_invite_code_signs_in_once_and_sets_an_httponly_cookie(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """The code works once; the cookie alone then reaches the API; a bad code names the field;
    too many attempts from one address get 429 with Retry-After."""
    async with running_bank(
        infra, topic_prefix, FAIRSHARE_BANK_SIGNIN_PER_S=0.01, FAIRSHARE_BANK_SIGNIN_BURST=2
    ) as (_, client):
        _, _, code = await new_clinician(infra, region, with_invite=True)
        assert code is not None
        signed = await client.post("/api/auth/exchange", json={"code": code.lower()})
        assert signed.status_code == 200
        cookie = signed.headers["set-cookie"]
        assert "fs_session=" in cookie
        assert "HttpOnly" in cookie
        assert "SameSite=strict" in cookie
        me = await client.get("/api/me")  # the client kept the cookie
        assert me.json()["display_name"] == "Priya Shah"
        again = await client.post("/api/auth/exchange", json={"code": code})
        assert again.status_code == 401
        assert again.json()["errors"][0]["field"] == "code"
        limited = await client.post("/api/auth/exchange", json={"code": "WRONGCODE1"})
        assert limited.status_code == 429
        assert int(limited.headers["retry-after"]) >= 1
        client.cookies.clear()
        assert (await client.get("/api/me")).status_code == 401


async def test_every_endpoint_keeps_clinicians_apart(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """For every /api route: no sign-in gets 401; clinician B reaching anything of
    clinician A's gets 404 or sees none of it; and A's things are unchanged after."""
    async with running_bank(infra, topic_prefix) as (app, client):
        a, auth_a, _ = await new_clinician(infra, region)
        _, auth_b, _ = await new_clinician(infra, region)
        offer = offered(a, hours_ahead=72)
        await deliver(app, "session.offered", offer, region)
        booked = offered(a, hours_ahead=96)
        await deliver(app, "session.offered", booked, region)
        assert (
            await client.post(f"/api/offers/{booked.offer_id}/accept", headers=auth_a)
        ).status_code == 202
        await deliver(app, "session.filled", filled(booked), region)
        start = datetime.now(UTC) + timedelta(days=10)
        window = (
            await client.post(
                "/api/availability",
                json={
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=8)).isoformat(),
                },
                headers=auth_a,
            )
        ).json()["availability_id"]
        pattern = (
            await client.post(
                "/api/availability/patterns",
                json={"weekday": 2, "start_time": "09:00", "end_time": "12:00"},
                headers=auth_a,
            )
        ).json()["pattern_id"]

        later = (datetime.now(UTC) + timedelta(days=30)).isoformat()
        cases: dict[tuple[str, str], tuple[str, dict[str, Any] | None, set[int]]] = {
            ("POST", "/api/auth/exchange"): ("/api/auth/exchange", {"code": "NOTACODE"}, {401}),
            ("POST", "/api/auth/signout"): ("/api/auth/signout", None, {204}),
            ("GET", "/api/me"): ("/api/me", None, {200}),
            ("PATCH", "/api/me"): ("/api/me", {"phone": "07700900123"}, {200}),
            ("GET", "/api/availability"): ("/api/availability", None, {200}),
            ("POST", "/api/availability"): (
                "/api/availability",
                {
                    "starts_at": later,
                    "ends_at": (datetime.fromisoformat(later) + timedelta(hours=1)).isoformat(),
                },
                {201},
            ),
            ("DELETE", "/api/availability/{availability_id}"): (
                f"/api/availability/{window}",
                None,
                {404},
            ),
            ("GET", "/api/availability/patterns"): ("/api/availability/patterns", None, {200}),
            ("POST", "/api/availability/patterns"): (
                "/api/availability/patterns",
                {"weekday": 4, "start_time": "13:00", "end_time": "14:00"},
                {201},
            ),
            ("POST", "/api/availability/patterns/{pattern_id}/exceptions"): (
                f"/api/availability/patterns/{pattern}/exceptions",
                {"on_date": (datetime.now(UTC) + timedelta(days=14)).date().isoformat()},
                {404},
            ),
            ("DELETE", "/api/availability/patterns/{pattern_id}"): (
                f"/api/availability/patterns/{pattern}",
                None,
                {404},
            ),
            ("GET", "/api/offers"): ("/api/offers", None, {200}),
            ("GET", "/api/offers/{offer_id}"): (f"/api/offers/{offer.offer_id}", None, {404}),
            ("POST", "/api/offers/{offer_id}/accept"): (
                f"/api/offers/{offer.offer_id}/accept",
                None,
                {404},
            ),
            ("POST", "/api/offers/{offer_id}/decline"): (
                f"/api/offers/{offer.offer_id}/decline",
                None,
                {404},
            ),
            ("GET", "/api/bookings"): ("/api/bookings", None, {200}),
            ("POST", "/api/bookings/{offer_id}/cancel"): (
                f"/api/bookings/{booked.offer_id}/cancel",
                {"category": "other", "text": "Not mine to cancel"},
                {404},
            ),
            ("GET", "/api/timesheets"): ("/api/timesheets", None, {200}),
            ("GET", "/api/bookings/{offer_id}/timesheet"): (
                f"/api/bookings/{booked.offer_id}/timesheet",
                None,
                {404},
            ),
            ("POST", "/api/bookings/{offer_id}/timesheet"): (
                f"/api/bookings/{booked.offer_id}/timesheet",
                {},
                {404},
            ),
        }
        routes = {
            (method.upper(), path)
            for path, operations in app.openapi()["paths"].items()
            if path.startswith("/api")
            for method in operations
        }
        streaming = ("GET", "/api/offers/stream")  # covered live in test_bank_live.py
        assert routes - {streaming} == set(cases), "every endpoint needs an authorisation case"

        # Signing out ends B's session, so it goes last.
        cases[("POST", "/api/auth/signout")] = cases.pop(("POST", "/api/auth/signout"))
        for (method, _), (url, body, as_b) in cases.items():
            anonymous = await client.request(method, url, json=body)
            if url != "/api/auth/exchange":
                assert anonymous.status_code == 401, (method, url)
            as_other = await client.request(method, url, json=body, headers=auth_b)
            assert as_other.status_code in as_b, (method, url, as_other.text)
            if method == "GET" and as_other.status_code == 200:
                assert str(a) not in as_other.text, (method, url)
                assert str(offer.offer_id) not in as_other.text
                assert window not in as_other.text
        still = await client.get(f"/api/offers/{offer.offer_id}", headers=auth_a)
        assert still.json()["status"] == "offered"
        assert [
            b["offer_id"] for b in (await client.get("/api/bookings", headers=auth_a)).json()
        ] == [str(booked.offer_id)]
        assert window in (await client.get("/api/availability", headers=auth_a)).text


async def test_taking_back_booked_time_explains_and_cancelling_properly_is_counted(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Withdrawing a window a booking needs: 409 naming the booking and how to cancel it.
    Cancelling within 48 h: late, counted, published; then the window can go."""
    async with running_bank(infra, topic_prefix) as (app, client):
        me, auth, _ = await new_clinician(infra, region)
        offer = offered(me, hours_ahead=30)
        start = offer.starts_at - timedelta(hours=1)
        window = (
            await client.post(
                "/api/availability",
                json={
                    "starts_at": start.isoformat(),
                    "ends_at": (start + timedelta(hours=8)).isoformat(),
                },
                headers=auth,
            )
        ).json()["availability_id"]
        await deliver(app, "session.offered", offer, region)
        await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
        await deliver(app, "session.filled", filled(offer), region)

        blocked = await client.delete(f"/api/availability/{window}", headers=auth)
        assert blocked.status_code == 409
        [conflict] = blocked.json()["errors"]
        assert conflict["offer_id"] == str(offer.offer_id)
        assert f"/api/bookings/{offer.offer_id}/cancel" in conflict["message"]
        assert "counts as a late cancellation" in blocked.json()["detail"]
        bad = await client.post(
            f"/api/bookings/{offer.offer_id}/cancel", json={"text": "Child is ill"}, headers=auth
        )
        assert bad.status_code == 422
        assert [e["field"] for e in bad.json()["errors"]] == ["category"]
        done = await client.post(
            f"/api/bookings/{offer.offer_id}/cancel",
            json={"category": "family_emergency", "text": "Child is ill"},
            headers=auth,
        )
        assert done.json() == {
            "offer_id": str(offer.offer_id),
            "status": "cancelled_by_me",
            "late": True,
        }
        [event] = await outbox(app, "booking.cancelled", me)
        assert (event["offer_id"], event["late"], event["reason_category"]) == (
            str(offer.offer_id),
            True,
            "family_emergency",
        )
        assert (await client.get("/api/me", headers=auth)).json()["late_cancellations"] == 1
        assert (await client.delete(f"/api/availability/{window}", headers=auth)).status_code == 204
        [withdrawn] = await outbox(app, "availability.withdrawn", me)
        assert withdrawn["availability_id"] == window


async def test_declining_publishes_and_patterns_offer_eight_weeks(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """Decline → offer.declined. A weekly pattern offers its next eight weeks; a date
    taken out withdraws that window."""
    async with running_bank(infra, topic_prefix) as (app, client):
        me, auth, _ = await new_clinician(infra, region)
        offer = offered(me)
        await deliver(app, "session.offered", offer, region)
        declined = await client.post(f"/api/offers/{offer.offer_id}/decline", headers=auth)
        assert declined.status_code == 202
        assert (await outbox(app, "offer.declined", me))[0]["offer_id"] == str(offer.offer_id)
        assert (
            await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
        ).status_code == 409

        made = await client.post(
            "/api/availability/patterns",
            json={"weekday": 0, "start_time": "09:00", "end_time": "17:00"},
            headers=auth,
        )
        assert made.status_code == 201
        assert made.json()["windows_offered"] in (7, 8)
        windows = (await client.get("/api/availability", headers=auth)).json()
        first = datetime.fromisoformat(windows[0]["starts_at"])
        assert first.weekday() == 0
        offered_events = await outbox(app, "availability.offered", me)
        assert len(offered_events) == len(windows)
        pattern_id = made.json()["pattern_id"]
        skip = first.date().isoformat()
        assert (
            await client.post(
                f"/api/availability/patterns/{pattern_id}/exceptions",
                json={"on_date": skip},
                headers=auth,
            )
        ).status_code == 204
        left = (await client.get("/api/availability", headers=auth)).json()
        assert len(left) == len(windows) - 1
        assert len(await outbox(app, "availability.withdrawn", me)) == 1
        # Deleting a pattern's window directly also keeps it from being made again.
        second = left[0]
        assert (
            await client.delete(f"/api/availability/{second['availability_id']}", headers=auth)
        ).status_code == 204
        from services.bank import repository, use_cases  # noqa: PLC0415
        from services.bank.patterns import Pattern  # noqa: PLC0415

        pool = app.state.runtime.pool
        async with pool.acquire() as conn, conn.transaction():
            clinician = await repository.clinician(conn, me)
            pattern = await repository.pattern_for_update(conn, me, uuid.UUID(pattern_id))
            assert clinician is not None
            assert isinstance(pattern, Pattern)
            made_again = await use_cases.extend_pattern(
                conn,
                clinician=clinician,
                pattern=pattern,
                emitter=app.state.runtime.emitter,
                today=datetime.now(UTC).date(),
            )
        assert made_again == 0
        assert len((await client.get("/api/availability", headers=auth)).json()) == len(windows) - 2
        bad = await client.post(
            "/api/availability/patterns",
            json={"weekday": 0, "start_time": "17:00", "end_time": "09:00"},
            headers=auth,
        )
        assert bad.status_code == 422


async def test_profile_changes_check_the_register_and_publish_transfers(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """A malformed register number says which format it expects; moving sector is
    published as clinician.transferred, carrying no personal data."""
    async with running_bank(infra, topic_prefix) as (app, client):
        me, auth, _ = await new_clinician(infra, region)
        bad = await client.patch("/api/me", json={"register_number": "1234"}, headers=auth)
        assert bad.status_code == 422
        assert bad.json()["errors"] == [
            {
                "field": "register_number",
                "message": "a GPhC number for this profession is 7 digits starting with 2,"
                " e.g. 2012345",
            }
        ]
        moved = await client.patch(
            "/api/me",
            json={"home_sector": "general_practice", "home_organisation": "U12345"},
            headers=auth,
        )
        assert moved.json()["home_sector"] == "general_practice"
        [event] = await outbox(app, "clinician.transferred", me)
        assert event == {
            "clinician_id": str(me),
            "profession": "pharmacist",
            "from_sector": "community_pharmacy",
            "to_sector": "general_practice",
            "from_organisation": None,
            "to_organisation": "U12345",
        }
        assert "Priya" not in str(await outbox(app, "availability.offered", me))
        foreign = await client.patch("/api/me", json={"skills": ["contact_lens"]}, headers=auth)
        assert foreign.status_code == 422
        assert foreign.json()["errors"][0] == {
            "field": "skills",
            "message": "contact lens is not a skill of a pharmacist",
        }
        assert (await client.get("/api/me", headers=auth)).json()["skill_choices"]
        set_email = await client.patch(
            "/api/me", json={"email": "priya@example.nhs.uk"}, headers=auth
        )
        assert set_email.json()["email"] == "priya@example.nhs.uk"
        cleared = await client.patch("/api/me", json={"email": None}, headers=auth)
        assert cleared.json()["email"] is None
        no_travel = await client.patch("/api/me", json={"travel_km": None}, headers=auth)
        assert no_travel.status_code == 422
        assert no_travel.json()["errors"] == [{"field": "travel_km", "message": "cannot be empty"}]
        assert uuid.UUID(event["clinician_id"]) == me
