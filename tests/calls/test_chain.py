"""The per-target call chain: composition order, records, deadline skips, virtual keys."""

import time

from aigw.auth import ANONYMOUS
from aigw.calls.attempt import Attempt
from aigw.calls.chain import compose, recorded, resolving_virtual_keys, within_deadline
from aigw.config.model import Target
from aigw.context import AttemptSource, RequestContext
from aigw.controlplane.sources import NoControlPlane
from aigw.errors import VirtualKeyUnavailable
from aigw.request import GatewayRequest

TARGET = Target(path="config.targets[0]", provider="openai")


def ctx(deadline=None):
    c = RequestContext(GatewayRequest("POST", "/v1/chat/completions", {}), "t", deadline=deadline)
    c.principal = ANONYMOUS
    return c


async def ok(target, c):
    return Attempt(target, 200)


async def test_wrappers_run_outermost_first():
    order = []

    def tag(name):
        def wrap(call):
            async def inner(target, c):
                order.append(name)
                return await call(target, c)
            return inner
        return wrap

    await compose(ok, [tag("a"), tag("b"), tag("c")])(TARGET, ctx())
    assert order == ["a", "b", "c"]


async def test_every_attempt_is_recorded_with_its_outcome():
    c = ctx()
    calls = iter([Attempt(TARGET, 503, error=VirtualKeyUnavailable("x")), Attempt(TARGET, 200)])

    async def flaky(target, c):
        return next(calls)

    call = compose(flaky, [recorded])
    await call(TARGET, c)
    await call(TARGET, c)
    first, second = c.attempts
    assert (first.status, first.retried, first.error_code) == (503, True, "virtual_key_unavailable")
    assert (second.status, second.retry_index, second.retried, second.error_code) == (200, 1, False, None)
    assert first.duration_ms >= 0 and second.started_ms >= first.started_ms


async def test_past_the_deadline_a_target_is_skipped_not_called():
    called = []

    async def spy(target, c):
        called.append(target)
        return Attempt(target, 200)

    c = ctx(deadline=time.monotonic() - 0.01)
    attempt = await compose(spy, [recorded, within_deadline])(TARGET, c)
    assert called == [] and attempt.status == 504 and attempt.source is AttemptSource.SKIPPED
    assert c.attempts[0].source is AttemptSource.SKIPPED


async def test_an_unresolvable_virtual_key_is_a_failed_target():
    called = []

    async def spy(target, c):
        called.append(target)
        return Attempt(target, 200)

    target = Target(path="config.targets[1]", virtual_key="vk-1")
    source = NoControlPlane()
    chain = compose(spy, [resolving_virtual_keys(lambda: source)])
    attempt = await chain(target, ctx())
    assert called == [] and attempt.status == 400 and not attempt.ok
    assert attempt.error is not None and attempt.error.code == "virtual_key_unavailable"
    assert attempt.error.param == "targets[1].virtual_key"
    # a target without a virtual key goes straight through
    assert (await chain(TARGET, ctx())).ok
