"""The ASGI shell: the local server, the Lambda Web Adapter (streaming) and Mangum run this.

Raw ASGI rather than a framework: the forwarding path is one dict lookup and two sends,
and a framework measured ~0.4 ms per request here for routing we do not need. It enforces
the size limits, maps unknown routes to 404 and wrong methods to 405, makes the request's
``RequestContext`` (with the Lambda invocation's deadline: ``lambda_limits``), turns any
error into the route's error format (an unexpected one is logged without request data and
answered 500 with no detail), and completes the context once the response is over.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, MutableMapping
from typing import Any

from aigw.aclose import aclose
from aigw.adapters.bugs import log_bug, stream_bug_event
from aigw.adapters.lambda_limits import adapter_deadline, invocation_deadline, whole_within
from aigw.context import Completion, RequestContext, new_trace_id, trace_id_from
from aigw.errors import (
    ErrorFormat,
    GatewayError,
    HeadersTooLarge,
    MethodNotAllowed,
    PayloadTooLarge,
)
from aigw.gateway import Gateway
from aigw.request import GatewayRequest
from aigw.response import GatewayResponse, error_response
from aigw.routes import RouteSpec, RouteTable

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]


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


async def _send_stream(response: GatewayResponse, send: Send, gone: asyncio.Future[None] | None,
                       fmt: ErrorFormat) -> Completion:
    """Relay a stream chunk by chunk. A client that leaves cancels this task through a callback
    (an abandoned stream releases its upstream at once, not when the provider next sends
    something): no task or ``asyncio.wait`` per chunk, which cost ~200 000 instructions each. A
    bug in a transform ends the stream with an error event, never silently."""
    stream = response.stream
    assert stream is not None
    await send({"type": "http.response.start", "status": response.status, "headers": _raw_headers(response.headers)})
    task = asyncio.current_task()
    assert task is not None
    streaming = True

    def client_left(_: object) -> None:
        if streaming:
            task.cancel()

    if gone is not None:
        gone.add_done_callback(client_left)
    how = Completion.SENT
    try:
        async for chunk in stream:
            await send({"type": "http.response.body", "body": chunk, "more_body": True})
    except asyncio.CancelledError:
        if gone is None or not gone.done() or gone.cancelled():
            raise
        task.uncancel()  # our own cancellation, taken back: the client left
        how = Completion.CLIENT_GONE
    except Exception as exc:
        log_bug("stream", exc)
        how = Completion.FAILED
        await send({"type": "http.response.body", "body": stream_bug_event(fmt), "more_body": True})
    finally:
        streaming = False
        if gone is not None:
            gone.remove_done_callback(client_left)
        await aclose(stream)
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
    """An ASGI app over a ``RouteTable``, or over one fixed route (a per-route function).

    ``buffer_limit``: the shell delivers whole answers of at most this size (Lambda behind API
    Gateway): streams are collected first, and a larger answer becomes a 502.
    ``adapter_deadline``: the shell runs behind the Lambda Web Adapter, which passes the
    invocation's deadline in a header.
    ``watch_client``: the server reports a client leaving mid-request (uvicorn does; Mangum
    cannot, so watching costs a task per invocation for nothing there).
    """

    def __init__(self, routes: RouteTable | RouteSpec, gateway: Gateway, *, buffer_limit: int | None = None,
                 adapter_deadline: bool = False, watch_client: bool = True) -> None:
        self.routes = routes
        self.gateway = gateway
        self.buffer_limit = buffer_limit
        self.adapter_deadline = adapter_deadline
        self.watch_client = watch_client

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
        # Made first, so every request (a 404, a 431, a client leaving mid-body) completes one.
        # The trace id is the client's, read with the headers; a fresh one only if it never gets there.
        ctx = RequestContext(GatewayRequest(scope["method"], scope["path"], {}), "",
                             deadline=invocation_deadline(scope))
        for callback in gw.completion_callbacks:
            ctx.on_complete(callback)
        gone: asyncio.Future[None] | None = None
        how = Completion.FAILED
        try:
            try:
                response, gone = await self._serve(ctx, scope, receive)
            except _ClientGone:
                how = Completion.CLIENT_GONE
                return
            except GatewayError as exc:
                ctx.error, response = exc, error_response(exc, ctx.error_format)
            except Exception as exc:  # a bug: log its type and place only (never request data), answer 500
                log_bug(f"{scope.get('method')} {scope.get('path')}", exc)
                ctx.error = GatewayError("internal gateway error")
                response = error_response(ctx.error, ctx.error_format)
            if response is None:
                how = Completion.CLIENT_GONE
                return
            if not ctx.trace_id:
                ctx.trace_id = new_trace_id()
            response.headers.setdefault("x-portkey-trace-id", ctx.trace_id)
            if self.buffer_limit is not None:
                response = await whole_within(response, self.buffer_limit, ctx)
            ctx.status = response.status
            how = await _send_response(response, send, gone, ctx.error_format)
        finally:
            if gone is not None:
                gone.cancel()
            if not ctx.trace_id:
                ctx.trace_id = new_trace_id()
            ctx.complete(how)

    async def _serve(self, ctx: RequestContext, scope: Scope,
                     receive: Receive) -> tuple[GatewayResponse | None, asyncio.Future[None] | None]:
        settings = self.gateway.settings
        request = ctx.request
        request.headers = _headers(scope, settings.max_header_bytes)
        if self.adapter_deadline and ctx.deadline is None:
            ctx.deadline = adapter_deadline(request.headers)
        spec, request.path_params = self._route(scope["method"], scope["path"])
        ctx.error_format = spec.error_format
        ctx.trace_id = trace_id_from(request.headers)
        request.body = await _read_body(receive, request.headers, settings.max_body_bytes)
        request.query = scope.get("query_string", b"").decode("latin-1")
        return await self._run(spec, ctx, receive)

    async def _run(self, spec: RouteSpec, ctx: RequestContext,
                   receive: Receive) -> tuple[GatewayResponse | None, asyncio.Future[None] | None]:
        """Run the handler; a client that leaves cancels the work (no retries, fallbacks or
        generations nobody will read). A callback, not a second task: this is the hot path.
        Returns the response (None: the client left) and the future that tells the client left,
        which the sending of a stream watches next."""
        if not self.watch_client:
            return await spec.handler()(ctx, self.gateway), None
        gone = asyncio.ensure_future(_wait_gone(receive))
        working = asyncio.current_task()
        assert working is not None
        in_handler = True

        def cancel_work(_: object) -> None:
            if in_handler:
                working.cancel()

        gone.add_done_callback(cancel_work)
        try:
            return await spec.handler()(ctx, self.gateway), gone
        except asyncio.CancelledError:
            if gone.done() and not gone.cancelled():
                # Our own cancellation, caught and not passed on: undo it, or the task stays
                # marked cancelled and a later `asyncio.timeout` in it would misfire.
                working.uncancel()
                return None, None
            gone.cancel()
            raise
        except BaseException:
            gone.cancel()
            raise
        finally:
            in_handler = False
            gone.remove_done_callback(cancel_work)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await self.gateway.start()
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
