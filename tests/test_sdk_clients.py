"""Real clients no one here wrote, against the server `make run` starts (python -m aigw.adapters.local)."""

import json
import os
import subprocess
import sys
import time

import httpx
import openai
import pytest

from tests.support.local_gateway import free_port

KEY = "sk-sdk-test-0123456789"


@pytest.fixture(scope="module")
def server_url():
    port = free_port()
    env = {**os.environ, "PORT": str(port), "HOST": "127.0.0.1"}
    proc = subprocess.Popen([sys.executable, "-m", "aigw.adapters.local"], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        try:
            if httpx.get(url + "/v1/health").status_code == 200:
                break
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline or proc.poll() is not None:
            proc.kill()
            raise RuntimeError(f"server did not start: {proc.stdout.read().decode()}")
        time.sleep(0.05)
    yield url
    proc.terminate()
    proc.wait(10)


def portkey_headers(fake):
    return {"x-portkey-provider": "openai", "x-portkey-custom-host": fake.base_url + "/v1"}


@pytest.fixture
def oai(server_url, fake_provider):
    return openai.OpenAI(api_key=KEY, base_url=server_url + "/v1", default_headers=portkey_headers(fake_provider), max_retries=0)


def test_openai_sdk_sync_chat(oai, fake_provider):
    r = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the fake provider"
    assert fake_provider.requests[-1].headers["authorization"] == f"Bearer {KEY}"


def test_openai_sdk_streaming(oai):
    stream = oai.chat.completions.create(model="gpt-4o-mini", messages=[{"role": "user", "content": "hi"}], stream=True)
    text = "".join((c.choices[0].delta.content or "") for c in stream if c.choices)
    assert text == "Hello from the fake provider"


def test_openai_sdk_embeddings_and_completions(oai):
    e = oai.embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(e.data) == 2 and len(e.data[0].embedding) > 0
    c = oai.completions.create(model="gpt-3.5-turbo-instruct", prompt="hi")
    assert c.choices[0].text


def test_openai_sdk_tool_call(oai):
    tools = [{"type": "function", "function": {"name": "lookup", "parameters": {"type": "object", "properties": {}}}}]
    r = oai.chat.completions.create(model="m", messages=[{"role": "user", "content": "x"}], tools=tools)
    assert r.choices[0].message.tool_calls[0].function.name == "lookup"


def test_openai_sdk_sees_errors_as_api_errors(server_url, fake_provider):
    client = openai.OpenAI(api_key="sk-invalid", base_url=server_url + "/v1", default_headers=portkey_headers(fake_provider), max_retries=0)
    with pytest.raises(openai.AuthenticationError) as info:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert info.value.status_code == 401
    client = openai.OpenAI(api_key=KEY, base_url=server_url + "/v1", max_retries=0)
    with pytest.raises(openai.BadRequestError) as bad:
        client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert "x-portkey-provider" in str(bad.value)


async def test_openai_sdk_async_and_stream(server_url, fake_provider):
    client = openai.AsyncOpenAI(api_key=KEY, base_url=server_url + "/v1", default_headers=portkey_headers(fake_provider), max_retries=0)
    r = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the fake provider"
    stream = await client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    parts = [c.choices[0].delta.content or "" async for c in stream if c.choices]
    assert "".join(parts) == "Hello from the fake provider"
    await client.close()


def test_portkey_sdk_with_config_and_metadata(server_url, fake_provider):
    from portkey_ai import Portkey

    config = {"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "api_key": "sk-config-key-0000001", "custom_host": fake_provider.base_url + "/v1", "override_params": {"model": "first"}},
        {"provider": "openai", "api_key": "sk-config-key-0000002", "custom_host": fake_provider.base_url + "/v1"},
    ]}
    from tests.fakes.provider_server import Reply

    fake_provider.script("openai.chat", Reply(status=503))
    client = Portkey(api_key="pk-local", base_url=server_url + "/v1", config=config, metadata={"user": "u1"}, trace_id="trace-sdk")
    r = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}])
    assert r.choices[0].message.content == "Hello from the fake provider"
    sent = fake_provider.requests
    assert [q.headers["authorization"] for q in sent] == ["Bearer sk-config-key-0000001", "Bearer sk-config-key-0000002"]
    assert json.loads(sent[0].body)["model"] == "first"


def test_portkey_sdk_provider_headers_and_stream(server_url, fake_provider):
    from portkey_ai import Portkey

    client = Portkey(api_key="pk-local", base_url=server_url + "/v1", provider="openai", Authorization=f"Bearer {KEY}",
                     custom_host=fake_provider.base_url + "/v1")
    stream = client.chat.completions.create(model="m", messages=[{"role": "user", "content": "hi"}], stream=True)
    assert "".join((c.choices[0].delta.content or "") for c in stream if c.choices) == "Hello from the fake provider"
