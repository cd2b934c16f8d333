"""Every operation of the OpenAPI document shows realistic examples that its schemas accept:
each parameter, each request body and each successful JSON response."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from functools import cache
from typing import Any

import pytest
from jsonschema import Draft202012Validator, FormatChecker

from core.settings import Settings
from serve.app import create_api
from serve.fields import INSTRUMENT_PATTERN
from serve.resources import Resources

Json = dict[str, Any]

_BODY_TYPES = ("application/json", "application/x-www-form-urlencoded")
_REF_PREFIX = "#/components/schemas/"
_SUBSCHEMA_LISTS = ("anyOf", "oneOf", "allOf", "prefixItems")
_SUBSCHEMAS = ("items", "additionalProperties", "not")

_FORMATS = FormatChecker()


@_FORMATS.checks("date-time", raises=ValueError)
def _rfc3339(instance: object) -> bool:
    return not isinstance(instance, str) or datetime.fromisoformat(instance).tzinfo is not None


@cache
def _document() -> Json:
    settings = Settings(
        environment="development",
        redis_url="redis://127.0.0.1:1",
        database_url="postgresql://u:p@127.0.0.1:1/db",
        mlflow_tracking_uri="http://127.0.0.1:1",
    )
    return create_api(Resources(settings)).openapi()


def _operations() -> list[tuple[str, Json]]:
    return [
        (f"{method.upper()} {path}", operation)
        for path, methods in _document()["paths"].items()
        for method, operation in methods.items()
    ]


def _component(ref: str) -> tuple[str, Json]:
    name = ref.removeprefix(_REF_PREFIX)
    return name, _document()["components"]["schemas"][name]


def _own_examples(node: Json) -> list[Any]:
    found = list(node.get("examples") or [])
    return found + ([node["example"]] if "example" in node else [])


def _has_examples(schema: Json, seen: frozenset[str] = frozenset()) -> bool:
    """Examples on the schema (or what it refers to), or on every part of it."""
    if _own_examples(schema):
        return True
    if "$ref" in schema:
        name, component = _component(schema["$ref"])
        return name not in seen and _has_examples(component, seen | {name})
    variants = [s for s in schema.get("anyOf", schema.get("oneOf", [])) if s != {"type": "null"}]
    if variants:
        return all(_has_examples(s, seen) for s in variants)
    if schema.get("type") == "array" and "items" in schema:
        return _has_examples(schema["items"], seen)
    properties = schema.get("properties")
    return bool(properties) and all(_has_examples(p, seen) for p in properties.values())


def _example_sites(schema: Json, seen: set[str] | None = None) -> Iterator[tuple[Json, Any]]:
    """(schema, example) for every example written in ``schema`` and the schemas it uses."""
    seen = set() if seen is None else seen
    if "$ref" in schema:
        name, component = _component(schema["$ref"])
        if name not in seen:
            seen.add(name)
            yield from _example_sites(component, seen)
    for example in _own_examples(schema):
        yield schema, example
    for value in schema.get("properties", {}).values():
        yield from _example_sites(value, seen)
    for key in _SUBSCHEMA_LISTS:
        for value in schema.get(key, []):
            yield from _example_sites(value, seen)
    for key in _SUBSCHEMAS:
        if isinstance(schema.get(key), dict):
            yield from _example_sites(schema[key], seen)


def _media_examples(media: Json) -> list[Any]:
    named = [example["value"] for example in (media.get("examples") or {}).values()]
    return named + ([media["example"]] if "example" in media else [])


def _parameter_examples(parameter: Json) -> list[Any]:
    return _media_examples(parameter) + _own_examples(parameter["schema"])


def _problems(schema: Json, example: Any) -> list[str]:
    # The components ride along so that the document's "#/components/schemas/..." refs resolve.
    root = {**schema, "components": _document()["components"]}
    validator = Draft202012Validator(root, format_checker=_FORMATS)
    problems = [f"{example!r}: {error.message}" for error in validator.iter_errors(example)]
    return problems + [f"{example!r}: {i!r} is no instrument id" for i in _instruments(example)]


def _instruments(example: Any) -> Iterator[str]:
    """Instrument ids in an example that do not look like ``venue:SYMBOL``."""
    if isinstance(example, list):
        for value in example:
            yield from _instruments(value)
    elif isinstance(example, dict):
        for key, value in example.items():
            if key in ("instrument", "instruments"):
                ids = value if isinstance(value, list) else [value]
                yield from (
                    i for i in ids if isinstance(i, str) and not re.match(INSTRUMENT_PATTERN, i)
                )
            yield from _instruments(value)


def _assert_valid(label: str, schema: Json, examples: list[Any]) -> None:
    """``examples`` (given beside ``schema``) and those inside it all satisfy their schemas."""
    for site, example in [(schema, e) for e in examples] + list(_example_sites(schema)):
        assert not (problems := _problems(site, example)), f"{label}: {problems}"


def _successes(operation: Json) -> Iterator[tuple[str, Json]]:
    """(status, JSON media) of each successful response that has a model."""
    for status, response in operation["responses"].items():
        media = response.get("content", {}).get("application/json", {})
        if status.startswith("2") and media.get("schema"):
            yield status, media


def _body(operation: Json) -> tuple[str, Json] | None:
    content = operation.get("requestBody", {}).get("content", {})
    return next(((kind, content[kind]) for kind in _BODY_TYPES if kind in content), None)


OPERATIONS = _operations()
NAMES = [name for name, _ in OPERATIONS]


def test_the_document_has_operations() -> None:
    assert len(OPERATIONS) > 30


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=NAMES)
def test_every_parameter_has_valid_examples(name: str, operation: Json) -> None:
    for parameter in operation.get("parameters", []):
        label = f"{name}: {parameter['in']} parameter {parameter['name']}"
        assert _parameter_examples(parameter), f"{label} has no example"
        _assert_valid(label, parameter["schema"], _media_examples(parameter))


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=NAMES)
def test_every_request_body_has_valid_examples(name: str, operation: Json) -> None:
    body = _body(operation)
    if body is None:
        return
    kind, media = body
    label = f"{name}: {kind} request body"
    assert _media_examples(media) or _has_examples(media["schema"]), f"{label} has no examples"
    _assert_valid(label, media["schema"], _media_examples(media))


@pytest.mark.parametrize(("name", "operation"), OPERATIONS, ids=NAMES)
def test_every_json_response_has_valid_examples(name: str, operation: Json) -> None:
    for status, media in _successes(operation):
        label = f"{name}: {status} response"
        assert _media_examples(media) or _has_examples(media["schema"]), f"{label} has no examples"
        _assert_valid(label, media["schema"], _media_examples(media))
