"""How a consumer reports its lag in seconds: no false alarm after a quiet spell, and a
real one when messages wait and nothing is handled."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from typing import Any

from shared.messaging.consumer import EventConsumer, Progress


def test_no_lag_when_nothing_waits() -> None:
    """Nothing waiting: 0 s behind, however old the last event was."""
    progress = Progress()
    progress.saw(datetime.now(UTC) - timedelta(minutes=5))
    progress.measured({"t[0]": 0})
    assert progress.lag_s() == 0.0


def test_a_message_arriving_after_a_quiet_spell_is_not_a_lag() -> None:
    """Idle for a minute, then one message arrives: the consumer is not a minute behind."""
    progress = Progress()
    progress.saw(datetime.now(UTC) - timedelta(milliseconds=50))
    progress.last_progress = time.monotonic() - 60
    progress.measured({"t[0]": 1})
    assert progress.lag_s() < 1.0


def test_old_events_handled_now_are_a_lag() -> None:
    """Events handled ten seconds after they happened: ten seconds behind."""
    progress = Progress()
    progress.measured({"t[0]": 100})
    progress.saw(datetime.now(UTC) - timedelta(seconds=10))
    progress.moved()
    assert 9.5 < progress.lag_s() < 11


def test_messages_waiting_with_nothing_handled_count_up() -> None:
    """Messages waiting while nothing is handled: behind by as long as they have waited."""
    progress = Progress()
    progress.measured({"t[0]": 3})
    progress.lag_since = time.monotonic() - 20
    progress.last_progress = time.monotonic() - 30
    assert 19.5 < progress.lag_s() < 21


def _record(event_type: str | None, topic: str = "p.vacancies.events") -> SimpleNamespace:
    headers = [("event-type", event_type.encode())] if event_type else []
    return SimpleNamespace(topic=topic, headers=headers)


def test_other_services_events_are_passed_over_by_their_header() -> None:
    """A type of the stream that this service does not handle is passed over unread; its
    own types, a type from another producer's stream (which the body must then explain to
    the dead-letter topic) and a record without the header are read."""

    async def handler(*_: object) -> None: ...

    unused: Any = None
    consumer = EventConsumer(
        service="x",
        pool=unused,
        dead_letters=unused,
        handlers={"session.posted": handler},
        topic_prefix="p.",
    )
    assert consumer._not_ours(_record("session.amended"))
    assert not consumer._not_ours(_record("session.posted"))
    assert not consumer._not_ours(_record("session.offered"))
    assert not consumer._not_ours(_record(None))
    assert not consumer._not_ours(_record("no.such.type"))
