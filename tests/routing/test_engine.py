"""Routing semantics over a scripted call: which targets are tried, in what order, how often."""

import random
from dataclasses import dataclass, field, replace

import pytest

from aigw.config.parse import parse_config
from aigw.errors import NoMatchingTarget
from aigw.routing.engine import RouterEnv, route

TRUSTED = frozenset({"127.0.0.1"})


@dataclass
class FakeAttempt:
    status: int
    headers: dict = field(default_factory=dict)
    discarded: bool = False

    async def discard(self):
        self.discarded = True


class ScriptedCall:
    """Answers each target (by its api_key) from a list of statuses; records every call."""

    def __init__(self, script):
        self.script = {k: list(v) for k, v in script.items()}
        self.calls = []
        self.attempts = []

    async def __call__(self, leaf):
        self.calls.append(leaf.api_key)
        queue = self.script[leaf.api_key]
        status, headers = queue.pop(0) if len(queue) > 1 else queue[0]
        attempt = FakeAttempt(status, headers)
        self.attempts.append(attempt)
        return attempt


class Sleeps:
    def __init__(self):
        self.waits = []

    async def __call__(self, seconds):
        self.waits.append(seconds)


def env(context=None, seed=1, sleeps=None, now=1_000_000.0):
    return RouterEnv(
        rng=random.Random(seed), sleep=sleeps or Sleeps(), clock=lambda: now, context=context or {},
        retry_base_ms=100, retry_max_backoff_ms=1000, retry_after_cap_ms=5000,
    )


def ok():
    return (200, {})


def fail(status, headers=None):
    return (status, headers or {})


def tree(config):
    return parse_config(config, TRUSTED)


async def test_fallback_tries_in_order_until_success():
    call = ScriptedCall({"a": [fail(500)], "b": [fail(429)], "c": [ok()]})
    root = tree({"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}, {"provider": "openai", "api_key": "c"}]})
    outcome = await route(root, call, env())
    assert call.calls == ["a", "b", "c"]
    assert outcome.leaf.path == "config.targets[2]" and outcome.retries == 0
    assert all(a.discarded for a in call.attempts[:2]) and not call.attempts[2].discarded


async def test_fallback_without_codes_falls_back_on_4xx():
    call = ScriptedCall({"a": [fail(400)], "b": [ok()]})
    root = tree({"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]})
    assert (await route(root, call, env())).leaf.api_key == "b"


async def test_fallback_with_codes_returns_unlisted_status_at_once():
    call = ScriptedCall({"a": [fail(500)], "b": [ok()]})
    root = tree({"strategy": {"mode": "fallback", "on_status_codes": [429]}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]})
    outcome = await route(root, call, env())
    assert call.calls == ["a"] and outcome.attempt.status == 500


async def test_all_failed_returns_last_error_and_path():
    call = ScriptedCall({"a": [fail(500)], "b": [fail(503)]})
    root = tree({"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]})
    outcome = await route(root, call, env())
    assert outcome.attempt.status == 503 and outcome.leaf.path == "config.targets[1]"


async def test_timeout_status_408_counts_for_fallback():
    call = ScriptedCall({"a": [fail(408)], "b": [ok()]})
    root = tree({"strategy": {"mode": "fallback", "on_status_codes": [408]}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]})
    assert (await route(root, call, env())).leaf.api_key == "b"


async def test_retries_with_exponential_jittered_backoff_then_success():
    sleeps = Sleeps()
    call = ScriptedCall({"a": [fail(503), fail(503), ok()]})
    root = tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 3}})
    outcome = await route(root, call, env(sleeps=sleeps))
    assert call.calls == ["a"] * 3 and outcome.retries == 2 and outcome.attempt.status == 200
    # Full jitter over a doubling ceiling (base 100 ms): the waits are the seeded draws scaled by
    # 0.1 s then 0.2 s, exactly; a zero or un-doubled backoff fails here.
    draws = random.Random(1)
    assert sleeps.waits == [pytest.approx(draws.random() * 0.1), pytest.approx(draws.random() * 0.2)]
    assert all(w > 0 for w in sleeps.waits)


async def test_retries_exhausted_reports_minus_one():
    call = ScriptedCall({"a": [fail(503)]})
    outcome = await route(tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 2}}), call, env())
    assert call.calls == ["a"] * 3 and outcome.retries == -1 and outcome.attempt.status == 503


