"""The forwarding path end to end: client -> local server (real TCP) -> fake provider (real TCP)."""

import json
import time

import httpx
import orjson
import pytest

from tests.fakes.provider_server import Reply, openai_sse
from tests.support.local_gateway import LocalGateway

KEY = "sk-test-0123456789abcdef"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


@pytest.fixture(scope="module", params=["aiohttp", "stdlib"])
def gateway(request):
    # Every forwarding behaviour holds over both upstream transports (server / Lambda route).
    with LocalGateway(client=request.param) as gw:
        yield gw


@pytest.fixture
def client(gateway):
    gateway.sleeps.waits.clear()
    with httpx.Client(base_url=gateway.base_url, timeout=30) as c:
        yield c


def chat_answer(content):
    return {"id": "c-1", "object": "chat.completion", "created": 1, "model": "m",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}]}


def openai_headers(fake, **extra):
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.base_url + "/v1",
            "authorization": f"Bearer {KEY}", **extra}


def config_header(config):
    return {"x-portkey-config": json.dumps(config), "authorization": f"Bearer {KEY}"}


def target(fake, **fields):
    return {"provider": "openai", "custom_host": fake.base_url + "/v1", **fields}


def test_chat_passes_through_and_sets_portkey_headers(client, fake_provider):
    r = client.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider, **{"x-portkey-trace-id": "t-1"}))
    assert r.status_code == 200
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake provider"
    assert r.headers["x-portkey-trace-id"] == "t-1"
    assert r.headers["x-portkey-provider"] == "openai"
    assert r.headers["x-portkey-cache-status"] == "DISABLED"
    assert r.headers["x-portkey-retry-attempt-count"] == "0"
    assert r.headers["x-portkey-last-used-option-index"] == "config"
    sent = fake_provider.requests[-1]
    assert sent.path == "/v1/chat/completions" and sent.headers["authorization"] == f"Bearer {KEY}"
    assert orjson.loads(sent.body) == CHAT


def test_trace_id_is_generated_when_absent(client, fake_provider):
    r = client.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert len(r.headers["x-portkey-trace-id"]) >= 16


def test_completions_embeddings_and_models_routes(client, fake_provider):
    h = openai_headers(fake_provider)
    r = client.post("/v1/completions", json={"model": "m", "prompt": "hi"}, headers=h)
    assert r.status_code == 200 and r.json()["object"] == "text_completion"
    r = client.post("/v1/embeddings", json={"model": "m", "input": ["a", "b"]}, headers=h)
    assert r.status_code == 200 and len(r.json()["data"]) == 2
    r = client.get("/v1/models", headers=h)
    assert r.status_code == 200 and r.json()["object"] == "list"


def test_stream_is_relayed_chunk_by_chunk_to_done(client, fake_provider):
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=openai_headers(fake_provider)) as r:
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
        text = "".join(r.iter_text())
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    content = "".join(json.loads(e)["choices"][0]["delta"].get("content") or "" for e in events[:-1] if json.loads(e)["choices"])
    assert content == "Hello from the fake provider"


def test_fallback_on_server_error_reports_index(client, fake_provider):
    fake_provider.script("openai.chat", Reply(status=500))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(fake_provider), target(fake_provider)]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 200
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert len(fake_provider.requests) == 2


def test_all_targets_fail_returns_last_error_in_openai_shape(client, fake_provider):
    fake_provider.script("openai.chat", Reply(status=500), Reply(status=503))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(fake_provider), target(fake_provider)]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 503
    body = r.json()
    assert set(body["error"]) >= {"message", "type", "param", "code"} and body["provider"] == "openai"
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_retries_then_exhausted_count_is_minus_one(client, fake_provider, gateway):
    fake_provider.script("openai.chat", Reply(status=503), Reply(status=503), Reply(status=503))
    config = target(fake_provider, retry={"attempts": 2})
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 503 and r.headers["x-portkey-retry-attempt-count"] == "-1"
    assert len(fake_provider.requests) == 3 and len(gateway.sleeps.waits) == 2


