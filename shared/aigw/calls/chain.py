"""The per-target call chain: small wrappers around ``send``, outermost first.

    record -> deadline -> virtual key -> cache -> send (-> normalise)

Each wrapper takes the next call and returns a call of the same type, so the response cache,
the circuit breaker and the hooks of later issues are one more wrapper in ``proxy``'s list.
A wrapper may answer without calling the next one: a synthetic attempt (skipped, uncallable,
later served from cache). The chain is composed once per gateway; what differs per request
(the call spec, the principal, the deadline) travels in the ``RequestContext``.

A wrapper with nothing to do after the next call returns that call's awaitable as it is (a
plain function, not a coroutine): each coroutine layer costs ~3 000 instructions a request.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING

from aigw.calls.attempt import Attempt
from aigw.calls.send import send
from aigw.config.model import Target
from aigw.context import AttemptSource, RequestContext
from aigw.controlplane.sources import VirtualKeySource
from aigw.errors import GatewayDeadline, GatewayError
from aigw.upstream.transport import Transport

if TYPE_CHECKING:
    from aigw.state.response_cache import ResponseCache

Call = Callable[[Target, RequestContext], Awaitable[Attempt]]
CLIENT_CLOSED = 499  # the status of an attempt the client's leaving cut short
Wrapper = Callable[[Call], Call]  # takes the next call, returns one that may run around it


async def _answered(attempt: Attempt) -> Attempt:
    """A synthetic attempt, as the awaitable every call returns."""
    return attempt


def compose(innermost: Call, wrappers: Sequence[Wrapper]) -> Call:
    call = innermost
    for wrap in reversed(wrappers):
        call = wrap(call)
    return call


def sending(transport: Callable[[], Transport]) -> Call:
    """The innermost call: the provider request itself (``transport`` is looked up per call, so
    the transport is built on the first provider call, not when the chain is)."""

    def call_provider(target: Target, ctx: RequestContext) -> Awaitable[Attempt]:
        assert ctx.spec is not None  # set by the parse stage
        return send(transport(), target, ctx.spec, ctx.deadline)

    return call_provider


def recorded(call: Call) -> Call:
    """Every attempt, real or synthetic, lands in ``ctx.attempts`` with its timing."""

    async def recording(target: Target, ctx: RequestContext) -> Attempt:
        started = time.monotonic()
        try:
            attempt = await call(target, ctx)
        except asyncio.CancelledError:
            # The client left while this target was being called: the call happened (and may
            # be billed), so it is recorded, as nginx's 499 "client closed request".
            ctx.record(target.path, target.provider, AttemptSource.PROVIDER, CLIENT_CLOSED, started,
                       time.monotonic(), "client_gone")
            raise
        error = attempt.error
        ctx.record(target.path, attempt.provider_name, attempt.source, attempt.status, started, time.monotonic(),
                   error.code if error is not None else None)
        return attempt

    return recording


def within_deadline(call: Call) -> Call:
    """Past the request's deadline no target is called: the attempt is skipped (504)."""

    def guarded(target: Target, ctx: RequestContext) -> Awaitable[Attempt]:
        if ctx.deadline is not None and time.monotonic() >= ctx.deadline:
            error = GatewayDeadline("the gateway's time for this request ran out before this target was tried",
                                    provider=target.provider or "virtual_key")
            return _answered(Attempt.failed(target, error, source=AttemptSource.SKIPPED))
        return call(target, ctx)

    return guarded


def caching(cache: Callable[[], ResponseCache]) -> Wrapper:
    """A target with ``cache`` settings is answered from the response cache when it can be."""

    def wrap(call: Call) -> Call:
        def cached(target: Target, ctx: RequestContext) -> Awaitable[Attempt]:
            if target.cache is None:
                return call(target, ctx)
            return cache().through(target, ctx, call)

        return cached

    return wrap


def resolving_virtual_keys(source: Callable[[], VirtualKeySource]) -> Wrapper:
    """A target naming a virtual key is called with what the key stands for; a key that cannot be
    resolved makes a failed target (a fallback moves on), never an aborted request."""

    def wrap(call: Call) -> Call:
        async def resolve_then_call(target: Target, ctx: RequestContext) -> Attempt:
            assert ctx.principal is not None  # set by the resolve stage
            try:
                resolved = await source().resolve(target, ctx.principal)
            except GatewayError as exc:
                return Attempt.failed(target, exc)
            return await call(resolved, ctx)

        def resolving(target: Target, ctx: RequestContext) -> Awaitable[Attempt]:
            if target.virtual_key is None:
                return call(target, ctx)
            return resolve_then_call(target, ctx)

        return resolving

    return wrap
