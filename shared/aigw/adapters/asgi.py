"""The ASGI shell: the local server, the Lambda Web Adapter (streaming) and Mangum run this.

Raw ASGI rather than a framework: the forwarding path is one dict lookup and two sends,
and a framework measured ~0.4 ms per request here for routing we do not need. It enforces
the size limits, maps unknown routes to 404 and wrong methods to 405, makes the request's
``RequestContext`` (with the Lambda invocation's deadline when Mangum passes one), turns any
error into the route's error format (an unexpected one is logged without request data and
answered 500 with no detail), and completes the context once the response is over.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from aigw.context import Completion, RequestContext, trace_id_from
from aigw.errors import (
    ErrorFormat,
    GatewayError,
    HeadersTooLarge,
    MethodNotAllowed,
    PayloadTooLarge,
    render_stream_error,
)
from aigw.gateway import Gateway
from aigw.request import GatewayRequest
from aigw.response import GatewayResponse, error_response
from aigw.routes import RouteSpec, RouteTable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("aigw")
# Time kept back from a Lambda invocation's remaining time to send the answer after the work.
DEADLINE_MARGIN_S = 0.5


def log_bug(where: str, exc: BaseException) -> None:
    """Log an unexpected error by type and code location only: its message may carry request data."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    place = f"{tb.tb_frame.f_code.co_filename}:{tb.tb_lineno}" if tb is not None else "?"
    log.error("unhandled %s in %s at %s", type(exc).__name__, where, place)


class _ClientGone(Exception):
    pass


def _headers(scope: Scope, limit: int) -> dict[str, str]:
    headers: dict[str, str] = {}
    total = 0
    for raw_name, raw_value in scope["headers"]:
        total += len(raw_name) + len(raw_value)
        if total > limit:
            raise HeadersTooLarge(f"request headers exceed {limit} bytes")
        name = raw_name.decode("latin-1").lower()
        value = raw_value.decode("latin-1")
        headers[name] = f"{headers[name]}, {value}" if name in headers else value
    return headers


async def _read_body(receive: Receive, headers: Mapping[str, str], limit: int) -> bytes:
    declared = headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body exceeds {limit} bytes")
    parts: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _ClientGone
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body exceeds {limit} bytes")
        parts.append(chunk)
        if not message.get("more_body", False):
            return b"".join(parts)


