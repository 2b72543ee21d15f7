"""The AsyncAPI catalogue covers every topic, documents every field, and is consistent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from fairshare.asyncapi import build_catalogue, write_catalogue
from shared.events.registry import EVENTS, all_topics


def _refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if isinstance(node.get("$ref"), str) else []
        return found + [r for v in node.values() for r in _refs(v)]
    if isinstance(node, list):
        return [r for v in node for r in _refs(v)]
    return []


def _resolve(doc: dict[str, Any], ref: str) -> Any:
    node: Any = doc
    for part in ref.removeprefix("#/").split("/"):
        node = node[part]
    return node


def test_every_topic_has_a_channel() -> None:
    """Each event topic and the dead-letter topic appears."""
    doc = build_catalogue()
    assert {c["address"] for c in doc["channels"].values()} == set(all_topics())


def test_every_ref_resolves() -> None:
    """No dangling $ref anywhere in the document."""
    doc = build_catalogue()
    refs = _refs(doc)
    assert refs
    for ref in refs:
        assert _resolve(doc, ref) is not None


def test_payloads_carry_field_descriptions() -> None:
    """The data model's own field descriptions reach the catalogue."""
    schemas = build_catalogue()["components"]["schemas"]
    for spec in EVENTS.values():
        props = schemas[spec.model.__name__]["properties"]
        for name, field in spec.model.model_fields.items():
            assert props[name].get("description") == field.description


def test_written_file_is_yaml_of_the_same_document(tmp_path: Path) -> None:
    """`fairshare asyncapi` writes what build_catalogue returns."""
    path = write_catalogue(tmp_path)
    assert yaml.safe_load(path.read_text()) == build_catalogue()


def test_committed_catalogue_is_current() -> None:
    """docs/asyncapi.yaml matches the code; run `fairshare asyncapi` after changing events."""
    committed = Path(__file__).resolve().parents[2] / "docs" / "asyncapi.yaml"
    assert yaml.safe_load(committed.read_text()) == build_catalogue()
