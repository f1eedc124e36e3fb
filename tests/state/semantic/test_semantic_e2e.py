"""The semantic cache through the local server: OpenAI embeddings (the fake provider's semantic
model) and Pinecone (its fake) or the in-process index."""

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import replace

import pytest

from aigw.settings import Settings
from tests.fakes.embeddings import SEMANTIC_EMBEDDING_MODEL
from tests.fakes.pinecone_server import FakePinecone
from tests.support.local_gateway import LocalGateway

KEY = "sk-semantic-0123456789"
EMBED_KEY = "sk-embeddings-0123456789"
PC_KEY = "pc-semantic-key-0123456789"


@pytest.fixture(scope="module")
def pinecone_server() -> Iterator[FakePinecone]:
    with FakePinecone(api_key=PC_KEY, dimension=64) as pc:
        yield pc


@pytest.fixture
def pinecone(pinecone_server):
    pinecone_server.reset()
    return pinecone_server


def settings_for(fake, pinecone=None, **extra):
    return replace(Settings(), openai_api_key=EMBED_KEY, semcache_embeddings_url=fake.base_url + "/v1",
                   semcache_embedding_model=SEMANTIC_EMBEDDING_MODEL, semcache_threshold=0.9,
                   semcache_vector_store_url=pinecone.base_url if pinecone else None,
                   vector_store_api_key=PC_KEY if pinecone else None, **extra)


def ask(client, gw, fake, question, model="gpt-x", system="Answer briefly.", **headers):
    config = {"provider": "openai", "api_key": KEY, "custom_host": fake.base_url + "/v1",
              "cache": {"mode": "semantic"}}
    body = {"model": model, "messages": [{"role": "system", "content": system}, {"role": "user", "content": question}]}
    r = client.post(gw.base_url + "/v1/chat/completions", json=body,
                    headers={"x-portkey-config": json.dumps(config), **headers})
    assert r.status_code == 200
    return r.headers["x-portkey-cache-status"]


def wait_for(condition, within_s=5.0):
    end = time.monotonic() + within_s
    while not condition():
        assert time.monotonic() < end, "not within time"
        time.sleep(0.01)


def chat_calls(fake):
    return len(fake.requests_for("openai.chat"))


@pytest.mark.parametrize("store", ["pinecone", "in-process"])
def test_a_similar_question_is_a_semantic_hit(fake_provider, pinecone, client, store):
    with LocalGateway(settings_for(fake_provider, pinecone if store == "pinecone" else None)) as gw:
        assert ask(client, gw, fake_provider, "What is the capital of France?") == "SEMANTIC MISS"
        if store == "pinecone":  # the vector is added after the answer, off the client's time
            wait_for(lambda: pinecone.requests_for("/vectors/upsert"))
        assert ask(client, gw, fake_provider, "what is the Capital of france") == "SEMANTIC HIT"
        assert ask(client, gw, fake_provider, "What is the capital of France?") == "HIT"  # exact first
        assert ask(client, gw, fake_provider, "How do I bake sourdough bread?") == "SEMANTIC MISS"
    assert chat_calls(fake_provider) == 2
    if store == "pinecone":
        upserts, queries = pinecone.requests_for("/vectors/upsert"), pinecone.requests_for("/query")
        assert len(upserts) == 2 and len(queries) == 3
        assert {r.api_key for r in upserts + queries} == {PC_KEY} and queries[0].json["topK"] == 5
        assert all(r.json["namespace"] == queries[0].json["namespace"] for r in upserts + queries)
        embeds = fake_provider.requests_for("openai.embeddings")
        assert embeds[0].bearer == EMBED_KEY and embeds[0].json["model"] == SEMANTIC_EMBEDDING_MODEL


def test_another_model_or_system_prompt_is_not_a_match(fake_provider, pinecone, client):
    with LocalGateway(settings_for(fake_provider, pinecone)) as gw:
        ask(client, gw, fake_provider, "What is the capital of France?")
        wait_for(lambda: pinecone.requests_for("/vectors/upsert"))
        assert ask(client, gw, fake_provider, "what is the capital of france", model="gpt-y") == "SEMANTIC MISS"
        assert ask(client, gw, fake_provider, "what is the capital of france",
                   system="Reply in verse, with rhymes about the sea.") == "SEMANTIC MISS"


def test_a_failing_vector_store_makes_misses_not_failures(fake_provider, pinecone, client, caplog):
    caplog.set_level(logging.WARNING, logger="aigw")
    with LocalGateway(settings_for(fake_provider, pinecone)) as gw:
        pinecone.fail_next(count=10, status=503)
        for _ in range(3):
            assert ask(client, gw, fake_provider, "What is the capital of Spain?") in ("SEMANTIC MISS", "HIT")
    events = [json.loads(r.getMessage())["event"] for r in caplog.records if r.name == "aigw"]
    assert events.count("cache_store_unavailable") == 1  # once per outage
    assert "pc-semantic-key" not in caplog.text


def test_without_an_embedder_key_semantic_caches_exact_matches(fake_provider, client):
    with LocalGateway(replace(Settings(), openai_api_key=None)) as gw:
        assert ask(client, gw, fake_provider, "What is the capital of France?") == "MISS"
        assert ask(client, gw, fake_provider, "What is the capital of France?") == "HIT"
        assert ask(client, gw, fake_provider, "what is the capital of france") == "MISS"
    assert fake_provider.requests_for("openai.embeddings") == []