async def test_no_retry_on_unlisted_status():
    call = ScriptedCall({"a": [fail(400)]})
    outcome = await route(tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 3}}), call, env())
    assert call.calls == ["a"] and outcome.retries == 0


async def test_retry_on_custom_status_codes():
    call = ScriptedCall({"a": [fail(418), ok()]})
    root = tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 1, "on_status_codes": [418]}})
    assert (await route(root, call, env())).retries == 1


@pytest.mark.parametrize(
    "headers, expected_s",
    [({"retry-after": "2"}, 2.0), ({"retry-after-ms": "1500"}, 1.5), ({"retry-after": "Thu, 01 Jan 1970 11:46:41 GMT"}, 1.0)],
)
async def test_retry_after_is_honoured_when_asked(headers, expected_s):
    sleeps = Sleeps()
    call = ScriptedCall({"a": [fail(429, headers), ok()]})
    root = tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 1, "use_retry_after_header": True}})
    # clock: 1970-01-01 11:46:40 UTC == 42400 s
    await route(root, call, env(sleeps=sleeps, now=42400.0))
    assert sleeps.waits == [pytest.approx(expected_s)]


async def test_retry_after_ignored_unless_asked():
    sleeps = Sleeps()
    call = ScriptedCall({"a": [fail(429, {"retry-after": "30"}), ok()]})
    await route(tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 1}}), call, env(sleeps=sleeps))
    assert sleeps.waits[0] <= 0.1


async def test_retry_after_beyond_cap_answers_at_once():
    sleeps = Sleeps()
    call = ScriptedCall({"a": [fail(429, {"retry-after": "3600"}), ok()]})
    root = tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 3, "use_retry_after_header": True}})
    outcome = await route(root, call, env(sleeps=sleeps))
    # Not waited for, and reported as retries that ended on a failure, as the reference reports it.
    assert call.calls == ["a"] and sleeps.waits == [] and outcome.attempt.status == 429
    assert outcome.retries == -1


async def test_retries_inside_fallback_then_next_target():
    call = ScriptedCall({"a": [fail(500)], "b": [ok()]})
    root = tree({"strategy": {"mode": "fallback"}, "retry": {"attempts": 1}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]})
    outcome = await route(root, call, env())
    assert call.calls == ["a", "a", "b"] and outcome.retries == 0


async def test_conditional_routes_by_metadata_and_params():
    call = ScriptedCall({"paid": [ok()], "free": [ok()], "dflt": [ok()]})
    root = tree({
        "strategy": {"mode": "conditional", "conditions": [
            {"query": {"metadata.plan": {"$eq": "paid"}}, "then": "p"},
            {"query": {"params.model": {"$regex": "mini$"}}, "then": "f"},
        ], "default": "d"},
        "targets": [
            {"name": "p", "provider": "openai", "api_key": "paid"},
            {"name": "f", "provider": "openai", "api_key": "free"},
            {"name": "d", "provider": "openai", "api_key": "dflt"},
        ],
    })
    assert (await route(root, call, env({"metadata": {"plan": "paid"}, "params": {}}))).leaf.api_key == "paid"
    assert (await route(root, call, env({"metadata": {}, "params": {"model": "gpt-4o-mini"}}))).leaf.api_key == "free"
    assert (await route(root, call, env({"metadata": {}, "params": {"model": "x"}}))).leaf.api_key == "dflt"


