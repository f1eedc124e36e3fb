"""Lambda events Mangum cannot read get a 400 in the OpenAI shape, never API Gateway's bare 500."""

import asyncio
import json

import pytest

from aigw.adapters.aws import http_handler
from aigw.adapters.lambda_events import event_problem
from aigw.gateway import Gateway
from aigw.routes import CHAT_COMPLETIONS, HEALTH
from aigw.settings import Settings
from tests.support.lambda_events import FakeContext, http_api_event


def _bad_events():
    ok = http_api_event("POST", "/v1/chat/completions", body={"model": "m"})
    yield "not an object", ["a", "list"]
    yield "a string", "hello"
    yield "no http", {**ok, "requestContext": {"accountId": "1"}}
    yield "headers null", {**ok, "headers": None}
    yield "header not a string", {**ok, "headers": {"x": 1}}
    yield "lone surrogate header", {**ok, "headers": {"x": "\ud800"}}
    yield "lone surrogate body", {**ok, "body": "\udc00"}
    yield "rawQueryString null", {**ok, "rawQueryString": None}
    yield "bad base64", {**ok, "body": "!!!not base64", "isBase64Encoded": True}
    yield "isBase64Encoded not a bool", {**ok, "isBase64Encoded": "yes"}
    yield "cookies not a list", {**ok, "cookies": "a=b"}
    yield "method missing", {**ok, "requestContext": {**ok["requestContext"], "http": {"path": "/"}}}
    http = ok["requestContext"]["http"]
    yield "sourceIp missing", {**ok, "requestContext": {**ok["requestContext"],
                                                       "http": {k: v for k, v in http.items() if k != "sourceIp"}}}
    yield "payload 1.0", {**ok, "version": "1.0"}
    yield "no version", {k: v for k, v in ok.items() if k != "version"}
    yield "newline in a header value", {**ok, "headers": {**ok["headers"], "authorization": "Bearer abc\ndefghijkl"}}
    yield "NUL in a header value", {**ok, "headers": {**ok["headers"], "x-portkey-api-key": "pk\x00"}}
    yield "newline in a header name", {**ok, "headers": {**ok["headers"], "x a\n": "1"}}
    yield "host null", {**ok, "headers": {**ok["headers"], "host": None}}


BAD = list(_bad_events())


@pytest.fixture
def loop():
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    yield loop
    loop.close()
    asyncio.set_event_loop(None)


def test_a_good_event_has_no_problem():
    assert event_problem(http_api_event("POST", "/v1/chat/completions", body={"model": "m"})) is None
    assert event_problem(http_api_event("GET", "/v1/health")) is None


@pytest.mark.parametrize("name, event", BAD, ids=[n for n, _ in BAD])
def test_bad_events_are_named(name, event):
    assert event_problem(event) is not None


@pytest.mark.parametrize("name, event", BAD, ids=[n for n, _ in BAD])
def test_bad_events_get_a_400_in_the_openai_shape(loop, name, event):
    handler = http_handler(HEALTH, Gateway(Settings()), upstream=False)
    result = json.loads(json.dumps(handler(event, FakeContext())))
    assert result["statusCode"] == 400
    body = json.loads(result["body"])
    assert set(body["error"]) == {"message", "type", "param", "code"} and body["error"]["code"] == "invalid_event"


def test_an_answer_over_lambdas_limit_is_a_clean_502(loop):
    # GIVEN a handler whose answers may be at most 100 bytes (Lambda's limit is 6 MB)
    from aigw.adapters.aws import LambdaHttpHandler

    done = []
    gateway = Gateway(Settings(), completion_callbacks=[lambda ctx: done.append((ctx.status, ctx.completion))])
    handler = LambdaHttpHandler(CHAT_COMPLETIONS, gateway, response_limit=100)
    # WHEN a request gets an answer larger than that (here: the 400 for a bad body, a few hundred bytes)
    event = http_api_event("POST", "/v1/chat/completions", body={"model": "m", "padding": "x" * 500})
    result = handler(event, FakeContext())
    # THEN a 502 that points to the streaming URL, not a failed invocation, with its trace id; and
    # the request's context records the 502 the client got
    assert result["statusCode"] == 502 and result["headers"]["x-portkey-trace-id"]
    assert "streaming" in json.loads(result["body"])["error"]["message"]
    assert done == [(502, "sent")]


