"""One access matrix: every endpoint of every HTTP service against every kind of caller.

The endpoints are read from each app itself (its OpenAPI operations, plus any route or
mount kept out of the schema), so a route added later is in the matrix without anyone
listing it. Each is called, over ASGI in this process, by

- no credentials;
- another clinician (a bank session of clinician B);
- another organisation (organisation B's API key, and its web hook signature);
- another region's viewer (a monitor session for region B);
- the right one (organisation A, clinician A, a viewer of region A; on the monitor a
  national viewer too).

Every caller's secret is sent everywhere a credential may go (as a bearer token and
under each service's session cookie, and a web hook signature for organisations), so
a credential of one service presented to another is tried as well. The route's
parameters name the right one's things (A's ODS code, A's session, A's offers,
windows, patterns and bookings, region A), made fresh for each route.

What each caller must get, and why:

- A stranger to the service (no credentials, or a credential of another service): 401
  problem+json from an API; a monitor page redirects to its sign-in form (303).
- The service's own kind of caller, not the right one (clinician B on the bank,
  organisation B on vacancies, region B's viewer on the monitor):
  - a route naming a thing by id in its path: 404, the same answer as for an id that
    does not exist, so ids and ODS codes are not confirmed to strangers;
  - a web hook signed with B's secret to A's URL: 401, as any bad signature;
  - a route naming a region (query or path): 403, as the monitor says which regions
    you may see (region codes are public; their figures are not);
  - a route naming nothing (``/api/me``, lists): 200 with the caller's own things
    and none of the right one's.
- The right one: a 2xx or 3xx its OpenAPI documents.

The public routes (below, each with its reason) are the only ones a stranger may reach;
any other route that answers a stranger fails the test. A route whose parameter or body
the matrix cannot make for its owner fails it too, naming what to add.
"""

from __future__ import annotations

import asyncio
import json
import random
import string
import time
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from urllib.parse import urlencode

import asyncpg
import httpx
import pytest
from fastapi import FastAPI
from starlette.routing import Mount
from starlette.types import Message
from structlog.testing import capture_logs

import services.bank as bank_package
import services.monitor as monitor_package
import services.vacancies as vacancies_package
from services.bank import SCHEMA as BANK_SCHEMA
from services.bank import admin as bank_admin
from services.bank.api.auth import COOKIE as BANK_COOKIE
from services.bank.app import create_app as create_bank
from services.bank.domain import Clinician
from services.bank.handlers import handlers as bank_handlers
from services.bank.settings import BankSettings
from services.matching.app import create_app as create_matching
from services.matching.settings import MatchingSettings
from services.monitor import SCHEMA as MONITOR_SCHEMA
from services.monitor import viewers
from services.monitor.app import create_app as create_monitor
from services.monitor.settings import MonitorSettings
from services.monitor.signin import COOKIE as MONITOR_COOKIE
from services.vacancies import SCHEMA as VACANCIES_SCHEMA
from services.vacancies import timesheet_store
from services.vacancies.app import create_app as create_vacancies
from services.vacancies.settings import VacanciesSettings
from shared.catalogue import Profession, Sector
from shared.db.pool import create_pool
from shared.events import new_envelope
from shared.events.registry import topic_for
from shared.events.timesheets import TimesheetSubmitted
from shared.messaging.consumer import EventConsumer
from shared.runtime import emitter_for, migrate
from shared.settings import ServiceSettings
from tests.conftest import Infra
from tests.integration.bank_support import filled, offered
from tests.integration.helpers import settings_for
from tests.integration.test_monitor_access import _regions_of, _seed
from tests.integration.vacancies_support import delivery, register, session_data, signed

pytestmark = pytest.mark.integration

Operation = tuple[str, str]  # (method, path template); ("MOUNT", path) for a mount