async def test_conditional_without_match_or_default_is_400():
    root = tree({"strategy": {"mode": "conditional", "conditions": [{"query": {"metadata.x": "1"}, "then": "a"}]},
                 "targets": [{"name": "a", "provider": "openai", "api_key": "a"}]})
    with pytest.raises(NoMatchingTarget) as info:
        await route(root, ScriptedCall({"a": [ok()]}), env({"metadata": {}}))
    assert info.value.status == 400


async def test_nested_fallback_inside_loadbalance_reports_nested_path():
    call = ScriptedCall({"a": [fail(500)], "b": [ok()], "c": [ok()]})
    root = tree({"strategy": {"mode": "loadbalance"}, "targets": [
        {"weight": 1, "strategy": {"mode": "fallback"}, "targets": [
            {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]},
        {"weight": 0, "provider": "openai", "api_key": "c"},
    ]})
    outcome = await route(root, call, env())
    assert outcome.leaf.path == "config.targets[0].targets[1]"


async def test_single_mode_uses_first_target():
    call = ScriptedCall({"a": [ok()], "b": [ok()]})
    root = tree({"strategy": {"mode": "single"}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]})
    assert (await route(root, call, env())).leaf.path == "config.targets[0]"


async def test_a_wait_longer_than_the_time_left_answers_at_once():
    # GIVEN 2 s left before the request's deadline and a provider asking for 3 s
    sleeps = Sleeps()
    call = ScriptedCall({"a": [fail(429, {"retry-after": "3"}), ok()]})
    root = tree({"provider": "openai", "api_key": "a", "retry": {"attempts": 3, "use_retry_after_header": True}})
    routing = replace(env(sleeps=sleeps), remaining_s=lambda: 2.0)
    outcome = await route(root, call, routing)
    # THEN its 429 comes back now (not a timeout two seconds later), as a failure of the retries
    assert call.calls == ["a"] and sleeps.waits == [] and outcome.attempt.status == 429 and outcome.retries == -1


class RecordingPicker:
    """A sticky picker that always picks the first target it has not been told failed."""

    def __init__(self):
        self.failed_targets = []
        self.picked = []

    async def pick(self, node, skip):
        chosen = next(t for i, t in enumerate(node.targets) if t.api_key not in self.failed_targets and i not in skip)
        self.picked.append(chosen.api_key)
        return chosen

    async def failed(self, node, chosen):
        self.failed_targets.append(chosen.api_key)


