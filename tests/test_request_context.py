"""What the per-request context knows by the time the response is over, and when it is told."""

import asyncio
import json

import pytest

from aigw.adapters.asgi import GatewayApp
from aigw.context import AttemptSource, Completion
from aigw.endpoints import chat_completions
from aigw.gateway import Gateway
from aigw.routes import RouteSpec, RouteTable
from aigw.settings import Settings
from tests.fakes.provider_server import Reply, openai_sse

KEY = "sk-test-0123456789abcdef"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}


class Recorder:
    """A chat route whose handler registers a completion callback, so tests see the finished context."""

    def __init__(self) -> None:
        self.done: list = []
        self.gateways: list[Gateway] = []

    async def handler(self, ctx, gw):
        ctx.on_complete(lambda c: self.done.append((c, c.completion)))
        return await chat_completions(ctx, gw)

    def app(self) -> GatewayApp:
        table = RouteTable([RouteSpec("chat", "POST", "/v1/chat/completions", self.handler)])
        self.gateways.append(Gateway(Settings()))
        return GatewayApp(table, self.gateways[-1])


@pytest.fixture
async def recorder():
    rec = Recorder()
    yield rec
    for gw in rec.gateways:
        await gw.close()


async def call(app, body, headers, *, leave_after_chunks=None, path="/v1/chat/completions"):
    messages = [{"type": "http.request", "body": json.dumps(body).encode(), "more_body": False}]
    left = asyncio.Event()
    sent = []

    async def receive():
        if messages:
            return messages.pop(0)
        await left.wait()
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)
        chunks = [m for m in sent if m["type"] == "http.response.body" and m.get("body")]
        if leave_after_chunks is not None and len(chunks) >= leave_after_chunks:
            left.set()

    raw = [(k.encode(), v.encode()) for k, v in headers.items()]
    scope = {"type": "http", "method": "POST", "path": path, "headers": raw, "query_string": b""}
    await app(scope, receive, send)
    return sent


def config(fake, *targets):
    return {"x-portkey-config": json.dumps({"strategy": {"mode": "fallback"}, "targets": list(targets)}),
            "authorization": f"Bearer {KEY}", "x-portkey-trace-id": "trace-ctx"}


def leaf(fake, **extra):
    return {"provider": "openai", "custom_host": fake.base_url + "/v1", **extra}


async def test_a_body_response_completes_once_with_attempts_usage_and_outcome(recorder, fake_provider):
    fake_provider.script("openai.chat", Reply(status=503))
    sent = await call(recorder.app(), CHAT, config(fake_provider, leaf(fake_provider, retry={"attempts": 1}), leaf(fake_provider)))
    assert sent[0]["status"] == 200
    ((ctx, how),) = recorder.done
    assert how is Completion.SENT and ctx.trace_id == "trace-ctx" and ctx.status == 200
    assert [(a.path, a.status, a.retry_index, a.retried) for a in ctx.attempts] == [
        ("config.targets[0]", 503, 0, True), ("config.targets[0]", 200, 1, False)]
    assert ctx.last_used_path == "config.targets[0]" and ctx.retries == 1
    assert ctx.usage and ctx.usage["total_tokens"] > 0
    assert ctx.config is not None and ctx.config.strategy is not None


async def test_synthetic_attempts_are_recorded_too(recorder, fake_provider):
    await call(recorder.app(), CHAT, config(fake_provider, {"virtual_key": "vk-1"}, leaf(fake_provider)))
    ((ctx, _),) = recorder.done
    first, second = ctx.attempts
    assert first.source is AttemptSource.UNCALLABLE and first.error_code == "virtual_key_unavailable"
    assert second.source is AttemptSource.PROVIDER and second.status == 200


