"""Live updates: the handlers' NOTIFY fans out to the page's server-sent event streams.

A handler that changed a region's figures says so with ``notify`` inside its transaction
(PostgreSQL delivers it at commit, so a page never reads figures not yet committed).
One LISTEN connection per process (``LiveHub.run``) wakes every open stream; a stream
tells its page which region changed, and the page reads its figures again. NOTIFY is
only a wake-up, lost if nobody listens: nothing depends on it arriving, and a hub that
reconnects tells every page to read everything again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable

import structlog

from shared.db.listening import listen_forever
from shared.db.pool import check_schema
from shared.db.types import Conn

log = structlog.get_logger(__name__)

# Every region at once: what a hub that was not listening for a while sends.
EVERYTHING = "*"


def channel_for(schema: str) -> str:
    """The NOTIFY channel of the monitor's ``schema`` (tests run several side by side)."""
    return f"{check_schema(schema)}_live"


async def notify(conn: Conn, regions: Iterable[str]) -> None:
    """Tell the open pages that these regions' figures changed (at commit)."""
    payload = ",".join(sorted(set(regions)))
    if payload:
        # current_schema(): the monitor's own, first on every connection's search path.
        await conn.execute("SELECT pg_notify(current_schema() || '_live', $1)", payload)


class Subscription:
    """One open stream's pending news: the regions changed since it last looked."""

    def __init__(self) -> None:
        self._regions: set[str] = set()
        self._woken = asyncio.Event()

    def add(self, regions: Iterable[str]) -> None:
        """Note regions changed; many notifications before the stream looks are one."""
        self._regions.update(regions)
        self._woken.set()

    async def next(self, wait_s: float) -> set[str]:
        """The regions changed since the last call, waiting up to ``wait_s`` seconds
        for any (an empty set if none came)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._woken.wait(), wait_s)
        self._woken.clear()
        regions, self._regions = self._regions, set()
        return regions


class LiveHub:
    """Per process: the open streams, and the LISTEN connection that wakes them."""

    def __init__(self) -> None:
        self._subscriptions: set[Subscription] = set()
        # Whether a LISTEN connection is up: streams without one end at once and the
        # browser comes back after a while, a slow poll (``http`` of the stream route).
        self.listening = False

    def publish(self, regions: Iterable[str]) -> None:
        """Wake every open stream with the regions changed."""
        changed = set(regions)
        for subscription in self._subscriptions:
            subscription.add(changed)

    @contextlib.asynccontextmanager
    async def subscribe(self) -> AsyncIterator[Subscription]:
        """A subscription for as long as the stream is open."""
        subscription = Subscription()
        self._subscriptions.add(subscription)
        try:
            yield subscription
        finally:
            self._subscriptions.discard(subscription)

    async def run(self, dsn: str, schema: str) -> None:
        """LISTEN until cancelled, reconnecting if the database goes away; each time it
        is back, every page reads everything again (it may have missed news)."""

        def up() -> None:
            self.listening = True
            self.publish([EVERYTHING])

        def down() -> None:
            self.listening = False

        await listen_forever(
            dsn,
            channel_for(schema),
            lambda payload: self.publish(r for r in payload.split(",") if r),
            on_up=up,
            on_down=down,
            what="live listener",
        )
