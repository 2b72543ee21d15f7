"""Who pays for a request, over the real database (issue 13, items 1 and 4).

Vacancies: an organisation's budget is spent only by requests it authenticated (signed
web hook posts, its API key); unauthenticated refusals are charged to the address they
came from, so a flood of them holds up that address and never the practice.

Every service: the client address the limits key on is the connection's own, unless
the peer is one of ``FAIRSHARE_TRUSTED_PROXIES``. These run a real uvicorn server with
``shared.http.server.uvicorn_config``, the configuration ``serve`` runs every service
with, since uvicorn (not the app) decides what X-Forwarded-For may change.
"""

from __future__ import annotations

import random
import string
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
import pytest_asyncio
from fastapi import FastAPI

from fairshare.infra import free_port
from services.bank.app import create_app as bank_app
from services.bank.settings import BankSettings
from services.monitor.app import create_app as monitor_app
from services.monitor.settings import MonitorSettings
from services.vacancies.app import create_app as vacancies_app
from services.vacancies.settings import VacanciesSettings
from shared.http.server import uvicorn_config
from shared.settings import ServiceSettings
from tests.conftest import Infra
from tests.integration.helpers import served, settings_for
from tests.integration.vacancies_support import delivery, register, session_data, signed

pytestmark = pytest.mark.integration

ORG_BURST = 3  # a practice's own requests at once
FAILED_BURST = 10  # an address's refused unauthenticated requests at once
MAX_BODY = 4000
LIMITS = {
    "FAIRSHARE_VACANCIES_RATE_BURST": ORG_BURST,
    "FAIRSHARE_VACANCIES_RATE_PER_S": 0.001,  # no refill while a test runs
    "FAIRSHARE_VACANCIES_FAILED_BURST": FAILED_BURST,
    "FAIRSHARE_VACANCIES_FAILED_PER_S": 0.001,
    "FAIRSHARE_VACANCIES_MAX_BODY_BYTES": MAX_BODY,
}
WRONG_SECRET = "whsec_" + "QUJD" * 8
ClientFrom = Callable[[str], httpx.AsyncClient]
# The vacancies tests share one app (its start takes ~3 s); each uses organisations and
# source addresses of its own, so no test sees another's budgets.
shared_app = pytest.mark.asyncio(loop_scope="module")


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def client_from(infra: Infra) -> AsyncIterator[ClientFrom]:
    """Clients of one running vacancies app, each from the source address it is given."""
    prefix = "t" + "".join(random.choices(string.ascii_lowercase, k=8)) + "."
    app = vacancies_app(settings_for(VacanciesSettings, infra, prefix, **LIMITS))

    def from_address(address: str) -> httpx.AsyncClient:
        transport = httpx.ASGITransport(app=app, client=(address, 40000))
        return httpx.AsyncClient(transport=transport, base_url="http://vacancies")

    async with app.router.lifespan_context(app):
        yield from_address


async def _signed_post(client: httpx.AsyncClient, ods: str, secret: str, n: int) -> int:
    body = delivery("session.posted", session_data(f"rota-{n}"))
    response = await client.post(f"/webhooks/{ods}", content=body, headers=signed(secret, body))
    return response.status_code


@shared_app
async def test_a_flood_of_unsigned_posts_holds_up_its_address_not_the_practice(
    infra: Infra, client_from: ClientFrom, region: str
) -> None:
    """150 unsigned and wrongly signed posts for a practice: the flooding address gets 401
    for its burst and 429 (with Retry-After) after it, and is held even for a properly
    signed post; the practice, posting from its own address, still has its whole budget,
    which its own signed posts then spend."""
    ods, secret, _ = await register(infra, region)
    async with client_from("198.51.100.1") as attacker:
        statuses = []
        for n in range(150):
            body = delivery("session.posted", session_data(f"flood-{n}"))
            headers = {"content-type": "application/json"} if n % 2 else signed(WRONG_SECRET, body)
            response = await attacker.post(f"/webhooks/{ods}", content=body, headers=headers)
            statuses.append(response.status_code)
        assert statuses == [401] * FAILED_BURST + [429] * (150 - FAILED_BURST)
        assert int(response.headers["retry-after"]) >= 1
        assert response.headers["content-type"] == "application/problem+json"
        assert "your address" in response.json()["detail"]
        # A held address is refused before its signature is even looked at.
        assert await _signed_post(attacker, ods, secret, 0) == 429
    async with client_from("203.0.113.1") as practice:
        mine = [await _signed_post(practice, ods, secret, n) for n in range(1, ORG_BURST + 2)]
    # The whole burst was left for the practice; its own posts are what spend it.
    assert mine == [202] * ORG_BURST + [429]