def test_retry_after_header_is_honoured(client, fake_provider, gateway):
    fake_provider.script("openai.chat", Reply(status=429, headers={"retry-after": "2"}))
    config = target(fake_provider, retry={"attempts": 1, "use_retry_after_header": True})
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 200 and r.headers["x-portkey-retry-attempt-count"] == "1"
    assert gateway.sleeps.waits == [2.0]


def test_request_timeout_is_408_and_falls_back(client, fake_provider):
    fake_provider.script("openai.chat", Reply(delay_s=2.0))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(fake_provider, request_timeout=100), target(fake_provider)]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    fake_provider.script("openai.chat", Reply(delay_s=2.0))
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(target(fake_provider, request_timeout=100)))
    assert r.status_code == 408 and r.json()["error"]["type"] == "timeout_error"


def test_stream_failure_before_first_byte_falls_back(client, fake_provider):
    fake_provider.script("openai.chat", Reply(drop_before_headers=True))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(fake_provider), target(fake_provider)]}
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=config_header(config)) as r:
        text = "".join(r.iter_text())
    assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert text.rstrip().endswith("data: [DONE]")


def test_stream_broken_mid_way_ends_with_error_event(client, fake_provider):
    fake_provider.script("openai.chat", Reply(drop_after_chunks=2))
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=openai_headers(fake_provider)) as r:
        text = "".join(r.iter_text())
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events
    assert json.loads(events[-1])["error"]["code"] == "stream_interrupted"


def test_upstream_error_is_normalised_and_names_provider(client, fake_provider):
    r = client.post("/v1/chat/completions", json=CHAT, headers={**openai_headers(fake_provider), "authorization": "Bearer sk-invalid"})
    assert r.status_code == 401
    body = r.json()
    assert body["provider"] == "openai" and body["error"]["message"].startswith("openai error:")


def test_echoed_key_is_scrubbed_from_json_and_stream(client, fake_provider):
    fake_provider.script("openai.chat", Reply(status=400, echo_key=True))
    r = client.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert KEY not in r.text and "[REDACTED]" in r.text
    fake_provider.script("openai.chat", Reply(json=chat_answer("<<API_KEY>>"), echo_key=True))
    r = client.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert r.status_code == 200 and KEY not in r.text and "[REDACTED]" in r.text


def test_echoed_key_is_scrubbed_from_a_stream(client, fake_provider):
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "<<API_KEY>>"}}]}
    fake_provider.script("openai.chat", Reply(sse=openai_sse([chunk, chunk]), echo_key=True))
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=openai_headers(fake_provider)) as r:
        text = "".join(r.iter_text())
    assert KEY not in text and text.count("[REDACTED]") == 2


def test_override_params_are_merged_into_the_body(client, fake_provider):
    config = target(fake_provider, override_params={"temperature": 0.3, "model": "gpt-x"})
    client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    sent = orjson.loads(fake_provider.requests[-1].body)
    assert sent["temperature"] == 0.3 and sent["model"] == "gpt-x" and sent["messages"] == CHAT["messages"]


def test_forward_headers_only_listed_ones(client, fake_provider):
    h = openai_headers(fake_provider, **{"x-portkey-forward-headers": "x-team, host, content-length", "x-team": "red", "x-other": "no"})
    r = client.post("/v1/chat/completions", json=CHAT, headers=h)
    sent = fake_provider.requests[-1].headers
    assert sent.get("x-team") == "red" and "x-other" not in sent
    # framing headers are never copied from the client's hop
    assert r.status_code == 200 and sent["host"] == fake_provider.base_url.removeprefix("http://")


def test_conditional_routing_on_metadata(client, fake_provider):
    config = {
        "strategy": {"mode": "conditional", "conditions": [{"query": {"metadata.plan": "paid"}, "then": "p"}], "default": "f"},
        "targets": [target(fake_provider, name="p", override_params={"model": "paid-model"}),
                    target(fake_provider, name="f", override_params={"model": "free-model"})],
    }
    r = client.post("/v1/chat/completions", json=CHAT, headers={**config_header(config), "x-portkey-metadata": '{"plan": "paid"}'})
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[0]"
    assert orjson.loads(fake_provider.requests[-1].body)["model"] == "paid-model"
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_conditional_on_url_pathname(client, fake_provider):
    config = {
        "strategy": {"mode": "conditional", "conditions": [{"query": {"url.pathname": {"$regex": "embeddings$"}}, "then": "e"}]},
        "targets": [target(fake_provider, name="e")],
    }
    r = client.post("/v1/embeddings", json={"model": "m", "input": "x"}, headers=config_header(config))
    assert r.status_code == 200
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 400 and r.json()["error"]["code"] == "no_matching_target"


