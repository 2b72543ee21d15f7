"""Administration of organisations and callbacks, used by the ``fairshare`` commands."""

from __future__ import annotations

import base64
import secrets
from datetime import UTC, datetime, timedelta

import asyncpg

from services.vacancies import callback_store, repository, sealing, secret_box
from services.vacancies.domain import Organisation
from services.vacancies.http import hash_api_key
from shared.db.types import Conn


class AdminError(Exception):
    """An administration request that can't be carried out; the message says why."""


def new_webhook_secret() -> str:
    """A Standard Webhooks secret: ``whsec_`` and 32 random bytes in base64."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def new_api_key() -> str:
    """An API key for the read API (shown once, stored hashed)."""
    return "fsk_" + secrets.token_urlsafe(32)


async def add_organisation(conn: Conn, organisation: Organisation) -> tuple[str, str]:
    """Register ``organisation``; return its web hook secret (stored sealed with the
    installed keys) and API key (stored hashed)."""
    if organisation.pcn is not None:
        pcn = await repository.organisation(conn, organisation.pcn)
        if pcn is None:
            msg = f"PCN {organisation.pcn} is not registered; add it first"
            raise AdminError(msg)
    await sealing.check_keys(conn, secret_box.installed())
    secret, key = new_webhook_secret(), new_api_key()
    try:
        await repository.insert_organisation(
            conn, organisation, secret=secret, api_key_hash=hash_api_key(key)
        )
    except asyncpg.UniqueViolationError as exc:
        msg = f"organisation {organisation.ods_code} is already registered"
        raise AdminError(msg) from exc
    return secret, key


async def _update(conn: Conn, ods_code: str, **columns: object) -> None:
    if not await repository.update_organisation(conn, ods_code, **columns):
        msg = f"organisation {ods_code} is not registered"
        raise AdminError(msg)


async def set_active(conn: Conn, ods_code: str, *, active: bool) -> None:
    """Deactivate (posts refused with 403) or reactivate an organisation."""
    await _update(conn, ods_code, active=active)


async def set_callback_url(conn: Conn, ods_code: str, url: str | None) -> None:
    """Where the organisation's callbacks go (None stops new ones being scheduled)."""
    if url is not None and not url.startswith(("https://", "http://")):
        msg = f"callback URL {url!r} must start with https:// (or http:// for local testing)"
        raise AdminError(msg)
    await _update(conn, ods_code, callback_url=url)


async def rotate_secret(conn: Conn, ods_code: str, *, grace: timedelta) -> str:
    """A new signing secret; the old one stays valid for ``grace``. Return the new one."""
    box = secret_box.installed()
    if grace > timedelta(0):
        # Without a grace period no old secret is needed, nor the key it is sealed with:
        # the way to issue new secrets once that key is lost.
        await sealing.check_keys(conn, box)
    # Plaintext an upgrade left is sealed first (the service does it at start, which may
    # not have happened yet), so that the old secret moves over to stay valid.
    await sealing.seal_plaintext(conn, box)
    secret = new_webhook_secret()
    until = datetime.now(UTC) + grace if grace > timedelta(0) else None
    if not await repository.rotate_secret(conn, ods_code, secret, previous_until=until):
        msg = f"organisation {ods_code} is not registered"
        raise AdminError(msg)
    return secret


async def reencrypt_secrets(conn: Conn) -> sealing.Resealed:
    """Seal every signing secret afresh with the first installed key (after a new key was
    put first), so that the old keys can be dropped."""
    return await sealing.reencrypt(conn, secret_box.installed())


async def rotate_api_key(conn: Conn, ods_code: str) -> str:
    """A new API key; the old one stops working at once. Return the new one."""
    key = new_api_key()
    await _update(conn, ods_code, api_key_hash=hash_api_key(key))
    return key


async def replay_callback(conn: Conn, callback_id: int, *, window: timedelta) -> None:
    """Send a callback again from now, with a fresh retry window."""
    if not await callback_store.replay(conn, callback_id, give_up_at=datetime.now(UTC) + window):
        msg = f"no callback with id {callback_id}"
        raise AdminError(msg)
