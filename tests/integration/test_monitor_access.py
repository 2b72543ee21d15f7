"""Who gets into the monitor, over the real database: every route the app has, found
from the app itself, refuses strangers and other regions' viewers; invite codes work
once; sign-in attempts are limited per source address."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import random
import string
import uuid
from collections.abc import AsyncIterator, Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from prometheus_client.parser import text_string_to_metric_families
from starlette.routing import Mount
from typer.testing import CliRunner

from fairshare.cli import app as cli
from services.monitor import SCHEMA, handlers, http, repository, viewers
from services.monitor.access import hash_secret
from services.monitor.app import create_app
from services.monitor.domain import Activity, Stage
from services.monitor.settings import MonitorSettings
from services.monitor.signin import COOKIE
from services.monitor.summary import Period, period_bounds
from shared.catalogue import Role, Sector, Urgency
from shared.db.pool import create_pool
from shared.events import SessionPosted, new_envelope
from shared.runtime import migrate
from tests.conftest import Infra
from tests.integration.helpers import settings_for

pytestmark = pytest.mark.integration

MIGRATIONS = Path(http.__file__).with_name("migrations")
HOUR = timedelta(hours=1)
# What a stranger may reach: the sign-in form and its post, signing out (which needs no
# session: without one it only clears the cookie), health checks for orchestrators,
# Prometheus's /metrics (a scraper can't sign in; it holds aggregates only and belongs
# on the operators' network, see the test below), and the API's description. Every
# other route the app has must ask for a session.
PUBLIC = {
    ("GET", "/signin"),
    ("POST", "/signin"),
    ("POST", "/signout"),
    ("GET", "/health"),
    ("GET", "/health/live"),
    ("GET", "/metrics"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
}


def _operations(app: FastAPI) -> dict[tuple[str, str], dict[str, Any]]:
    """Every (method, path) the app answers, with its OpenAPI operation ({} if none):
    the schema's operations, and any route kept out of the schema."""
    found: dict[tuple[str, str], dict[str, Any]] = {
        (method.upper(), path): operation
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    }

    def walk(routes: Iterable[Any]) -> None:
        for route in routes:
            # An included router (FastAPI 0.16x keeps them nested): its routes too.
            inner = getattr(route, "original_router", None)
            if inner is not None:
                walk(inner.routes)
                continue
            assert not isinstance(route, Mount), f"a mount needs a case here: {route.path}"
            for method in getattr(route, "methods", None) or ():
                if method != "HEAD":  # answered as its GET
                    found.setdefault((method, route.path), {})

    walk(app.routes)
    return found


def _regions_in(body: Any) -> set[str]:
    """Every value of a "region" key anywhere in a JSON answer."""
    if isinstance(body, dict):
        own = {body["region"]} if isinstance(body.get("region"), str) else set()
        return own.union(*(_regions_in(v) for v in body.values()))
    if isinstance(body, list):
        return set().union(*(_regions_in(v) for v in body))
    return set()


def _regions_of(answer: httpx.Response) -> set[str]:
    """Every region an answer names: a "region" key of a JSON answer, the ``region``
    column of a CSV export, a "region" key of a live stream's events."""
    kind = answer.headers["content-type"]
    if kind.startswith("application/json"):
        return _regions_in(answer.json())
    if kind.startswith("text/csv"):
        return {row["region"] for row in csv.DictReader(io.StringIO(answer.text))}
    if kind.startswith("text/event-stream"):
        return _regions_in(
            [json.loads(line[5:]) for line in answer.text.splitlines() if line.startswith("data:")]
        )
    return set()


def _other_region(region: str) -> str:
    while (other := "".join(random.choices(string.ascii_uppercase, k=3))) == region:
        pass
    return other


@pytest.fixture
async def pool(infra: Infra) -> AsyncIterator[asyncpg.Pool]:
    """The monitor's schema of this test's own, migrated: its figures hold only the
    regions the test puts there, so "filtered" can be told from "empty"."""
    schema = "monitor_access_" + "".join(random.choices(string.ascii_lowercase, k=8))
    await migrate(
        settings_for(MonitorSettings, infra, ""), schema=schema, migrations_dir=MIGRATIONS
    )
    p = await create_pool(infra.dsn, schema)
    try:
        yield p
    finally:
        await p.close()


def _app(infra: Infra, pool: asyncpg.Pool, **settings: Any) -> FastAPI:
    """The monitor service's own app, every route and handler, on ``pool`` (no Kafka)."""
    app = create_app(settings_for(MonitorSettings, infra, "", **settings))
    app.state.runtime = SimpleNamespace(pool=pool)
    return app


def _client(app: FastAPI, address: str = "127.0.0.1", **kwargs: Any) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=(address, 40000))
    return httpx.AsyncClient(transport=transport, base_url="http://monitor", **kwargs)