async def test_a_stream_completes_after_its_last_chunk_with_usage(recorder, fake_provider):
    chunks = [{"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}}]},
              {"id": "c", "object": "chat.completion.chunk", "choices": [],
               "usage": {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}}]
    fake_provider.script("openai.chat", Reply(sse=openai_sse(chunks)))
    sent = await call(recorder.app(), {**CHAT, "stream": True}, config(fake_provider, leaf(fake_provider)))
    ((ctx, how),) = recorder.done
    assert how is Completion.SENT and ctx.usage == {"prompt_tokens": 3, "completion_tokens": 1, "total_tokens": 4}
    assert sent[-1] == {"type": "http.response.body", "body": b""}


async def test_a_client_leaving_mid_stream_completes_as_gone_and_releases_the_upstream(recorder, fake_provider, caplog):
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}}]}
    fake_provider.script("openai.chat", Reply(sse=openai_sse([chunk] * 50), chunk_delay_s=0.05))
    with caplog.at_level("ERROR"):
        await call(recorder.app(), {**CHAT, "stream": True}, config(fake_provider, leaf(fake_provider)), leave_after_chunks=2)
    ((ctx, how),) = recorder.done
    assert how is Completion.CLIENT_GONE
    for _ in range(500):  # the loop must run for the upstream socket to close: poll, never block it
        if fake_provider.abandoned:
            break
        await asyncio.sleep(0.01)
    assert len(fake_provider.abandoned) == 1
    # No traceback for the abandoned stream ("aclose(): asynchronous generator is already running")
    assert "already running" not in caplog.text and "never retrieved" not in caplog.text
    assert [r for r in caplog.records if r.name == "aigw"] == []


async def test_an_error_before_routing_still_completes(recorder, fake_provider):
    sent = await call(recorder.app(), {"model": "m"}, config(fake_provider, leaf(fake_provider)))
    assert sent[0]["status"] == 400
    ((ctx, how),) = recorder.done
    assert how is Completion.SENT and ctx.status == 400 and ctx.attempts == []


async def test_requests_that_never_reach_a_handler_complete_too(fake_provider):
    # GIVEN a gateway-level callback (where the log producer registers)
    done = []
    gw = Gateway(Settings(max_header_bytes=4096), completion_callbacks=[lambda c: done.append(c)])
    app = GatewayApp(RouteTable([RouteSpec("chat", "POST", "/v1/chat/completions", chat_completions)]), gw)
    headers = config(fake_provider, leaf(fake_provider))
    # WHEN requests fail before any handler: a bad trace id, an unknown route, oversized headers
    await call(app, CHAT, {**headers, "x-portkey-trace-id": "x" * 300})
    await call(app, CHAT, headers, path="/v1/nope")
    await call(app, CHAT, {**headers, "x-pad": "y" * 5000})
    # THEN each completed once, with the status the client got and the error it was told
    assert [(c.status, c.error.code, c.completion) for c in done] == [
        (400, "invalid_header", Completion.SENT), (404, "not_found", Completion.SENT),
        (431, "headers_too_large", Completion.SENT)]
    assert all(len(c.trace_id) == 36 for c in done)  # a fresh id where the client's was unusable


async def test_a_client_leaving_mid_body_completes_as_gone(fake_provider):
    done = []
    gw = Gateway(Settings(), completion_callbacks=[lambda c: done.append(c.completion)])
    app = GatewayApp(RouteTable([RouteSpec("chat", "POST", "/v1/chat/completions", chat_completions)]), gw)
    messages = [{"type": "http.request", "body": b'{"mod', "more_body": True}, {"type": "http.disconnect"}]

    async def receive():
        return messages.pop(0)

    async def send(message):
        raise AssertionError("nothing is sent to a client that left")

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": [], "query_string": b""}
    await app(scope, receive, send)
    assert done == [Completion.CLIENT_GONE] and fake_provider.requests == []


