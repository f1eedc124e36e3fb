"""Lambda events for tests: load a fixture from tests/events/ and set method, path, headers, body.

Fixtures are payload format 2.0 (API Gateway HTTP API, Lambda Function URL); see
tests/events/README.md for where they come from.
"""

from __future__ import annotations

import base64
import copy
import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

EVENTS_DIR = Path(__file__).resolve().parent.parent / "events"

# Route -> its HTTP API fixture.
HTTP_API_FIXTURES = {
    ("POST", "/v1/chat/completions"): "http-api-chat-completions",
    ("POST", "/v1/completions"): "http-api-completions",
    ("POST", "/v1/embeddings"): "http-api-embeddings",
    ("GET", "/v1/models"): "http-api-models",
    ("GET", "/v1/health"): "http-api-health",
    ("GET", "/"): "http-api-root",
}
FUNCTION_URL_FIXTURE = "function-url-chat-completions"


@cache
def _raw(name: str) -> str:
    return (EVENTS_DIR / f"{name}.json").read_text()


def load_event(name: str) -> dict[str, Any]:
    """A fresh copy of ``tests/events/<name>.json``."""
    return json.loads(_raw(name))


def with_request(
    event: dict[str, Any],
    *,
    method: str | None = None,
    path: str | None = None,
    headers: dict[str, str] | None = None,
    replace_headers: bool = False,
    body: bytes | str | dict[str, Any] | list[Any] | None = None,
    base64_body: bool = False,
    query: str | None = None,
) -> dict[str, Any]:
    """A copy of ``event`` with the request changed (payload 2.0).

    ``headers`` are merged (names lower-cased, as API Gateway and Function URLs deliver them)
    unless ``replace_headers``. ``body``: a dict/list is JSON-encoded; ``b""``/``""`` removes it;
    ``base64_body`` sends it base64-encoded with ``isBase64Encoded: true``. content-length follows.
    """
    ev = copy.deepcopy(event)
    http = ev["requestContext"]["http"]
    if method is not None:
        http["method"] = method.upper()
    if path is not None:
        ev["rawPath"] = http["path"] = path
    if ev.get("routeKey", "$default") != "$default":
        ev["routeKey"] = ev["requestContext"]["routeKey"] = f"{http['method']} {ev['rawPath']}"
    if query is not None:
        ev["rawQueryString"] = query
    if headers is not None:
        lowered = {k.lower(): v for k, v in headers.items()}
        ev["headers"] = lowered if replace_headers else {**ev.get("headers", {}), **lowered}
    if body is not None or base64_body:
        if body is None:  # re-encode the fixture's own body
            current = ev.get("body") or ""
            raw = base64.b64decode(current) if ev.get("isBase64Encoded") else current.encode()
        else:
            raw = _encode_body(body)
        ev.pop("body", None)
        ev["isBase64Encoded"] = False
        ev["headers"].pop("content-length", None)
        if raw:
            ev["body"] = base64.b64encode(raw).decode() if base64_body else raw.decode("utf-8")
            ev["isBase64Encoded"] = base64_body
            ev["headers"]["content-length"] = str(len(raw))
    return ev


def _encode_body(body: bytes | str | dict[str, Any] | list[Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode()
    return json.dumps(body, separators=(",", ":")).encode()


def http_api_event(method: str, path: str, **changes: Any) -> dict[str, Any]:
    """The HTTP API fixture for a route (``GET /v1/health`` ...), with ``changes`` (see with_request)."""
    return with_request(load_event(HTTP_API_FIXTURES[(method.upper(), path)]), **changes)


def function_url_event(method: str = "POST", path: str = "/v1/chat/completions", **changes: Any) -> dict[str, Any]:
    """The Function URL fixture with method/path set and ``changes`` (see with_request).

    A GET drops the fixture's body unless ``body`` is given.
    """
    ev = load_event(FUNCTION_URL_FIXTURE)
    if method.upper() == "GET" and "body" not in changes:
        changes["body"] = b""
    return with_request(ev, method=method, path=path, **changes)


@dataclass
class LambdaResult:
    """A handler's answer to a payload 2.0 event, body decoded."""

    status: int
    headers: dict[str, str]
    body: bytes
    raw: dict[str, Any] = field(repr=False)

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")


def parse_result(result: dict[str, Any] | str | bytes) -> LambdaResult:
    """Read a payload 2.0 response (``statusCode``, ``headers``, ``body``, ``isBase64Encoded``)."""
    if isinstance(result, (str, bytes)):
        result = json.loads(result)
    assert isinstance(result, dict) and "statusCode" in result, f"not an HTTP response: {result!r}"[:500]
    body = result.get("body") or ""
    raw = base64.b64decode(body) if result.get("isBase64Encoded") else body.encode("utf-8")
    headers = {k.lower(): v for k, v in (result.get("headers") or {}).items()}
    return LambdaResult(int(result["statusCode"]), headers, raw, result)


class FakeContext:
    """The few LambdaContext attributes handlers may read, for in-process invocations."""

    function_name = "aigw-test"
    function_version = "$LATEST"
    invoked_function_arn = "arn:aws:lambda:us-east-1:123456789012:function:aigw-test"
    memory_limit_in_mb = 512
    aws_request_id = "00000000-0000-0000-0000-000000000000"
    log_group_name = "/aws/lambda/aigw-test"
    log_stream_name = "test"

    def get_remaining_time_in_millis(self) -> int:
        return 60_000