# What a stranger may reach, per service, and why: every other route must refuse them.
EVERY_SERVICE: dict[Operation, str] = {
    ("GET", "/health"): "readiness for the orchestrator and load balancer; no personal data",
    ("GET", "/health/live"): "liveness for the orchestrator; says only 'alive'",
    ("GET", "/metrics"): "Prometheus cannot sign in; aggregates by route and status only,"
    " and published only on the operators' network (SECURITY.md)",
    ("GET", "/openapi.json"): "the API's contract is public",
    ("GET", "/docs"): "the contract, rendered",
    ("GET", "/docs/oauth2-redirect"): "part of the rendered contract",
    ("GET", "/redoc"): "the contract, rendered",
}
PUBLIC: dict[str, dict[Operation, str]] = {
    "vacancies": EVERY_SERVICE,
    "bank": EVERY_SERVICE
    | {
        ("POST", "/api/auth/exchange"): "sign-in: trades a one-time invite code for a session",
        ("GET", "/"): "a redirect to the app shell",
        ("MOUNT", "/app"): "the static app shell (HTML, JS, CSS): no data, the API behind"
        " it asks for a session",
    },
    "monitor": EVERY_SERVICE
    | {
        ("GET", "/signin"): "the sign-in form",
        ("POST", "/signin"): "sign-in: trades a one-time invite code for a session",
        ("POST", "/signout"): "clears the session cookie; without a session it does nothing",
    },
    # Matching has no callers at all (it is not published): only these.
    "matching": EVERY_SERVICE,
}

NOBODY, CLINICIAN, ORGANISATION, VIEWER, RIGHT = (
    "no credentials",
    "another clinician",
    "another organisation",
    "another region's viewer",
    "the right one",
)
NATIONAL = "a national viewer"


@dataclass(frozen=True)
class Caller:
    """Who calls, and with what."""

    who: str
    secret: str | None = None  # a token or key, sent as bearer and under every cookie
    webhook_secret: str | None = None  # an organisation's: it signs every request

    def headers(self, body: bytes) -> dict[str, str]:
        found: dict[str, str] = {}
        if self.secret is not None:
            found["authorization"] = f"Bearer {self.secret}"
            found["cookie"] = f"{BANK_COOKIE}={self.secret}; {MONITOR_COOKIE}={self.secret}"
        if self.webhook_secret is not None:
            found |= {k.lower(): v for k, v in signed(self.webhook_secret, body).items()}
        if body:
            found["content-type"] = "application/json"
        return found


async def _send(
    app: FastAPI, method: str, url: str, headers: dict[str, str], body: bytes
) -> httpx.Response:
    """One request over ASGI; its answer up to the first piece of the body, then the
    client leaves (a live stream never ends by itself, a plain answer is whole by then)."""
    path, _, query = url.partition("?")
    sent: list[Message] = []
    first, gone = asyncio.Event(), asyncio.Event()
    asked = False

    async def receive() -> Message:
        nonlocal asked
        if not asked:
            asked = True
            return {"type": "http.request", "body": body, "more_body": False}
        await gone.wait()
        return {"type": "http.disconnect"}

    async def send(message: Message) -> None:
        sent.append(message)
        if message["type"] == "http.response.body" and (
            message.get("body") or not message.get("more_body", False)
        ):
            first.set()

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "query_string": query.encode(),
        "root_path": "",
        "headers": [(b"host", b"service")]
        + [(k.encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()],
        "client": ("127.0.0.1", 40000),
        "server": ("service", 80),
    }
    task = asyncio.create_task(app(scope, receive, send))
    waiter = asyncio.create_task(first.wait())
    await asyncio.wait([task, waiter], timeout=10, return_when=asyncio.FIRST_COMPLETED)
    waiter.cancel()
    gone.set()
    await asyncio.wait_for(task, timeout=10)
    start = next(m for m in sent if m["type"] == "http.response.start")
    return httpx.Response(
        start["status"],
        headers=[(k.decode("latin-1"), v.decode("latin-1")) for k, v in start["headers"]],
        content=b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body"),
        request=httpx.Request(method, f"http://service{url}"),
    )