@shared_app
async def test_read_api_bad_keys_cost_their_address_and_a_key_only_its_own_budget(
    infra: Infra, client_from: ClientFrom, region: str
) -> None:
    """Missing or wrong API keys are charged to the address (401, then 429); another
    organisation's key on this practice's path spends that organisation's budget, not the
    practice's, which keeps its whole burst for its own key."""
    ods, _, key = await register(infra, region)
    _, _, other_key = await register(infra, region)
    path = f"/organisations/{ods}/sessions"
    async with client_from("198.51.100.2") as attacker:
        statuses = [
            (await attacker.get(path, headers=headers)).status_code
            for headers in [{}, {"Authorization": "Bearer fsk_guessed"}] * 10
        ]
        assert statuses == [401] * FAILED_BURST + [429] * (20 - FAILED_BURST)
    async with client_from("192.0.2.2") as neighbour:
        other = {"Authorization": f"Bearer {other_key}"}
        theirs = [(await neighbour.get(path, headers=other)).status_code for _ in range(4)]
        assert theirs == [404] * ORG_BURST + [429]
    async with client_from("203.0.113.2") as practice:
        me = {"Authorization": f"Bearer {key}"}
        mine = [(await practice.get(path, headers=me)).status_code for _ in range(ORG_BURST)]
        assert mine == [200] * ORG_BURST


@shared_app
async def test_oversized_bodies_are_refused_before_they_are_read(
    infra: Infra, client_from: ClientFrom, region: str
) -> None:
    """An unsigned post is refused (401) without its body being read at all; a signed-looking
    one declaring too large a length is refused (413) unread, and one streaming without a
    length is cut off just past the limit. Each costs the address, not the practice."""
    pulled = [0]

    async def endless() -> AsyncIterator[bytes]:
        for _ in range(10_000):  # 640 MB if all of it were read
            pulled[0] += 1
            yield b"x" * 65536

    body = delivery("session.posted", session_data())
    fake = signed(WRONG_SECRET, body)
    ods, secret, _ = await register(infra, region)
    async with client_from("198.51.100.3") as attacker:
        unsigned = await attacker.post(f"/webhooks/{ods}", content=endless())
        assert (unsigned.status_code, pulled[0]) == (401, 0)
        declared = {**fake, "content-length": str(10 * MAX_BODY)}
        big = await attacker.post(f"/webhooks/{ods}", content=endless(), headers=declared)
        assert (big.status_code, pulled[0]) == (413, 0)
        streamed = await attacker.post(f"/webhooks/{ods}", content=endless(), headers=fake)
        assert streamed.status_code == 413
        assert pulled[0] == 1  # one 64 KiB chunk is over the 4,000-byte limit
        rest = [
            (await attacker.post(f"/webhooks/{ods}", content=b"{}")).status_code
            for _ in range(FAILED_BURST - 3)
        ]
        assert rest == [401] * (FAILED_BURST - 3)
        assert (await attacker.post(f"/webhooks/{ods}", content=b"{}")).status_code == 429
    async with client_from("203.0.113.3") as practice:
        assert await _signed_post(practice, ods, secret, 1) == 202


# --- Trusted proxies, over a real uvicorn server ---------------------------------------


