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

import orjson

from aigw.aclose import aclose
from aigw.context import Completion, RequestContext, new_trace_id, trace_id_from
from aigw.errors import (
    ErrorFormat,
    GatewayError,
    HeadersTooLarge,
    MethodNotAllowed,
    PayloadTooLarge,
    ResponseTooLarge,
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


# API Gateway's HTTP API ends a request after 30 s (its hard integration limit, answered 503):
# work past that is billed and read by nobody, whatever the function's own timeout.
HTTP_API_TIMEOUT_S = 30.0


def _deadline(scope: Scope) -> float | None:
    """When the work must be over: the Lambda invocation's end (Mangum puts its context in the
    scope), or API Gateway's 30 s if that comes first, less a margin to send the answer."""
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


LAMBDA_CONTEXT_HEADER = "x-amzn-lambda-context"


def _adapter_deadline(headers: Mapping[str, str]) -> float | None:
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
        failed = render_stream_error(GatewayError("internal gateway error while streaming",
                                                  code="stream_interrupted"), fmt)
        await send({"type": "http.response.body", "body": failed, "more_body": True})
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


async def _buffered(response: GatewayResponse, limit: int, fmt: ErrorFormat) -> GatewayResponse:
    """For a shell that delivers whole answers only (API Gateway through Mangum): a stream is read
    to its end first, and an answer too large for the platform becomes a clean 502."""
    too_large = False
    stream = response.stream
    if stream is not None:
        parts: list[bytes] = []
        size = 0
        try:
            async for chunk in stream:
                size += len(chunk)
                if size > limit:
                    too_large = True
                    break
                parts.append(chunk)
        except Exception as exc:  # a bug in a transform: the collected stream ends visibly
            log_bug("stream", exc)
            parts.append(render_stream_error(GatewayError("internal gateway error while streaming",
                                                          code="stream_interrupted"), fmt))
        finally:
            await aclose(stream)
        response = GatewayResponse(response.status, response.headers, b"".join(parts))
    if too_large or not _fits(response, limit):
        headers = {k: v for k, v in response.headers.items() if k.startswith("x-portkey-")}
        return error_response(ResponseTooLarge(
            "the answer is larger than Lambda's 6 MB response limit; use the streaming Function URL for "
            "large answers"), fmt, headers)
    return response


def _fits(response: GatewayResponse, limit: int) -> bool:
    """Whether the response fits in ``limit`` bytes as the Lambda result JSON carries it (quotes,
    backslashes and control characters of the body are escaped there, at most 6 bytes each)."""
    body = response.body
    overhead = sum(len(k) + len(v) + 6 for k, v in response.headers.items()) + 128
    if len(body) * 6 + overhead <= limit:
        return True  # even fully escaped: no pass over the body needed
    controls = len(body) - len(body.translate(None, _CONTROL_BYTES))
    return len(body) + body.count(b'"') + body.count(b"\\") + 5 * controls + overhead <= limit


_CONTROL_BYTES = bytes(range(32))


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
        ctx = RequestContext(GatewayRequest(scope["method"], scope["path"], {}), "", deadline=_deadline(scope))
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
            limit = self.buffer_limit
            if limit is not None and (response.stream is not None or len(response.body) * 6 + 65536 > limit):
                response = await _buffered(response, limit, ctx.error_format)
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
            ctx.deadline = _adapter_deadline(request.headers)
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
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await self.gateway.close()
                await send({"type": "lifespan.shutdown.complete"})
                return
