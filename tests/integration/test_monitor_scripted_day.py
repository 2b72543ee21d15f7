"""A working day of one region over the real broker and database, with all four
services running: the monitor's figures equal what the services' own tables say, a
duplicate delivery counts once, and ``fairshare monitor rebuild`` gives them again.

The day, its sessions side by side: a GP session filled, given up late by its GP and
filled again by another; a clinical pharmacist session filled across sectors, moved by
the practice (the booking released, its move reversed) and filled again; a GP session
filled then cancelled late by the practice; one filled then amended in a way that keeps
the booking; a dentist's session nobody can fill, cancelled in good time; a GP session
filled then moved to a time nobody offered (open again); a pharmacist session filled
across sectors and given up late by the only pharmacist (open again, move reversed).
"""

from __future__ import annotations

import asyncio
import logging
import random
import string
import uuid
from collections.abc import AsyncIterator, Awaitable
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from fastapi import FastAPI
from typer.testing import CliRunner

from fairshare.cli import app as cli
from fairshare.consistency import CONSUMES, service_counts, snapshot
from fairshare.services import migrate_all
from services.bank import SCHEMA as BANK
from services.bank.admin import add_clinician
from services.bank.app import create_app as bank_app
from services.bank.domain import Clinician
from services.bank.settings import BankSettings
from services.matching import SCHEMA as MATCHING
from services.matching.admin import set_policy
from services.matching.app import create_app as matching_app
from services.matching.settings import MatchingSettings
from services.monitor import viewers
from services.monitor.app import create_app as monitor_app
from services.monitor.handlers import handlers
from services.monitor.settings import MonitorSettings
from services.vacancies import SCHEMA as VACANCIES
from services.vacancies.app import create_app as vacancies_app
from services.vacancies.settings import VacanciesSettings
from shared.catalogue import Profession, Sector
from shared.db.pool import connect
from shared.events.registry import stream_for
from tests.conftest import Infra
from tests.integration.helpers import eventually, settings_for
from tests.integration.vacancies_support import post, register

pytestmark = pytest.mark.integration


@dataclass
class Day:
    """The running system, seen from the test's region."""

    infra: Infra
    region: str
    prefix: str
    monitor_schema: str
    apps: dict[str, FastAPI]
    vacancies: httpx.AsyncClient
    bank: httpx.AsyncClient
    monitor: httpx.AsyncClient
    ods: str = ""
    secret: str = ""
    clinicians: dict[str, dict[str, str]] = field(default_factory=dict)  # name → headers

    async def post(self, kind: str, data: dict[str, Any]) -> dict[str, Any]:
        """Sign and post a delivery as the practice's rota system."""
        response = await post(self.vacancies, self.ods, self.secret, kind, data)
        assert response.status_code in (200, 202), response.text
        body: dict[str, Any] = response.json()
        return body

    async def accept(self, session_id: str) -> tuple[str, str]:
        """Wait for an offer of the session to any clinician; accept it: (who, offer id)."""

        async def offered() -> tuple[str, str] | None:
            for name, headers in self.clinicians.items():
                for offer in (await self.bank.get("/api/offers", headers=headers)).json():
                    if offer["session_id"] == session_id:
                        return name, offer["offer_id"]
            return None

        name, offer_id = await eventually(offered, timeout_s=20, every_s=0.1)
        headers = self.clinicians[name]
        accepted = await self.bank.post(f"/api/offers/{offer_id}/accept", headers=headers)
        assert accepted.status_code == 202, accepted.text
        await self.booked(session_id, offer_id)
        return name, offer_id

    async def booked(self, session_id: str, offer_id: str) -> None:
        """Wait until matching books the offer and vacancies has read that it did (so
        that what the practice does next is done to a filled session)."""

        async def done() -> bool:
            found = await self.fetchval(
                VACANCIES,
                "SELECT count(*) FROM sessions WHERE id = $1 AND offer_id = $2"
                " AND status = 'filled'",
                uuid.UUID(session_id),
                uuid.UUID(offer_id),
            )
            return bool(found)

        await eventually(done, timeout_s=20, every_s=0.1)

    async def fetchval(self, schema: str, sql: str, *args: Any) -> Any:
        """One value read from a service's own schema."""
        conn = await connect(self.infra.dsn, schema)
        try:
            return await conn.fetchval(sql, *args)
        finally:
            await conn.close()

    async def fetch(self, schema: str, sql: str, *args: Any) -> list[Any]:
        """Rows read from a service's own schema."""
        conn = await connect(self.infra.dsn, schema)
        try:
            return list(await conn.fetch(sql, *args))
        finally:
            await conn.close()


