"""Walks a config's target tree: strategies, fallbacks and retries.

Pure control flow: the upstream call, randomness, clock and sleep are passed in, so tests
drive every path deterministically. A strategy node picks (single / loadbalance /
conditional) or tries in order (fallback); a leaf is called, with retries.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Generic, Protocol, TypeVar

from aigw.config.model import RetryPolicy, Target
from aigw.routing.backoff import backoff_ms, retry_after_ms
from aigw.routing.select import conditional_pick, weighted_pick

_NO_RETRY = RetryPolicy()


class AttemptLike(Protocol):
    """One upstream call's result, as far as routing cares."""

    status: int
    headers: Mapping[str, str]

    async def discard(self) -> None:
        """Release the upstream response when routing moves on without it."""
        ...


class StickyPicker(Protocol):
    """Where a sticky loadbalance node sends this request (decided outside the router, which
    stays pure: tests pass their own)."""

    async def pick(self, node: Target, skip: frozenset[int]) -> Target | None:
        """The target for this request, never one at a position in ``skip`` (open circuits);
        None when the request has nothing to stick by (balanced as without sticky)."""
        ...

    async def failed(self, node: Target, chosen: Target) -> None:
        """``chosen`` (picked by ``pick``) answered with a failure."""
        ...


class BreakerView(Protocol):
    """Circuit breakers, as the router sees them (state lives outside the router)."""

    async def open_children(self, node: Target) -> frozenset[int]:
        """Positions of ``node``'s children to skip now (never all of them)."""
        ...

    async def record(self, node: Target, index: int, attempt: AttemptLike) -> None:
        """The child at ``index`` ended with ``attempt`` (after its own retries)."""
        ...


A = TypeVar("A", bound=AttemptLike)
Call = Callable[[Target], Awaitable[A]]


@dataclass(slots=True)
class RouterEnv:
    rng: random.Random
    sleep: Callable[[float], Awaitable[None]]  # seconds
    clock: Callable[[], float]  # wall-clock seconds, for Retry-After dates
    # What conditions test: {"metadata": {...}, "params": {...}, "url": {"pathname": ...}}.
    context: Mapping[str, Any]
    # Backoff base and cap, and the longest Retry-After waited for (Settings holds the defaults).
    retry_base_ms: int
    retry_max_backoff_ms: int
    retry_after_cap_ms: int
    # Seconds left before the request's deadline (None: no deadline).
    remaining_s: Callable[[], float | None] = lambda: None
    # Sticky loadbalance decisions; None when the config has no sticky node.
    sticky: StickyPicker | None = None
    # Circuit breakers; None when no node of the config has cb_config.
    breaker: BreakerView | None = None


@dataclass(slots=True)
class Outcome(Generic[A]):
    attempt: A
    leaf: Target
    # Retries made on the leaf that answered; -1 when its retries ran out on failures.
    retries: int


def _ok(status: int) -> bool:
    return 200 <= status < 300


def _target_failed(attempt: AttemptLike) -> bool:
    """The target's fault (moves a sticky identifier on), not the request's: a 400 the client
    caused would fail on any target, and a target that was never called (skipped when the
    request's time ran out) did not fail."""
    if getattr(attempt, "source", "provider") != "provider":
        return False
    status = attempt.status
    return status >= 500 or status in (408, 429)


async def route(node: Target, call: Call[A], env: RouterEnv) -> Outcome[A]:
    if node.strategy is None:
        return await _call_with_retries(node, call, env)
    mode = node.strategy.mode
    if mode == "fallback":
        return await _fallback(node, call, env)
    if mode == "loadbalance":
        return await _loadbalance(node, call, env)
    if mode == "conditional":
        chosen = conditional_pick(node.strategy, node.targets, env.context, node.path)
    else:  # single
        chosen = node.targets[0]
    return await route(chosen, call, env)


async def _skipped(node: Target, env: RouterEnv) -> frozenset[int]:
    breaker = env.breaker
    if breaker is None or not any(child.breaker for child in node.targets):
        return frozenset()
    return await breaker.open_children(node)


async def _loadbalance(node: Target, call: Call[A], env: RouterEnv) -> Outcome[A]:
    assert node.strategy is not None
    skip = await _skipped(node, env)
    sticky = node.strategy.sticky
    picker = env.sticky if sticky is not None and sticky.enabled else None
    chosen = await picker.pick(node, skip) if picker is not None else None
    stuck = chosen is not None
    if chosen is None:
        chosen = weighted_pick([t for i, t in enumerate(node.targets) if i not in skip] if skip else node.targets,
                               env.rng)
    outcome = await route(chosen, call, env)
    if stuck and picker is not None and _target_failed(outcome.attempt):
        await picker.failed(node, chosen)
    if env.breaker is not None and chosen.breaker is not None:
        await env.breaker.record(node, _position(node, chosen), outcome.attempt)
    return outcome


def _position(node: Target, child: Target) -> int:
    return next(i for i, t in enumerate(node.targets) if t is child)


async def _fallback(node: Target, call: Call[A], env: RouterEnv) -> Outcome[A]:
    assert node.strategy is not None
    codes = node.strategy.on_status_codes
    skip = await _skipped(node, env)
    outcome: Outcome[A] | None = None
    for index, child in enumerate(node.targets):
        if index in skip:
            continue
        if outcome is not None:
            await outcome.attempt.discard()
        outcome = await route(child, call, env)
        status = outcome.attempt.status
        if env.breaker is not None and child.breaker is not None:
            await env.breaker.record(node, index, outcome.attempt)
        # Without on_status_codes any non-2xx falls through; with them, only listed ones do.
        if _ok(status) or (codes is not None and status not in codes):
            return outcome
    assert outcome is not None  # the parser guarantees at least one target
    return outcome


async def _call_with_retries(leaf: Target, call: Call[A], env: RouterEnv) -> Outcome[A]:
    policy = leaf.retry or _NO_RETRY
    retries = 0
    while True:
        attempt = await call(leaf)
        if _ok(attempt.status) or attempt.status not in policy.on_status_codes:
            return Outcome(attempt, leaf, retries)
        if retries >= policy.attempts:
            return Outcome(attempt, leaf, -1 if policy.attempts else 0)
        wait_ms = backoff_ms(retries + 1, env.retry_base_ms, env.retry_max_backoff_ms, env.rng)
        if policy.use_retry_after_header:
            asked = retry_after_ms(attempt.headers, env.clock())
            if asked is not None:
                if asked > env.retry_after_cap_ms:
                    # The provider asks for longer than we will hold the client: answer now, and
                    # say the retries ended on a failure (-1), as the reference reports it.
                    return Outcome(attempt, leaf, -1)
                wait_ms = asked
        left = env.remaining_s()
        if left is not None and wait_ms / 1000 >= left:
            # The wait would outlast the request: answer with this failure now, not a timeout later.
            return Outcome(attempt, leaf, -1)
        await attempt.discard()
        await env.sleep(wait_ms / 1000)
        retries += 1