def test_behind_api_gateway_the_deadline_is_its_30_s_not_the_functions_timeout():
    import time

    from aigw.adapters.lambda_limits import invocation_deadline as _deadline

    class LongContext(FakeContext):
        def get_remaining_time_in_millis(self) -> int:
            return 120_000

    http_api = http_api_event("POST", "/v1/chat/completions", body={"model": "m"})
    left = _deadline({"aws.context": LongContext(), "aws.event": http_api}) - time.monotonic()
    assert 29 < left <= 30
    function_url = {**http_api, "requestContext": {**http_api["requestContext"],
                                                   "domainName": "abc.lambda-url.us-east-1.on.aws"}}
    left = _deadline({"aws.context": LongContext(), "aws.event": function_url}) - time.monotonic()
    assert 119 < left <= 120
    assert _deadline({}) is None  # not on Lambda


def test_a_stream_over_the_limit_is_a_502_too(loop, fake_provider):
    # GIVEN a Lambda behind API Gateway (answers delivered whole, here at most 2000 bytes) and a
    # stream that grows past that
    from aigw.adapters.aws import LambdaHttpHandler
    from tests.fakes.provider_server import Reply, openai_sse

    done = []
    gateway = Gateway(Settings(), completion_callbacks=[lambda ctx: done.append((ctx.status, ctx.completion))])
    handler = LambdaHttpHandler(CHAT_COMPLETIONS, gateway, response_limit=2000)
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "x" * 200}}]}
    fake_provider.script("openai.chat", Reply(sse=openai_sse([chunk] * 20)))
    headers = {"x-portkey-provider": "openai", "x-portkey-custom-host": fake_provider.base_url + "/v1",
               "authorization": "Bearer sk-test-0123456789"}
    event = http_api_event("POST", "/v1/chat/completions", body={"model": "m", "stream": True,
                                                                 "messages": [{"role": "user", "content": "hi"}]},
                           headers=headers)
    # WHEN it is served
    result = handler(event, FakeContext())
    # THEN the client gets a clean 502 (not a cut stream), the context says so, the upstream is released
    assert result["statusCode"] == 502, result
    assert "streaming" in json.loads(result["body"])["error"]["message"]
    assert done == [(502, "sent")]
    loop.run_until_complete(gateway.close())


@pytest.mark.parametrize("name, change", [
    ("lone surrogate method", lambda e: e["requestContext"]["http"].update(method="G\ud800T")),
    ("lone surrogate path", lambda e: e["requestContext"]["http"].update(path="/v1/\udc00")),
    ("number as method", lambda e: e["requestContext"]["http"].update(method=5)),
    ("null method", lambda e: e["requestContext"]["http"].update(method=None)),
    ("base64 with a stray byte", lambda e: e.update(body="ey!Jtb2RlbCI6Im0ifQ==", isBase64Encoded=True)),
])
def test_events_mangum_would_misread_are_a_400_before_it_runs(loop, name, change):
    event = http_api_event("POST", "/v1/chat/completions", body={"model": "m"})
    change(event)
    handler = http_handler(CHAT_COMPLETIONS, Gateway(Settings()), upstream=False)
    result = json.loads(json.dumps(handler(event, FakeContext())))
    assert result["statusCode"] == 400, result
    assert json.loads(result["body"])["error"]["code"] == "invalid_event"


def test_an_error_message_quoting_invalid_unicode_still_renders():
    from aigw.errors import NotFound, render_error

    body = json.loads(render_error(NotFound("no route for G\ud800T /x")))
    assert body["error"]["code"] == "not_found" and "no route" in body["error"]["message"]