def test_azure_openai_by_headers(client, fake_provider):
    headers = {"x-portkey-provider": "azure-openai", "x-portkey-custom-host": fake_provider.base_url + "/openai",
               "x-portkey-azure-resource-name": "res", "x-portkey-azure-deployment-id": "dep-1",
               "x-portkey-azure-api-version": "2024-06-01", "authorization": "Bearer az-key-0123456789"}
    r = client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 200 and r.headers["x-portkey-provider"] == "azure-openai"
    sent = fake_provider.requests[-1]
    assert sent.path == "/openai/deployments/dep-1/chat/completions" and sent.query["api-version"] == "2024-06-01"
    assert sent.headers["api-key"] == "az-key-0123456789" and "authorization" not in sent.headers
    r = client.post("/v1/embeddings", json={"input": "x"}, headers=headers)
    assert r.status_code == 200 and fake_provider.requests[-1].path == "/openai/deployments/dep-1/embeddings"


def test_azure_without_deployment_is_400(client, fake_provider):
    headers = {"x-portkey-provider": "azure-openai", "x-portkey-azure-resource-name": "res", "authorization": "Bearer k-0123456789"}
    r = client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 400 and "deployment" in r.json()["error"]["message"]
    assert fake_provider.requests == []


def test_api_key_auth_mode_checks_the_key_against_the_configured_hashes(fake_provider):
    import hashlib

    from aigw.settings import Settings

    good = "pk-team-a-0123456789"
    settings = Settings(auth_mode="api_key", gateway_api_key_hashes=frozenset({hashlib.sha256(good.encode()).hexdigest()}))
    with LocalGateway(settings) as gw, httpx.Client(base_url=gw.base_url) as c:
        r = c.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
        assert r.status_code == 401 and r.json()["error"]["type"] == "authentication_error"
        r = c.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider, **{"x-portkey-api-key": "pk-1"}))
        assert r.status_code == 401 and "pk-1" not in r.text
        assert fake_provider.requests == []
        r = c.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider, **{"x-portkey-api-key": good}))
        assert r.status_code == 200