def operations(app: FastAPI) -> dict[Operation, dict[str, Any]]:
    """Every (method, path) the app answers, with its OpenAPI operation ({} if none),
    and ("MOUNT", path) for each mounted app."""
    found: dict[Operation, dict[str, Any]] = {
        (method.upper(), path): operation
        for path, item in app.openapi()["paths"].items()
        for method, operation in item.items()
    }

    def walk(routes: Iterable[Any]) -> None:
        for route in routes:
            inner = getattr(route, "original_router", None)
            if inner is not None:  # an included router (FastAPI keeps them nested)
                walk(inner.routes)
            elif isinstance(route, Mount):
                found.setdefault(("MOUNT", route.path), {})
            else:
                for method in getattr(route, "methods", None) or ():
                    if method != "HEAD":  # answered as its GET
                        found.setdefault((method, route.path), {})

    walk(app.routes)
    return found


class _NoDeadLetters:
    async def publish(
        self, *, topic: str, key: str, value: bytes, headers: dict[str, str]
    ) -> tuple[int, int] | None:
        raise AssertionError(f"an event for the matrix was dead-lettered: {headers}")


class CannotMakeError(Exception):
    """The matrix does not know how to make this parameter for the right one."""


Maker = Callable[[str, str], Awaitable[str]]  # (path template, parameter) → a value
Body = Callable[[], dict[str, Any]]


@dataclass
class Service:
    """One service's app, its callers, and how to make its routes' things for the right one."""

    name: str
    app: FastAPI
    callers: list[Caller]  # the right one (ones) last: their calls may change things
    rightful: set[str]
    peer: str | None  # the service's own kind of caller who is not the right one
    make: Maker
    bodies: dict[Operation, Body] = field(default_factory=dict)
    query: dict[str, str] = field(default_factory=dict)  # query parameters it may need
    markers: set[str] = field(default_factory=set)  # the right one's: never in a peer's answer
    region: str | None = None  # the right one's region, never in another's answer


def _problem(answer: httpx.Response) -> bool:
    kind: str = answer.headers.get("content-type", "")
    return kind.startswith("application/problem+json")


def _verdict(
    service: Service, op: Operation, spec: dict[str, Any], caller: Caller, answer: httpx.Response
) -> str | None:
    """What is wrong with ``answer`` to ``caller`` (None if it is as it should be)."""
    path = op[1]
    status = answer.status_code
    if caller.who in service.rightful:
        documented = set(spec.get("responses", {})) or {str(status)}
        if 200 <= status < 400 and str(status) in documented:
            return None
        return (
            f"the right caller got {status} (documented: {sorted(documented)}): {answer.text[:300]}"
        )
    params = {p["name"]: p["in"] for p in spec.get("parameters", ())}
    if caller.who == service.peer:
        if "region" in params:
            expected = 403
        elif path.startswith("/webhooks/"):
            expected = 401
        elif "path" in params.values():
            expected = 404
        else:  # the caller's own things: none of the right one's
            if not 200 <= status < 300:
                return f"their own answer was {status}: {answer.text[:300]}"
            leaked = [m for m in service.markers if m in answer.text]
            if service.region is not None and service.region in _regions_of(answer):
                leaked.append(f"region {service.region}")
            return f"shows the right one's {leaked}" if leaked else None
        return None if status == expected and _problem(answer) else f"got {status}, not {expected}"
    if service.name == "monitor" and not path.startswith("/api"):
        if status == 303 and answer.headers.get("location") == "/signin":
            return None
        return f"got {status}, not a redirect to /signin"
    return None if status == 401 and _problem(answer) else f"got {status}, not 401 problem+json"