async def test_a_stream_that_breaks_completes_as_failed_with_its_error(recorder, fake_provider):
    chunk = {"id": "c", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": {"content": "a"}}]}
    fake_provider.script("openai.chat", Reply(sse=openai_sse([chunk] * 5), drop_after_chunks=2))
    await call(recorder.app(), {**CHAT, "stream": True}, config(fake_provider, leaf(fake_provider)))
    ((ctx, how),) = recorder.done
    assert how is Completion.FAILED and ctx.status == 200 and ctx.error.code == "stream_interrupted"


async def test_behind_the_web_adapter_the_invocation_deadline_comes_from_its_header(fake_provider):
    # GIVEN the streaming function's app (behind the Lambda Web Adapter) and an invocation with
    # 0.8 s left, of which 0.5 s is kept back to answer
    import time as _time

    done = []
    gw = Gateway(Settings(), completion_callbacks=[lambda c: done.append(c)])
    app = GatewayApp(RouteTable([RouteSpec("chat", "POST", "/v1/chat/completions", chat_completions)]), gw,
                     adapter_deadline=True)
    fake_provider.script("openai.chat", Reply(delay_s=3.0))
    context = json.dumps({"request_id": "r", "deadline": int((_time.time() + 0.8) * 1000)})
    headers = {**config(fake_provider, leaf(fake_provider)), "x-amzn-lambda-context": context}
    # WHEN a provider is slower than that
    started = _time.monotonic()
    sent = await call(app, CHAT, headers)
    # THEN the answer is a 504 before the invocation ends, not a function killed mid-call
    assert sent[0]["status"] == 504 and _time.monotonic() - started < 2.0
    assert done[0].error.code == "gateway_timeout"
    await gw.close()


async def test_the_error_the_context_keeps_is_scrubbed_of_echoed_keys(recorder, fake_provider):
    # GIVEN a provider whose error message echoes the key verbatim
    fake_provider.script("openai.chat", Reply(status=401, echo_key=True))
    await call(recorder.app(), CHAT, config(fake_provider, leaf(fake_provider)))
    ((ctx, _),) = recorder.done
    # THEN the error the log record will read carries no key, only the marker
    assert ctx.status == 401 and KEY not in ctx.error.message and "[REDACTED]" in ctx.error.message


async def test_a_saved_config_id_is_resolved_through_the_config_source(fake_provider):
    # GIVEN a gateway whose config source knows one saved config (the control plane's place)
    class Saved:
        def __init__(self):
            self.asked = []

        async def saved_config(self, config_id, principal):
            self.asked.append((config_id, principal.key_id))
            return leaf(fake_provider, api_key=KEY)

    source = Saved()
    gw = Gateway(Settings(), config_source=source)
    app = GatewayApp(RouteTable([RouteSpec("chat", "POST", "/v1/chat/completions", chat_completions)]), gw)
    # WHEN a request names it by id
    sent = await call(app, CHAT, {"x-portkey-config": "pc-team-a"})
    # THEN the resolve stage fetched it and routing used it
    assert sent[0]["status"] == 200 and source.asked == [("pc-team-a", None)]
    assert fake_provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    # AND without a control plane an id is a clear 400, nothing sent
    fake_provider.reset()
    plain = GatewayApp(RouteTable([RouteSpec("chat", "POST", "/v1/chat/completions", chat_completions)]),
                       Gateway(Settings()))
    sent = await call(plain, CHAT, {"x-portkey-config": "pc-team-a"})
    assert sent[0]["status"] == 400 and b"control plane" in sent[1]["body"] and fake_provider.requests == []
    await gw.close()


async def test_a_client_leaving_leaves_no_pending_cancellation_on_the_task(recorder, fake_provider):
    # GIVEN a provider that answers slowly, and a client that leaves while the handler waits
    fake_provider.script("openai.chat", Reply(delay_s=1.0))
    app = recorder.app()
    raw = [(k.encode(), v.encode()) for k, v in config(fake_provider, leaf(fake_provider)).items()]
    messages = [{"type": "http.request", "body": json.dumps(CHAT).encode(), "more_body": False}]

    async def receive():
        if messages:
            return messages.pop(0)
        await asyncio.sleep(0.1)
        return {"type": "http.disconnect"}

    async def send(message):
        raise AssertionError("nothing is sent to a client that left")

    scope = {"type": "http", "method": "POST", "path": "/v1/chat/completions", "headers": raw, "query_string": b""}
    await app(scope, receive, send)
    # THEN the shell took its own cancellation back: a later timeout in this task still works
    assert asyncio.current_task().cancelling() == 0
    assert [how for _, how in recorder.done] == [Completion.CLIENT_GONE]
    async with asyncio.timeout(1):
        await asyncio.sleep(0)
