"""Live offers for open apps: PostgreSQL NOTIFY fans out to server-sent event streams.

NOTIFY is only a wake-up (it is lost if no one listens); the stream then reads the
offers from the database, so nothing depends on the notification itself arriving.
"""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator

import structlog

from shared.db.listening import listen_forever

log = structlog.get_logger(__name__)
OFFERS_CHANNEL = "bank_offers"


class OfferBroadcaster:
    """Per process: who is listening, and a LISTEN connection that wakes them."""

    def __init__(self) -> None:
        self._listeners: dict[uuid.UUID, set[asyncio.Queue[None]]] = defaultdict(set)

    def wake(self, clinician_id: uuid.UUID) -> None:
        """Tell every open stream of this clinician to look again."""
        for queue in self._listeners.get(clinician_id, ()):
            with contextlib.suppress(asyncio.QueueFull):
                queue.put_nowait(None)

    @contextlib.asynccontextmanager
    async def listen(self, clinician_id: uuid.UUID) -> AsyncIterator[asyncio.Queue[None]]:
        """A queue that gets an item whenever this clinician's offers may have changed."""
        queue: asyncio.Queue[None] = asyncio.Queue(maxsize=1)
        self._listeners[clinician_id].add(queue)
        try:
            yield queue
        finally:
            self._listeners[clinician_id].discard(queue)

    async def run(self, dsn: str) -> None:
        """LISTEN until cancelled, reconnecting if the database goes away."""
        await listen_forever(dsn, OFFERS_CHANNEL, self._on_notify, what="offer listener")

    def _on_notify(self, payload: str) -> None:
        with contextlib.suppress(ValueError):
            self.wake(uuid.UUID(payload))