async def _serve(app: FastAPI, ready: asyncio.Event, stop: asyncio.Event) -> None:
    async with app.router.lifespan_context(app):
        ready.set()
        await stop.wait()


@asynccontextmanager
async def running_system(infra: Infra, prefix: str, schema: str) -> AsyncIterator[Day]:
    """The four services in this process, started side by side (a consumer's first group
    join takes seconds), with in-process clients."""
    await migrate_all(infra.dsn)  # before four services migrate at once
    settings: dict[str, Any] = {"FAIRSHARE_CONSUMER_RETRY_S": 0.1}
    apps = {
        "vacancies": vacancies_app(settings_for(VacanciesSettings, infra, prefix, **settings)),
        "bank": bank_app(settings_for(BankSettings, infra, prefix, **settings)),
        "matching": matching_app(
            settings_for(
                MatchingSettings,
                infra,
                prefix,
                FAIRSHARE_MATCHING_DEBOUNCE_S=0.05,
                FAIRSHARE_MATCHING_PLAN_IN_SUBPROCESS=False,
                **settings,
            )
        ),
        # In a schema of its own: the rebuild empties it, other tests' figures stay.
        "monitor": monitor_app(
            settings_for(MonitorSettings, infra, prefix, **settings), schema=schema
        ),
    }
    stop = asyncio.Event()
    ready = {name: asyncio.Event() for name in apps}
    tasks = [asyncio.create_task(_serve(app, ready[n], stop)) for n, app in apps.items()]
    try:
        # All ready, or one service failing to start (its task ends), whichever is first.
        all_ready = asyncio.ensure_future(asyncio.gather(*(e.wait() for e in ready.values())))
        either: list[asyncio.Future[Any]] = [*tasks, all_ready]
        await asyncio.wait(either, timeout=60, return_when="FIRST_COMPLETED")
        all_ready.cancel()
        for task in tasks:
            if task.done():
                task.result()  # a service that failed to start fails the test here
        assert all(e.is_set() for e in ready.values()), "services did not start in 60 s"

        def client(name: str) -> httpx.AsyncClient:
            transport = httpx.ASGITransport(app=apps[name])
            return httpx.AsyncClient(transport=transport, base_url=f"http://{name}")

        async with client("vacancies") as v, client("bank") as b, client("monitor") as m:
            await _sign_in_to_monitor(infra, schema, m)
            region = "".join(random.choices(string.ascii_uppercase + string.digits, k=3))
            yield Day(infra, region, prefix, schema, apps, v, b, m)
    finally:
        stop.set()
        await asyncio.gather(*tasks, return_exceptions=True)


async def _sign_in_to_monitor(infra: Infra, schema: str, monitor: httpx.AsyncClient) -> None:
    """The monitor answers only signed-in viewers: a national one, through its form."""
    conn = await connect(infra.dsn, schema)
    try:
        async with conn.transaction():
            viewer = await viewers.add_viewer(conn, name="Scripted day", region=None, national=True)
            code = await viewers.invite(conn, viewer.id, now=datetime.now(UTC))
    finally:
        await conn.close()
    signed = await monitor.post("/signin", data={"code": code})
    assert signed.status_code == 303, signed.text


async def _set_up(day: Day, start: datetime) -> None:
    """A practice, three GPs and a community pharmacist offering the whole day, and a
    policy that lets the pharmacist's hours move to general practice."""
    day.ods, day.secret, _ = await register(day.infra, day.region)
    people = {
        "ann": (Profession.GP, Sector.GENERAL_PRACTICE),
        "bob": (Profession.GP, Sector.GENERAL_PRACTICE),
        "cat": (Profession.GP, Sector.GENERAL_PRACTICE),
        "priya": (Profession.PHARMACIST, Sector.COMMUNITY_PHARMACY),
    }
    conn = await connect(day.infra.dsn, BANK)
    try:
        for name, (profession, home) in people.items():
            who = Clinician(uuid.uuid4(), name.title(), profession, home, day.region)
            day.clinicians[name] = {"Authorization": f"Bearer {await add_clinician(conn, who)}"}
    finally:
        await conn.close()
    window = {
        "starts_at": (start - timedelta(hours=2)).isoformat(),
        "ends_at": (start + timedelta(hours=15)).isoformat(),
    }
    for headers in day.clinicians.values():
        offered = await day.bank.post("/api/availability", headers=headers, json=window)
        assert offered.status_code == 201, offered.text
    runtime = day.apps["matching"].state.runtime
    async with runtime.pool.acquire() as conn, conn.transaction():
        await set_policy(
            conn,
            day.region,
            emitter=runtime.emitter,
            changed_by="test",
            caps={Sector.COMMUNITY_PHARMACY: 100.0},
        )


