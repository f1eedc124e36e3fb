"""The ASGI shell driven directly with ASGI messages: bugs become safe answers, never leaks."""

import logging

import orjson

from aigw.adapters.asgi import GatewayApp
from aigw.auth import NoAuth
from aigw.gateway import Gateway
from aigw.response import GatewayResponse
from aigw.routes import RouteSpec, RouteTable
from aigw.settings import Settings

SECRET = "sk-live-SECRET-0123456789"


async def call(app, method="GET", path="/x", body=b"", headers=()):
    messages = [{"type": "http.request", "body": body, "more_body": False}]
    sent = []

    async def receive():
        return messages.pop(0) if messages else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "method": method, "path": path, "headers": list(headers), "query_string": b""}
    await app(scope, receive, send)
    status = sent[0]["status"]
    payload = b"".join(m.get("body", b"") for m in sent[1:])
    return status, dict(sent[0]["headers"]), payload


def app_with(endpoint):
    return GatewayApp(RouteTable([RouteSpec("x", "GET", "/x", endpoint)]), Gateway(settings=Settings(), auth=NoAuth()))


async def test_a_bug_is_a_500_without_detail_and_logged_without_secrets(caplog):
    async def broken(request, gw):
        raise ValueError(f"bad key {SECRET}")

    with caplog.at_level(logging.ERROR, logger="aigw"):
        status, _, body = await call(app_with(broken))
    assert status == 500
    assert orjson.loads(body)["error"]["message"] == "internal gateway error"
    assert SECRET not in caplog.text and "ValueError" in caplog.text


async def test_a_bug_mid_stream_ends_with_an_error_event(caplog):
    async def chunks():
        yield b"data: {}\n\n"
        raise KeyError(SECRET)

    async def streaming(request, gw):
        return GatewayResponse(200, {"content-type": "text/event-stream"}, stream=chunks())

    with caplog.at_level(logging.ERROR, logger="aigw"):
        status, _, body = await call(app_with(streaming))
    assert status == 200
    assert body.startswith(b"data: {}\n\n") and b"stream_interrupted" in body
    assert SECRET not in caplog.text


async def test_lifespan_startup_and_shutdown():
    app = app_with(None)
    inbox = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    out = []

    async def receive():
        return inbox.pop(0)

    async def send(message):
        out.append(message["type"])

    await app({"type": "lifespan"}, receive, send)
    assert out == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