STICKY_LB = {"strategy": {"mode": "loadbalance", "sticky": {"enabled": True, "hash_fields": ["metadata.u"]}},
             "targets": [{"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]}


async def test_a_sticky_node_asks_the_picker_and_reports_the_chosen_target_failing():
    # GIVEN a sticky loadbalance inside a fallback, whose sticky choice fails
    config = tree({"strategy": {"mode": "fallback"}, "targets": [STICKY_LB, {"provider": "openai", "api_key": "c"}]})
    call = ScriptedCall({"a": [fail(503)], "b": [ok()], "c": [ok()]})
    e = env()
    e.sticky = picker = RecordingPicker()
    # WHEN routed twice
    first = await route(config, call, e)
    second = await route(config, call, e)
    # THEN the failure moved on to the fallback and was reported; the next request went elsewhere
    assert first.leaf.api_key == "c" and picker.failed_targets == ["a"]
    assert second.leaf.api_key == "b" and picker.picked == ["a", "b"]
    assert call.calls == ["a", "c", "b"]


async def test_without_a_picker_a_sticky_node_is_a_plain_weighted_pick():
    call = ScriptedCall({"a": [ok()], "b": [ok()]})
    picks = {(await route(tree(STICKY_LB), call, env(seed=s))).leaf.api_key for s in range(30)}
    assert picks == {"a", "b"}


class FakeBreaker:
    """Open circuits by api_key; records every (api_key, status) it is told."""

    def __init__(self, open_keys=()):
        self.open_keys = set(open_keys)
        self.recorded = []

    async def open_children(self, node):
        skip = frozenset(i for i, t in enumerate(node.targets) if t.api_key in self.open_keys)
        return frozenset() if len(skip) == len(node.targets) else skip

    async def record(self, node, index, attempt):
        self.recorded.append((node.targets[index].api_key, attempt.status))


CB = {"failure_threshold": 1, "cooldown_interval": 30_000}


def with_breaker(breaker, **kw):
    e = env(**kw)
    e.breaker = breaker
    return e


async def test_fallback_skips_open_circuits_and_records_each_answer():
    config = tree({"strategy": {"mode": "fallback"}, "cb_config": CB, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"},
        {"provider": "openai", "api_key": "c"}]})
    call = ScriptedCall({"a": [ok()], "b": [fail(500)], "c": [ok()]})
    breaker = FakeBreaker({"a"})
    outcome = await route(config, call, with_breaker(breaker))
    assert call.calls == ["b", "c"] and outcome.leaf.api_key == "c"
    assert breaker.recorded == [("b", 500), ("c", 200)]


async def test_loadbalance_never_picks_an_open_circuit_unless_all_are_open():
    config = tree({"strategy": {"mode": "loadbalance"}, "cb_config": CB, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b"}]})
    call = ScriptedCall({"a": [ok()], "b": [ok()]})
    for seed in range(20):
        await route(config, call, with_breaker(FakeBreaker({"a"}), seed=seed))
    assert set(call.calls) == {"b"}
    everything_open = FakeBreaker({"a", "b"})
    picks = {(await route(config, call, with_breaker(everything_open, seed=s))).leaf.api_key for s in range(20)}
    assert picks == {"a", "b"}  # all open: tried anyway, never a failure without a call


async def test_targets_without_cb_config_are_not_counted():
    config = tree({"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "api_key": "a"}, {"provider": "openai", "api_key": "b", "cb_config": CB}]})
    call = ScriptedCall({"a": [fail(503)], "b": [ok()]})
    breaker = FakeBreaker()
    await route(config, call, with_breaker(breaker))
    assert breaker.recorded == [("b", 200)]


async def test_a_sticky_pick_is_told_which_circuits_are_open():
    config = tree({**STICKY_LB, "cb_config": CB})
    call = ScriptedCall({"a": [ok()], "b": [ok()]})
    e = with_breaker(FakeBreaker({"a"}))
    e.sticky = picker = RecordingPicker()
    outcome = await route(config, call, e)
    assert outcome.leaf.api_key == "b" and picker.picked == ["b"]


async def test_a_sticky_target_is_only_moved_on_for_its_own_failures():
    call = ScriptedCall({"a": [fail(400)], "b": [ok()]})
    e = env()
    e.sticky = picker = RecordingPicker()
    outcome = await route(tree(STICKY_LB), call, e)
    assert outcome.attempt.status == 400 and picker.failed_targets == []  # the client's error, not the target's
    for status in (429, 408, 500, 503):
        picker = RecordingPicker()
        e.sticky = picker
        await route(tree(STICKY_LB), ScriptedCall({"a": [fail(status)], "b": [ok()]}), e)
        assert picker.failed_targets == ["a"], status


async def test_a_request_with_nothing_to_stick_by_is_balanced_as_usual():
    class NoIdentifier(RecordingPicker):
        async def pick(self, node, skip):
            return None

    call = ScriptedCall({"a": [ok()], "b": [ok()]})
    picks = set()
    for seed in range(30):
        e = env(seed=seed)
        e.sticky = NoIdentifier()
        picks.add((await route(tree(STICKY_LB), call, e)).leaf.api_key)
    assert picks == {"a", "b"}


async def test_a_sticky_target_that_was_never_called_did_not_fail():
    class Skipped(ScriptedCall):
        async def __call__(self, leaf):
            attempt = await super().__call__(leaf)
            attempt.source = "skipped"  # the request's time ran out before the call
            return attempt

    e = env()
    e.sticky = picker = RecordingPicker()
    await route(tree(STICKY_LB), Skipped({"a": [fail(504)], "b": [ok()]}), e)
    assert picker.failed_targets == []
