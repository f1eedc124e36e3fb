"""Response caching through the local server, on the embedded store and on real Redis."""

import json
import time
from dataclasses import replace

import orjson
import pytest

from aigw.settings import Settings
from aigw.state import response_cache
from tests.fakes.provider_server import DEFAULT_TEXT, Reply, openai_sse, parse_sse
from tests.support.local_gateway import LocalGateway

KEY = "sk-cache-0123456789abcdef"
CHAT = {"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]}


class Clock:
    def __init__(self):
        self.now = time.time()

    def __call__(self):
        return self.now


@pytest.fixture
def gateway(backend_settings):
    with LocalGateway(backend_settings) as gw:
        yield gw


def headers(fake, cache=None, **extra):
    config = {"provider": "openai", "api_key": KEY, "custom_host": fake.base_url + "/v1"}
    if cache is not None:
        config["cache"] = cache
    return {"x-portkey-config": json.dumps(config), **extra}


def chat(client, gw, fake, body=CHAT, cache=None, **extra):
    if cache is None:
        cache = {"mode": "simple"}
    return client.post(gw.base_url + "/v1/chat/completions", json=body, headers=headers(fake, cache or None, **extra))


def calls(fake):
    return len(fake.requests_for("openai.chat"))


def test_a_repeated_request_is_a_hit_without_a_provider_call(gateway, fake_provider, client):
    first = chat(client, gateway, fake_provider)
    second = chat(client, gateway, fake_provider)
    assert first.headers["x-portkey-cache-status"] == "MISS" and second.headers["x-portkey-cache-status"] == "HIT"
    assert second.json() == first.json() and calls(fake_provider) == 1
    for name in ("x-portkey-provider", "x-portkey-last-used-option-index", "x-portkey-retry-attempt-count"):
        assert second.headers[name] == first.headers[name]
    assert second.headers["content-type"] == "application/json"


def test_force_refresh_calls_again_and_stores_the_new_answer(gateway, fake_provider, client):
    chat(client, gateway, fake_provider)
    fake_provider.script("openai.chat", Reply(json={**orjson.loads(chat(client, gateway, fake_provider).content),
                                                    "id": "fresh"}))
    refreshed = chat(client, gateway, fake_provider, **{"x-portkey-cache-force-refresh": "true"})
    assert refreshed.headers["x-portkey-cache-status"] == "REFRESH" and refreshed.json()["id"] == "fresh"
    again = chat(client, gateway, fake_provider)
    assert again.headers["x-portkey-cache-status"] == "HIT" and again.json()["id"] == "fresh"
    assert calls(fake_provider) == 2


def test_namespaces_and_bodies_scope_the_cache(gateway, fake_provider, client):
    chat(client, gateway, fake_provider)
    other_ns = chat(client, gateway, fake_provider, **{"x-portkey-cache-namespace": "team-b"})
    other_body = chat(client, gateway, fake_provider, body={**CHAT, "temperature": 0.5})
    assert other_ns.headers["x-portkey-cache-status"] == "MISS"
    assert other_body.headers["x-portkey-cache-status"] == "MISS"
    assert chat(client, gateway, fake_provider, **{"x-portkey-cache-namespace": "team-b"}).headers[
        "x-portkey-cache-status"] == "HIT"


def test_max_age_expires_answers(fake_provider, client):
    # On the embedded store, whose clock the test moves (Redis expiry: the store contract tests).
    clock = Clock()
    cache = {"mode": "simple", "max_age": 60}
    with LocalGateway(clock=clock) as gw:
        chat(client, gw, fake_provider, cache=cache)
        clock.now += 59
        assert chat(client, gw, fake_provider, cache=cache).headers["x-portkey-cache-status"] == "HIT"
        clock.now += 2
        assert chat(client, gw, fake_provider, cache=cache).headers["x-portkey-cache-status"] == "MISS"


def test_without_cache_config_the_status_is_disabled_and_nothing_is_stored(gateway, fake_provider, client):
    for _ in range(2):
        r = chat(client, gateway, fake_provider, cache={})
        assert r.headers["x-portkey-cache-status"] == "DISABLED"
    assert calls(fake_provider) == 2


def test_errors_are_never_stored(gateway, fake_provider, client):
    fake_provider.script("openai.chat", Reply(status=500, json={"error": {"message": "boom"}}))
    assert chat(client, gateway, fake_provider).status_code == 500
    assert chat(client, gateway, fake_provider).headers["x-portkey-cache-status"] == "MISS"
    assert calls(fake_provider) == 2


def test_a_stream_is_answered_from_a_stored_answer(gateway, fake_provider, client):
    chat(client, gateway, fake_provider)
    r = chat(client, gateway, fake_provider, body={**CHAT, "stream": True, "stream_options": {"include_usage": True}})
    assert r.headers["x-portkey-cache-status"] == "HIT" and r.headers["content-type"].startswith("text/event-stream")
    events = parse_sse(r.content)
    assert events[-1].data == "[DONE]"
    chunks = [json.loads(e.data) for e in events[:-1]]
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == DEFAULT_TEXT
    assert chunks[-1]["usage"]["total_tokens"] > 0
    assert calls(fake_provider) == 1


def test_a_completed_stream_is_stored_and_serves_plain_requests(gateway, fake_provider, client):
    streamed = chat(client, gateway, fake_provider, body={**CHAT, "stream": True})
    assert streamed.headers["x-portkey-cache-status"] == "MISS" and parse_sse(streamed.content)[-1].data == "[DONE]"
    plain = chat(client, gateway, fake_provider)
    assert plain.headers["x-portkey-cache-status"] == "HIT"
    assert plain.json()["choices"][0]["message"] == {"role": "assistant", "content": DEFAULT_TEXT}
    assert calls(fake_provider) == 1


def test_a_partial_stream_is_never_stored(gateway, fake_provider, client):
    cut = openai_sse([{"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "m",
                       "choices": [{"index": 0, "delta": {"role": "assistant", "content": "half"}}]}], done=False)
    fake_provider.script("openai.chat", Reply(sse=cut))
    chat(client, gateway, fake_provider, body={**CHAT, "stream": True})
    assert chat(client, gateway, fake_provider, body={**CHAT, "stream": True}).headers[
        "x-portkey-cache-status"] == "MISS"


def test_an_answer_over_the_size_limit_is_not_stored(gateway, fake_provider, client, monkeypatch):
    monkeypatch.setattr(response_cache, "MAX_CACHED_BODY_BYTES", 100)
    chat(client, gateway, fake_provider)
    assert chat(client, gateway, fake_provider).headers["x-portkey-cache-status"] == "MISS"


def test_on_redis_answers_are_stored_compressed_under_a_hashed_key(fake_provider, client, redis_server):
    settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=500)
    with LocalGateway(settings) as gw:
        chat(client, gw, fake_provider)
    keys = redis_server.client().keys("aigw:cache:*")
    assert len(keys) == 1 and KEY.encode() not in keys[0]
    assert redis_server.client().get(keys[0]).startswith(b"z2")