async def _invite(pool: asyncpg.Pool, *, region: str | None, national: bool = False) -> str:
    async with pool.acquire() as conn:
        viewer = await viewers.add_viewer(conn, name="Viewer", region=region, national=national)
        return await viewers.invite(conn, viewer.id, now=datetime.now(UTC))


async def _session(pool: asyncpg.Pool, *, region: str | None, national: bool = False) -> str:
    """A live session's token for a new viewer (spent through the same code path as the
    form, without spending the form's rate limit)."""
    code = await _invite(pool, region=region, national=national)
    signed = await viewers.sign_in(pool, code, now=datetime.now(UTC), session_ttl=HOUR)
    assert signed is not None
    return signed[1]


async def _seed(pool: asyncpg.Pool, *regions: str) -> None:
    """Figures in each region for every list the monitor serves: counts, the activity
    list, the drain, and a GP session posted through the handlers (the periods, trends,
    at-risk list, tail and exports), it and the move at an instant both today in England
    and ahead of now, halfway to midnight, so every default period holds them."""
    now = datetime.now(UTC)
    _, midnight = period_bounds(Period.TODAY, now)
    soon = now + (midnight - now) / 2
    async with pool.acquire() as conn:
        for region in regions:
            posted = SessionPosted(
                session_id=uuid.uuid4(),
                organisation="A81001",
                posted_by="A81001",
                site_name="Hilltop Surgery",
                sector=Sector.GENERAL_PRACTICE,
                role=Role.GP,
                skills=[],
                rate_pence_per_hour=None,
                urgency=Urgency.ROUTINE,
                latitude=53.48,
                longitude=-2.24,
                starts_at=soon,
                ends_at=soon + HOUR,
            )
            envelope = new_envelope(
                posted,
                event_type="session.posted",
                schema_version=1,
                region=region,
                producer="vacancies",
            )
            async with conn.transaction():
                await handlers.on_lifecycle(conn, [envelope])
            await conn.execute(
                "INSERT INTO sector_counts (region, sector, posted) VALUES ($1, 'dentistry', 2)",
                region,
            )
            await repository.add_recent(
                conn, [(uuid.uuid4(), Activity(Stage.POSTED, region, "dentistry", now))]
            )
            await repository.add_move(
                conn,
                move_id=uuid.uuid4(),
                region=region,
                kind="session",
                from_sector="dentistry",
                to_sector="general_practice",
                hours=3.5,
                at=soon,
            )


def _refused(response: httpx.Response, path: str) -> bool:
    """A stranger's answer: 401 problem+json from the API, the sign-in form for a page."""
    if path.startswith("/api"):
        return response.status_code == 401 and response.headers["content-type"].startswith(
            "application/problem+json"
        )
    return response.status_code == 303 and response.headers["location"] == "/signin"


async def test_every_route_refuses_strangers_and_other_regions(
    infra: Infra, pool: asyncpg.Pool, region: str
) -> None:
    """Each route of the app, bar the named public ones: no session, a made-up one, an
    expired, signed-out or revoked viewer's are refused; a viewer of region A asking for
    region B is refused (403) and lists show A only; a national viewer sees A and B."""
    other = _other_region(region)
    await _seed(pool, region, other)
    app = _app(infra, pool)
    operations = _operations(app)
    assert set(operations) >= PUBLIC, f"public routes gone: {PUBLIC - set(operations)}"
    guarded = {op: spec for op, spec in operations.items() if op not in PUBLIC}
    assert guarded, "the monitor has no route to guard?"

    mine = await _session(pool, region=region)
    national = await _session(pool, region=None, national=True)
    expired = await _session(pool, region=region)
    await pool.execute(
        "UPDATE viewer_sessions SET expires_at = now() - interval '1 second' WHERE token_hash = $1",
        hash_secret(expired),
    )
    revoked = await _session(pool, region=region)
    async with pool.acquire() as conn:
        [revoked_id] = await conn.fetch(
            "SELECT viewer_id FROM viewer_sessions WHERE token_hash = $1", hash_secret(revoked)
        )
        await viewers.revoke(conn, str(revoked_id["viewer_id"]), now=datetime.now(UTC))
    signed_out = await _session(pool, region=region)
    async with _client(app, cookies={COOKIE: signed_out}) as c:
        assert (await c.post("/signout")).status_code == 303

    national_saw_other = []
    async with _client(app) as c:

        async def call(method: str, path: str, token: str | None, **params: str) -> Any:
            c.cookies.clear()
            if token is not None:
                c.cookies.set(COOKIE, token)
            return await c.request(method, path, params=params)

        for (method, path), spec in sorted(guarded.items()):
            url = path.replace("{", "").replace("}", "")  # no path parameters today
            for who, token in (
                ("nobody", None),
                ("made-up", "x" * 43),
                ("expired", expired),
                ("revoked", revoked),
                ("signed out", signed_out),
            ):
                answer = await call(method, url, token)
                assert _refused(answer, url), (method, path, who, answer.status_code)
            if method != "GET":
                continue  # refusing strangers is all a future write route is checked for

            answer = await call(method, url, mine)
            assert answer.status_code == 200, (method, path, answer.text)
            seen = _regions_of(answer)
            assert seen <= {region}, (path, seen)
            everyone = await call(method, url, national)
            assert everyone.status_code == 200, (method, path, everyone.text)
            if seen and path != "/api/stream":  # a stream names only what changes, or none
                assert {region, other} <= _regions_of(everyone), path
                national_saw_other.append(path)

            if any(p["name"] == "region" for p in spec.get("parameters", ())):
                refused = await call(method, url, mine, region=other)
                assert refused.status_code == 403, (path, refused.text)
                assert other not in refused.text.replace(f"not {other}", "")
                own = await call(method, url, mine, region=region)
                assert own.status_code == 200, path
                assert _regions_of(own) <= {region}, path
                theirs = await call(method, url, national, region=other)
                assert theirs.status_code == 200, path
                assert _regions_of(theirs) == {other}, path
    # Else every check of "only A" above could have passed on empty lists.
    assert national_saw_other, "no route showed region data: the filtering went untested"


