"""The ASGI shell: the local server, the Lambda Web Adapter (streaming) and Mangum run this.

Raw ASGI rather than a framework: the forwarding path is one dict lookup and two sends,
and a framework measured ~0.4 ms per request here for routing we do not need. It enforces
the size limits, maps unknown routes to 404 and wrong methods to 405, and turns any error
into the OpenAI error shape (an unexpected one is logged without request data and
answered 500 with no detail).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from aigw.errors import GatewayError, HeadersTooLarge, MethodNotAllowed, NotFound, PayloadTooLarge
from aigw.gateway import Gateway
from aigw.request import GatewayRequest
from aigw.response import GatewayResponse, error_response
from aigw.upstream.sse import sse_error_event

Endpoint = Callable[[GatewayRequest, Gateway], Awaitable[GatewayResponse]]
Scope = dict[str, Any]
Receive = Callable[[], Awaitable[dict[str, Any]]]
Send = Callable[[dict[str, Any]], Awaitable[None]]

log = logging.getLogger("aigw")


def _log_bug(where: str, exc: BaseException) -> None:
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


async def _send_response(response: GatewayResponse, send: Send, gone: asyncio.Future[None] | None) -> None:
    headers = _raw_headers(response.headers)
    if response.stream is None:
        headers.append((b"content-length", str(len(response.body)).encode()))
        await send({"type": "http.response.start", "status": response.status, "headers": headers})
        await send({"type": "http.response.body", "body": response.body})
        return
    await send({"type": "http.response.start", "status": response.status, "headers": headers})
    stream = response.stream
    chunks = stream.__aiter__()
    left = False
    try:
        while True:
            # Race each chunk against the client leaving: an abandoned stream releases its
            # upstream at once, not when the provider next sends something.
            pending = asyncio.ensure_future(chunks.__anext__())
            if gone is not None:
                await asyncio.wait((pending, gone), return_when=asyncio.FIRST_COMPLETED)
                if not pending.done():
                    pending.cancel()
                    left = True
                    break
            try:
                chunk = await pending
            except StopAsyncIteration:
                break
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except Exception as exc:  # a bug in a transform: end the stream visibly, not silently
        _log_bug("stream", exc)
        failed = sse_error_event("internal gateway error while streaming")
        await send({"type": "http.response.body", "body": failed, "more_body": True})
    finally:
        aclose = getattr(stream, "aclose", None)
        if aclose is not None:
            await aclose()
    if not left:
        await send({"type": "http.response.body", "body": b""})


class GatewayApp:
    """An ASGI app over a route table ``{path: {method: endpoint}}``."""

    def __init__(self, routes: Mapping[str, Mapping[str, Endpoint]], gateway: Gateway | None = None,
                 *, fixed: Endpoint | None = None) -> None:
        self.routes = routes
        # A single-route function (behind API Gateway, which already routed) uses `fixed`.
        self.fixed = fixed
        # Settings are read here, at start-up, so a misconfiguration fails the start, not a request.
        self.gateway = gateway if gateway is not None else Gateway.from_env()

    def _endpoint(self, method: str, path: str) -> Endpoint:
        if self.fixed is not None:
            return self.fixed
        by_method = self.routes.get(path.rstrip("/") or "/")
        if by_method is None:
            raise NotFound(f"no route for {method} {path}")
        endpoint = by_method.get(method)
        if endpoint is None:
            raise MethodNotAllowed(f"{method} is not allowed on {path}; allowed: {', '.join(sorted(by_method))}")
        return endpoint

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
        try:
            try:
                headers = _headers(scope, gw.settings.max_header_bytes)
                endpoint = self._endpoint(scope["method"], scope["path"])
                body = await _read_body(receive, headers, gw.settings.max_body_bytes)
                request = GatewayRequest(
                    scope["method"], scope["path"], headers, body, scope.get("query_string", b"").decode("latin-1")
                )
                # A client that leaves cancels the work: no retries, fallbacks or generations
                # that nobody will read. (A callback, not a second task: this is the hot path.)
                gone = asyncio.ensure_future(_wait_gone(receive))
                working = asyncio.current_task()
                assert working is not None
                in_endpoint = [True]

                def cancel_work(_: object) -> None:
                    if in_endpoint[0]:
                        working.cancel()

                gone.add_done_callback(cancel_work)
                try:
                    response = await endpoint(request, gw)
                except asyncio.CancelledError:
                    if gone.done() and not gone.cancelled():
                        return  # the client left
                    raise
                finally:
                    in_endpoint[0] = False
                    gone.remove_done_callback(cancel_work)
            except _ClientGone:
                return
            except GatewayError as exc:
                response = error_response(exc)
            except Exception as exc:  # a bug: log its type and place only (never request data), answer 500
                _log_bug(f"{scope.get('method')} {scope.get('path')}", exc)
                response = error_response(GatewayError("internal gateway error"))
            await _send_response(response, send, gone)
        finally:
            if gone is not None:
                gone.cancel()

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
