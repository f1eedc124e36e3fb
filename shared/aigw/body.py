"""Decoding and sanity-checking request bodies: once, with orjson, no validation models."""

from __future__ import annotations

from typing import Any

import orjson

from aigw.errors import InvalidJSON, InvalidRequest


def decode_object(raw: bytes) -> dict[str, Any]:
    if not raw.strip():
        raise InvalidJSON("request body is empty; expected a JSON object")
    try:
        value = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        # orjson also refuses nesting deeper than 1024 levels here, without recursion.
        raise InvalidJSON(f"request body is not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        raise InvalidJSON(f"request body must be a JSON object, not {type(value).__name__}")
    return value


def _type_error(field: str, expected: str) -> InvalidRequest:
    return InvalidRequest(f"'{field}' must be {expected}", param=field, code="invalid_type")


def check_common(body: dict[str, Any]) -> None:
    model = body.get("model")
    if model is not None and not isinstance(model, str):
        raise _type_error("model", "a string")
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        raise _type_error("stream", "a boolean")


def check_chat(body: dict[str, Any]) -> None:
    check_common(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _type_error("messages", "a non-empty array of message objects")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            raise _type_error(f"messages[{i}]", "an object with a string 'role'")


def check_completions(body: dict[str, Any]) -> None:
    check_common(body)
    prompt = body.get("prompt")
    if not isinstance(prompt, (str, list)):
        raise _type_error("prompt", "a string or an array")


def check_embeddings(body: dict[str, Any]) -> None:
    check_common(body)
    if not isinstance(body.get("input"), (str, list)):
        raise _type_error("input", "a string or an array")
