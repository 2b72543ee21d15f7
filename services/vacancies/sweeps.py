"""Background work of the vacancies service: close sessions that started unfilled,
and deliver scheduled callbacks."""

from __future__ import annotations

import asyncio
import contextlib
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import structlog
from standardwebhooks import Webhook

from services.vacancies import callback_store, repository
from services.vacancies.domain import SessionStatus, is_due_unfilled, retry_delay
from services.vacancies.notify import notify
from services.vacancies.secret_box import SecretKeyError
from services.vacancies.settings import VacanciesSettings
from shared.db.types import Conn
from shared.events import SessionUnfilled
from shared.runtime import Runtime

log = structlog.get_logger(__name__)


async def close_unfilled(conn: Conn, runtime: Runtime, window: timedelta) -> int:
    """Mark sessions whose start passed unfilled; publish and call back. Return how many."""
    now = datetime.now(UTC)
    closed = 0
    for session in await repository.due_unfilled(conn, now=now):
        if not is_due_unfilled(session.status, session.details.starts_at, now=now):
            continue
        reason = (
            "An offer was made but not accepted before the start."
            if session.status is SessionStatus.OFFERED
            else "No eligible clinician was booked before the start."
        )
        why, detail = await repository.unmatched(conn, session.id)
        if why and session.status is not SessionStatus.OFFERED:
            reason = detail or reason
        updated = replace(session, status=SessionStatus.UNFILLED)
        await repository.save_session(conn, updated)
        poster = await repository.organisation(conn, session.organisation)
        site = await repository.organisation(conn, session.details.site or session.organisation)
        assert poster is not None
        assert site is not None
        await runtime.emitter.emit(
            conn,
            SessionUnfilled(
                session_id=session.id,
                organisation=site.ods_code,
                sector=site.sector,
                reason=reason,
                why=why,
                starts_at=session.details.starts_at,
                ends_at=session.details.ends_at,
            ),
            region=poster.region,
        )
        await notify(
            conn, updated, "session.unfilled", window=window, extra={"reason": reason, "why": why}
        )
        closed += 1
    return closed


async def unfilled_forever(runtime: Runtime, settings: VacanciesSettings) -> None:
    """Close unfilled sessions every ``unfilled_sweep_s`` seconds."""
    window = timedelta(seconds=settings.callback_window_s)
    while True:
        try:
            async with runtime.pool.acquire() as conn, conn.transaction():
                closed = await close_unfilled(conn, runtime, window)
            if closed:
                log.info("sessions closed unfilled", count=closed)
        except Exception:  # a failed sweep is retried at the next tick
            log.exception("unfilled sweep failed")
        await asyncio.sleep(settings.unfilled_sweep_s)


# Web hook receipts answer a retried delivery (same webhook-id) with its first answer.
# Senders retry for days (Standard Webhooks' reference schedule spans about three), so a
# receipt is kept a week; past that a retry is handled afresh, which is still safe: a
# session's external id makes a repeated post an amendment, never a second session.
RECEIPTS_KEEP = timedelta(days=7)


async def prune_receipts_forever(runtime: Runtime) -> None:
    """Delete web hook receipts older than RECEIPTS_KEEP, every ``prune_every_s``."""
    while True:
        try:
            pruned = await repository.prune_receipts(runtime.pool, older_than=RECEIPTS_KEEP)
            if pruned:
                log.info("pruned web hook receipts", count=pruned)
        except Exception as exc:
            log.warning("pruning receipts failed; will retry", error=repr(exc))
        await asyncio.sleep(runtime.settings.prune_every_s)


async def attempt(
    client: httpx.AsyncClient, row: asyncpg.Record, settings: VacanciesSettings
) -> tuple[str, datetime | None, int | None, str | None]:
    """Send one callback; return (status, next attempt, HTTP status, error)."""
    now = datetime.now(UTC)
    url: str | None = row["callback_url"]
    if not url:
        return "failed", None, None, "no callback URL is set"
    code: int | None = None
    error: str | None = None
    try:
        secret: str | None = repository.opened_secret(
            row["webhook_secret_sealed"], row["organisation"]
        )
    except SecretKeyError as exc:
        # Our keys are wrong, not the receiver: keep retrying, with the reason in the log
        # (`fairshare callbacks list`), until they are put right or the window ends.
        secret, error = None, str(exc)
    if secret is not None:
        body = callback_store_body(row)
        headers = {
            "webhook-id": row["webhook_id"],
            "webhook-timestamp": str(int(now.timestamp())),
            "webhook-signature": Webhook(secret).sign(row["webhook_id"], now, body),
            "content-type": "application/json",
        }
        try:
            response = await client.post(url, content=body, headers=headers)
            code = response.status_code
        except httpx.HTTPError as exc:
            error = repr(exc)[:500]
    if code is not None and 200 <= code < 300:
        return "delivered", None, code, None
    if code == 410:
        return "gone", None, code, "the receiver answered 410 Gone: delivery stopped"
    if now >= row["give_up_at"]:
        return "failed", None, code, error or f"HTTP {code}; retry window over"
    delay = retry_delay(
        row["attempts"], base_s=settings.callback_base_s, cap_s=settings.callback_cap_s
    )
    return "pending", now + delay, code, error or f"HTTP {code}"


def callback_store_body(row: asyncpg.Record) -> str:
    """The exact text signed and sent (compact JSON of the stored payload)."""
    return json.dumps(row["payload"], separators=(",", ":"))


async def deliver_due(
    runtime: Runtime, settings: VacanciesSettings, client: httpx.AsyncClient
) -> int:
    """Claim and send every due callback once; return how many were attempted."""
    # Long enough for the attempt (at most the timeout) and its recording; short, because
    # a sender killed or cut off from PostgreSQL mid-send leaves its claims to run out
    # before anyone tries them again (30 s of margin held a restarted database's
    # callbacks back half a minute). Running out early only risks a second delivery,
    # which receivers drop by webhook-id.
    lease = timedelta(seconds=settings.callback_timeout_s + 5)
    async with runtime.pool.acquire() as conn, conn.transaction():
        rows = await callback_store.claim_due(conn, now=datetime.now(UTC), lease=lease)
    results = await asyncio.gather(*(attempt(client, row, settings) for row in rows))
    async with runtime.pool.acquire() as conn, conn.transaction():
        for row, (status, next_at, code, error) in zip(rows, results, strict=True):
            await callback_store.record(
                conn,
                row["id"],
                status=status,
                next_attempt_at=next_at,
                last_status=code,
                last_error=error,
            )
            log.info(
                "callback attempt",
                webhook_id=row["webhook_id"],
                organisation=row["organisation"],
                outcome=status,
                http_status=code,
                attempt=row["attempts"],
            )
    return len(rows)


async def callbacks_forever(runtime: Runtime, settings: VacanciesSettings) -> None:
    """Deliver callbacks as they fall due, woken early by NOTIFY."""
    wake = asyncio.Event()
    listener = await asyncpg.connect(runtime.settings.database_url)
    await listener.add_listener("vacancies_callbacks", lambda *_: wake.set())
    try:
        async with httpx.AsyncClient(timeout=settings.callback_timeout_s) as client:
            while True:
                try:
                    while await deliver_due(runtime, settings, client):
                        continue  # some were due: look again before sleeping
                except Exception:  # database away: try again shortly
                    log.exception("callback delivery failed")
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(wake.wait(), timeout=settings.poll_s)
                wake.clear()
    finally:
        await listener.close()