async def test_an_invite_code_signs_in_once_and_every_wrong_code_looks_the_same(
    infra: Infra, pool: asyncpg.Pool, region: str
) -> None:
    """The form's code (typed any case, with spaces) sets an HttpOnly, SameSite=Strict
    cookie (Secure over https, or if configured) and leads to the page; the same code
    again, a code never issued, an expired one and a revoked viewer's all get one and
    the same answer; only hashes are stored; signing out ends the session."""
    app = _app(infra, pool, FAIRSHARE_MONITOR_SIGNIN_BURST=20)  # the limit is tested below
    code = await _invite(pool, region=region)
    async with _client(app) as c:
        typed = " " + code.lower().replace("-", " ")
        answer = await c.post("/signin", data={"code": typed})
        assert (answer.status_code, answer.headers["location"]) == (303, "/"), answer.text
        cookie = answer.headers["set-cookie"]
        assert cookie.startswith(f"{COOKIE}=")
        flags = {f.strip().lower() for f in cookie.split(";")[1:]}
        assert {"httponly", "samesite=strict", "path=/"} <= flags
        assert "secure" not in flags  # plain http: a Secure cookie would never come back
        token = c.cookies[COOKIE]
        me = (await c.get("/api/me")).json()
        assert (me["home_region"], me["national"]) == (region, False)
        assert (await c.get("/")).status_code == 200

        stored = await pool.fetchval(
            "SELECT string_agg(t::text, ' ') FROM (SELECT row_to_json(i) AS t FROM"
            " viewer_invites i UNION ALL SELECT row_to_json(s) FROM viewer_sessions s) rows"
        )
        assert token not in stored
        assert code.replace("-", "") not in stored
        assert hash_secret(token) in stored

        c.cookies.clear()
        expired_code = await _invite(pool, region=region)
        await pool.execute("UPDATE viewer_invites SET expires_at = now() - interval '1 second'")
        revoked_code = await _invite(pool, region=region)
        async with pool.acquire() as conn:
            [row] = await conn.fetch("SELECT id FROM viewers ORDER BY created_at DESC LIMIT 1")
            await viewers.revoke(conn, str(row["id"]), now=datetime.now(UTC))
        answers = [
            await c.post("/signin", data={"code": wrong})
            for wrong in (code, "ABCD-EFGH-JKLM", expired_code, revoked_code, "")
        ]
        assert {(a.status_code, a.text) for a in answers} == {(401, answers[0].text)}
        assert 'role="alert"' in answers[0].text
        assert "set-cookie" not in answers[0].headers

        c.cookies.set(COOKIE, token)
        out = await c.post("/signout")
        assert (out.status_code, out.headers["location"]) == (303, "/signin")
        assert f'{COOKIE}=""' in out.headers["set-cookie"]
        c.cookies.set(COOKIE, token)
        assert (await c.get("/api/me")).status_code == 401

    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="https://monitor"
    ) as tls:
        over_https = await tls.post("/signin", data={"code": await _invite(pool, region=region)})
        assert over_https.status_code == 303
        assert "secure" in over_https.headers["set-cookie"].lower().split("; ")
    # Behind a proxy that ends TLS the service sees http, and is told so by its settings.
    async with _client(_app(infra, pool, FAIRSHARE_MONITOR_SECURE_COOKIE="true")) as proxied:
        behind = await proxied.post("/signin", data={"code": await _invite(pool, region=region)})
        assert "secure" in behind.headers["set-cookie"].lower().split("; ")


