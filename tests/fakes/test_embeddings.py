"""Tests of the deterministic bag-of-words embedding and the fake provider's semantic embedding model."""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.embeddings import SEMANTIC_EMBEDDING_MODEL, _hashed, cosine, embed, words
from tests.fakes.provider_routes import embedding_vector
from tests.fakes.provider_server import FakeProvider

OPENAI_AUTH = {"Authorization": "Bearer sk-test-123456789"}
# Short sentences without a word in common (checked below): their similarity is hash collisions only.
UNRELATED = (
    "The quick brown fox jumps over a lazy dog",
    "Explain quantum computing in simple terms",
    "Write haiku about autumn leaves",
    "How do I reverse linked lists with Python",
    "Recommend one great book on Roman history",
    "My cat refuses to eat dry food",
    "Translate good morning into Spanish",
    "Why does ice float",
)


def norm(v: list[float]) -> float:
    return math.sqrt(sum(x * x for x in v))


def test_words_ignore_case_and_punctuation() -> None:
    assert words("Hello, World! It's snake_case--3.5") == ["hello", "world", "it", "s", "snake", "case", "3", "5"]


def test_same_words_same_vector_any_case_punctuation_order() -> None:
    v = embed("Hello, World!")
    assert v == embed("hello world") == embed("WORLD... hello?")
    assert len(v) == 64 and norm(v) == pytest.approx(1.0)
    assert cosine(v, embed("hello world")) == pytest.approx(1.0)
    assert embed("hello world") == embed("hello world")  # deterministic (blake2b, not hash())


def test_unrelated_sentences_are_far_apart() -> None:
    pairs = list(itertools.combinations(UNRELATED, 2))
    sims = [abs(cosine(embed(a), embed(b))) for a, b in pairs]
    for a, b in pairs:
        assert not set(words(a)) & set(words(b)), (a, b)
    assert max(sims) < 0.4
    assert sum(sims) / len(sims) < 0.15
    assert abs(cosine(embed("Hello, World!"), embed("Give me a recipe for vegetarian lasagna"))) < 0.35


def test_shared_words_raise_similarity() -> None:
    a = embed("What is the capital of France?")
    assert cosine(a, embed("What is the weather today?")) == pytest.approx(0.5477, abs=1e-3)  # 3 shared words
    assert 0.8 < cosine(a, embed("what's THE capital of france")) < 0.9
    assert cosine(a, embed("capital France the of is what")) == pytest.approx(1.0)


def test_dim_and_never_zero() -> None:
    assert len(embed("hello", dim=8)) == 8 and norm(embed("hello", dim=1536)) == pytest.approx(1.0)
    assert embed("") == embed("?!") and norm(embed("")) == pytest.approx(1.0)
    assert not any(_hashed(["a84", "b84"], 64))  # these two words cancel out...
    assert norm(embed("a84 b84")) == pytest.approx(1.0)  # ...so the fallback token is used
    with pytest.raises(ValueError):
        embed("x", dim=0)


# --------------------------------------------------------------------------- through the fake provider


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def embeddings(http: aiohttp.ClientSession, fp: FakeProvider, body: dict[str, Any]) -> dict[str, Any]:
    async with http.post(fp.url("/v1/embeddings"), json=body, headers=OPENAI_AUTH) as r:
        assert r.status == 200
        answer: dict[str, Any] = await r.json()
        return answer


async def test_provider_semantic_model(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    # GIVEN the semantic model and a list of inputs
    body = {"model": SEMANTIC_EMBEDDING_MODEL, "input": ["Hello, World!", "hello world", "Why is the sky blue"]}
    # WHEN the fake provider embeds them
    resp = await embeddings(http, fake_provider, body)
    # THEN it answers in OpenAI's format with the bag-of-words vectors (64 dims by default)
    assert resp["object"] == "list" and resp["model"] == SEMANTIC_EMBEDDING_MODEL
    assert [d["index"] for d in resp["data"]] == [0, 1, 2] and resp["data"][0]["object"] == "embedding"
    hello, hello2, sky = (d["embedding"] for d in resp["data"])
    assert hello == hello2 == embed("hello world") and len(hello) == 64
    assert cosine(hello, sky) < 0.3
    assert resp["usage"]["prompt_tokens"] == resp["usage"]["total_tokens"] > 0

    single = await embeddings(http, fake_provider, {"model": SEMANTIC_EMBEDDING_MODEL, "input": "HELLO world.", "dimensions": 16})
    assert single["data"][0]["embedding"] == embed("hello world", 16)


async def test_provider_other_models_unchanged(fake_provider: FakeProvider, http: aiohttp.ClientSession) -> None:
    resp = await embeddings(http, fake_provider, {"model": "text-embedding-3-small", "input": "Hello, World!"})
    assert resp["data"][0]["embedding"] == embedding_vector("Hello, World!")  # sha256 pseudo-vector, 8 dims
