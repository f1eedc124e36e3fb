"""Each route's Lambda handler (functions/<route>/app.py), invoked in-process with payload 2.0 events.

Both event sources that deliver payload 2.0 are exercised: API Gateway HTTP API (what
template.yaml wires) and a Lambda Function URL (buffered; the streaming Function URL runs the
local server behind the Lambda Web Adapter instead, see tests/deploy/test_packaging.py).
Requests go to the fake provider through `x-portkey-custom-host`.

Mangum drives the app on ``asyncio.get_event_loop()``, one loop for the life of the process as in
Lambda. So these tests are plain sync tests (never inside a running loop), and this module gives
them one loop of their own, set before each test: a loop another module's async tests closed
is never reused, and the shared upstream session is closed with it at the end.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import aigw
from tests.fakes.provider_server import Reply
from tests.support.lambda_events import (
    FakeContext,
    LambdaResult,
    function_url_event,
    http_api_event,
    parse_result,
    with_request,
)

ROOT = Path(__file__).resolve().parents[2]
KEY = "sk-test-0123456789abcdef"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
ROUTE_FUNCTIONS = {
    ("POST", "/v1/chat/completions"): "chat_completions",
    ("POST", "/v1/completions"): "completions",
    ("POST", "/v1/embeddings"): "embeddings",
    ("GET", "/v1/models"): "models",
    ("GET", "/v1/health"): "health",
    ("GET", "/"): "health",
}
SOURCES = ["http_api", "function_url"]


def load_handler_module(route_dir: str) -> ModuleType:
    """Import functions/<route_dir>/app.py under a unique name, without touching sys.path."""
    path = ROOT / "functions" / route_dir / "app.py"
    spec = importlib.util.spec_from_file_location(f"aigw_function_{route_dir}_app", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def lambda_loop() -> Iterator[asyncio.AbstractEventLoop]:
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()
    asyncio.set_event_loop(None)


@pytest.fixture(autouse=True)
def _use_lambda_loop(lambda_loop: asyncio.AbstractEventLoop) -> None:
    asyncio.set_event_loop(lambda_loop)


@pytest.fixture(scope="module")
def handlers(lambda_loop: asyncio.AbstractEventLoop) -> Iterator[dict[str, Any]]:
    # On Lambda nothing is a trusted custom host by default (loopback is the Runtime API); the fake
    # provider listens on loopback, so these functions are deployed trusting it, as an operator would.
    with pytest.MonkeyPatch.context() as env:
        env.setenv("TRUSTED_CUSTOM_HOSTS", "127.0.0.1")
        loaded = {name: load_handler_module(name).handler for name in sorted(set(ROUTE_FUNCTIONS.values()))}
    yield loaded
    for handler in loaded.values():  # what the end of an execution environment would release
        close = getattr(handler.app.gateway, "close", None)
        if close is not None:
            lambda_loop.run_until_complete(close())


def make_event(source: str, method: str, path: str, **changes: Any) -> dict[str, Any]:
    if source == "http_api":
        return http_api_event(method, path, **changes)
    return function_url_event(method, path, **changes)


def invoke(handlers: dict[str, Any], source: str, method: str, path: str, **changes: Any) -> LambdaResult:
    handler = handlers[ROUTE_FUNCTIONS[(method, path)]]
    result = handler(make_event(source, method, path, **changes), FakeContext())
    # What Lambda does with the return value: JSON-serialise it.
    return parse_result(json.loads(json.dumps(result)))


def provider_headers(fake: Any, **extra: str) -> dict[str, str]:
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.base_url + "/v1",
            "authorization": f"Bearer {KEY}", **extra}


def assert_portkey_headers(r: LambdaResult, trace_id: str | None = None) -> None:
    assert r.headers["x-portkey-provider"] == "openai"
    assert r.headers["x-portkey-cache-status"] == "DISABLED"
    assert r.headers["x-portkey-retry-attempt-count"] == "0"
    assert r.headers["x-portkey-last-used-option-index"] == "config"
    if trace_id is None:
        assert len(r.headers["x-portkey-trace-id"]) >= 16
    else:
        assert r.headers["x-portkey-trace-id"] == trace_id


def assert_openai_error(r: LambdaResult, status: int, code: str | None = None, *,
                        top: frozenset[str] = frozenset({"error"})) -> dict[str, Any]:
    assert r.status == status, r.text
    assert r.headers["content-type"].startswith("application/json")
    body = r.json()
    assert set(body) == top and set(body["error"]) == {"message", "type", "param", "code"}
    assert "Traceback" not in r.text
    if code is not None:
        assert body["error"]["code"] == code
    return body["error"]


def sse_data(text: str) -> list[str]:
    return [line[len("data: "):] for line in text.splitlines() if line.startswith("data: ")]


@pytest.mark.parametrize("source", SOURCES)
def test_chat_completion(handlers, fake_provider, source):
    r = invoke(handlers, source, "POST", "/v1/chat/completions", body=CHAT,
               headers=provider_headers(fake_provider, **{"x-portkey-trace-id": f"trace-{source}"}))
    assert r.status == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake provider"
    assert_portkey_headers(r, trace_id=f"trace-{source}")
    sent = fake_provider.requests[-1]
    assert sent.route == "openai.chat" and sent.path == "/v1/chat/completions"
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.json == CHAT


@pytest.mark.parametrize("source", SOURCES)
def test_chat_stream_is_one_complete_sse_body(handlers, fake_provider, source):
    r = invoke(handlers, source, "POST", "/v1/chat/completions", body={**CHAT, "stream": True},
               headers=provider_headers(fake_provider))
    assert r.status == 200, r.text
    assert r.headers["content-type"].startswith("text/event-stream")
    assert r.raw["isBase64Encoded"] is False  # text/* stays text in the Lambda response
    assert_portkey_headers(r)
    events = sse_data(r.text)
    assert events[-1] == "[DONE]"
    assert r.text.rstrip("\n").endswith("data: [DONE]")
    chunks = [json.loads(e) for e in events[:-1]]
    content = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    assert content == "Hello from the fake provider"
    assert fake_provider.requests[-1].json["stream"] is True


@pytest.mark.parametrize("source", SOURCES)
def test_completions(handlers, fake_provider, source):
    r = invoke(handlers, source, "POST", "/v1/completions", body={"model": "m", "prompt": "hi"},
               headers=provider_headers(fake_provider))
    assert r.status == 200, r.text
    assert r.json()["object"] == "text_completion"
    assert_portkey_headers(r)
    assert fake_provider.requests[-1].route == "openai.completions"


@pytest.mark.parametrize("source", SOURCES)
def test_embeddings(handlers, fake_provider, source):
    r = invoke(handlers, source, "POST", "/v1/embeddings", body={"model": "m", "input": ["a", "b"]},
               headers=provider_headers(fake_provider))
    assert r.status == 200, r.text
    assert [d["index"] for d in r.json()["data"]] == [0, 1]
    assert_portkey_headers(r)
    assert fake_provider.requests[-1].route == "openai.embeddings"


@pytest.mark.parametrize("source", SOURCES)
def test_models(handlers, fake_provider, source):
    r = invoke(handlers, source, "GET", "/v1/models", headers=provider_headers(fake_provider))
    assert r.status == 200, r.text
    assert r.json()["object"] == "list"
    assert_portkey_headers(r)
    assert fake_provider.requests[-1].route == "openai.models"


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("path", ["/v1/health", "/"])
def test_health(handlers, fake_provider, source, path):
    r = invoke(handlers, source, "GET", path)
    assert r.status == 200, r.text
    assert r.json() == {"status": "success", "message": "Server is healthy", "version": aigw.__version__}
    assert fake_provider.requests == []


@pytest.mark.parametrize("source", SOURCES)
def test_base64_encoded_body(handlers, fake_provider, source):
    r = invoke(handlers, source, "POST", "/v1/chat/completions", body=CHAT, base64_body=True,
               headers=provider_headers(fake_provider))
    assert r.status == 200, r.text
    assert r.json()["choices"][0]["message"]["content"] == "Hello from the fake provider"
    assert fake_provider.requests[-1].json == CHAT


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("base64_body", [False, True])
def test_invalid_json_is_an_openai_400(handlers, fake_provider, source, base64_body):
    r = invoke(handlers, source, "POST", "/v1/chat/completions", body=b'{"model": "m", "messages": [',
               base64_body=base64_body, headers=provider_headers(fake_provider))
    err = assert_openai_error(r, 400, "invalid_json")
    assert "not valid JSON" in err["message"]
    assert fake_provider.requests == []


@pytest.mark.parametrize("source", SOURCES)
def test_missing_body_is_an_openai_400(handlers, fake_provider, source):
    r = invoke(handlers, source, "POST", "/v1/embeddings", body=b"", headers=provider_headers(fake_provider))
    assert_openai_error(r, 400, "invalid_json")
    assert fake_provider.requests == []


def test_provider_error_keeps_its_status_and_no_key_leaks(handlers, fake_provider):
    # GIVEN a provider that echoes the key verbatim in its error (the fake does not mask it)
    fake_provider.script("openai.chat", Reply(status=401, echo_key=True, headers={"x-echo": "<<API_KEY>>"}))
    r = invoke(handlers, "http_api", "POST", "/v1/chat/completions", body=CHAT, headers=provider_headers(fake_provider))
    err = assert_openai_error(r, 401, top=frozenset({"error", "provider"}))  # provider errors name it
    assert r.json()["provider"] == "openai" and err["message"].startswith("openai error: ")
    # THEN the key reached the fake and came back, but not to the client
    assert fake_provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert KEY not in r.text and "[REDACTED]" in err["message"]
    assert KEY not in json.dumps(r.headers) and r.headers["x-echo"] == "[REDACTED]"
    assert r.headers["x-portkey-provider"] == "openai"


def test_warm_invocations_reuse_the_environment(handlers, fake_provider):
    """Several invocations of one handler in a row, as a warm execution environment serves them."""
    for i in range(3):
        r = invoke(handlers, "http_api", "POST", "/v1/chat/completions", body={**CHAT, "stream": i % 2 == 1},
                   headers=provider_headers(fake_provider))
        assert r.status == 200, r.text
    assert len(fake_provider.requests_for("openai.chat")) == 3


def test_default_route_answers_unknown_routes_in_openai_shape():
    handler = load_handler_module("not_found").handler

    def call(method: str, path: str) -> LambdaResult:
        # The $default route's event: any method and path (built from the health fixture).
        event = with_request(http_api_event("GET", "/v1/health"), method=method, path=path)
        event["routeKey"] = "$default"
        return parse_result(json.loads(json.dumps(handler(event, FakeContext()))))

    assert_openai_error(call("GET", "/v1/nope"), 404, "not_found")
    assert_openai_error(call("DELETE", "/v1/chat/completions"), 405, "method_not_allowed")


@pytest.mark.parametrize("source", SOURCES)
def test_a_wrong_method_on_a_route_function_is_405(handlers, fake_provider, source):
    # A GET reaching the chat function (e.g. a Function URL serves any method) is refused as the
    # README promises, before any provider call.
    event = make_event(source, "POST", "/v1/chat/completions", headers=provider_headers(fake_provider))
    event["requestContext"]["http"]["method"] = "GET"
    r = parse_result(json.loads(json.dumps(handlers["chat_completions"](event, FakeContext()))))
    assert_openai_error(r, 405, "method_not_allowed")
    assert fake_provider.requests == []


class ShortContext(FakeContext):
    """An invocation with little time left: 0.5 s is kept back to answer, so ~0.3 s of work."""

    def get_remaining_time_in_millis(self) -> int:
        return 800


def test_work_stops_at_the_invocations_deadline_with_a_504(handlers, fake_provider):
    # GIVEN a provider slower than the invocation's remaining time, and retries configured
    fake_provider.script("openai.chat", Reply(delay_s=3.0), Reply(delay_s=3.0))
    config = {"provider": "openai", "custom_host": fake_provider.base_url + "/v1", "retry": {"attempts": 3}}
    event = make_event("http_api", "POST", "/v1/chat/completions", body=CHAT,
                       headers={"x-portkey-config": json.dumps(config), "authorization": f"Bearer {KEY}"})
    # WHEN the handler runs
    r = parse_result(json.loads(json.dumps(handlers["chat_completions"](event, ShortContext()))))
    # THEN it answers before Lambda would kill it, with a 504 rather than running on (billed)
    err = assert_openai_error(r, 504, "gateway_timeout", top=frozenset({"error", "provider"}))
    assert "time" in err["message"]
    assert len(fake_provider.requests) == 1  # no retry was started past the deadline