async def test_sign_in_attempts_are_limited_per_source_address(
    infra: Infra, pool: asyncpg.Pool, region: str
) -> None:
    """Three attempts from an address, then 429 with Retry-After, whatever X-Forwarded-For
    says and even for a good code; another address is not held up. A form posted from
    another site is refused."""
    app = _app(infra, pool, FAIRSHARE_MONITOR_SIGNIN_BURST=3, FAIRSHARE_MONITOR_SIGNIN_PER_S=0.001)
    good = await _invite(pool, region=region)
    async with _client(app, "10.0.0.7") as c:
        for _ in range(3):
            assert (await c.post("/signin", data={"code": "WRONG-CODE-HERE"})).status_code == 401
        for spoof in ("10.9.9.9", "203.0.113.5, 10.0.0.7"):
            held = await c.post("/signin", data={"code": good}, headers={"x-forwarded-for": spoof})
            assert held.status_code == 429, held.text
            assert int(held.headers["retry-after"]) >= 1
    async with _client(app, "10.0.0.8") as c:
        foreign = await c.post(
            "/signin", data={"code": good}, headers={"origin": "https://evil.example"}
        )
        assert foreign.status_code == 403
        assert (await c.post("/signin", data={"code": good})).status_code == 303


async def test_icb_commands_invite_list_and_revoke(infra: Infra, region: str) -> None:
    """`fairshare icb invite` prints a code that signs in on the monitor; `list` shows the
    viewer and their session; `revoke` (by name) ends it; a national viewer is listed as
    seeing all regions."""
    settings = settings_for(MonitorSettings, infra, "")
    await migrate(settings, schema=SCHEMA, migrations_dir=MIGRATIONS)
    runner = CliRunner()
    name = f"Workforce team {uuid.uuid4().hex[:8]}"

    async def run(*args: str, code: int = 0) -> str:
        env = {"FAIRSHARE_DATABASE_URL": infra.dsn}
        result = await asyncio.to_thread(runner.invoke, cli, ["icb", *args], env=env)
        assert result.exit_code == code, result.output
        return result.output

    printed = await run("invite", "--region", region, "--name", name, "--days", "2")
    invite_code = printed.split("invite code: ")[1].split()[0]
    national = await run("invite", "--national", "--name", f"{name} national")
    assert "sees every region" in national

    p = await create_pool(infra.dsn, SCHEMA)
    try:
        app = _app(infra, p)
        async with _client(app) as c:
            assert (await c.post("/signin", data={"code": invite_code})).status_code == 303
            assert (await c.get("/api/me")).json()["name"] == name
            listed = {v["name"]: v for v in json.loads(await run("list", "--json"))}
            assert (listed[name]["sees"], listed[name]["sessions"]) == (region, 1)
            assert listed[f"{name} national"]["sees"] == "all regions"
            assert "Revoked viewer" in await run("revoke", name)
            assert (await c.get("/api/me")).status_code == 401
            await run("revoke", name, code=1)  # already revoked: no live viewer by that name
            again = await run("invite", "--viewer", listed[name]["viewer_id"], code=1)
            assert "is revoked" in again
    finally:
        await p.close()


async def test_metrics_needs_no_sign_in_and_shows_only_figures_per_region_and_sector(
    infra: Infra, pool: asyncpg.Pool, region: str
) -> None:
    """/metrics answers without a session, as Prometheus asks, with the page's figures
    per region, sector and figure and nothing about anyone: no viewer's name, code or
    session, and no label but region, sector and figure on the monitor's own series."""
    other = _other_region(region)
    await _seed(pool, region, other)
    name = f"Viewer {uuid.uuid4().hex[:8]}"
    async with pool.acquire() as conn:
        viewer = await viewers.add_viewer(conn, name=name, region=region, national=False)
        code = await viewers.invite(conn, viewer.id, now=datetime.now(UTC))
    token = await _session(pool, region=region)
    app = _app(infra, pool)
    app.state.metrics.bind(SimpleNamespace(pool=pool, consumer=None, relay=None))
    async with _client(app) as c:
        answer = await c.get("/metrics")
    assert answer.status_code == 200, answer.text
    for secret in (name, code, code.replace("-", ""), token, str(viewer.id)):
        assert secret not in answer.text
    [family] = [
        f for f in text_string_to_metric_families(answer.text) if f.name == "fairshare_sessions"
    ]
    for sample in family.samples:
        assert set(sample.labels) == {"region", "sector", "figure"}, sample
    posted = {
        s.labels["region"]: s.value
        for s in family.samples
        if (s.labels["sector"], s.labels["figure"]) == ("dentistry", "posted")
    }
    assert posted == {region: 2, other: 2}
