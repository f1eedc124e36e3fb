"""Turns the attempt routing settled on into the client's response.

Success: the provider's body (transformed to OpenAI's shape where the provider needs it)
or its stream, chunk by chunk as it arrives. Failure: the provider's error in OpenAI's
error shape, naming the provider, with the provider's status. Keys are scrubbed from both.
A stream that breaks after its first byte ends with an SSE error event, never silently.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable

import orjson

from aigw.providers.base import ProviderError
from aigw.redact import scrub, scrub_headers, scrub_stream
from aigw.response import JSON_CT, SSE_CT, GatewayResponse
from aigw.routing.engine import Outcome
from aigw.upstream.attempt import UpstreamAttempt, UpstreamInvalidBody
from aigw.upstream.sse import sse_error_event
from aigw.upstream.transport import TransportError

_MAX_ERROR_TEXT = 512


def _error_fields(attempt: UpstreamAttempt, secrets: tuple[str | None, ...]) -> ProviderError:
    try:
        parsed = orjson.loads(attempt.body) if attempt.body else None
    except orjson.JSONDecodeError:
        parsed = None
    fields = attempt.provider.parse_error(parsed) if isinstance(parsed, dict) else None
    if fields is not None:
        return fields
    # Scrubbed before it is cut: a key straddling the cut would no longer match afterwards.
    text = scrub(attempt.body, secrets)[:_MAX_ERROR_TEXT].decode("utf-8", "replace").strip()
    return ProviderError(message=text or f"upstream returned status {attempt.status}")


def error_body(attempt: UpstreamAttempt, secrets: tuple[str | None, ...] = ()) -> dict[str, object]:
    name = attempt.provider.name
    if attempt.error is not None:
        body = attempt.error.to_body()
    else:
        f = _error_fields(attempt, secrets)
        body = {"error": {"message": f"{name} error: {f.message}", "type": f.type, "param": f.param, "code": f.code}}
    body["provider"] = name
    return body


async def _relay(attempt: UpstreamAttempt) -> AsyncIterator[bytes]:
    response = attempt.response
    assert response is not None
    endpoint = attempt.endpoint
    transformer = endpoint.stream(attempt.target, attempt.provider_body) if endpoint.stream else None
    try:
        chunk = attempt.first_chunk
        while chunk:
            if transformer is None:
                yield chunk
            else:
                for event in transformer.feed(chunk):
                    yield event
            chunk = await response.next_chunk()
        if transformer is not None:
            for event in transformer.close():
                yield event
    except TransportError as exc:
        yield sse_error_event(f"{attempt.provider.name} stream interrupted: {exc}")
    finally:
        response.close()
        attempt.response = None


def to_response(outcome: Outcome, base: dict[str, str], secrets: Iterable[str | None]) -> GatewayResponse:
    attempt = outcome.attempt
    assert isinstance(attempt, UpstreamAttempt)
    secrets = tuple(secrets)
    headers = scrub_headers(dict(attempt.headers), secrets)
    headers.update(base)
    headers["x-portkey-provider"] = attempt.provider.name
    headers["x-portkey-last-used-option-index"] = outcome.leaf.path
    headers["x-portkey-retry-attempt-count"] = str(outcome.retries)
    ok = 200 <= attempt.status < 300
    if ok and attempt.response is not None:
        headers["content-type"] = SSE_CT
        headers["cache-control"] = "no-cache"
        return GatewayResponse(attempt.status, headers, stream=scrub_stream(_relay(attempt), secrets))
    headers.setdefault("content-type", JSON_CT)
    if ok and attempt.endpoint.response is None:
        return GatewayResponse(attempt.status, headers, scrub(attempt.body, secrets))
    headers["content-type"] = JSON_CT
    if ok:
        try:
            parsed = orjson.loads(attempt.body)
        except orjson.JSONDecodeError:
            parsed = None
        if isinstance(parsed, dict):
            try:
                body = orjson.dumps(attempt.endpoint.response(parsed, attempt.target))
            except (TypeError, ValueError, KeyError, AttributeError, IndexError):
                pass  # a shape the transform cannot read: the provider's fault, a 502 below
            else:
                return GatewayResponse(attempt.status, headers, scrub(body, secrets))
        attempt.error = UpstreamInvalidBody(f"{attempt.provider.name} returned a body of an unexpected shape")
        return GatewayResponse(502, headers, scrub(orjson.dumps(error_body(attempt, secrets)), secrets))
    return GatewayResponse(attempt.status, headers, scrub(orjson.dumps(error_body(attempt, secrets)), secrets))
