"""The per-target call chain: small wrappers around ``send``, outermost first.

    record -> deadline -> virtual key -> send (-> normalise)

Each wrapper takes the next call and returns a call of the same type, so the response cache,
the circuit breaker and the hooks of later issues are one more wrapper in ``proxy``'s list.
A wrapper may answer without calling the next one: a synthetic attempt (skipped, uncallable,
later served from cache).
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence

from aigw.auth import Principal
from aigw.calls.attempt import Attempt
from aigw.config.model import Target
from aigw.context import AttemptRecord, AttemptSource, RequestContext
from aigw.controlplane.sources import VirtualKeySource
from aigw.errors import GatewayDeadline, GatewayError

Call = Callable[[Target], Awaitable[Attempt]]
Wrapper = Callable[[Call], Call]  # takes the next call, returns one that may run around it


def compose(innermost: Call, wrappers: Sequence[Wrapper]) -> Call:
    call = innermost
    for wrap in reversed(wrappers):
        call = wrap(call)
    return call


def recorded(ctx: RequestContext) -> Wrapper:
    """Every attempt, real or synthetic, lands in ``ctx.attempts`` with its timing."""

    def wrap(call: Call) -> Call:
        async def recording(target: Target) -> Attempt:
            started = time.monotonic()
            attempt = await call(target)
            ctx.record(AttemptRecord(
                path=target.path,
                provider=attempt.provider_name,
                source=attempt.source,
                status=attempt.status,
                started_ms=(started - ctx.started_mono) * 1000,
                duration_ms=(time.monotonic() - started) * 1000,
                retry_index=0,
                error_code=attempt.error.code if attempt.error is not None else None,
            ))
            return attempt

        return recording

    return wrap


def within_deadline(ctx: RequestContext) -> Wrapper:
    """Past the request's deadline no target is called: the attempt is skipped (504)."""

    def wrap(call: Call) -> Call:
        async def guarded(target: Target) -> Attempt:
            if ctx.deadline is not None and time.monotonic() >= ctx.deadline:
                error = GatewayDeadline("the gateway's time for this request ran out before this target was tried",
                                        provider=target.provider or "virtual_key")
                return Attempt.failed(target, error, source=AttemptSource.SKIPPED)
            return await call(target)

        return guarded

    return wrap


def resolving_virtual_keys(source: VirtualKeySource, principal: Principal) -> Wrapper:
    """A target naming a virtual key is called with what the key stands for; a key that cannot be
    resolved makes a failed target (a fallback moves on), never an aborted request."""

    def wrap(call: Call) -> Call:
        async def resolving(target: Target) -> Attempt:
            if target.virtual_key is None:
                return await call(target)
            try:
                resolved = await source.resolve(target, principal)
            except GatewayError as exc:
                return Attempt.failed(target, exc)
            return await call(resolved)

        return resolving

    return wrap