def _session(external_id: str, role: str, start: datetime, hours: float) -> dict[str, Any]:
    return {
        "external_id": external_id,
        "role": role,
        "starts_at": start.isoformat(),
        "ends_at": (start + timedelta(hours=hours)).isoformat(),
        "rate_pence_per_hour": 7757,
    }


async def _give_up(day: Day, who: str, offer_id: str) -> None:
    """The clinician cancels the booking through the bank's API; within 48 hours: late."""
    cancel = await day.bank.post(
        f"/api/bookings/{offer_id}/cancel",
        headers=day.clinicians[who],
        json={"category": "illness"},
    )
    assert cancel.status_code == 200, cancel.text
    assert cancel.json()["late"] is True


async def _live_the_day(day: Day, start: datetime) -> None:
    """Each session's story, all at once."""
    h = timedelta(hours=1)

    async def given_up_and_filled_again() -> None:
        session = await day.post("session.posted", _session("s1", "gp", start, 4))
        await _give_up(day, *await day.accept(session["session_id"]))
        await day.accept(session["session_id"])  # by another GP

    async def moved_across_sectors_then_amended() -> None:
        first = _session("s2", "clinical_pharmacist", start + h, 4)
        session = await day.post("session.posted", first)
        await day.accept(session["session_id"])
        moved = _session("s2", "clinical_pharmacist", start + 2 * h, 4)
        amended = await day.post("session.amended", moved)
        assert (amended["outcome"], amended["status"]) == ("amended", "open")  # released
        await day.accept(session["session_id"])  # the new time, by the same pharmacist

    async def filled_then_cancelled_late() -> None:
        session = await day.post("session.posted", _session("s3", "gp", start + 5 * h, 4))
        await day.accept(session["session_id"])
        await day.post("session.cancelled", {"external_id": "s3", "reason": "Clinic closed"})

    async def filled_then_amended_keeping_the_booking() -> None:
        data = _session("s4", "gp", start + 10 * h, 3)
        session = await day.post("session.posted", data)
        await day.accept(session["session_id"])
        amended = await day.post("session.amended", {**data, "notes": "Park at the back"})
        assert (amended["outcome"], amended["status"]) == ("amended", "filled")  # kept

    async def unfillable_then_cancelled() -> None:
        later = start + timedelta(days=3)
        await day.post("session.posted", _session("s5", "dentist", later, 4))
        await day.post("session.cancelled", {"external_id": "s5", "reason": "Not needed"})

    async def filled_then_moved_out_of_reach() -> None:
        session = await day.post("session.posted", _session("s6", "gp", start + h, 3))
        await day.accept(session["session_id"])
        late_evening = _session("s6", "gp", start + 16 * h, 3)  # nobody offered that time
        amended = await day.post("session.amended", late_evening)
        assert (amended["outcome"], amended["status"]) == ("amended", "open")

    async def across_sectors_then_given_up() -> None:
        session = await day.post(
            "session.posted", _session("s7", "clinical_pharmacist", start + 8 * h, 4)
        )
        # The only pharmacist gives it up: nobody is left to offer it to.
        await _give_up(day, *await day.accept(session["session_id"]))

    # A task group: one story failing stops the others rather than leaving them waiting.
    async with asyncio.TaskGroup() as group:
        for story in (
            given_up_and_filled_again,
            moved_across_sectors_then_amended,
            filled_then_cancelled_late,
            filled_then_amended_keeping_the_booking,
            unfillable_then_cancelled,
            filled_then_moved_out_of_reach,
            across_sectors_then_given_up,
        ):
            group.create_task(story())


