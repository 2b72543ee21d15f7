"""A LISTEN connection kept open for a process: reconnects when the database goes away.

NOTIFY is only ever a wake-up here (lost if nobody listens), so each user also says
what to do when listening starts again: read everything afresh.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import asyncpg
import structlog

log = structlog.get_logger(__name__)


async def listen_forever(
    dsn: str,
    channel: str,
    on_payload: Callable[[str], None],
    *,
    on_up: Callable[[], None] | None = None,
    on_down: Callable[[], None] | None = None,
    what: str = "listener",
) -> None:
    """LISTEN on ``channel`` until cancelled, calling ``on_payload`` with each NOTIFY's
    payload; ``on_up`` each time the LISTEN is in place, ``on_down`` each time it is lost."""

    def notified(
        _conn: asyncpg.Connection | asyncpg.pool.PoolConnectionProxy,
        _pid: int,
        _channel: str,
        payload: object,
    ) -> None:
        on_payload(str(payload))

    while True:
        conn: asyncpg.Connection | None = None
        try:
            conn = await asyncpg.connect(dsn)
            lost = asyncio.Event()
            conn.add_termination_listener(lambda _conn, ended=lost: ended.set())
            await conn.add_listener(channel, notified)
            if on_up is not None:
                on_up()
            await lost.wait()
            log.warning(f"{what} connection closed; reconnecting")
        except (OSError, asyncpg.PostgresError) as exc:
            log.warning(f"{what} lost; reconnecting", error=repr(exc))
            await asyncio.sleep(1)
        finally:
            if on_down is not None:
                on_down()
            if conn is not None:
                await conn.close()
