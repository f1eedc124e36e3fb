"""What Lambda imposes on a request, for the shells that run there: a deadline and a size.

- The deadline: the invocation's remaining time (Mangum passes the Lambda context in the ASGI
  scope; the Lambda Web Adapter passes it as a header), and behind API Gateway its 30 s, less
  a margin to send the answer. Work past it is billed and read by nobody.
- The size: a synchronous invocation answers at most 6 MB (the whole result JSON), so a shell
  delivering whole answers collects a stream first and turns a larger answer into a clean 502
  that points to the streaming URL, recorded in the request's context as the client gets it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from aigw.aclose import aclose
from aigw.adapters.bugs import log_bug, stream_bug_event
from aigw.context import RequestContext
from aigw.errors import ResponseTooLarge
from aigw.response import MAX_PROVIDER_HEADER_BYTES, GatewayResponse, error_response

# Kept back from the invocation's remaining time to send the answer after the work.
DEADLINE_MARGIN_S = 0.5
# API Gateway's HTTP API ends a request after 30 s (its hard integration limit, answered 503).
HTTP_API_TIMEOUT_S = 30.0
LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"
# Headers of an answer: the provider's (bounded) and the gateway's own, escaped at most twice over.
_HEADER_ALLOWANCE = 2 * MAX_PROVIDER_HEADER_BYTES + 4096
_CONTROL_BYTES = bytes(range(32))


def invocation_deadline(scope: Mapping[str, Any]) -> float | None:
    """When the work must be over (monotonic seconds), from what Mangum puts in the scope; None
    off Lambda."""
    context = scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        left_s = float(remaining()) / 1000
    except (TypeError, ValueError):
        return None
    event = scope.get("aws.event")
    request_context = event.get("requestContext") if isinstance(event, Mapping) else None
    if isinstance(request_context, Mapping) and "lambda-url" not in str(request_context.get("domainName", "")):
        left_s = min(left_s, HTTP_API_TIMEOUT_S)  # behind API Gateway (a Function URL has no such limit)
    return time.monotonic() + max(0.0, left_s - DEADLINE_MARGIN_S)


def adapter_deadline(headers: Mapping[str, str]) -> float | None:
    """Behind the Lambda Web Adapter (the streaming function) the invocation's context arrives as
    a JSON header; its ``deadline`` is the invocation's end in epoch milliseconds. (A client
    cannot use it to get more time than the function's own timeout, which Lambda enforces.)"""
    raw = headers.get(LAMBDA_CONTEXT_HEADER)
    if not raw:
        return None
    try:
        context = orjson.loads(raw)
        deadline_ms = float(context.get("deadline") or context.get("deadline_ms"))
    except (orjson.JSONDecodeError, AttributeError, TypeError, ValueError):
        return None
    left_s = deadline_ms / 1000 - time.time()
    return time.monotonic() + max(0.0, left_s - DEADLINE_MARGIN_S)


def too_large() -> ResponseTooLarge:
    return ResponseTooLarge("the answer is larger than Lambda's 6 MB response limit; use the streaming "
                            "Function URL for large answers")


async def whole_within(response: GatewayResponse, limit: int, ctx: RequestContext) -> GatewayResponse:
    """``response`` as one body of at most ``limit`` bytes in the Lambda result, or a 502."""
    if response.stream is None and len(response.body) * 6 + _HEADER_ALLOWANCE <= limit:
        return response  # cannot reach the limit even fully escaped: the usual case costs nothing
    too_big = False
    stream = response.stream
    if stream is not None:
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    too_big = True
                    break
                parts.append(chunk)
        except Exception as exc:  # a bug in a transform: the collected stream ends visibly
            log_bug("stream", exc)
            ctx.stream_broken = True
            parts.append(stream_bug_event(ctx.error_format))
        finally:
            await aclose(stream)
        response = GatewayResponse(response.status, response.headers, b"".join(parts))
    if too_big or not _fits(response, limit):
        error = too_large()
        ctx.error = error
        headers = {k: v for k, v in response.headers.items() if k.startswith("x-portkey-")}
        return error_response(error, ctx.error_format, headers)
    return response


def _fits(response: GatewayResponse, limit: int) -> bool:
    """Whether the response fits in ``limit`` bytes as the Lambda result JSON carries it (quotes,
    backslashes and control characters of the body are escaped there, at most 6 bytes each)."""
    body = response.body
    overhead = sum(len(k) + len(v) + 6 for k, v in response.headers.items()) + 128
    if len(body) * 6 + overhead <= limit:
        return True
    controls = len(body) - len(body.translate(None, _CONTROL_BYTES))
    return len(body) + body.count(b'"') + body.count(b"\\") + 5 * controls + overhead <= limit
