"""Sticky load balancing through the local server, on the embedded store and on real Redis."""

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import replace

import httpx
import orjson
import pytest

from aigw.settings import Settings
from aigw.state.sticky import identifier, window
from tests.support.local_gateway import LocalGateway

KEYS = ["sk-sticky-a-0123456789", "sk-sticky-b-0123456789", "sk-sticky-c-0123456789"]


def stable_users(n, prefix="user-", ttl=300, margin_s=60):
    """Users whose sticky window (real clock) does not end within the test: a window that ends
    re-picks by design."""
    users = []
    for i in range(n * 2):
        user = f"{prefix}{i}"
        if window(identifier(("metadata.user_id",), {"metadata": {"user_id": user}}), ttl, time.time())[1] > margin_s:
            users.append(user)
    assert len(users) >= n
    return users[:n]


def sticky_config(fake, keys=KEYS):
    return {"strategy": {"mode": "loadbalance", "sticky": {"enabled": True, "hash_fields": ["metadata.user_id"]}},
            "targets": [{"provider": "openai", "api_key": k, "custom_host": fake.base_url + "/v1"} for k in keys]}


def request(user, config):
    return {"json": {"model": "m", "messages": [{"role": "user", "content": "hi"}], "user": user},
            "headers": {"x-portkey-config": json.dumps(config), "x-portkey-metadata": json.dumps({"user_id": user})}}


def keys_by_user(fake):
    seen = defaultdict(set)
    for rec in fake.requests_for("openai.chat"):
        seen[orjson.loads(rec.body)["user"]].add(rec.bearer)
    return seen


def test_each_user_sticks_to_one_target_and_the_header_says_how(fake_provider, backend_settings):
    with LocalGateway(backend_settings) as gw, httpx.Client(base_url=gw.base_url, timeout=30) as client:
        config = sticky_config(fake_provider)
        statuses = defaultdict(list)
        users = stable_users(30)
        for _ in range(4):
            for user in users:
                r = client.post("/v1/chat/completions", **request(user, config))
                assert r.status_code == 200
                statuses[user].append(r.headers["x-portkey-sticky-status"])
    seen = keys_by_user(fake_provider)
    assert all(len(keys) == 1 for keys in seen.values())
    assert len(set().union(*seen.values())) == 3  # the users spread over every target
    assert all(s == ["NEW", "HIT", "HIT", "HIT"] for s in statuses.values())


def test_a_response_without_sticky_has_no_sticky_header(fake_provider):
    config = {**sticky_config(fake_provider), "strategy": {"mode": "loadbalance"}}
    with LocalGateway() as gw, httpx.Client(base_url=gw.base_url, timeout=30) as client:
        r = client.post("/v1/chat/completions", **request("u", config))
    assert r.status_code == 200 and "x-portkey-sticky-status" not in r.headers


def test_a_failing_sticky_target_moves_its_users_on(fake_provider, backend_settings):
    from tests.fakes.provider_server import Reply

    config = {"strategy": {"mode": "fallback"}, "targets": [
        sticky_config(fake_provider, KEYS[:2]),
        {"provider": "openai", "api_key": KEYS[2], "custom_host": fake_provider.base_url + "/v1"}]}
    with LocalGateway(backend_settings) as gw, httpx.Client(base_url=gw.base_url, timeout=30) as client:
        user = stable_users(1)[0]
        first = client.post("/v1/chat/completions", **request(user, config))
        assert first.headers["x-portkey-sticky-status"] == "NEW"
        chosen = fake_provider.requests[-1].headers["authorization"]
        fake_provider.script("openai.chat", Reply(status=503, json={"error": {"message": "down"}}))
        failed = client.post("/v1/chat/completions", **request(user, config))
        assert failed.status_code == 200 and failed.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        moved = client.post("/v1/chat/completions", **request(user, config))
        assert moved.headers["x-portkey-sticky-status"] == "REPICK"
        assert fake_provider.requests[-1].headers["authorization"] != chosen


@pytest.fixture
def redis_gateway(redis_server):
    settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=200)
    with LocalGateway(settings) as gw:
        yield gw


