"""Fake Pinecone index host speaking Pinecone's data-plane REST format (one dense cosine index).

An ``aiohttp.web`` server on 127.0.0.1 (free port) in a background thread with its own event
loop (``threaded_server.ThreadedServer``); ``base_url`` stands for the index host
(``https://INDEX_HOST`` in Pinecone's docs)::

    with FakePinecone(api_key="pc-test", dimension=64) as pc:
        post(pc.url("/query"), headers={"Api-Key": "pc-test"}, json={"vector": [...], "topK": 3})

Routes (semantics and validation in ``pinecone_index``):
  POST /vectors/upsert  {"vectors": [{"id", "values", "metadata"?}], "namespace"?} -> {"upsertedCount": n}
  POST /query           {"vector" | "id", "topK", "namespace"?, "filter"?, "includeValues"?,
                         "includeMetadata"?} -> {"matches": [...], "namespace": ns, "usage": {"readUnits": 1}}
  POST /vectors/delete  {"ids": [...] | "deleteAll": true | "filter": {...}, "namespace"?} -> {}
  anything else         404
Errors use Pinecone's body ``{"code": <gRPC code>, "message": ..., "details": []}``: a missing or
wrong ``Api-Key`` header gives 401 (code 16); a bad body, a vector of the wrong dimension, a bad
filter give 400 (code 3). ``X-Pinecone-API-Version`` is accepted (any value) and recorded.
Every answer carries an ``x-pinecone-request-id`` header.

Every request is recorded in ``requests`` (``PineconeRequest``) before it is answered, in
arrival order, including failed and dropped ones. For outage tests:
  ``fail_next(n, status=503)``  the next n requests get that status and a Pinecone error body,
                                or (``drop=True``) a closed connection; nothing is applied.
  ``delay(seconds, count)``     answers wait that long (every request, or the next ``count``);
                                the operation is applied before the wait, like a slow server.
A request whose client disconnects during the wait is also listed in ``abandoned``.
``reset()`` forgets requests, failures, delays and all vectors; ``index`` can be inspected
(``index.vectors(ns)``, ``index.namespaces()``) or filled directly (``index.upsert(body)``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import threading
import time
from collections import deque
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from aiohttp import web

from tests.fakes.pinecone_index import PineconeError, PineconeIndex
from tests.fakes.threaded_server import ThreadedServer

DEFAULT_API_KEY = "pc-test-key"
DEFAULT_DIMENSION = 64
ROUTES: dict[tuple[str, str], str] = {
    ("POST", "/vectors/upsert"): "upsert",
    ("POST", "/query"): "query",
    ("POST", "/vectors/delete"): "delete",
}


@dataclass
class PineconeRequest:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]  # lower-cased names, repeated headers joined with ", "
    body: bytes
    json: Any  # parsed body, None if empty / not JSON
    received_at: float  # time.monotonic() on arrival
    status: int | None = None  # status answered; None while pending, or if dropped / abandoned

    @property
    def api_key(self) -> str | None:
        return self.headers.get("api-key")

    @property
    def api_version(self) -> str | None:
        """The ``X-Pinecone-API-Version`` header, if sent."""
        return self.headers.get("x-pinecone-api-version")


@dataclass(frozen=True)
class _Failure:
    status: int
    message: str | None
    drop: bool


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class FakePinecone(ThreadedServer):
    """Fake Pinecone data plane; see the module docstring for routes, errors and failure injection."""

    thread_name = "fake-pinecone"

    def __init__(self, api_key: str = DEFAULT_API_KEY, dimension: int = DEFAULT_DIMENSION, host: str = "127.0.0.1",
                 port: int = 0, shutdown_timeout: float = 0.25) -> None:
        super().__init__(host, port, shutdown_timeout)
        self.api_key = api_key
        self.index = PineconeIndex(dimension)
        self.requests: list[PineconeRequest] = []
        self.abandoned: list[PineconeRequest] = []  # client gone before the (delayed) answer
        self._failures: deque[_Failure] = deque()
        self._delay_s: float = 0.0
        self._delay_left: int | None = None  # answers still to delay; None: all
        self._request_ids = itertools.count(1)
        self._lock = threading.Lock()

    @property
    def dimension(self) -> int:
        return self.index.dimension

    # ------------------------------------------------------------------ public API

    def fail_next(self, count: int = 1, status: int = 503, *, message: str | None = None, drop: bool = False) -> None:
        """Fail the next ``count`` requests (after any already queued) with ``status``, or drop them."""
        with self._lock:
            self._failures.extend([_Failure(status, message, drop)] * count)

    def delay(self, seconds: float, count: int | None = None) -> None:
        """Delay the next ``count`` answers (all answers if None) by ``seconds``; ``delay(0)`` ends it."""
        with self._lock:
            self._delay_s, self._delay_left = seconds, count

    def pending_failures(self) -> int:
        with self._lock:
            return len(self._failures)

    def requests_for(self, path: str) -> list[PineconeRequest]:
        return [r for r in self.requests if r.path == path]

    def reset(self) -> None:
        """Forget recorded requests, queued failures, the delay and every stored vector."""
        with self._lock:
            self.requests.clear()
            self.abandoned.clear()
            self._failures.clear()
            self._delay_s, self._delay_left = 0.0, None
            self._request_ids = itertools.count(1)
        self.index.clear()

    # ------------------------------------------------------------------ request handling

    def _take_failure_and_delay(self) -> tuple[_Failure | None, float]:
        with self._lock:
            failure = self._failures.popleft() if self._failures else None
            delay_s = self._delay_s
            if self._delay_left is not None:
                self._delay_left -= 1
                if self._delay_left <= 0:
                    self._delay_s, self._delay_left = 0.0, None
            return failure, delay_s

    def _answer(self, rec: PineconeRequest) -> tuple[int, dict[str, Any]]:
        try:
            op = ROUTES.get((rec.method, rec.path.rstrip("/") or "/"))
            if op is None:
                raise PineconeError(404, f"Not Found: {rec.method} {rec.path}")
            if not rec.api_key:
                raise PineconeError(401, "API key is missing: send it in the Api-Key header")
            if rec.api_key != self.api_key:
                raise PineconeError(401, "Invalid API Key")
            if not isinstance(rec.json, dict):
                raise PineconeError(400, "The request body must be a JSON object")
            return 200, getattr(self.index, op)(rec.json)
        except PineconeError as exc:
            return exc.status, exc.body()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        headers: dict[str, str] = {}
        for k, v in request.headers.items():
            headers[k.lower()] = f"{headers[k.lower()]}, {v}" if k.lower() in headers else v
        rec = PineconeRequest(request.method, request.path, dict(request.query), headers, body, parsed, time.monotonic())
        self.requests.append(rec)

        failure, delay_s = self._take_failure_and_delay()
        if failure is None:
            status, answer = self._answer(rec)
        else:
            status, answer = failure.status, PineconeError(failure.status, failure.message or _phrase(failure.status)).body()
        try:
            if delay_s:
                await asyncio.sleep(delay_s)
        except asyncio.CancelledError:  # aiohttp cancels the handler when the client disconnects
            self.abandoned.append(rec)
            raise
        if failure is not None and failure.drop:
            self._drop(request)
            return web.Response()
        rec.status = status
        return web.json_response(answer, status=status, headers={"x-pinecone-request-id": str(next(self._request_ids))})


if __name__ == "__main__":  # manual use: python -m tests.fakes.pinecone_server [port]
    import sys

    with FakePinecone(port=int(sys.argv[1]) if len(sys.argv) > 1 else 0) as pc:
        print(pc.base_url, f"Api-Key: {pc.api_key}", f"dimension: {pc.dimension}", flush=True)
        try:
            threading.Event().wait()
        except KeyboardInterrupt:
            pass
