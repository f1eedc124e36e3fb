"""A whole Redis Cluster going away: requests keep succeeding, and the server starts without it."""

import json
from dataclasses import replace

from aigw.settings import Settings
from tests.support.local_gateway import LocalGateway

KEYS = ["sk-cl-a-0123456789", "sk-cl-b-0123456789"]


def settings(cluster, timeout_ms=300):
    return replace(Settings(), cache_store="redis", redis_url=cluster.url, redis_mode="cluster",
                   redis_timeout_ms=timeout_ms)


def config(fake):
    return {"strategy": {"mode": "loadbalance", "sticky": {"enabled": True, "hash_fields": ["metadata.user"]}},
            "cache": {"mode": "simple"}, "cb_config": {"failure_threshold": 3, "cooldown_interval": 30_000},
            "targets": [{"provider": "openai", "api_key": k, "custom_host": fake.base_url + "/v1"} for k in KEYS]}


def ask(client, gw, fake, user):
    return client.post(gw.base_url + "/v1/chat/completions",
                       json={"model": "m", "messages": [{"role": "user", "content": f"hi {user}"}]},
                       headers={"x-portkey-config": json.dumps(config(fake)),
                                "x-portkey-metadata": json.dumps({"user": user})})


def test_sticky_cache_and_breakers_survive_the_cluster_going_away(fake_provider, redis_cluster, client):
    with LocalGateway(settings(redis_cluster)) as gw:
        before = ask(client, gw, fake_provider, "u1")
        assert before.status_code == 200 and before.headers["x-portkey-cache-status"] == "MISS"
        redis_cluster.kill()
        during = [ask(client, gw, fake_provider, f"u{i}") for i in range(8)]
        assert [r.status_code for r in during] == [200] * 8
        assert {r.headers["x-portkey-cache-status"] for r in during} == {"BYPASS"}
        redis_cluster.restart()


def test_the_server_starts_while_the_cluster_is_down(fake_provider, redis_cluster, client):
    redis_cluster.kill()
    with LocalGateway(settings(redis_cluster, timeout_ms=100)) as gw:
        r = ask(client, gw, fake_provider, "u1")
        assert r.status_code == 200 and r.headers["x-portkey-cache-status"] == "BYPASS"
    redis_cluster.restart()