def test_on_redis_instances_share_decisions(fake_provider, redis_server, redis_gateway):
    settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=200)
    with LocalGateway(settings) as other:
        config = sticky_config(fake_provider)
        with httpx.Client(timeout=30) as client:
            user = stable_users(1)[0]
            r1 = client.post(redis_gateway.base_url + "/v1/chat/completions", **request(user, config))
            r2 = client.post(other.base_url + "/v1/chat/completions", **request(user, config))
    assert (r1.headers["x-portkey-sticky-status"], r2.headers["x-portkey-sticky-status"]) == ("NEW", "HIT")
    assert len(keys_by_user(fake_provider)[user]) == 1
    assert len(redis_server.client().keys("aigw:sticky:*")) == 1


class Shifted:
    """Real time, moved on by the test (past L1's memory, past the store's probe interval)."""

    def __init__(self):
        self.offset = 0.0

    def __call__(self):
        return time.time() + self.offset


async def test_killing_redis_mid_burst_fails_no_request_and_moves_no_user(fake_provider, redis_server):
    config = sticky_config(fake_provider)
    users = stable_users(40)  # their windows outlast the test (and the clock's moves)
    failures = []
    clock = Shifted()
    settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=200)

    async def burst(client, rounds):
        async def one(user):
            r = await client.post("/v1/chat/completions", **request(user, config))
            if r.status_code != 200:
                failures.append(r.status_code)
        for _ in range(rounds):
            await asyncio.gather(*(one(u) for u in users))

    loop = asyncio.get_running_loop()
    with LocalGateway(settings, clock=clock) as gw:
        async with httpx.AsyncClient(base_url=gw.base_url, timeout=30) as client:
            await burst(client, 2)  # decided, and stored in Redis
            killer = loop.run_in_executor(None, redis_server.kill)
            await burst(client, 4)  # Redis dies during these
            await killer
            clock.offset += 6  # past L1: decided again, without Redis (the deterministic pick)
            await burst(client, 2)
            await loop.run_in_executor(None, redis_server.restart)
            clock.offset += 6  # past L1 and the probe interval: Redis (empty now) is used again
            await burst(client, 3)
    assert failures == []
    seen = keys_by_user(fake_provider)
    assert set(seen) == set(users) and all(len(keys) == 1 for keys in seen.values())
    # Used again after the restart (not for every user yet: while the probe was in flight, the
    # others went on without Redis and remember their pick in L1).
    assert 0 < len(redis_server.client().keys("aigw:sticky:*")) <= len(users)


def test_requests_without_the_hash_field_are_balanced_without_a_sticky_header(fake_provider):
    config = sticky_config(fake_provider)
    with LocalGateway() as gw, httpx.Client(base_url=gw.base_url, timeout=30) as client:
        for _ in range(30):
            r = client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "x"}]},
                            headers={"x-portkey-config": json.dumps(config)})
            assert r.status_code == 200 and "x-portkey-sticky-status" not in r.headers
    assert len({rec.bearer for rec in fake_provider.requests_for("openai.chat")}) > 1


def test_a_sticky_target_that_recovers_within_its_retries_keeps_its_users(fake_provider, backend_settings):
    from tests.fakes.provider_server import Reply

    config = sticky_config(fake_provider, KEYS[:2])
    for target in config["targets"]:
        target["retry"] = {"attempts": 2, "on_status_codes": [503]}
    user = stable_users(1)[0]
    with LocalGateway(backend_settings) as gw, httpx.Client(base_url=gw.base_url, timeout=30) as client:
        first = client.post("/v1/chat/completions", **request(user, config))
        chosen = fake_provider.requests[-1].bearer
        fake_provider.script("openai.chat", Reply(status=503, json={"error": {"message": "busy"}}))
        retried = client.post("/v1/chat/completions", **request(user, config))
        after = client.post("/v1/chat/completions", **request(user, config))
    assert first.headers["x-portkey-sticky-status"] == "NEW"
    assert retried.status_code == 200 and retried.headers["x-portkey-retry-attempt-count"] == "1"
    assert after.headers["x-portkey-sticky-status"] == "HIT"
    assert {r.bearer for r in fake_provider.requests_for("openai.chat")} == {chosen}  # never moved