def test_connection_refused_is_502_and_falls_back(client, fake_provider):
    from tests.support.local_gateway import free_port

    dead = f"http://127.0.0.1:{free_port()}/v1"
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header({"provider": "openai", "custom_host": dead}))
    assert r.status_code == 502 and r.json()["provider"] == "openai"
    assert "127.0.0.1" not in r.json()["error"]["message"]
    config = {"strategy": {"mode": "fallback"}, "targets": [{"provider": "openai", "custom_host": dead}, target(fake_provider)]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_loadbalance_spreads_by_weight_through_the_server(client, fake_provider):
    # The server's generator is seeded (LocalGateway seed), so the split is reproducible.
    config = {"strategy": {"mode": "loadbalance"}, "targets": [
        target(fake_provider, weight=3, override_params={"model": "heavy"}),
        target(fake_provider, weight=1, override_params={"model": "light"}),
    ]}
    headers = config_header(config)
    indexes = [client.post("/v1/chat/completions", json=CHAT, headers=headers).headers["x-portkey-last-used-option-index"]
               for _ in range(400)]
    heavy = indexes.count("config.targets[0]")
    # 3:1 weights -> expect 300 of 400; 5 standard deviations (~43) either side
    assert 257 <= heavy <= 343, heavy
    assert [orjson.loads(r.body)["model"] for r in fake_provider.requests].count("heavy") == heavy


def anthropic_headers(fake, **extra):
    return {"x-portkey-provider": "anthropic", "x-portkey-custom-host": fake.base_url + "/v1",
            "authorization": "Bearer sk-ant-test-0123456789", **extra}


def test_anthropic_chat_is_translated_both_ways(client, fake_provider):
    body = {"model": "claude-3-5-haiku", "messages": [{"role": "system", "content": "be brief"}, {"role": "user", "content": "hi"}]}
    r = client.post("/v1/chat/completions", json=body, headers=anthropic_headers(fake_provider))
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["object"] == "chat.completion" and out["choices"][0]["message"]["content"] == "Hello from the fake provider"
    assert out["choices"][0]["finish_reason"] == "stop" and out["usage"]["total_tokens"] > 0
    sent = fake_provider.requests[-1]
    assert sent.path == "/v1/messages" and sent.headers["x-api-key"] == "sk-ant-test-0123456789"
    assert sent.headers["anthropic-version"] and "authorization" not in sent.headers
    upstream = orjson.loads(sent.body)
    assert upstream["system"] == [{"type": "text", "text": "be brief"}] and upstream["max_tokens"] > 0


def test_anthropic_tool_call(client, fake_provider):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    r = client.post("/v1/chat/completions", json={**CHAT, "tools": tools}, headers=anthropic_headers(fake_provider))
    choice = r.json()["choices"][0]
    assert choice["finish_reason"] == "tool_calls"
    call = choice["message"]["tool_calls"][0]
    assert call["function"]["name"] == "lookup" and json.loads(call["function"]["arguments"]) == {"x": 1}


def test_anthropic_stream_becomes_openai_chunks(client, fake_provider):
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=anthropic_headers(fake_provider)) as r:
        text = "".join(r.iter_text())
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)
    assert "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"]) == "Hello from the fake provider"
    assert chunks[-1]["choices"][0]["finish_reason"] == "stop"


def test_anthropic_stream_cut_short_ends_with_error(client, fake_provider):
    fake_provider.script("anthropic.messages", Reply(drop_after_chunks=3))
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=anthropic_headers(fake_provider)) as r:
        text = "".join(r.iter_text())
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events and "error" in json.loads(events[-1])


def test_anthropic_error_is_normalised(client, fake_provider):
    fake_provider.script("anthropic.messages", Reply(status=429))
    r = client.post("/v1/chat/completions", json=CHAT, headers=anthropic_headers(fake_provider))
    assert r.status_code == 429
    body = r.json()
    assert body["provider"] == "anthropic" and body["error"]["message"].startswith("anthropic error:")
    assert body["error"]["type"] == "rate_limit_error"


def test_fallback_from_openai_to_anthropic(client, fake_provider):
    fake_provider.script("openai.chat", Reply(status=500))
    config = {"strategy": {"mode": "fallback"}, "targets": [
        target(fake_provider), {"provider": "anthropic", "api_key": "sk-ant-cfg-000000", "custom_host": fake_provider.base_url + "/v1"}]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 200 and r.headers["x-portkey-provider"] == "anthropic"
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake provider"


def test_anthropic_does_not_serve_embeddings(client, fake_provider):
    r = client.post("/v1/embeddings", json={"input": "x"}, headers=anthropic_headers(fake_provider))
    assert r.status_code == 400 and "embeddings" in r.json()["error"]["message"]


def test_echoed_key_in_a_response_header_is_scrubbed(client, fake_provider):
    fake_provider.script("openai.chat", Reply(headers={"x-debug-key": "<<API_KEY>>"}, json=chat_answer("ok"), echo_key=True))
    r = client.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert r.headers["x-debug-key"] == "[REDACTED]" and KEY not in r.text


def test_no_retry_once_the_stream_has_started(client, fake_provider):
    fake_provider.script("openai.chat", Reply(drop_after_chunks=2))
    config = target(fake_provider, retry={"attempts": 3, "on_status_codes": [500, 502, 503]})
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=config_header(config)) as r:
        text = "".join(r.iter_text())
    assert len(fake_provider.requests) == 1  # the client already had bytes: no second attempt
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert json.loads(events[-1])["error"]["code"] == "stream_interrupted"


