"""Matching's handlers take their events' own models, and a wrong registration fails loudly.

Each handler in ``handlers(...)`` is a ``Typed`` adapter: registered under an event type
with the catalogue's model for it (``shared.events.EVENTS``), and refusing, with a
TypeError naming the model, an envelope whose ``data`` is some other model, before it
touches the repository.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel

from services.matching import SCHEMA
from services.matching.handlers import handlers
from shared.events import EVENTS, Envelope, new_envelope
from shared.messaging.consumer import Handler, Typed
from tests.unit.matching_fake import FakeConn, FakeRepository, RecordingEmitter

REGION = "QOP"


def _table() -> tuple[dict[str, Handler], FakeRepository]:
    fake = FakeRepository()
    emitter = RecordingEmitter(producer="matching", schema=SCHEMA)
    return handlers(emitter, repo=fake), fake


def _envelope(data: BaseModel, event_type: str) -> Envelope[Any]:
    return new_envelope(
        data, event_type=event_type, schema_version=1, region=REGION, producer="test"
    )


def _wrong_model(model: type[BaseModel]) -> type[BaseModel]:
    """A catalogue model that is not ``model`` (nor a kind of it)."""
    return next(
        spec.model
        for spec in EVENTS.values()
        if not issubclass(spec.model, model) and not issubclass(model, spec.model)
    )


def test_each_handler_is_typed_with_its_events_model() -> None:
    table, _ = _table()
    assert table  # the table is not empty, so the loops below check something
    for event_type, handler in table.items():
        assert isinstance(handler, Typed), event_type
        assert handler.model is EVENTS[event_type].model, event_type


@pytest.mark.parametrize("event_type", sorted(_table()[0]))
async def test_a_handler_given_the_wrong_model_raises_type_error(event_type: str) -> None:
    table, fake = _table()
    model = EVENTS[event_type].model
    wrong = _wrong_model(model)
    # Fields are irrelevant: the adapter must refuse before the handler reads any.
    envelope = _envelope(wrong.model_construct(), event_type)
    with pytest.raises(TypeError, match=model.__name__) as raised:
        await table[event_type](FakeConn().as_conn(), envelope)
    assert event_type in str(raised.value)
    assert wrong.__name__ in str(raised.value)
    assert not fake.plan_requests
    assert not fake.sessions
    assert not fake.availability


class _Ping(BaseModel):
    n: int = 0


async def test_the_adapter_passes_its_own_model_through() -> None:
    seen: list[Envelope[_Ping]] = []

    async def handler(conn: Any, envelope: Envelope[_Ping]) -> None:
        seen.append(envelope)

    envelope = _envelope(_Ping(n=1), "session.posted")
    await Typed(_Ping, handler)(FakeConn().as_conn(), envelope)
    assert seen == [envelope]
