"""Checks a Lambda HTTP event (payload 2.0: HTTP API, Function URL) before Mangum reads it.

Mangum assumes a well-formed event: invalid base64, ``headers: null``, lone surrogates,
``rawQueryString: null``, a ``requestContext`` without ``http`` or a non-object event make it
raise before the gateway runs, and API Gateway then answers its own generic 500. This says
what is wrong so the shell can answer a 400 in the OpenAI error shape instead. Pure function.
"""

from __future__ import annotations

import binascii
from base64 import b64decode
from collections.abc import Mapping
from typing import Any

_NOT_IN_HEADERS = frozenset("\r\n\0")


def _header_text(value: Any) -> bool:
    """What an HTTP client can send as a header: no line breaks or NUL (a JSON event can hold them)."""
    return _text(value) and not _NOT_IN_HEADERS.intersection(value)


def _text(value: Any) -> bool:
    """A str that encodes as UTF-8 (no lone surrogates, which JSON events may carry)."""
    if not isinstance(value, str):
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def event_problem(event: Any) -> str | None:
    """None when Mangum can read ``event``, else what is wrong with it."""
    if not isinstance(event, Mapping):
        return "the event is not a JSON object"
    if event.get("version") != "2.0":
        return "only payload format 2.0 events are served (HTTP API, Function URL)"
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    if not isinstance(http, Mapping):
        return "the event has no requestContext.http (not an HTTP API or Function URL event)"
    for key in ("method", "path", "sourceIp"):  # Mangum reads all three
        if not _text(http.get(key)):
            return f"requestContext.http.{key} is missing or not a string"
    headers = event.get("headers", {})
    if headers is None or not isinstance(headers, Mapping):
        return "headers is not an object"
    if not all(_header_text(k) and _header_text(v) for k, v in headers.items()):
        return "a header name or value is not a string an HTTP client could send"
    for key in ("rawQueryString", "rawPath"):
        if key in event and not _text(event[key]):
            return f"{key} is not a string"
    cookies = event.get("cookies", [])
    if not isinstance(cookies, list) or not all(_text(c) for c in cookies):
        return "cookies is not a list of strings"
    body = event.get("body")
    if body is not None and not _text(body):
        return "body is not a string"
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        return "isBase64Encoded is not a boolean"
    if encoded and body:
        try:
            b64decode(body, validate=True)
        except (binascii.Error, ValueError):
            return "body is not valid base64"
    return None
