"""Live offers over a real HTTP connection: a new offer reaches an open stream without
the clinician asking again."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from services.bank.app import create_app
from services.bank.settings import BankSettings
from shared.events import OfferRefused
from tests.conftest import Infra
from tests.integration.bank_support import deliver, new_clinician, offered
from tests.integration.helpers import served, settings_for

pytestmark = pytest.mark.integration


async def _next_offers(lines: Any) -> list[dict[str, Any]]:
    """The data of the next `offers` event on a server-sent event stream."""
    event = ""
    async for line in lines:
        if line.startswith("event:"):
            event = line.split(":", 1)[1].strip()
        elif line.startswith("data:") and event == "offers":
            data: list[dict[str, Any]] = json.loads(line.split(":", 1)[1])
            return data
    msg = "stream ended"
    raise AssertionError(msg)


async def test_a_new_offer_is_pushed_to_the_open_stream(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """The stream first shows no offers; an offer made afterwards arrives within seconds,
    and another clinician's stream never sees it."""
    app = create_app(settings_for(BankSettings, infra, topic_prefix))
    async with served(app) as base:
        me, auth, _ = await new_clinician(infra, region)
        _, other, _ = await new_clinician(infra, region)
        async with (
            httpx.AsyncClient(base_url=base, timeout=20) as client,
            client.stream("GET", "/api/offers/stream", headers=auth) as mine,
            client.stream("GET", "/api/offers/stream", headers=other) as theirs,
        ):
            assert mine.headers["content-type"].startswith("text/event-stream")
            my_lines, their_lines = mine.aiter_lines(), theirs.aiter_lines()
            assert await _next_offers(my_lines) == []
            assert await _next_offers(their_lines) == []
            offer = offered(me)
            await deliver(app, "session.offered", offer, region)
            pushed = await asyncio.wait_for(_next_offers(my_lines), timeout=5)
            assert [o["offer_id"] for o in pushed] == [str(offer.offer_id)]
            assert pushed[0]["site_name"] == "Corner Pharmacy"
            assert pushed[0]["distance_km"] is not None
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(_next_offers(their_lines), timeout=1.5)
            await client.post(f"/api/offers/{offer.offer_id}/accept", headers=auth)
            await deliver(
                app,
                "offer.refused",
                OfferRefused(
                    offer_id=offer.offer_id,
                    session_id=offer.session_id,
                    clinician_id=me,
                    reason="Taken",
                ),
                region,
            )
            # The refusal wakes the stream at once, not at the 15-second keep-alive.
            assert await asyncio.wait_for(_next_offers(my_lines), timeout=5) == []