async def _settled(day: Day) -> list[str]:
    """What is still under way in the region: events not yet published, or published and
    not yet handled by a service that consumes them (the monitor included), or a
    re-plan matching still owes. Empty once everything said has been heard."""
    left: list[str] = []
    # Schema → the event types its service consumes (the monitor's schema is the test's).
    consumers = {s: CONSUMES[s] for s in ("vacancies", "bank", "matching")}
    consumers[day.monitor_schema] = frozenset(handlers())
    for producer in ("vacancies", "bank", "matching"):
        unpublished = await day.fetchval(
            producer,
            "SELECT count(*) FROM outbox WHERE message_key = $1 AND published_at IS NULL",
            day.region,
        )
        if unpublished:
            left.append(f"{producer}: {unpublished} unpublished")
        for consumer, types in consumers.items():
            if consumer == producer:
                continue
            unheard = await day.fetchval(
                producer,
                f"SELECT count(*) FROM outbox o WHERE message_key = $1 AND event_type = ANY($2)"
                f" AND NOT EXISTS (SELECT 1 FROM {consumer}.inbox i WHERE i.event_id = o.event_id)",
                day.region,
                sorted(types),
            )
            if unheard:
                left.append(f"{consumer}: {unheard} of {producer}'s events unhandled")
    owed = await day.fetchval(
        MATCHING, "SELECT count(*) FROM plan_requests WHERE region = $1", day.region
    )
    if owed:
        left.append(f"matching: {owed} re-plans owed")
    return left


async def _truth(day: Day) -> dict[str, Any]:
    """The figures as the services' own tables give them: per sector as ``fairshare
    check`` works them out (vacancies for the sessions, matching for offers), matching
    for moves, the bank for clinicians' late cancellations."""
    snap = await snapshot(day.infra.dsn)
    sectors: dict[str, dict[str, Any]] = {}
    for (region, sector), counts in service_counts(snap).items():
        if region != day.region:
            continue
        figures = {k: v for k, v in asdict(counts).items() if k != "region"}
        wanted = counts.posted - counts.cancelled
        sectors[sector] = figures | {"fill_rate": counts.filled / wanted if wanted else None}
    ours = {m.id for m in snap.matching_sessions if m.region == day.region}
    booked = sum(b.session_id in ours for b in snap.bookings)
    assert booked == sum(f["filled"] for f in sectors.values()), "matching and vacancies differ"
    moves = await day.fetch(
        MATCHING,
        "SELECT from_sector, to_sector, sum(hours) AS hours FROM moves"
        " WHERE region = $1 AND reversed_at IS NULL GROUP BY from_sector, to_sector",
        day.region,
    )
    late_given_up = await day.fetchval(
        BANK, "SELECT sum(late_cancellations) FROM clinicians WHERE region = $1", day.region
    )
    return {
        "sectors": sectors,
        "moves": {(r["from_sector"], r["to_sector"]): r["hours"] for r in moves},
        "late_given_up": late_given_up,
    }


async def _shown(day: Day) -> dict[str, Any]:
    """The same figures as the monitor's API shows them."""
    counts = (await day.monitor.get("/api/counts")).json()
    sectors = {
        r["sector"]: {
            k: r[k]
            for k in ("posted", "offered", "filled", "cancelled", "unfilled", "late_cancelled")
        }
        | {"sector": r["sector"], "fill_rate": r["fill_rate"]}
        for r in counts
        if r["region"] == day.region and r["posted"]
    }
    [drain] = (await day.monitor.get("/api/drain", params={"region": day.region})).json()
    return {
        "sectors": sectors,
        "moves": {(m["from_sector"], m["to_sector"]): m["hours"] for m in drain["matrix"]},
        "late_given_up": sum(r["late_given_up"] for r in counts if r["region"] == day.region),
    }


async def _republish_one(day: Day, event_type: str) -> None:
    """Deliver one already-published event again, byte for byte (at-least-once Kafka)."""
    topic = f"{day.prefix}{stream_for('bank')}"
    reader = AIOKafkaConsumer(
        topic, bootstrap_servers=day.infra.bootstrap, group_id=None, auto_offset_reset="earliest"
    )
    await reader.start()
    try:
        found = None
        while found is None:
            batch = await asyncio.wait_for(reader.getmany(timeout_ms=500), timeout=10)
            for record in (r for rs in batch.values() for r in rs):
                headers = dict(record.headers or ())
                if headers.get("event-type") == event_type.encode() and record.key == (
                    day.region.encode()
                ):
                    found = record
    finally:
        await reader.stop()
    producer = AIOKafkaProducer(bootstrap_servers=day.infra.bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            topic, found.value, key=found.key, headers=list(found.headers or ())
        )
    finally:
        await producer.stop()


