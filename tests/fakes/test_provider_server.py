"""Tests of the fake provider server itself (fast: no real network, small delays)."""

from __future__ import annotations

import base64
import json
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.provider_routes import embedding_vector
from tests.fakes.provider_server import (
    API_KEY_PLACEHOLDER,
    DEFAULT_TEXT,
    FakeProvider,
    Reply,
    anthropic_sse,
    openai_sse,
    parse_sse,
)

OPENAI_AUTH = {"Authorization": "Bearer sk-test-123456789"}
ANTHROPIC_AUTH = {"x-api-key": "sk-ant-test", "anthropic-version": "2023-06-01"}
USER_HI = [{"role": "user", "content": "hi there"}]
TOOLS = [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def post(http: aiohttp.ClientSession, url: str, body: Any, headers: dict[str, str]) -> tuple[int, Any]:
    async with http.post(url, json=body, headers=headers) as r:
        return r.status, await r.json(content_type=None)


# --------------------------------------------------------------------------- OpenAI


async def test_default_chat_json(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    req = {"model": "gpt-4o", "messages": USER_HI}
    status, body = await post(http, fake_provider.url("/v1/chat/completions"), req, OPENAI_AUTH)
    assert status == 200
    assert body["object"] == "chat.completion" and body["id"].startswith("chatcmpl-")
    assert body["model"] == "gpt-4o" and isinstance(body["created"], int)
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["message"]["content"] == DEFAULT_TEXT
    assert choice["finish_reason"] == "stop"
    u = body["usage"]
    assert u["total_tokens"] == u["prompt_tokens"] + u["completion_tokens"] > 0


async def test_chat_tool_call_and_prefix_match(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    req = {"model": "gpt-4o", "messages": USER_HI, "tools": TOOLS}
    status, body = await post(http, fake_provider.url("/custom/v1/chat/completions"), req, OPENAI_AUTH)
    assert status == 200
    choice = body["choices"][0]
    assert choice["finish_reason"] == "tool_calls" and choice["message"]["content"] is None
    call = choice["message"]["tool_calls"][0]
    assert call["type"] == "function" and call["id"].startswith("call_")
    assert call["function"] == {"name": "get_weather", "arguments": '{"x": 1}'}
    # After a tool result the model answers with text.
    tool_msg = {"role": "tool", "tool_call_id": call["id"], "content": "1"}
    req["messages"] = [*USER_HI, {"role": "assistant", "tool_calls": [call]}, tool_msg]
    _, body = await post(http, fake_provider.url("/v1/chat/completions"), req, OPENAI_AUTH)
    assert body["choices"][0]["message"]["content"] == DEFAULT_TEXT


async def test_chat_sse_sequence(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    req = {"model": "gpt-4o-mini", "messages": USER_HI, "stream": True, "stream_options": {"include_usage": True}}
    async with http.post(fake_provider.url("/v1/chat/completions"), json=req, headers=OPENAI_AUTH) as r:
        assert r.status == 200 and r.headers["Content-Type"].startswith("text/event-stream")
        raw = await r.read()
    events = parse_sse(raw)
    assert events[-1].data == "[DONE]"
    chunks = [e.json() for e in events[:-1]]
    assert all(c["object"] == "chat.completion.chunk" and c["model"] == "gpt-4o-mini" for c in chunks)
    assert chunks[0]["choices"][0]["delta"]["role"] == "assistant" and chunks[0]["choices"][0]["delta"]["content"] == ""
    pieces = [c["choices"][0]["delta"]["content"] for c in chunks[1:6]]
    assert pieces == ["Hello", " from", " the", " fake", " provider"]
    assert chunks[6]["choices"][0]["finish_reason"] == "stop"
    assert chunks[6]["choices"][0]["delta"] == {}
    assert chunks[7]["choices"] == [] and chunks[7]["usage"]["completion_tokens"] == 5
    assert len(chunks) == 8


async def test_completions_embeddings_models(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    req: dict[str, Any] = {"model": "gpt-3.5-turbo-instruct", "prompt": "Say"}
    status, body = await post(http, fake_provider.url("/v1/completions"), req, OPENAI_AUTH)
    assert status == 200 and body["object"] == "text_completion" and body["choices"][0]["text"] == DEFAULT_TEXT

    req = {"model": "text-embedding-3-small", "input": ["a", "b", "c"], "dimensions": 4}
    status, body = await post(http, fake_provider.url("/v1/embeddings"), req, OPENAI_AUTH)
    assert status == 200 and body["object"] == "list" and len(body["data"]) == 3
    assert [d["index"] for d in body["data"]] == [0, 1, 2]
    assert body["data"][0]["object"] == "embedding" and body["data"][0]["embedding"] == embedding_vector("a", 4)

    req = {"model": "m", "input": "a", "encoding_format": "base64"}  # what the openai SDK sends
    _, body = await post(http, fake_provider.url("/v1/embeddings"), req, OPENAI_AUTH)
    decoded = struct.unpack("<8f", base64.b64decode(body["data"][0]["embedding"]))
    assert decoded == pytest.approx(embedding_vector("a"), abs=1e-6)

    async with http.get(fake_provider.url("/v1/models"), headers=OPENAI_AUTH) as r:
        models = await r.json()
    assert models["object"] == "list" and all(m["object"] == "model" for m in models["data"])


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer undefined"}, {"Authorization": "Bearer "}])
async def test_openai_rejects_bad_auth(fake_provider: FakeProvider, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    status, body = await post(http, fake_provider.url("/v1/chat/completions"), {"model": "m", "messages": USER_HI}, headers)
    assert status == 401
    assert body["error"]["type"] == "invalid_request_error" and body["error"]["code"] == "invalid_api_key"
    assert body["error"]["message"].startswith("Incorrect API key provided") and body["error"]["param"] is None


# --------------------------------------------------------------------------- Azure


async def test_azure_routes(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    url = fake_provider.url("/openai/deployments/my-dep/chat/completions")
    req = {"messages": USER_HI}
    status, body = await post(http, url + "?api-version=2024-06-01", req, {})
    assert status == 401 and body["error"]["code"] == "401"
    status, body = await post(http, url, req, {"api-key": "k"})
    assert status == 404 and body["error"]["message"] == "Resource not found"
    status, body = await post(http, url + "?api-version=2024-06-01", req, {"api-key": "k"})
    assert status == 200 and body["model"] == "my-dep" and body["choices"][0]["message"]["content"] == DEFAULT_TEXT
    rec = fake_provider.requests[-1]
    assert rec.route == "azure.chat" and rec.params == {"deployment": "my-dep"} and rec.query == {"api-version": "2024-06-01"}


# --------------------------------------------------------------------------- Anthropic


async def test_anthropic_default_and_validation(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    url, req = fake_provider.url("/v1/messages"), {"model": "claude-x", "max_tokens": 64, "messages": USER_HI}
    status, body = await post(http, url, req, {"anthropic-version": "2023-06-01"})
    error = {"type": "authentication_error", "message": "x-api-key header is required"}
    assert status == 401 and body == {"type": "error", "error": error}
    status, body = await post(http, url, req, {"x-api-key": "k"})
    assert status == 400 and body["error"]["type"] == "invalid_request_error"
    status, body = await post(http, url, {"model": "claude-x", "messages": USER_HI}, ANTHROPIC_AUTH)
    assert status == 400 and "max_tokens" in body["error"]["message"]

    status, body = await post(http, url, req, ANTHROPIC_AUTH)
    assert status == 200 and body["type"] == "message" and body["id"].startswith("msg_") and body["model"] == "claude-x"
    assert body["content"] == [{"type": "text", "text": DEFAULT_TEXT}] and body["stop_reason"] == "end_turn"
    assert body["stop_sequence"] is None and body["usage"]["output_tokens"] > 0

    _, body = await post(http, url, {**req, "tools": [{"name": "calc", "input_schema": {"type": "object"}}]}, ANTHROPIC_AUTH)
    assert body["stop_reason"] == "tool_use" and [b["type"] for b in body["content"]] == ["text", "tool_use"]
    assert body["content"][1]["name"] == "calc" and body["content"][1]["input"] == {"x": 1}


async def test_anthropic_sse_event_order(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    req = {"model": "claude-x", "max_tokens": 64, "messages": USER_HI, "stream": True, "tools": [{"name": "calc"}]}
    async with http.post(fake_provider.url("/v1/messages"), json=req, headers=ANTHROPIC_AUTH) as r:
        events = parse_sse(await r.read())
    names = [e.event for e in events]
    assert names == [
        "message_start", "content_block_start", "ping", *["content_block_delta"] * 5, "content_block_stop",
        "content_block_start", *["content_block_delta"] * 3, "content_block_stop", "message_delta", "message_stop",
    ]
    data = [e.json() for e in events]
    assert all(d["type"] == e.event for d, e in zip(data, events, strict=True))
    assert data[0]["message"]["content"] == [] and data[0]["message"]["usage"]["input_tokens"] > 0
    assert "".join(d["delta"]["text"] for d in data[3:8]) == DEFAULT_TEXT
    assert data[9]["content_block"]["type"] == "tool_use" and data[9]["index"] == 1
    assert json.loads("".join(d["delta"]["partial_json"] for d in data[10:13])) == {"x": 1}
    assert data[-2]["delta"]["stop_reason"] == "tool_use" and data[-2]["usage"]["output_tokens"] > 0


# --------------------------------------------------------------------------- scripting


async def test_scripted_status_retry_after_and_order(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    url, req = fake_provider.url("/v1/chat/completions"), {"model": "m", "messages": USER_HI}
    fake_provider.script_all(Reply(status=503))
    fake_provider.script("openai.chat", Reply(status=429, headers={"Retry-After": "2"}), Reply(json={"ok": 1}))
    async with http.post(url, json=req, headers=OPENAI_AUTH) as r:
        assert r.status == 429 and r.headers["Retry-After"] == "2"
        assert (await r.json())["error"]["code"] == "rate_limit_exceeded"  # provider-shaped default error
    assert await post(http, url, req, OPENAI_AUTH) == (200, {"ok": 1})  # per-route script before script_all
    assert (await post(http, url, req, OPENAI_AUTH))[0] == 503  # then script_all
    assert fake_provider.pending_replies() == 0
    assert (await post(http, url, req, OPENAI_AUTH))[0] == 200  # then the default
    with pytest.raises(ValueError):
        fake_provider.script("openai.chatt", Reply())


async def test_scripted_raw_body_and_sse(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    url = fake_provider.url("/v1/chat/completions")
    fake_provider.script("openai.chat", Reply(body=b"{not json"), Reply(sse=openai_sse([{"a": 1}, "garbage"])))
    async with http.post(url, json={}, headers=OPENAI_AUTH) as r:
        assert await r.read() == b"{not json"
    async with http.post(url, json={}, headers=OPENAI_AUTH) as r:
        assert await r.read() == b'data: {"a":1}\n\ndata: garbage\n\ndata: [DONE]\n\n'


async def test_delay(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    fake_provider.script("openai.models", Reply(delay_s=0.2))
    t0 = time.monotonic()
    async with http.get(fake_provider.url("/v1/models"), headers=OPENAI_AUTH) as r:
        assert r.status == 200 and (await r.json())["object"] == "list"  # body-less 2xx reply -> default body
    assert time.monotonic() - t0 >= 0.2
    fake_provider.script("openai.models", Reply(delay_s=2))
    with pytest.raises(TimeoutError):
        async with http.get(fake_provider.url("/v1/models"), headers=OPENAI_AUTH, timeout=aiohttp.ClientTimeout(total=0.1)):
            pass


async def test_drop_after_chunks(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    fake_provider.script("openai.chat", Reply(sse=openai_sse([{"i": i} for i in range(5)]), drop_after_chunks=2))
    received: list[bytes] = []
    with pytest.raises(aiohttp.ClientPayloadError):
        async with http.post(fake_provider.url("/v1/chat/completions"), json={}, headers=OPENAI_AUTH) as r:
            assert r.status == 200
            async for line in r.content:
                received.append(line)
    assert b'data: {"i":0}\n' in received and b'data: {"i":2}\n' not in received


async def test_drop_before_headers(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    fake_provider.script("anthropic.messages", Reply(drop_before_headers=True))
    with pytest.raises(aiohttp.ServerDisconnectedError):
        await post(http, fake_provider.url("/v1/messages"), {}, ANTHROPIC_AUTH)
    assert fake_provider.requests[-1].route == "anthropic.messages"  # still recorded


async def test_echo_key(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    fake_provider.script("openai.chat", Reply(status=401, echo_key=True))
    fake_provider.script("anthropic.messages", Reply(json={"detail": f"bad key {API_KEY_PLACEHOLDER}"}, echo_key=True))
    status, body = await post(http, fake_provider.url("/v1/chat/completions"), {}, OPENAI_AUTH)
    assert status == 401 and "sk-test-123456789" in body["error"]["message"]
    _, body = await post(http, fake_provider.url("/v1/messages"), {}, ANTHROPIC_AUTH)
    assert body == {"detail": "bad key sk-ant-test"}


async def test_request_recording(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    t0 = time.monotonic()
    headers = {**OPENAI_AUTH, "X-Custom": "v"}
    await post(http, fake_provider.url("/v1/chat/completions?trace=1"), {"model": "m", "messages": USER_HI}, headers)
    async with http.post(fake_provider.url("/nope"), data=b"raw", headers=OPENAI_AUTH) as r:
        assert r.status == 404 and "Invalid URL (POST /nope)" in (await r.json())["error"]["message"]
    first, second = fake_provider.requests
    assert (first.method, first.path, first.query, first.route) == ("POST", "/v1/chat/completions", {"trace": "1"}, "openai.chat")
    assert first.headers["x-custom"] == "v" and first.headers["authorization"] == OPENAI_AUTH["Authorization"]
    assert first.api_key == "sk-test-123456789" and first.json == {"model": "m", "messages": USER_HI}
    assert json.loads(first.body) == first.json and t0 <= first.received_at <= second.received_at
    assert (second.route, second.body, second.json) == ("unknown", b"raw", None)
    assert fake_provider.requests_for("openai.chat") == [first]
    fake_provider.reset()
    assert fake_provider.requests == []


# --------------------------------------------------------------------------- helpers / lifecycle


def test_sse_helpers_roundtrip() -> None:
    frames = anthropic_sse([("message_stop", {})])
    assert frames == [b'event: message_stop\ndata: {"type":"message_stop"}\n\n']
    assert openai_sse([{"a": 1}], done=False) == [b'data: {"a":1}\n\n']
    events = parse_sse(b"".join(frames) + b": comment\n\ndata: a\ndata: b\n\n")
    assert [(e.event, e.data) for e in events] == [("message_stop", '{"type":"message_stop"}'), (None, "a\nb")]


def test_sync_client(fake_provider: FakeProvider) -> None:
    req = urllib.request.Request(fake_provider.url("/v1/models"), headers={"Authorization": "Bearer k"})
    with urllib.request.urlopen(req, timeout=5) as r:
        assert json.load(r)["object"] == "list"
    with pytest.raises(urllib.error.HTTPError) as exc:
        urllib.request.urlopen(fake_provider.url("/v1/models"), timeout=5)
    exc.value.close()
    assert exc.value.code == 401


def test_stop_is_fast_with_inflight_request() -> None:
    server = FakeProvider().start()
    server.script_all(Reply(delay_s=30))
    errors: list[BaseException] = []

    def call() -> None:
        try:
            urllib.request.urlopen(server.url("/v1/models"), timeout=10).read()
        except Exception as exc:  # noqa: BLE001
            errors.append(exc)

    client = threading.Thread(target=call)
    client.start()
    deadline = time.monotonic() + 2
    while not server.requests and time.monotonic() < deadline:
        time.sleep(0.01)
    t0 = time.monotonic()
    server.stop()
    assert time.monotonic() - t0 < 2
    client.join(5)
    assert errors  # the client saw the connection close instead of hanging
