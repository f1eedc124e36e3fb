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
    # GIVEN a handler whose answer (the whole invocation result) exceeds the 6 MB limit
    from aigw.adapters.asgi import GatewayApp
    from aigw.adapters.aws import LambdaHttpHandler

    app = GatewayApp(CHAT_COMPLETIONS, Gateway(Settings()))
    handler = LambdaHttpHandler(app, response_limit=100)
    # WHEN a request gets an answer larger than that (here: the 400 for a bad body, a few hundred bytes)
    event = http_api_event("POST", "/v1/chat/completions", body={"model": "m", "padding": "x" * 500})
    result = handler(event, FakeContext())
    # THEN a 502 that points to the streaming URL, not a failed invocation
    assert result["statusCode"] == 502
    assert "streaming" in json.loads(result["body"])["error"]["message"]