def test_client_leaving_cancels_retries_and_the_upstream_call(client, fake_provider, gateway):
    # GIVEN an upstream that answers 503 slowly, and a config that would retry 3 times
    fake_provider.script("openai.chat", *[Reply(status=503, delay_s=0.4) for _ in range(4)])
    config = target(fake_provider, retry={"attempts": 3})
    # WHEN the client gives up before the first answer
    with pytest.raises(httpx.TimeoutException):
        client.post("/v1/chat/completions", json=CHAT, headers=config_header(config), timeout=0.15)
    # THEN the gateway abandons its upstream call at once (the provider sees the disconnect before
    # it would have answered), so no retry follows: one upstream call, nothing nobody would read
    abandoned = fake_provider.wait_abandoned(1)
    assert len(fake_provider.requests) == 1 and abandoned[0] is fake_provider.requests[0]


def test_an_uncallable_fallback_target_is_a_failed_target_not_an_abort(client, fake_provider):
    azure_without_deployment = {"provider": "azure-openai", "api_key": "az-0123456789", "resource_name": "r"}
    fake_provider.script("openai.chat", Reply(status=500))
    config = {"strategy": {"mode": "fallback"}, "targets": [azure_without_deployment, target(fake_provider)]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 500 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    config = {"strategy": {"mode": "fallback"}, "targets": [target(fake_provider), azure_without_deployment]}
    fake_provider.script("openai.chat", Reply(status=500))
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 400 and "deployment" in r.json()["error"]["message"]
    assert r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"


def test_a_key_straddling_the_error_text_cut_is_still_scrubbed(client, fake_provider):
    fake_provider.script("openai.chat", Reply(status=401, body=b"E" * 505 + b"<<API_KEY>>", echo_key=True,
                                              headers={"content-type": "text/html"}))
    r = client.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert r.status_code == 401 and KEY[:8] not in r.text


def test_a_malformed_anthropic_answer_is_a_502(client, fake_provider):
    fake_provider.script("anthropic.messages", Reply(json={"content": [{"type": "text", "text": 5}], "usage": {"input_tokens": "x"}}))
    r = client.post("/v1/chat/completions", json=CHAT, headers=anthropic_headers(fake_provider))
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_invalid_body"


def test_an_oversized_provider_answer_is_refused_not_buffered(fake_provider):
    from aigw.settings import Settings

    fake_provider.script("openai.chat", Reply(json={"pad": "x" * 50_000}))
    with LocalGateway(Settings(max_response_bytes=10_000)) as gw, httpx.Client(base_url=gw.base_url) as c:
        r = c.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert r.status_code == 502 and "more than 10000 bytes" in r.json()["error"]["message"]


# --------------------------------------------------------------------------- the request-pipeline issue


def test_a_malformed_200_is_a_failed_attempt_and_the_fallback_moves_on(client, fake_provider):
    for bad in (Reply(json={}), Reply(body=b"not json", headers={"content-type": "application/json"}),
                Reply(json={"error": {"message": "overloaded"}})):
        fake_provider.reset()
        fake_provider.script("openai.chat", bad)
        config = {"strategy": {"mode": "fallback"}, "targets": [target(fake_provider), target(fake_provider)]}
        r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
        assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
        assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake provider"
        assert len(fake_provider.requests) == 2


def test_an_anthropic_200_without_content_is_a_502_never_a_200_carrying_an_error(client, fake_provider):
    fake_provider.script("anthropic.messages", Reply(json={"type": "message"}))
    r = client.post("/v1/chat/completions", json={**CHAT, "model": "claude-x"}, headers=anthropic_headers(fake_provider))
    assert r.status_code == 502 and r.json()["error"]["code"] == "upstream_invalid_body"
    assert "Invalid response received from anthropic" in r.json()["error"]["message"]
    fake_provider.script("anthropic.messages", Reply(json={"type": "message"}))
    config = {"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "anthropic", "api_key": "sk-ant-cfg-000000", "custom_host": fake_provider.base_url + "/v1"},
        target(fake_provider)]}
    r = client.post("/v1/chat/completions", json={**CHAT, "model": "claude-x"}, headers=config_header(config))
    assert r.status_code == 200 and r.headers["x-portkey-provider"] == "openai"