def _rebuild(day: Day) -> str:
    """``fairshare monitor rebuild`` as an operator runs it, into the test's schema.

    The command configures logging for its process; this process runs other tests
    after, so the configuration is put back as it was.
    """
    saved, root = structlog.get_config(), logging.getLogger()
    handlers_before, level_before = list(root.handlers), root.level
    env = {
        "FAIRSHARE_DATABASE_URL": day.infra.dsn,
        "FAIRSHARE_KAFKA_BOOTSTRAP": day.infra.bootstrap,
        "FAIRSHARE_TOPIC_PREFIX": day.prefix,
    }
    try:
        result = CliRunner().invoke(
            cli, ["monitor", "rebuild", "--schema", day.monitor_schema], env=env
        )
    finally:
        structlog.configure(**saved)
        root.handlers[:], root.level = handlers_before, level_before
        logging.getLogger("aiokafka").setLevel(logging.NOTSET)
        structlog.contextvars.clear_contextvars()
    assert result.exit_code == 0, result.output
    return result.output


async def test_a_scripted_day_the_monitor_agrees_with_the_services_and_rebuilds_the_same(
    infra: Infra, topic_prefix: str
) -> None:
    """After the day, once every event is handled: posted, offered, filled, cancelled,
    late cancellations by either side, fill rate per sector and the hours moved across
    sectors are what vacancies, matching and the bank hold. A duplicate delivery is
    dropped by the inbox and changes nothing. A rebuild, after the figures were spoilt,
    while the service runs, gives the same figures again."""
    schema = "monitor_day_" + "".join(random.choices(string.ascii_lowercase, k=8))
    start = (datetime.now(UTC) + timedelta(hours=30)).replace(minute=0, second=0, microsecond=0)
    async with running_system(infra, topic_prefix, schema) as day:
        await _set_up(day, start)
        await _live_the_day(day, start)
        await eventually(lambda: _none(_settled(day)), timeout_s=20, every_s=0.2)
        truth = await _truth(day)
        shown = await _shown(day)
        assert shown == truth
        # The day had every kind of change in it, so the comparison means something: seven
        # posted; s1, s2 and s4 filled; s3 and s5 cancelled (s3 late); s6 and s7 open
        # again after their bookings were released; s1 and s7 given up late; of the three
        # moves out of pharmacy (s2 twice, s7), only s2's second stands.
        gp, pharmacy = truth["sectors"]["general_practice"], "community_pharmacy"
        assert (gp["posted"], gp["filled"], gp["cancelled"], gp["late_cancelled"]) == (7, 3, 2, 1)
        assert truth["moves"] == {(pharmacy, "general_practice"): 4.0}
        assert truth["late_given_up"] == 2
        reversed_moves = await day.fetchval(
            MATCHING,
            "SELECT count(*) FROM moves WHERE region = $1 AND reversed_at IS NOT NULL",
            day.region,
        )
        assert reversed_moves == 2

        consumer = day.apps["monitor"].state.runtime.consumer
        duplicates = consumer.progress.duplicates
        await _republish_one(day, "booking.cancelled")

        async def dropped() -> bool:
            return bool(consumer.progress.duplicates > duplicates)

        await eventually(dropped, timeout_s=10, every_s=0.1)
        assert await _shown(day) == truth

        pool = day.apps["monitor"].state.runtime.pool
        await pool.execute(
            "UPDATE sector_counts SET filled = filled + 7, late_given_up = 0 WHERE region = $1",
            day.region,
        )
        await pool.execute("DELETE FROM drain_moves WHERE region = $1", day.region)
        assert await _shown(day) != truth
        output = await asyncio.to_thread(_rebuild, day)
        assert "Rebuilt in" in output
        assert await _shown(day) == truth
        # The counters are the sum of the sessions' own figures, as kept.
        summed = await pool.fetchval(
            "SELECT sum(filled) FROM session_facts WHERE region = $1", day.region
        )
        assert summed == sum(f["filled"] for f in truth["sectors"].values())


async def _none(check: Awaitable[list[str]]) -> bool:
    return not await check