def _raw_headers(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    return [(k.encode("latin-1"), v.encode("latin-1", "replace")) for k, v in headers.items()]


async def _wait_gone(receive: Receive) -> None:
    while (await receive())["type"] != "http.disconnect":
        pass


def _deadline(scope: Scope) -> float | None:
    """The Lambda invocation's end (Mangum puts its context in the scope), less a margin."""
    context = scope.get("aws.context")
    remaining = getattr(context, "get_remaining_time_in_millis", None)
    if remaining is None:
        return None
    try:
        left_ms = float(remaining())
    except (TypeError, ValueError):
        return None
    return time.monotonic() + max(0.0, left_ms / 1000 - DEADLINE_MARGIN_S)


async def _send_stream(response: GatewayResponse, send: Send, gone: asyncio.Future[None] | None,
                       fmt: ErrorFormat) -> Completion:
    stream = response.stream
    assert stream is not None
    await send({"type": "http.response.start", "status": response.status, "headers": _raw_headers(response.headers)})
    how = Completion.SENT
    pending: asyncio.Future[bytes] | None = None
    try:
        while True:
            # Race each chunk against the client leaving: an abandoned stream releases its
            # upstream at once, not when the provider next sends something.
            pending = asyncio.ensure_future(stream.__anext__())
            if gone is not None:
                await asyncio.wait((pending, gone), return_when=asyncio.FIRST_COMPLETED)
                if not pending.done():
                    how = Completion.CLIENT_GONE
                    break
            try:
                chunk = pending.result() if pending.done() else await pending
            except StopAsyncIteration:
                pending = None
                break
            pending = None
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except Exception as exc:  # a bug in a transform: end the stream visibly, not silently
        log_bug("stream", exc)
        how = Completion.FAILED
        failed = render_stream_error(GatewayError("internal gateway error while streaming",
                                                  code="stream_interrupted"), fmt)
        await send({"type": "http.response.body", "body": failed, "more_body": True})
    finally:
        if pending is not None and not pending.done():
            # The generator is still running its read: cancel it and wait until it has stopped,
            # or closing it below fails ("asynchronous generator is already running").
            pending.cancel()
            await asyncio.wait((pending,))
        if pending is not None and pending.done() and not pending.cancelled():
            pending.exception()  # retrieved, so asyncio does not log it as never retrieved
        await stream.aclose()
    if how is not Completion.CLIENT_GONE:
        await send({"type": "http.response.body", "body": b""})
    return how


async def _send_response(response: GatewayResponse, send: Send, gone: asyncio.Future[None] | None,
                         fmt: ErrorFormat) -> Completion:
    if response.stream is not None:
        return await _send_stream(response, send, gone, fmt)
    headers = _raw_headers(response.headers)
    headers.append((b"content-length", str(len(response.body)).encode()))
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    await send({"type": "http.response.body", "body": response.body})
    return Completion.SENT


class GatewayApp:
    """An ASGI app over a ``RouteTable``, or over one fixed route (a per-route function)."""

    def __init__(self, routes: RouteTable | RouteSpec, gateway: Gateway | None = None) -> None:
        self.routes = routes
        # Settings are read here, at start-up, so a misconfiguration fails the start, not a request.
        self.gateway = gateway if gateway is not None else Gateway.from_env()

    def _route(self, method: str, path: str) -> tuple[RouteSpec, Mapping[str, str]]:
        routes = self.routes
        if isinstance(routes, RouteTable):
            return routes.resolve(method, path)
        # One function per route: API Gateway already routed by path; the method is still checked.
        if method != routes.method:
            raise MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {routes.method}")
        return routes, routes.match(path) or {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        if scope["type"] == "websocket":
            await send({"type": "websocket.close", "code": 1003})  # this gateway speaks HTTP only
            return
        if scope["type"] != "http":
            return
        gw = self.gateway
        gone: asyncio.Future[None] | None = None
        ctx: RequestContext | None = None
        fmt = ErrorFormat.OPENAI
        how = Completion.FAILED
        try:
            try:
                headers = _headers(scope, gw.settings.max_header_bytes)
                spec, params = self._route(scope["method"], scope["path"])
                fmt = spec.error_format
                body = await _read_body(receive, headers, gw.settings.max_body_bytes)
                request = GatewayRequest(scope["method"], scope["path"], headers, body,
                                         scope.get("query_string", b"").decode("latin-1"), params)
                ctx = RequestContext(request, trace_id_from(headers), fmt, _deadline(scope))
                response = await self._run(spec, ctx, gw, receive)
                if response is None:
                    how = Completion.CLIENT_GONE
                    return
                gone = self._gone
            except _ClientGone:
                how = Completion.CLIENT_GONE
                return
            except GatewayError as exc:
                response = error_response(exc, fmt)
            except Exception as exc:  # a bug: log its type and place only (never request data), answer 500
                log_bug(f"{scope.get('method')} {scope.get('path')}", exc)
                response = error_response(GatewayError("internal gateway error"), fmt)
            if ctx is not None:
                response.headers.setdefault("x-portkey-trace-id", ctx.trace_id)
                if ctx.status is None:
                    ctx.status = response.status
            how = await _send_response(response, send, gone, fmt)
        finally:
            if gone is not None:
                gone.cancel()
            if ctx is not None:
                ctx.complete(how)

    async def _run(self, spec: RouteSpec, ctx: RequestContext, gw: Gateway,
                   receive: Receive) -> GatewayResponse | None:
        """Run the handler; a client that leaves cancels the work (no retries, fallbacks or
        generations nobody will read). None: the client left. A callback, not a second task:
        this is the hot path."""
        gone = asyncio.ensure_future(_wait_gone(receive))
        self._gone: asyncio.Future[None] | None = gone
        working = asyncio.current_task()
        assert working is not None
        in_handler = True

        def cancel_work(_: object) -> None:
            if in_handler:
                working.cancel()

        gone.add_done_callback(cancel_work)
        try:
            return await spec.handler()(ctx, gw)
        except asyncio.CancelledError:
            if gone.done() and not gone.cancelled():
                # Our own cancellation, caught and not passed on: undo it, or the task stays
                # marked cancelled and a later `asyncio.timeout` in it would misfire.
                working.uncancel()
                gone.cancel()
                return None
            raise
        finally:
            in_handler = False
            gone.remove_done_callback(cancel_work)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