def test_a_virtual_key_target_is_a_failed_target_with_a_reason(client, fake_provider):
    config = {"strategy": {"mode": "fallback"}, "targets": [{"virtual_key": "vk-prod"}, target(fake_provider)]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header({"virtual_key": "vk-prod"}))
    assert r.status_code == 400
    err = r.json()["error"]
    assert err["code"] == "virtual_key_unavailable" and "control plane" in err["message"] and err["param"] == "virtual_key"


def test_a_basic_authorization_is_not_a_provider_key(client, fake_provider):
    headers = {**openai_headers(fake_provider), "authorization": "Basic dXNlcjpwYXNz"}
    r = client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 400 and r.json()["error"]["code"] == "missing_api_key"
    assert fake_provider.requests == []


def test_an_overlong_provider_key_is_a_400(client, fake_provider):
    r = client.post("/v1/chat/completions", json=CHAT,
                    headers={**openai_headers(fake_provider), "authorization": "Bearer " + "k" * 9000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "authorization"
    assert fake_provider.requests == []


@pytest.mark.parametrize("extra", [
    {"input_guardrails": ["pg-1"]}, {"before_request_hooks": [{"id": "h"}]},
])
def test_configs_asking_for_features_not_enabled_are_refused(client, fake_provider, extra):
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(target(fake_provider, **extra)))
    assert r.status_code == 400 and r.json()["error"]["code"] == "feature_not_enabled"
    assert fake_provider.requests == []


def test_anthropic_needs_a_model_and_sends_no_beta_unless_asked(client, fake_provider):
    r = client.post("/v1/chat/completions", json={"messages": CHAT["messages"]}, headers=anthropic_headers(fake_provider))
    assert r.status_code == 400 and r.json()["error"]["param"] == "model" and fake_provider.requests == []
    r = client.post("/v1/chat/completions", json={**CHAT, "model": "claude-x"}, headers=anthropic_headers(fake_provider))
    assert r.status_code == 200 and "anthropic-beta" not in fake_provider.requests[-1].headers
    r = client.post("/v1/chat/completions", json={**CHAT, "model": "claude-x"},
                    headers=anthropic_headers(fake_provider, **{"x-portkey-anthropic-beta": "tools-2024-05-16"}))
    assert r.status_code == 200 and fake_provider.requests[-1].headers["anthropic-beta"] == "tools-2024-05-16"


def test_the_request_timeout_header_applies_to_a_config_without_one(client, fake_provider):
    fake_provider.script("openai.chat", Reply(delay_s=2.0))
    headers = {**config_header(target(fake_provider)), "x-portkey-request-timeout": "200"}
    r = client.post("/v1/chat/completions", json=CHAT, headers=headers)
    assert r.status_code == 408 and r.json()["error"]["type"] == "timeout_error"


def test_a_stalled_stream_ends_with_an_error_after_the_idle_timeout(client, fake_provider):
    # GIVEN a stream whose chunks come 1.5 s apart and a request_timeout of 300 ms
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x"}}]}
    fake_provider.script("openai.chat", Reply(sse=openai_sse([chunk] * 6), chunk_delay_s=1.5))
    config = target(fake_provider, request_timeout=300)
    # WHEN it is relayed
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=config_header(config)) as r:
        text = "".join(r.iter_text())
    # THEN it ends after the first gap with an idle-timeout event, not after ~9 s with [DONE]
    events = [line[6:] for line in text.splitlines() if line.startswith("data: ")]
    assert "[DONE]" not in events and json.loads(events[-1])["error"]["code"] == "stream_idle_timeout"
    assert sum(1 for e in events if '"delta"' in e) == 1


def test_a_stream_that_ends_without_done_gets_it(client, fake_provider):
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x"}}]}
    fake_provider.script("openai.chat", Reply(sse=[b"data: " + orjson.dumps(chunk) + b"\n\n"]))
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=openai_headers(fake_provider)) as r:
        text = "".join(r.iter_text())
    assert text.endswith("data: [DONE]\n\n") and text.count("[DONE]") == 1


