"""The simple response cache: an identical request to the same target is answered from the store.

The key hashes the request body as the provider would get it (``override_params`` applied;
``stream`` and ``stream_options`` left out, so a streamed and a plain request share an answer),
the endpoint, and the target (provider and custom host; the model is in the body), scoped by a
hash of the provider key (by organisation once the control plane exists) and by
``x-portkey-cache-namespace`` when given. Never the key itself.

``x-portkey-cache-status``: ``HIT`` (answered from the cache: no provider call), ``MISS``
(called, and stored if it succeeded), ``REFRESH`` (``x-portkey-cache-force-refresh: true``:
called and stored whatever the cache held), ``DISABLED`` (no cache for this target), ``BYPASS``
(the cache store is unreachable: called, nothing stored). Only complete 2xx answers are stored:
errors, partial or aborted streams never. A stored answer is compressed (zlib) and at most
``MAX_CACHED_BODY_BYTES`` before compression; it expires after the config's ``max_age``.
"""

from __future__ import annotations

import asyncio
import hashlib
import struct
import zlib
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from typing import Any

import orjson

from aigw.auth import Principal
from aigw.calls.attempt import Attempt
from aigw.calls.spec import CallSpec
from aigw.config.model import Target
from aigw.context import AttemptSource, RequestContext
from aigw.kinds import EndpointKind
from aigw.redact import scrubber_for
from aigw.state.cached_stream import RecordingStream, ReplayStream
from aigw.state.fingerprint import identity
from aigw.state.semantic.index import SemanticIndex, semantic_namespace, semantic_text
from aigw.state.store import PREFIX, Store, StoreUnavailable

HIT, MISS, REFRESH, DISABLED, BYPASS = "HIT", "MISS", "REFRESH", "DISABLED", "BYPASS"
SEMANTIC_HIT, SEMANTIC_MISS = "SEMANTIC HIT", "SEMANTIC MISS"
FORCE_REFRESH_HEADER = "x-portkey-cache-force-refresh"
NAMESPACE_HEADER = "x-portkey-cache-namespace"
MAX_CACHED_BODY_BYTES = 4 * 1024 * 1024
CACHEABLE = frozenset({EndpointKind.CHAT, EndpointKind.COMPLETIONS, EndpointKind.EMBEDDINGS})
_NOT_IN_KEY = frozenset({"stream", "stream_options"})
# A stored value: this prefix, when it was stored (a big-endian double, clock seconds), then
# the zlib-compressed answer. The time lets a request with a shorter max_age refuse an older one.
_FORMAT = b"z2"
_STORED_AT = struct.Struct(">d")

Call = Callable[[Target, RequestContext], Awaitable[Attempt]]


def target_scope(target: Target, spec: CallSpec, namespace: str | None,
                 principal: Principal | None = None) -> dict[str, Any]:
    """Who may share an answer: the same target (provider, host, provider options such as an
    Azure deployment, the values of the headers it forwards), the same provider key (by hash),
    the same gateway key (later: organisation), the same cache namespace."""
    provider_key = target.api_key or spec.request_api_key or ""
    forwarded = {name: spec.request_headers.get(name) for name in target.forward_headers}
    return {"kind": spec.kind.value, "target": identity(target), "forwarded": forwarded, "namespace": namespace,
            "scope": hashlib.sha256(provider_key.encode()).hexdigest(),
            "caller": principal.key_id if principal is not None else None}


def cache_key(target: Target, spec: CallSpec, scope: Mapping[str, Any]) -> str:
    body = {k: v for k, v in spec.body.items() if k not in _NOT_IN_KEY}
    body.update((k, v) for k, v in target.override_params.items() if k not in _NOT_IN_KEY)
    material = orjson.dumps({**scope, "body": body}, option=orjson.OPT_SORT_KEYS)
    return f"{PREFIX}cache:{{{hashlib.sha256(material).hexdigest()}}}"


def _encode(answer: bytes, stored_at: float) -> bytes:
    return _FORMAT + _STORED_AT.pack(stored_at) + zlib.compress(answer, 6)


def _decode(raw: bytes) -> tuple[float, bytes] | None:
    """(when it was stored, the answer); None for anything this version did not write."""
    head = len(_FORMAT) + _STORED_AT.size
    if not raw.startswith(_FORMAT) or len(raw) < head:
        return None
    try:
        return _STORED_AT.unpack_from(raw, len(_FORMAT))[0], zlib.decompress(raw[head:])
    except zlib.error:
        return None


def _secrets(ctx: RequestContext, attempt: Attempt) -> tuple[str, ...]:
    """Every key this request carries or used, as the response is scrubbed of them."""
    if attempt.secret is None or attempt.secret in ctx.secrets:
        return ctx.secrets
    return (*ctx.secrets, attempt.secret)


