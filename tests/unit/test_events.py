"""The envelope and the consumer's parsing: what is accepted and what is dead-lettered."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from shared.events import EVENTS, SessionPosted, new_envelope
from shared.events.registry import PRODUCERS, all_topics, stream_for
from shared.messaging.consumer import Undeliverable, parse
from tests.factories import session_posted

START = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
STREAM = stream_for("vacancies")


def _posted() -> SessionPosted:
    return session_posted(START)


def _body(**override: object) -> bytes:
    env = new_envelope(
        _posted(), event_type="session.posted", schema_version=1, region="QOP", producer="test"
    )
    raw = json.loads(env.model_dump_json())
    raw.update(override)
    return json.dumps(raw).encode()


def test_round_trip() -> None:
    """An envelope survives serialisation with its typed data."""
    envelope = parse(STREAM, _body())
    assert isinstance(envelope.data, SessionPosted)
    assert envelope.region == "QOP"


@pytest.mark.parametrize(
    ("body", "words"),
    [
        (b"not json", "not JSON"),
        (b"[1]", "JSON object"),
        (_body(type="session.filled"), "does not belong"),
        (_body(schema_version=99), "unsupported"),
        (_body(region="toolong"), "region"),
        (_body(data={"session_id": "x"}), "data."),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (_body(producer="a\u0000b"), "producer: NUL"),
    ],
)
def test_bad_messages_are_undeliverable_with_a_reason(body: bytes, words: str) -> None:
    """Each way a message can be wrong names what was wrong."""
    with pytest.raises(Undeliverable, match=words):
        parse(STREAM, body)


def test_every_event_field_is_described() -> None:
    """Contracts document themselves: every data field has a description."""
    for spec in EVENTS.values():
        for name, field in spec.model.model_fields.items():
            assert field.description, f"{spec.type}.{name} has no description"


def test_topics_include_dead_letters_and_prefix() -> None:
    """Every event has a topic; the prefix isolates runs."""
    topics = all_topics("x.")
    assert "x.deadletter" in topics
    assert "x.vacancies.events" in topics
    assert len(topics) == len(PRODUCERS) + 1


def test_each_type_travels_on_its_producers_stream() -> None:
    """One stream per producer: a type published by vacancies is refused on the bank's."""
    assert {spec.type for spec in EVENTS.values() if spec.producer == "vacancies"} == {
        "session.posted",
        "session.amended",
        "session.cancelled",
        "session.unfilled",
        "timesheet.approved",
        "timesheet.queried",
    }
    with pytest.raises(Undeliverable, match="does not belong"):
        parse(stream_for("bank"), _body())


def test_ends_before_start_is_refused_in_contracts() -> None:
    """The contract itself refuses an inverted interval."""
    with pytest.raises(ValueError, match="after starts_at"):
        SessionPosted(**{**_posted().model_dump(), "ends_at": START - timedelta(hours=1)})