async def _request(
    service: Service, op: Operation, spec: dict[str, Any]
) -> tuple[str, bytes, list[str]]:
    """The URL and body with which every caller calls ``op``: its parameters name the
    right one's things, made for this route. Also what the matrix could not make for
    the right one (a made-up id, or no body, stands in for it)."""
    path = op[1]
    url, missing = path, []
    query: dict[str, str] = {}
    for param in spec.get("parameters", ()):
        name, where = param["name"], param["in"]
        if where == "path":
            try:
                value = await service.make(path, name)
            except CannotMakeError:
                value = str(uuid.uuid4())
                missing.append(f"path parameter {name!r}")
            url = url.replace(f"{{{name}}}", value)
        elif where == "query" and name in service.query:
            query[name] = service.query[name]
        elif param.get("required"):
            missing.append(f"{where} parameter {name!r}")
    body = b""
    if op in service.bodies:
        body = json.dumps(service.bodies[op]()).encode()
    elif spec.get("requestBody", {}).get("required", False):
        body, missing = b"{}", [*missing, "body"]
    return (f"{url}?{urlencode(query)}" if query else url), body, missing


@dataclass
class Tally:
    calls: int = 0
    routes: int = 0
    problems: list[str] = field(default_factory=list)
    shape: dict[str, str] = field(default_factory=dict)  # service → "routes x callers"
    # Routes naming nothing whose answer to the right one shows its things, by service:
    # the peer's answers were checked against something there to leak.
    owner_saw: Counter[str] = field(default_factory=Counter)


async def _check(service: Service, tally: Tally) -> None:
    ops = operations(service.app)
    public = PUBLIC[service.name]
    stale = set(public) - set(ops)
    assert not stale, f"{service.name}: listed as public but gone: {sorted(stale)}"
    guarded = {op: spec for op, spec in ops.items() if op not in public}
    if service.name == "matching":
        assert not guarded, f"matching has no callers: every route must be public: {guarded}"
        return
    assert guarded, f"{service.name} has no route to guard?"
    tally.shape[service.name] = f"{len(guarded)} x {len(service.callers)}"
    # Signing out ends the caller's session: last.
    for op in sorted(guarded, key=lambda o: ("signout" in o[1], o[0] == "DELETE", o)):
        method, path = op
        assert method != "MOUNT", f"{service.name}: a mount that is not public: {path}"
        url, body, missing = await _request(service, op, guarded[op])
        tally.routes += 1
        if missing:
            tally.problems.append(
                f"{service.name} {method} {path}: the matrix cannot call it as the right one;"
                f" teach it to make its {', '.join(missing)}"
            )
        for caller in service.callers:
            if missing and caller.who in service.rightful:
                continue
            answer = await _send(service.app, method, url, caller.headers(body), body)
            tally.calls += 1
            wrong = _verdict(service, op, guarded[op], caller, answer)
            names_nothing = "{" not in path
            if (
                caller.who == RIGHT
                and names_nothing
                and any(m in answer.text for m in service.markers)
            ):
                tally.owner_saw[service.name] += 1
            if wrong:
                tally.problems.append(f"{service.name} {method} {path} [{caller.who}]: {wrong}")


# --- The services, each with a right one and its things ---------------------------


def _runtime(settings: ServiceSettings, pool: asyncpg.Pool, service: str, schema: str) -> Any:
    """What the routes use of a running service (no Kafka, no background work)."""
    return SimpleNamespace(
        pool=pool, settings=settings, emitter=emitter_for(settings, service=service, schema=schema)
    )


def _clinician(region: str, n: int) -> Clinician:
    tag = uuid.uuid4().hex[:6]
    return Clinician(
        id=uuid.uuid4(),
        display_name=f"Matrix Person {tag}",
        profession=Profession.PHARMACIST,
        home_sector=Sector.COMMUNITY_PHARMACY,
        region=region,
        email=f"matrix.{tag}@example.org",
        phone=f"077009{n:05d}",
        register="GPhC",
        register_number=f"20{random.randrange(10**5):05d}",
    )


