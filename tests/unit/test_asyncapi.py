"""The AsyncAPI catalogue covers every topic, documents every field, and is consistent."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from fairshare.asyncapi import CONSUMERS, build_catalogue, write_catalogue
from services.bank import handlers as bank
from services.matching import handlers as matching
from services.monitor import handlers as monitor
from services.vacancies import handlers as vacancies
from shared.events.envelope import Envelope
from shared.events.registry import DEAD_LETTER, EVENTS, all_topics
from shared.messaging.emitter import Emitter


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), f"{ref} points outside the document"
    node: Any = doc
    for token in ref.removeprefix("#/").split("/"):
        part = token.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict), f"{ref}: {part} is not under an object"
        assert part in node, f"{ref}: no {part}"
        node = node[part]
    return node


def _deref(doc: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    """Follow ``$ref`` (directly or through a one-item ``allOf``) to the schema itself."""
    while True:
        if "$ref" in node:
            node = _resolve(doc, node["$ref"])
        elif len(node.get("allOf", [])) == 1:
            node = node["allOf"][0]
        else:
            return node


def _channel_for(doc: dict[str, Any], topic: str) -> dict[str, Any]:
    [channel] = [c for c in doc["channels"].values() if c["address"] == topic]
    return channel  # type: ignore[no-any-return]


def _payload(doc: dict[str, Any], topic: str) -> dict[str, Any]:
    [message] = _channel_for(doc, topic)["messages"].values()
    return _deref(doc, _deref(doc, message)["payload"])


def _descriptions(model: type[BaseModel]) -> dict[str, str | None]:
    return {name: field.description for name, field in model.model_fields.items()}


def test_every_topic_has_a_channel() -> None:
    """Each topic of all_topics() (events and dead letters) has exactly one channel."""
    doc = build_catalogue()
    addresses = [c["address"] for c in doc["channels"].values()]
    assert sorted(addresses) == sorted(all_topics())


def test_every_ref_resolves() -> None:
    """Every $ref anywhere in the document points at something inside the document."""
    doc = build_catalogue()
    refs = _refs(doc)
    assert len(refs) > len(all_topics())
    for ref in refs:
        assert _resolve(doc, ref) is not None


def test_payloads_carry_field_descriptions() -> None:
    """Each topic's payload is the envelope, with the data model's field descriptions."""
    doc = build_catalogue()
    envelope_fields = _descriptions(Envelope)
    for spec in EVENTS.values():
        payload = _payload(doc, spec.type)
        props = payload["properties"]
        assert {n: p.get("description") for n, p in props.items()} == envelope_fields
        data = _deref(doc, props["data"])
        assert {n: p.get("description") for n, p in data["properties"].items()} == (
            _descriptions(spec.model)
        ), spec.type


def test_payloads_pin_type_and_schema_version() -> None:
    """Each payload schema states its event type and schema version, as consumers require."""
    doc = build_catalogue()
    for spec in EVENTS.values():
        props = _payload(doc, spec.type)["properties"]
        assert props["type"]["const"] == spec.type
        assert props["schema_version"]["const"] == spec.version


def test_senders_and_receivers_match_the_registry() -> None:
    """The producer sends, the listed consumers receive, and nobody receives dead letters."""
    doc = build_catalogue()
    by_channel: dict[str, set[tuple[str, str]]] = {}
    for operation in doc["operations"].values():
        address = _resolve(doc, operation["channel"]["$ref"])["address"]
        service = operation["tags"][0]["name"]
        by_channel.setdefault(address, set()).add((operation["action"], service))
    for spec in EVENTS.values():
        expected = {("send", spec.producer)} | {("receive", c) for c in CONSUMERS[spec.type]}
        assert by_channel[spec.type] == expected, spec.type
    assert {action for action, _ in by_channel[DEAD_LETTER]} == {"send"}


def test_consumers_table_matches_the_services_handlers() -> None:
    """CONSUMERS names, for every event type, exactly the services that handle it."""
    handled = {
        "bank": bank.handlers(),
        "matching": matching.handlers(Emitter(producer="matching", schema="matching")),
        "monitor": monitor.handlers(),
        "vacancies": vacancies.handlers(timedelta(hours=25)),
    }
    actual = {
        event_type: {service for service, table in handled.items() if event_type in table}
        for event_type in EVENTS
    }
    assert {t: set(CONSUMERS.get(t, ())) for t in EVENTS} == actual


def test_no_schema_keeps_siblings_beside_a_ref() -> None:
    """Descriptions next to a $ref would be ignored under JSON Schema draft 7."""
    doc = build_catalogue()

    def check(node: Any) -> None:
        if isinstance(node, dict):
            assert "$ref" not in node or len(node) == 1, node
            for value in node.values():
                check(value)
        elif isinstance(node, list):
            for value in node:
                check(value)

    check(doc)


def test_written_file_is_yaml_of_the_same_document(tmp_path: Path) -> None:
    """write_catalogue writes what build_catalogue returns, without YAML aliases."""
    path = write_catalogue(tmp_path)
    text = path.read_text(encoding="utf-8")
    assert path == tmp_path / "asyncapi.yaml"
    assert "*id0" not in text
    assert yaml.safe_load(text) == build_catalogue()


def test_committed_catalogue_is_current() -> None:
    """docs/asyncapi.yaml matches the code; run `fairshare asyncapi` after changing events."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
    assert yaml.safe_load(committed.read_text(encoding="utf-8")) == build_catalogue()
