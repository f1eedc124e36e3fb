"""Checks a Lambda HTTP event (payload 2.0: HTTP API, Function URL) that Mangum reads.

Mangum assumes a well-formed event: invalid base64, ``headers: null``, lone surrogates,
``rawQueryString: null``, a ``requestContext`` without ``http`` or a non-object event make it
raise before the gateway runs, and API Gateway then answers its own generic 500. This says
what is wrong so the shell can answer a 400 in the OpenAI error shape instead. Pure functions.

``misread_risk`` runs before every invocation and looks only for what Mangum would read
without failing but wrongly (header values no HTTP client can send, a string as
``isBase64Encoded``, cookies that are not a list); ``event_problem`` is the full check, run
when Mangum raised, to tell a bad event (400) from a bug (500). Keeping the per-invocation
check small saves ~25 000 instructions an invocation.
"""

from __future__ import annotations

import binascii
from collections.abc import Mapping
from typing import Any


def _utf8(value: str) -> bool:
    """Encodes as UTF-8: no lone surrogates, which JSON events may carry."""
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _joined(values: Any, sep: str) -> str | None:
    """``values`` joined when all are strings (a C-level check: this runs on every invocation)."""
    try:
        return sep.join(values)
    except TypeError:
        return None


def misread_risk(event: Any) -> str | None:
    """What Mangum would read wrongly without raising; None for a usual event (cheap)."""
    if not isinstance(event, Mapping):
        return "the event is not a JSON object"
    if event.get("version") != "2.0":
        return "only payload format 2.0 events are served (HTTP API, Function URL)"
    context = event.get("requestContext")
    http = context.get("http") if isinstance(context, Mapping) else None
    if not isinstance(http, Mapping):
        return "the event has no requestContext.http (not an HTTP API or Function URL event)"
    # Mangum passes method and path on unchecked, and error messages name them.
    line = _joined((http.get("method"), http.get("path")), " ")
    if line is None or not (line.isascii() or _utf8(line)):
        return "the method or path is missing or not a string"
    headers = event.get("headers", {})
    if not isinstance(headers, Mapping):
        return "headers is not an object"
    text = _joined((*headers.keys(), *headers.values()), "\t")
    if text is None or "\r" in text or "\n" in text or "\0" in text:
        return "a header name or value is not a string an HTTP client could send"
    encoded = event.get("isBase64Encoded", False)
    if not isinstance(encoded, bool):
        return "isBase64Encoded is not a boolean"
    if not isinstance(event.get("cookies", []), list):
        return "cookies is not a list of strings"
    body = event.get("body")
    if encoded and body and not _base64(body):  # Mangum decodes leniently: it would skip bad bytes
        return "body is not valid base64"
    return None


def _base64(body: Any) -> bool:
    from base64 import b64decode  # only for base64 bodies: not in every function's cold start

    try:
        b64decode(body, validate=True)
    except (binascii.Error, ValueError, TypeError):
        return False
    return True


def event_problem(event: Any) -> str | None:
    """None when Mangum can read ``event``, else what is wrong with it: ``misread_risk``'s checks,
    then what Mangum reads and may fail on (the source address, the query, valid Unicode)."""
    problem = misread_risk(event)
    if problem is not None:
        return problem
    http = event["requestContext"]["http"]
    request_line = _joined((http.get("sourceIp"), event.get("rawPath", ""), event.get("rawQueryString", "")), " ")
    if request_line is None or not _utf8(request_line):
        return "the source address, path or query is missing or not a string"
    headers = event.get("headers", {})
    if not _utf8("\t".join((*headers.keys(), *headers.values()))):
        return "a header name or value is not a string an HTTP client could send"
    jar = _joined(event.get("cookies", []), "; ")
    if jar is None or not _utf8(jar):
        return "cookies is not a list of strings"
    body = event.get("body")
    if body is not None and (not isinstance(body, str) or not _utf8(body)):
        return "body is not a string"
    return None