async def _bank(infra: Infra, prefix: str, region: str, strangers: list[Caller]) -> Service:
    settings = settings_for(BankSettings, infra, prefix)
    app = create_bank(settings)
    pool = await create_pool(infra.dsn, BANK_SCHEMA, max_size=4)
    app.state.runtime = _runtime(settings, pool, "bank", BANK_SCHEMA)
    a, b = _clinician(region, 1), _clinician(region, 2)
    async with pool.acquire() as conn:
        token_a = await bank_admin.add_clinician(conn, a)
        token_b = await bank_admin.add_clinician(conn, b)
    right = Caller(RIGHT, token_a)
    consumer = EventConsumer(
        service="bank", pool=pool, dead_letters=_NoDeadLetters(), handlers=bank_handlers()
    )
    markers = {str(a.id), a.display_name, str(a.email), str(a.phone), str(a.register_number)}
    days = iter(range(20, 400))

    async def deliver(event_type: str, data: Any) -> None:
        envelope = new_envelope(
            data, event_type=event_type, schema_version=1, region=region, producer="matching"
        )
        handled = await consumer.handle(
            topic_for(event_type), region.encode(), envelope.model_dump_json().encode()
        )
        assert handled, event_type

    async def as_a(method: str, url: str, body: dict[str, Any] | None = None) -> Any:
        raw = json.dumps(body).encode() if body is not None else b""
        answer = await _send(app, method, url, right.headers(raw), raw)
        assert answer.status_code < 300, (method, url, answer.text)
        return answer.json() if answer.content else None

    def window() -> dict[str, Any]:
        start = datetime.now(UTC).replace(microsecond=0) + timedelta(days=next(days))
        return {"starts_at": start.isoformat(), "ends_at": (start + timedelta(hours=3)).isoformat()}

    async def make(path: str, name: str) -> str:
        made: str
        if name == "availability_id":
            made = (await as_a("POST", "/api/availability", window()))["availability_id"]
        elif name == "pattern_id":
            pattern = {"weekday": 2, "start_time": "09:00", "end_time": "12:00"}
            made = (await as_a("POST", "/api/availability/patterns", pattern))["pattern_id"]
        elif name == "offer_id":
            booked = path.startswith("/api/bookings/")
            worked = "timesheet" in path  # a booking of a session that has ended
            offer = offered(a.id, hours_ahead=-6 if worked else 24 + next(days))
            await deliver("session.offered", offer)
            if booked:
                await as_a("POST", f"/api/offers/{offer.offer_id}/accept")
                await deliver("session.filled", filled(offer))
            made = str(offer.offer_id)
        else:
            raise CannotMakeError(name)
        markers.add(made)
        return made

    # A's things before any route is called: a peer's lists must be shown without them.
    for path, name in (
        ("/api/availability/{availability_id}", "availability_id"),
        ("/api/availability/patterns/{pattern_id}", "pattern_id"),
        ("/api/offers/{offer_id}", "offer_id"),
        ("/api/bookings/{offer_id}/cancel", "offer_id"),
        ("/api/bookings/{offer_id}/timesheet", "offer_id"),
    ):
        await make(path, name)

    def exception() -> dict[str, Any]:  # a Wednesday: the pattern's day (0 is Monday)
        day = datetime.now(UTC).date() + timedelta(days=7)
        return {"on_date": (day + timedelta(days=(2 - day.weekday()) % 7)).isoformat()}

    return Service(
        name="bank",
        app=app,
        callers=[*strangers, Caller(CLINICIAN, token_b), right],
        rightful={RIGHT},
        peer=CLINICIAN,
        make=make,
        bodies={
            ("PATCH", "/api/me"): lambda: {"phone": "07700900999"},
            ("POST", "/api/availability"): window,
            ("POST", "/api/availability/patterns"): lambda: {
                "weekday": 4,
                "start_time": "13:00",
                "end_time": "14:00",
            },
            ("POST", "/api/availability/patterns/{pattern_id}/exceptions"): exception,
            ("POST", "/api/bookings/{offer_id}/cancel"): lambda: {
                "category": "transport",
                "text": "Matrix reason text.",
            },
        },
        markers=markers,
    )