def test_malformed_sse_bytes_are_not_passed_through_verbatim(client, fake_provider):
    fake_provider.script("openai.chat", Reply(sse=[b'data: {"a": "x\x00y"}\n\n', b'data: {"b": "\xff\xfe"}\n\n',
                                                   b"data: [DONE]\n\n"]))
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=openai_headers(fake_provider)) as r:
        raw = b"".join(r.iter_bytes())
    assert b"\x00" not in raw and b"\xff" not in raw
    raw.decode("utf-8")  # valid UTF-8 throughout
    assert raw.endswith(b"data: [DONE]\n\n")


def test_a_json_escaped_key_echo_is_scrubbed(client, fake_provider):
    escaped = "".join(f"\\u{ord(c):04x}" if i % 2 else c for i, c in enumerate(KEY))
    body = b'{"id": "c", "object": "chat.completion", "choices": [{"index": 0, "message": {"role": "assistant", "content": "' \
        + escaped.encode() + b'"}}]}'
    fake_provider.script("openai.chat", Reply(body=body, headers={"content-type": "application/json"}))
    r = client.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert r.status_code == 200 and KEY not in r.json()["choices"][0]["message"]["content"]
    chunk = b'data: {"choices": [{"index": 0, "delta": {"content": "' + escaped.encode() + b'"}}]}\n\n'
    fake_provider.script("openai.chat", Reply(sse=[chunk, b"data: [DONE]\n\n"]))
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=openai_headers(fake_provider)) as r:
        text = "".join(r.iter_text())
    decoded = [json.loads(line[6:]) for line in text.splitlines() if line.startswith("data: {")]
    assert KEY not in json.dumps(decoded, ensure_ascii=False)