def _wants_usage(spec: CallSpec) -> bool:
    options = spec.body.get("stream_options")
    return isinstance(options, dict) and options.get("include_usage") is True


class ResponseCache:
    """``semantic``: the semantic index, or None where none is configured (no embedder): then
    ``mode: semantic`` caches exact matches only."""

    def __init__(self, store: Callable[[], Store], clock: Callable[[], float],
                 semantic: Callable[[], SemanticIndex | None] = lambda: None) -> None:
        self._store, self._clock = store, clock
        self._semantic = semantic
        self._background: set[asyncio.Task[None]] = set()

    def _later(self, work: Coroutine[Any, Any, None]) -> None:
        """Work the client must not wait for (a vector upsert, storing a finished stream); kept
        referenced until done. On Lambda it runs while the environment runs (best effort)."""
        task = asyncio.ensure_future(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _put(self, key: str, answer: bytes, max_age_s: int) -> bool:
        """Whether the answer was stored."""
        if len(answer) > MAX_CACHED_BODY_BYTES:
            return False
        try:
            return await self._store().set(key, _encode(answer, self._clock()), max_age_s)
        except StoreUnavailable:
            return False  # the store logs the outage once; the client has its answer

    @staticmethod
    def _hit(target: Target, spec: CallSpec, answer: bytes) -> Attempt | None:
        try:
            parsed: Any = orjson.loads(answer)
        except orjson.JSONDecodeError:
            return None
        if not isinstance(parsed, dict):
            return None
        attempt = Attempt(target, 200, source=AttemptSource.CACHE)
        usage = parsed.get("usage")
        attempt.usage = usage if isinstance(usage, dict) else None
        if spec.stream:
            try:
                attempt.stream = ReplayStream(parsed, _wants_usage(spec))
            except (AttributeError, TypeError, KeyError, ValueError):
                return None  # an answer of a shape this cache cannot replay: a miss, never a 500
        else:
            attempt.body = answer
        return attempt

    async def _lookup(self, key: str, target: Target, spec: CallSpec, max_age_s: int) -> Attempt | None:
        raw = await self._store().get(key)  # StoreUnavailable: the caller bypasses the cache
        entry = _decode(raw) if raw is not None else None
        if entry is None or self._clock() - entry[0] > max_age_s:
            return None  # stored for a longer max_age than this request accepts
        return self._hit(target, spec, entry[1])

    async def through(self, target: Target, ctx: RequestContext, call: Call) -> Attempt:
        """Answer ``target``'s call from the cache, or call it and store a complete success."""
        spec = ctx.spec
        config = target.cache
        assert spec is not None and config is not None
        if spec.kind not in CACHEABLE:
            return await call(target, ctx)
        headers = spec.request_headers
        refresh = headers.get(FORCE_REFRESH_HEADER, "").strip().lower() in ("true", "1")
        scope = target_scope(target, spec, headers.get(NAMESPACE_HEADER) or None, ctx.principal)
        key = cache_key(target, spec, scope)
        semantic = self._semantic() if config.mode == "semantic" and spec.kind is EndpointKind.CHAT else None
        text = semantic_text(spec.body) if semantic is not None else None
        vector_space = semantic_namespace(scope, target, spec) if text else ""
        vector: list[float] | None = None
        try:
            if not refresh:
                hit = await self._lookup(key, target, spec, config.max_age_s)
                if hit is not None:
                    ctx.cache_status = HIT
                    return hit
            if semantic is not None and text is not None:
                similar, vector = await semantic.lookup(text, vector_space, ctx.remaining_s())
                for candidate in similar if not refresh else ():
                    hit = await self._lookup(candidate, target, spec, config.max_age_s)
                    if hit is not None:  # the best match whose answer is still live
                        ctx.cache_status = SEMANTIC_HIT
                        return hit
        except StoreUnavailable:
            ctx.cache_status = BYPASS
            return await call(target, ctx)
        attempt = await call(target, ctx)
        ctx.cache_status = REFRESH if refresh else SEMANTIC_MISS if semantic is not None else MISS
        if not attempt.ok:
            return attempt
        max_age = config.max_age_s
        scrubber = scrubber_for(_secrets(ctx, attempt))

        async def store(answer: bytes) -> None:
            # Scrubbed as the client got it: a key the provider echoed is never stored.
            stored = await self._put(key, scrubber.bytes(answer) if scrubber.active else answer, max_age)
            if stored and semantic is not None and vector is not None:
                self._later(semantic.remember(vector, vector_space, key))

        if attempt.stream is not None:
            attempt.stream = RecordingStream(attempt.stream,
                                             lambda answer: self._later(store(orjson.dumps(answer))))
        else:
            await store(attempt.body)
        return attempt
