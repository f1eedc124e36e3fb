"""Request logs through the local server into the folder store: one document per request, every
field, and no secret in any stored byte."""

import asyncio
import json
import time
from dataclasses import replace

import httpx
import pytest

from aigw.logs.pipeline import LocalLogPipeline
from aigw.logs.record import LogRecord
from aigw.logs.stores.folder import FolderStore
from aigw.settings import Settings
from tests.fakes.provider_server import Reply
from tests.support.local_gateway import LocalGateway

PROVIDER_KEY = "sk-log-provider-0123456789"
CONFIG_KEY = "sk-log-config-key-0123456789"
GATEWAY_KEY = "pk-log-gateway-key-0123456789"


def documents(root, expect=None, within_s=10.0):
    """The stored documents, once ``expect`` of them are there (they are written off the request)."""
    end = time.monotonic() + within_s
    while True:
        found = [json.loads(line) for p in sorted(root.rglob("*.jsonl")) for line in p.read_bytes().splitlines()]
        if expect is None or len(found) >= expect or time.monotonic() > end:
            return found
        time.sleep(0.01)


def every_byte(root):
    return b"".join(p.read_bytes() for p in root.rglob("*") if p.is_file())


@pytest.fixture
def logged(tmp_path):
    with LocalGateway(replace(Settings(), log_folder=str(tmp_path), service_name="edge-1")) as gw:
        yield gw, tmp_path


def test_each_request_is_one_document_with_what_happened(logged, fake_provider):
    gw, root = logged
    config = {"strategy": {"mode": "fallback"}, "targets": [
        {"provider": "openai", "api_key": CONFIG_KEY, "custom_host": "http://127.0.0.1:1/v1"},
        {"provider": "openai", "api_key": CONFIG_KEY, "custom_host": fake_provider.base_url + "/v1"}]}
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        r = client.post("/v1/chat/completions", json={"model": "gpt-x", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"x-portkey-config": json.dumps(config), "x-portkey-trace-id": "trace-1",
                                 "x-portkey-metadata": json.dumps({"team": "a"}), "x-portkey-api-key": GATEWAY_KEY})
        assert r.status_code == 200
    [doc] = documents(root, 1)
    assert doc["schema_version"] == 1 and doc["trace_id"] == "trace-1" and doc["service"] == "edge-1"
    assert doc["route"] == "/v1/chat/completions" and doc["endpoint"] == "chat" and doc["status"] == 200
    assert doc["provider"] == "openai" and doc["model"] == r.json()["model"]
    assert doc["last_used_option_index"] == "config.targets[1]" and doc["completion"] == "sent"
    assert [a["status"] for a in doc["attempts"]] == [502, 200]
    assert doc["usage"] == r.json()["usage"] and doc["metadata"] == {"team": "a"}
    assert doc["request"]["body"]["messages"][0]["content"] == "hi"
    assert doc["response"]["body"] == r.json()
    latency = doc["latency_ms"]
    assert latency["total"] >= latency["upstream"] > 0 and latency["gateway"] >= 0
    assert "x-portkey-config" not in doc["request"]["headers"]
    stored = every_byte(root)
    assert CONFIG_KEY.encode() not in stored and GATEWAY_KEY.encode() not in stored


def test_a_stream_is_logged_as_the_answer_it_amounts_to(logged, fake_provider):
    gw, root = logged
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        r = client.post("/v1/chat/completions",
                        json={"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                        headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake_provider.base_url + "/v1",
                                 "authorization": f"Bearer {PROVIDER_KEY}"})
        assert r.status_code == 200 and b"[DONE]" in r.content
    [doc] = documents(root, 1)
    assert doc["stream"] is True
    assert doc["response"]["body"]["choices"][0]["message"]["content"] == "Hello from the fake provider"
    assert PROVIDER_KEY.encode() not in every_byte(root)


def test_keys_a_provider_echoes_are_not_stored(logged, fake_provider):
    gw, root = logged
    echo = {"id": "c", "object": "chat.completion", "created": 1, "model": "m", "choices": [
        {"index": 0, "message": {"role": "assistant", "content": f"key {PROVIDER_KEY}"}, "finish_reason": "stop"}]}
    fake_provider.script("openai.chat", Reply(json=echo))
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": PROVIDER_KEY}]},
                    headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake_provider.base_url + "/v1",
                             "authorization": f"Bearer {PROVIDER_KEY}"})
    assert len(documents(root, 1)) == 1 and PROVIDER_KEY.encode() not in every_byte(root)