async def _vacancies(infra: Infra, prefix: str, region: str, strangers: list[Caller]) -> Service:
    settings = settings_for(
        VacanciesSettings, infra, prefix, FAIRSHARE_VACANCIES_FAILED_BURST=10_000
    )
    app = create_vacancies(settings)
    pool = await create_pool(infra.dsn, VACANCIES_SCHEMA, max_size=4)
    app.state.runtime = _runtime(settings, pool, "vacancies", VACANCIES_SCHEMA)
    ods, secret, key = await register(infra, region)
    _, other_secret, other_key = await register(infra, region)
    right = Caller(RIGHT, key, secret)
    numbers = iter(range(10**6))

    async def posted_session() -> str:
        body = delivery("session.posted", session_data(f"matrix-{next(numbers)}"))
        posted = await _send(app, "POST", f"/webhooks/{ods}", right.headers(body), body)
        assert posted.status_code == 202, posted.text
        return str(posted.json()["session_id"])

    async def make(path: str, name: str) -> str:
        if name == "ods_code":
            return ods
        if name == "session_id":
            return await posted_session()
        if name == "timesheet_id":  # a clinician's hours for one of A's sessions
            worked = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=5)
            sheet = TimesheetSubmitted(
                timesheet_id=uuid.uuid4(),
                offer_id=uuid.uuid4(),
                session_id=uuid.UUID(await posted_session()),
                clinician_id=uuid.uuid4(),
                revision=1,
                organisation=ods,
                started_at=worked,
                ended_at=worked + timedelta(hours=4),
                break_minutes=0,
                note=None,
                submitted_at=datetime.now(UTC),
            )
            envelope = new_envelope(
                sheet,
                event_type="timesheet.submitted",
                schema_version=1,
                region=region,
                producer="bank",
            )
            consumer = EventConsumer(
                service="vacancies",
                pool=pool,
                dead_letters=_NoDeadLetters(),
                handlers={
                    "timesheet.submitted": timesheet_store.submitted_handler(
                        timedelta(hours=25), timedelta(hours=72)
                    )
                },
            )
            handled = await consumer.handle(
                topic_for("timesheet.submitted"),
                region.encode(),
                envelope.model_dump_json().encode(),
            )
            assert handled
            return str(sheet.timesheet_id)
        raise CannotMakeError(name)

    def post() -> dict[str, Any]:
        made: dict[str, Any] = json.loads(
            delivery("session.posted", session_data(f"matrix-{next(numbers)}"))
        )
        return made

    return Service(
        name="vacancies",
        app=app,
        callers=[*strangers, Caller(ORGANISATION, other_key, other_secret), right],
        rightful={RIGHT},
        peer=ORGANISATION,
        make=make,
        bodies={("POST", "/webhooks/{ods_code}"): post},
    )


async def _nothing(path: str, name: str) -> str:
    raise CannotMakeError(name)


async def _viewer(pool: asyncpg.Pool, region: str | None, *, national: bool = False) -> str:
    async with pool.acquire() as conn:
        viewer = await viewers.add_viewer(
            conn, name="Matrix viewer", region=region, national=national
        )
        code = await viewers.invite(conn, viewer.id, now=datetime.now(UTC))
    signed_in = await viewers.sign_in(
        pool, code, now=datetime.now(UTC), session_ttl=timedelta(hours=1)
    )
    assert signed_in is not None
    return signed_in[1]