@asynccontextmanager
async def _served(app: FastAPI, settings: ServiceSettings) -> AsyncIterator[str]:
    """``app`` served on loopback as ``serve`` would (its lifespan included); its URL."""
    config = uvicorn_config(
        app, host="127.0.0.1", port=free_port(), trusted_proxies=settings.trusted_proxies
    )
    async with served(app, config=config) as url:
        yield url


def _bank(infra: Infra, prefix: str, **extra: Any) -> tuple[FastAPI, BankSettings]:
    settings = settings_for(
        BankSettings,
        infra,
        prefix,
        FAIRSHARE_BANK_SIGNIN_BURST=2,
        FAIRSHARE_BANK_SIGNIN_PER_S=0.001,
        **extra,
    )
    return bank_app(settings), settings


async def _bank_signin(client: httpx.AsyncClient, forwarded_for: str | None = None) -> int:
    headers = {"x-forwarded-for": forwarded_for} if forwarded_for else {}
    response = await client.post("/api/auth/exchange", json={"code": "NOT-A-CODE"}, headers=headers)
    return response.status_code


async def _monitor_signin(client: httpx.AsyncClient, forwarded_for: str) -> int:
    response = await client.post(
        "/signin", data={"code": "NOT-A-CODE"}, headers={"x-forwarded-for": forwarded_for}
    )
    return response.status_code


def _monitor(infra: Infra, prefix: str) -> tuple[FastAPI, MonitorSettings]:
    settings = settings_for(
        MonitorSettings,
        infra,
        prefix,
        FAIRSHARE_MONITOR_SIGNIN_BURST=2,
        FAIRSHARE_MONITOR_SIGNIN_PER_S=0.001,
    )
    return monitor_app(settings), settings


@pytest.mark.parametrize("service", ["bank", "monitor"])
async def test_a_spoofed_forwarded_for_buys_no_fresh_sign_in_budget(
    infra: Infra, topic_prefix: str, service: str
) -> None:
    """With no trusted proxy configured (the default), a new X-Forwarded-For on every
    attempt from loopback, which uvicorn on its own would believe, changes nothing: the
    service answers 429 once the connection's burst of sign-in attempts is spent."""
    app, settings = (_bank if service == "bank" else _monitor)(infra, topic_prefix)
    attempt = _bank_signin if service == "bank" else _monitor_signin
    assert settings.trusted_proxies == ()
    async with _served(app, settings) as url, httpx.AsyncClient(base_url=url) as client:
        statuses = [await attempt(client, f"203.0.113.{n}") for n in range(1, 6)]
    assert statuses == [401, 401, 429, 429, 429]


async def test_forwarded_for_is_believed_only_from_a_configured_trusted_proxy(
    infra: Infra, topic_prefix: str
) -> None:
    """FAIRSHARE_TRUSTED_PROXIES naming the peer (127.0.0.1): each client it names has a
    budget of its own, and one client is still limited across its requests. A peer not
    named (127.0.0.2) is not believed, whatever it sends."""
    app, settings = _bank(infra, topic_prefix, FAIRSHARE_TRUSTED_PROXIES="127.0.0.1")
    untrusted = httpx.AsyncHTTPTransport(local_address="127.0.0.2")
    async with (
        _served(app, settings) as url,
        httpx.AsyncClient(base_url=url) as proxy,
        httpx.AsyncClient(base_url=url, transport=untrusted) as stranger,
    ):
        each_own = [await _bank_signin(proxy, f"198.51.100.{n}") for n in range(1, 5)]
        assert each_own == [401] * 4
        one = [await _bank_signin(proxy, "192.0.2.7") for _ in range(3)]
        assert one == [401, 401, 429]
        # The proxy's own requests carry no header: they are the proxy's address.
        assert [await _bank_signin(proxy) for _ in range(3)] == [401, 401, 429]
        held = [await _bank_signin(stranger, f"198.51.100.{n}") for n in range(10, 14)]
        assert held == [401, 401, 429, 429]