def test_errors_before_routing_are_logged_too(logged):
    gw, root = logged
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        assert client.post("/v1/chat/completions", content=b"{not json").status_code == 400
        assert client.get("/v1/nowhere").status_code == 404
    assert sorted(d["status"] for d in documents(root, 2)) == [400, 404]


def test_the_folder_store_writes_a_record_once_and_finds_it(tmp_path):
    store = FolderStore(tmp_path)
    first = LogRecord("ab12", "org/../x", "2026/12/02", b'{"schema_version":1,"id":"ab12"}')
    second = LogRecord("cd34", "org/../x", "2026/12/02", b'{"schema_version":1,"id":"cd34"}')
    assert store.put_many([first, second]) == 2
    assert store.put_many([first]) == 0  # a redelivery writes nothing
    assert store.get("cd34") == b'{"schema_version":1,"id":"cd34"}' and store.get("../ab12") is None
    [path] = tmp_path.rglob("*.jsonl")
    assert path.parent.relative_to(tmp_path).as_posix() == "org____x/2026/12/02"
    assert path.read_bytes().count(b"\n") == 2


async def test_a_record_the_store_cannot_take_goes_to_stderr_not_away(capfd):
    class Broken:
        def put_many(self, records):
            raise OSError("disk full")

        def get(self, log_id):
            return None

    pipeline = LocalLogPipeline(Broken(), "svc")
    pipeline.start()
    await asyncio.get_running_loop().run_in_executor(
        None, pipeline._write, [LogRecord("cd34", "default", "2026/12/02", b'{"id": "cd34"}')])
    await pipeline.close()
    line = json.loads(capfd.readouterr().err.strip().splitlines()[0])
    assert line == {"event": "log_record_unwritten", "error": "OSError", "log_id": "cd34", "record": {"id": "cd34"}}
    assert pipeline.failed == 1


def test_only_known_headers_are_logged_and_a_custom_host_without_credentials(logged, fake_provider):
    gw, root = logged
    host = fake_provider.base_url.replace("http://", "http://user:HOSTSECRET-998877@") + "/v1?token=QUERYSECRET-1"
    with httpx.Client(base_url=gw.base_url, timeout=30) as client:
        client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                    headers={"x-portkey-provider": "openai", "x-portkey-custom-host": host,
                             "authorization": f"Bearer {PROVIDER_KEY}", "x-portkey-forward-headers": "x-custom-auth",
                             "x-custom-auth": "CUSTOMSECRET-abcdef123", "cookie": "session=COOKIESECRET-1"})
    [doc] = documents(root, 1)
    stored = every_byte(root)
    for secret in (b"HOSTSECRET", b"QUERYSECRET", b"CUSTOMSECRET", b"COOKIESECRET", PROVIDER_KEY.encode()):
        assert secret not in stored, secret
    assert doc["request"]["headers"]["x-portkey-custom-host"] == fake_provider.base_url + "/v1"
    assert doc["request"]["headers"]["x-portkey-forward-headers"] == "x-custom-auth"


async def test_a_full_queue_drops_and_counts_and_a_failing_batch_does_not_stop_the_pipeline(monkeypatch, tmp_path):
    from aigw.logs import pipeline as module

    monkeypatch.setattr(module, "MAX_QUEUED", 2)
    pipeline = LocalLogPipeline(FolderStore(tmp_path), "svc")
    pipeline.start()
    for _ in range(5):
        pipeline(object())  # not a request: building its record fails in the writer thread
    assert pipeline.failed == 3  # dropped at the door: the queue holds two
    await asyncio.wait_for(pipeline.close(), 5)
    assert pipeline.failed == 5  # the two queued failed to build, and the pipeline still closed
    pipeline(object())
    assert pipeline.failed == 6  # after close: counted, not silently gone


def test_a_call_the_client_walked_away_from_is_recorded(logged, fake_provider):
    gw, root = logged
    fake_provider.script("openai.chat", Reply(delay_s=2.0))
    with httpx.Client(base_url=gw.base_url, timeout=0.3) as client:
        with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
            client.post("/v1/chat/completions", json={"model": "m", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"x-portkey-provider": "openai", "x-portkey-custom-host": fake_provider.base_url + "/v1",
                                 "authorization": f"Bearer {PROVIDER_KEY}"})
    [doc] = documents(root, 1)
    assert doc["completion"] == "client_gone"
    assert [(a["status"], a["error_code"], a["provider"]) for a in doc["attempts"]] == [(499, "client_gone", "openai")]
    assert doc["latency_ms"]["upstream"] > 0