async def _monitor(
    infra: Infra, prefix: str, region: str, strangers: list[Caller], other: str
) -> Service:
    settings = settings_for(MonitorSettings, infra, prefix)
    app = create_monitor(settings)
    pool = await create_pool(infra.dsn, MONITOR_SCHEMA, max_size=4)
    app.state.runtime = SimpleNamespace(pool=pool, settings=settings)
    await _seed(pool, region, other)

    async def make(path: str, name: str) -> str:
        if name == "region":
            return region
        raise CannotMakeError(name)

    return Service(
        name="monitor",
        app=app,
        callers=[
            *strangers,
            Caller(VIEWER, await _viewer(pool, other)),
            Caller(RIGHT, await _viewer(pool, region)),
            Caller(NATIONAL, await _viewer(pool, None, national=True)),
        ],
        rightful={RIGHT, NATIONAL},
        peer=VIEWER,
        make=make,
        query={"region": region},
        region=region,
    )


async def test_every_endpoint_of_every_service_answers_only_the_right_caller(
    infra: Infra, topic_prefix: str, region: str
) -> None:
    """The matrix above: each non-public route × each caller, refused or served as the
    module's docstring says; public routes are the listed ones only."""
    started = time.perf_counter()
    for schema, package, settings_type in (
        (BANK_SCHEMA, bank_package, BankSettings),
        (VACANCIES_SCHEMA, vacancies_package, VacanciesSettings),
        (MONITOR_SCHEMA, monitor_package, MonitorSettings),
    ):
        await migrate(
            settings_for(settings_type, infra, topic_prefix),
            schema=schema,
            migrations_dir=Path(str(package.__file__)).with_name("migrations"),
        )
    other = "".join(random.choices(string.ascii_uppercase, k=3))
    while other == region:
        other = "".join(random.choices(string.ascii_uppercase, k=3))

    # Each kind of stranger's credentials, real ones of the other services.
    bank_pool = await create_pool(infra.dsn, BANK_SCHEMA, max_size=2)
    monitor_pool = await create_pool(infra.dsn, MONITOR_SCHEMA, max_size=2)
    try:
        async with bank_pool.acquire() as conn:
            clinician_token = await bank_admin.add_clinician(conn, _clinician(region, 3))
        viewer_token = await _viewer(monitor_pool, other)
    finally:
        await bank_pool.close()
        await monitor_pool.close()
    _, org_secret, org_key = await register(infra, region)
    nobody = Caller(NOBODY)
    as_clinician = Caller(CLINICIAN, clinician_token)
    as_organisation = Caller(ORGANISATION, org_key, org_secret)
    as_viewer = Caller(VIEWER, viewer_token)

    services = [
        await _vacancies(infra, topic_prefix, region, [nobody, as_clinician, as_viewer]),
        await _bank(infra, topic_prefix, region, [nobody, as_organisation, as_viewer]),
        await _monitor(infra, topic_prefix, region, [nobody, as_clinician, as_organisation], other),
        Service(
            name="matching",
            app=create_matching(settings_for(MatchingSettings, infra, topic_prefix)),
            callers=[nobody, as_clinician, as_organisation, as_viewer],
            rightful=set(),
            peer=None,
            make=_nothing,
        ),
    ]
    tally = Tally()
    try:
        with capture_logs():
            for service in services:
                await _check(service, tally)
    finally:
        for service in services:
            runtime = getattr(service.app.state, "runtime", None)
            if runtime is not None:
                await runtime.pool.close()
    took = time.perf_counter() - started
    shape = ", ".join(f"{name} {size}" for name, size in tally.shape.items())
    print(f"\naccess matrix: {tally.routes} guarded routes ({shape}), {tally.calls} calls,")
    print(f"{took:.1f} s with set-up")
    assert not tally.problems, "\n".join(tally.problems)
    assert tally.routes >= 30
    assert tally.owner_saw["bank"] >= 5, tally.owner_saw  # offers, bookings, windows, ...