def test_with_redis_down_the_cache_is_bypassed_and_requests_succeed(fake_provider, client, redis_server):
    settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=200)
    with LocalGateway(settings) as gw:
        redis_server.kill()
        for _ in range(3):
            r = chat(client, gw, fake_provider)
            assert r.status_code == 200 and r.headers["x-portkey-cache-status"] == "BYPASS"


def test_a_shorter_max_age_refuses_an_older_answer(fake_provider, client):
    clock = Clock()
    with LocalGateway(clock=clock) as gw:
        chat(client, gw, fake_provider, cache={"mode": "simple", "max_age": 86_400})
        clock.now += 600
        assert chat(client, gw, fake_provider, cache={"mode": "simple", "max_age": 60}).headers[
            "x-portkey-cache-status"] == "MISS"
        assert chat(client, gw, fake_provider, cache={"mode": "simple", "max_age": 86_400}).headers[
            "x-portkey-cache-status"] == "HIT"


def test_a_key_the_provider_echoes_is_never_stored(fake_provider, client, redis_server):
    import zlib

    echo = {"id": "c", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": f"your key is {KEY}"},
                         "finish_reason": "stop"}]}
    settings = replace(Settings(), cache_store="redis", redis_url=redis_server.url, redis_timeout_ms=500)
    with LocalGateway(settings) as gw:
        fake_provider.script("openai.chat", Reply(json=echo))
        assert KEY not in chat(client, gw, fake_provider).text
        hit = chat(client, gw, fake_provider)
        assert hit.headers["x-portkey-cache-status"] == "HIT" and KEY not in hit.text
    [key] = redis_server.client().keys("aigw:cache:*")
    stored = zlib.decompress(redis_server.client().get(key)[10:])
    assert KEY.encode() not in stored and b"[REDACTED]" in stored