def test_overlapping_requests_do_not_disturb_each_other(gateway, fake_provider):
    # GIVEN two slow answers and a stream, requested so that they overlap
    import threading

    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}}]}
    fake_provider.script("openai.chat", Reply(delay_s=0.6), Reply(delay_s=1.2))
    results: dict[str, object] = {}

    def post(name, body, delay):
        time.sleep(delay)
        with httpx.Client(base_url=gateway.base_url, timeout=30) as c:
            if body.get("stream"):
                with c.stream("POST", "/v1/chat/completions", json=body, headers=openai_headers(fake_provider)) as r:
                    results[name] = (r.status_code, "".join(r.iter_text()))
            else:
                r = c.post("/v1/chat/completions", json=body, headers=openai_headers(fake_provider))
                results[name] = (r.status_code, r.text)

    threads = [threading.Thread(target=post, args=("a", CHAT, 0)), threading.Thread(target=post, args=("b", CHAT, 0.2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    # THEN both are answered in full: one finishing never cancels or cuts the other
    assert results["a"][0] == 200 and results["b"][0] == 200, results
    fake_provider.script("openai.chat", Reply(sse=openai_sse([chunk] * 20), chunk_delay_s=0.05))
    threads = [threading.Thread(target=post, args=("s", {**CHAT, "stream": True}, 0)),
               threading.Thread(target=post, args=("n", CHAT, 0.2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    status, text = results["s"]
    assert status == 200 and text.count('"delta"') == 20 and text.endswith("data: [DONE]\n\n")
    assert results["n"][0] == 200


def test_an_overlong_gateway_key_is_a_400_not_a_500(client, fake_provider):
    r = client.post("/v1/chat/completions", json=CHAT,
                    headers={**openai_headers(fake_provider), "x-portkey-api-key": "k" * 9000})
    assert r.status_code == 400 and r.json()["error"]["param"] == "x-portkey-api-key"


def test_the_operators_upstream_timeout_bounds_a_clients_request_timeout(fake_provider):
    from aigw.settings import Settings

    fake_provider.script("openai.chat", Reply(delay_s=3.0), Reply(delay_s=3.0))
    with LocalGateway(Settings(upstream_timeout_ms=300)) as gw, httpx.Client(base_url=gw.base_url, timeout=30) as c:
        # a config asking for a far longer timeout is still cut at UPSTREAM_TIMEOUT_MS (a 504)
        r = c.post("/v1/chat/completions", json=CHAT,
                   headers=config_header(target(fake_provider, request_timeout=1_000_000_000)))
        assert r.status_code == 504 and r.json()["error"]["code"] == "gateway_timeout"
        # and without any request_timeout too
        r = c.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
        assert r.status_code == 504 and "did not answer within 300 ms" in r.json()["error"]["message"]


def test_a_body_whose_bytes_stop_coming_is_cut_by_the_idle_timeout(fake_provider):
    from aigw.settings import Settings

    # GIVEN an answer whose body arrives in pieces 1.5 s apart, and a 300 ms idle timeout
    pieces = [b'{"id": "c", "object": "chat.completion", ', b'"choices": []}']
    fake_provider.script("openai.chat", Reply(sse=pieces, chunk_delay_s=1.5, headers={"content-type": "application/json"}))
    with LocalGateway(Settings(upstream_idle_timeout_ms=300)) as gw, httpx.Client(base_url=gw.base_url, timeout=30) as c:
        r = c.post("/v1/chat/completions", json=CHAT, headers=openai_headers(fake_provider))
    assert r.status_code == 408 and r.json()["error"]["code"] == "stream_idle_timeout"


def test_camel_case_config_keys_are_read_as_the_reference_reads_them(client, fake_provider):
    r = client.post("/v1/chat/completions", json=CHAT,
                    headers=config_header({**target(fake_provider), "inputGuardrails": ["pg-1"]}))
    assert r.status_code == 400 and r.json()["error"]["code"] == "feature_not_enabled"
    assert fake_provider.requests == []
    fake_provider.script("openai.chat", Reply(delay_s=2.0))
    camel = {"provider": "openai", "customHost": fake_provider.base_url + "/v1", "requestTimeout": 200,
             "overrideParams": {"model": "camel-model"}}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(camel))
    assert r.status_code == 408
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(camel))
    assert r.status_code == 200 and orjson.loads(fake_provider.requests[-1].body)["model"] == "camel-model"


def test_a_stream_that_opens_with_an_error_event_falls_back(client, fake_provider):
    error_first = [b'data: {"error": {"message": "overloaded", "type": "server_error"}}\n\n']
    fake_provider.script("openai.chat", Reply(sse=error_first))
    config = {"strategy": {"mode": "fallback"}, "targets": [target(fake_provider), target(fake_provider)]}
    with client.stream("POST", "/v1/chat/completions", json={**CHAT, "stream": True}, headers=config_header(config)) as r:
        text = "".join(r.iter_text())
    assert r.status_code == 200 and r.headers["x-portkey-last-used-option-index"] == "config.targets[1]"
    assert "overloaded" not in text and text.endswith("data: [DONE]\n\n")
    anthropic_error = [b'event: error\ndata: {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}\n\n']
    fake_provider.script("anthropic.messages", Reply(sse=anthropic_error))
    r = client.post("/v1/chat/completions", json={**CHAT, "model": "claude-x", "stream": True},
                    headers=anthropic_headers(fake_provider))
    assert r.status_code == 502 and "busy" in r.json()["error"]["message"]


def test_any_config_key_is_scrubbed_whichever_target_answers(client, fake_provider):
    first_key = "sk-first-target-0123456789"
    # the second target's provider echoes the first target's key (e.g. it was forwarded to it)
    fake_provider.script("openai.chat", Reply(status=500), Reply(json=chat_answer(f"saw {first_key}")))
    config = {"strategy": {"mode": "fallback"}, "targets": [
        target(fake_provider, api_key=first_key), target(fake_provider, api_key="sk-second-0123456789")]}
    r = client.post("/v1/chat/completions", json=CHAT, headers=config_header(config))
    assert r.status_code == 200 and first_key not in r.text and "[REDACTED]" in r.text


def test_anthropic_with_an_empty_model_is_a_400(client, fake_provider):
    r = client.post("/v1/chat/completions", json={**CHAT, "model": " "}, headers=anthropic_headers(fake_provider))
    assert r.status_code == 400 and r.json()["error"]["param"] == "model" and fake_provider.requests == []
