"""Keeping the stored signing secrets sealed: the keys a service starts with, the plaintext
an upgrade left (sealed at start-up), and re-sealing everything when keys rotate.

See ``secret_box`` for the why; this module is its use against the database.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

import structlog

from services.vacancies import repository, secret_box
from services.vacancies.secret_box import SecretBox, SecretKeyError
from services.vacancies.settings import VacanciesSettings
from shared.db.types import Conn
from shared.http.app import BackgroundJob
from shared.runtime import Runtime

log = structlog.get_logger(__name__)
RETRY_S = 5.0  # the start-up step's wait after a failure (the database not there yet)


@dataclass(frozen=True)
class Resealed:
    """What ``reencrypt`` did."""

    from_plaintext: int  # organisations whose legacy plaintext secrets were sealed
    resealed: int  # organisations whose sealed secrets now use the first key


async def seal_plaintext(conn: Conn, box: SecretBox) -> int:
    """Seal the secrets an upgrade left in plaintext and empty their legacy columns;
    return for how many organisations. Run in a transaction."""
    rows = await repository.secrets_in_plaintext(conn)
    sealed = []
    for row in rows:
        # One already sealed wins: it was issued (rotated) after the upgrade.
        current = row["webhook_secret_sealed"] or box.seal(row["legacy_webhook_secret"])
        previous = row["previous_secret_sealed"] or (
            box.seal(row["legacy_previous_secret"]) if row["legacy_previous_secret"] else None
        )
        sealed.append((row["ods_code"], current, previous))
    await repository.set_sealed(conn, sealed)
    return len(sealed)


async def check_keys(conn: Conn, box: SecretBox) -> None:
    """SecretKeyError unless ``box`` opens the secrets already stored (tried on the newest):
    an admin command run with another system's keys, or with an old key dropped too soon,
    would otherwise store secrets the service can't open."""
    sealed = await repository.newest_sealed_secret(conn)
    if sealed is None:
        return
    try:
        box.open(sealed)
    except SecretKeyError:
        msg = (
            f"the keys in {secret_box.KEYS_SETTING} don't open the secrets already stored:"
            " give this command the vacancies service's keys (all of them, until"
            " `fairshare org reencrypt-secrets` has run with the new one first)."
        )
        raise SecretKeyError(msg) from None


async def reencrypt(conn: Conn, box: SecretBox) -> Resealed:
    """Seal any plaintext left, then every secret afresh with the first key, so that the
    other keys can be dropped; previous secrets past their grace period are dropped, not
    kept. Run in a transaction: SecretKeyError (a secret no key opens) leaves everything
    as it was."""
    from_plaintext = await seal_plaintext(conn, box)
    rows = await repository.sealed_secrets(conn, lock=True)
    resealed = [
        (
            row["ods_code"],
            box.reseal(row["webhook_secret_sealed"]),
            box.reseal(row["previous_secret_sealed"]) if row["previous_secret_sealed"] else None,
        )
        for row in rows
    ]
    await repository.set_sealed(conn, resealed)
    return Resealed(from_plaintext=from_plaintext, resealed=len(resealed))


async def unopened(conn: Conn, box: SecretBox) -> list[str]:
    """ODS codes of the organisations with a secret in use that no key in ``box`` opens."""
    found = []
    for row in await repository.sealed_secrets(conn, lock=False):
        for sealed in (row["webhook_secret_sealed"], row["previous_secret_sealed"]):
            try:
                if sealed:
                    box.open(sealed)
            except SecretKeyError:
                found.append(row["ods_code"])
                break
    return found


def at_start(settings: VacanciesSettings) -> BackgroundJob:
    """Install the service's keys, or raise SecretKeyError (so the service refuses to
    start without them); return the start-up job that seals plaintext an upgrade left
    and says loudly if any stored secret can't be opened with the keys."""
    keys = settings.secret_keys.get_secret_value() if settings.secret_keys else None
    box = secret_box.for_service(keys)
    secret_box.install(box)

    async def seal_at_start(runtime: Runtime) -> None:
        while True:
            try:
                async with runtime.pool.acquire() as conn, conn.transaction():
                    sealed = await seal_plaintext(conn, box)
                    unreadable = await unopened(conn, box)
                break
            except Exception:  # the database may not be there yet: try again shortly
                log.exception("sealing web hook secrets at start failed; will retry")
                await asyncio.sleep(RETRY_S)
        if sealed:
            log.info("sealed plaintext web hook secrets", organisations=sealed)
        if unreadable:
            # Their posts get 500 and their callbacks wait until the keys are put right.
            log.error(
                "web hook signing secrets can't be decrypted with the configured keys",
                organisations=len(unreadable),
                ods_codes=unreadable[:20],
                fix=f"put the key they were sealed with back into {secret_box.KEYS_SETTING}",
            )

    return seal_at_start
