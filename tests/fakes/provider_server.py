"""Fake LLM provider server speaking the OpenAI, Azure OpenAI and Anthropic wire formats.

An ``aiohttp.web`` server on 127.0.0.1 (free port) running in a background thread with its
own event loop (``threaded_server.ThreadedServer``), so sync tests, async tests and
subprocesses can all call ``base_url``.

Routes (route key -> request; OpenAI/Anthropic paths match by *suffix*, so any prefix such
as ``/custom/v1/chat/completions`` works):
  openai.chat         POST .../chat/completions       Authorization: Bearer <key>
  openai.completions  POST .../completions            Authorization: Bearer <key>
  openai.embeddings   POST .../embeddings             Authorization: Bearer <key>
  openai.models       GET  .../models                 Authorization: Bearer <key>
  azure.chat          POST /openai/deployments/{deployment}/chat/completions?api-version=...
  azure.completions   POST /openai/deployments/{deployment}/completions?api-version=...
  azure.embeddings    POST /openai/deployments/{deployment}/embeddings?api-version=...
                      (``api-key: <key>`` or ``Authorization: Bearer``; 401 / 404 without api-version)
  anthropic.messages  POST .../messages               x-api-key + anthropic-version, body.max_tokens
  unknown             anything else                   404, OpenAI "Invalid URL (...)" error
Defaults (see ``provider_routes``): text "Hello from the fake provider", streamed as the pieces
"Hello", " from", " the", " fake", " provider"; a tool call ({"x": 1} to the first tool) when
``tools`` are given and the last message is a user turn (not an Anthropic tool_result).
Keys "", "undefined", "null", "sk-invalid" are rejected with the provider's 401.

Which reply a request gets (first match wins):
  1. the next ``script(route, ...)`` reply for its route (FIFO),
  2. the next ``script_all(...)`` reply (FIFO, any route incl. "unknown"),
  3. the route's realistic default (with auth/validation checks).
Scripted replies skip auth/validation. A scripted reply without json/body/sse sends:
the route default if status < 400 (auth/validation included; the reply's headers are added and
its timing/drop options applied), a
provider-shaped error body for the status if >= 400, or, with ``echo_key``, a provider-shaped
error whose message contains the received key. ``echo_key`` also replaces every
``API_KEY_PLACEHOLDER`` ("<<API_KEY>>") in json/body/sse and header values with the received key.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections import deque
from dataclasses import replace

from aiohttp import web

from tests.fakes.provider_routes import (
    API_KEY_PLACEHOLDER,
    DEFAULT_TEXT,
    ROUTES,
    SSE_HEADERS,
    Ids,
    RecordedRequest,
    Reply,
    default_reply,
    error_body,
    match_route,
    request_id_headers,
)
from tests.fakes.sse import anthropic_sse, openai_sse, parse_sse
from tests.fakes.threaded_server import ThreadedServer

__all__ = [
    "API_KEY_PLACEHOLDER",
    "DEFAULT_TEXT",
    "ROUTES",
    "FakeProvider",
    "RecordedRequest",
    "Reply",
    "anthropic_sse",
    "openai_sse",
    "parse_sse",
]


class FakeProvider(ThreadedServer):
    """Scriptable fake provider; see the module docstring for routes and reply order."""

    thread_name = "fake-provider"

    def __init__(self, host: str = "127.0.0.1", port: int = 0, shutdown_timeout: float = 0.25) -> None:
        super().__init__(host, port, shutdown_timeout)
        self.requests: list[RecordedRequest] = []
        # Requests whose client (the gateway) closed the connection before the reply was done.
        self.abandoned: list[RecordedRequest] = []
        self._scripts: dict[str, deque[Reply]] = {r: deque() for r in ROUTES}
        self._script_all: deque[Reply] = deque()
        self._lock = threading.Lock()
        self._ids = Ids()

    # ------------------------------------------------------------------ public API

    def script(self, route: str, *replies: Reply) -> None:
        """Queue replies for one route (consumed FIFO before script_all and defaults)."""
        if route not in ROUTES:
            raise ValueError(f"unknown route {route!r}; expected one of {ROUTES}")
        with self._lock:
            self._scripts[route].extend(replies)

    def script_all(self, *replies: Reply) -> None:
        """Queue replies for any route (after per-route scripts, before defaults)."""
        with self._lock:
            self._script_all.extend(replies)

    def pending_replies(self) -> int:
        """Number of scripted replies not consumed yet."""
        with self._lock:
            return len(self._script_all) + sum(len(q) for q in self._scripts.values())

    def wait_abandoned(self, count: int = 1, timeout_s: float = 10.0) -> list[RecordedRequest]:
        """Block until ``count`` requests were abandoned by their client (or fail after timeout_s)."""
        deadline = time.monotonic() + timeout_s
        while len(self.abandoned) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(self.abandoned)} of {count} requests abandoned after {timeout_s}s")
            time.sleep(0.01)
        return list(self.abandoned)

    def requests_for(self, route: str) -> list[RecordedRequest]:
        return [r for r in self.requests if r.route == route]

    def reset(self) -> None:
        """Clear scripts, recorded requests and the id counter."""
        with self._lock:
            for q in self._scripts.values():
                q.clear()
            self._script_all.clear()
            self.requests.clear()
            self.abandoned.clear()
            self._ids.reset()

    def _next_reply(self, route: str) -> Reply | None:
        with self._lock:
            if self._scripts[route]:
                return self._scripts[route].popleft()
            return self._script_all.popleft() if self._script_all else None

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        route, params = match_route(request.method, request.path)
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers: dict[str, str] = {}
        for k, v in request.headers.items():  # lower-case names, repeated headers joined
            headers[k.lower()] = f"{headers[k.lower()]}, {v}" if k.lower() in headers else v
        rec = RecordedRequest(request.method, request.path, dict(request.query), headers, body, parsed,
                              time.monotonic(), route, params)
        self.requests.append(rec)

        reply = self._next_reply(route)
        if reply is None:
            reply = default_reply(rec, self._ids)
        elif not reply.has_body():
            reply = self._fill_body(rec, reply)
        try:
            return await self._send(request, reply, rec.api_key or "")
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client disconnects
            self.abandoned.append(rec)
            raise

    def _fill_body(self, rec: RecordedRequest, reply: Reply) -> Reply:
        """Body for a scripted reply that has none (rules in the module docstring)."""
        ids_headers = request_id_headers(rec.route, self._ids)
        if reply.echo_key:
            msg = f"Incorrect API key provided: {API_KEY_PLACEHOLDER}."
            return replace(reply, json=error_body(rec.route, reply.status, msg), headers={**ids_headers, **reply.headers})
        if reply.status >= 400:
            return replace(reply, json=error_body(rec.route, reply.status), headers={**ids_headers, **reply.headers})
        base = default_reply(rec, self._ids)
        return replace(reply, status=base.status, json=base.json, body=base.body, sse=base.sse,
                       headers={**base.headers, **reply.headers})

    async def _send(self, request: web.Request, reply: Reply, key: str) -> web.StreamResponse:
        if reply.delay_s:
            await asyncio.sleep(reply.delay_s)
        if reply.drop_before_headers:
            self._drop(request)
            return web.Response()
        if reply.sse is not None:
            chunks = list(reply.sse)
        elif reply.body is not None:
            chunks = [reply.body]
        else:
            chunks = [json.dumps(reply.json).encode()]
        if reply.echo_key:
            chunks = [c.replace(API_KEY_PLACEHOLDER.encode(), key.encode()) for c in chunks]
        default_ct = SSE_HEADERS["Content-Type"] if reply.sse is not None else "application/json"
        headers = {"Content-Type": default_ct, **reply.headers}
        if reply.echo_key:
            headers = {k: v.replace(API_KEY_PLACEHOLDER, key) for k, v in headers.items()}

        if reply.sse is None and reply.drop_after_chunks is None:
            return web.Response(status=reply.status, body=chunks[0], headers=headers)

        resp = web.StreamResponse(status=reply.status, headers=headers)
        resp.enable_chunked_encoding()
        await resp.prepare(request)
        for i, chunk in enumerate(chunks):
            if reply.drop_after_chunks is not None and i >= reply.drop_after_chunks:
                break
            if i and reply.chunk_delay_s:
                await asyncio.sleep(reply.chunk_delay_s)
            await resp.write(chunk)
        if reply.drop_after_chunks is not None:  # no terminating chunk: client sees a payload error
            self._drop(request)
            return resp
        await resp.write_eof()
        return resp


if __name__ == "__main__":  # manual use: python -m tests.fakes.provider_server [port]
    import sys

    with FakeProvider(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as fp:
        print(fp.base_url, flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
