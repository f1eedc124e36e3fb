"""Tests of the fake Pinecone data plane (fast: one server per module, small delays)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import aiohttp
import pytest

from tests.fakes.embeddings import SEMANTIC_EMBEDDING_MODEL, embed
from tests.fakes.pinecone_index import PineconeIndex
from tests.fakes.pinecone_server import FakePinecone
from tests.fakes.provider_server import FakeProvider

KEY = "pc-test-secret"
AUTH = {"Api-Key": KEY, "X-Pinecone-API-Version": "2025-04"}


@pytest.fixture(scope="module")
def pinecone_server() -> Iterator[FakePinecone]:
    with FakePinecone(api_key=KEY, dimension=64) as server:
        yield server


@pytest.fixture
def pinecone(pinecone_server: FakePinecone) -> FakePinecone:
    pinecone_server.reset()
    return pinecone_server


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5)) as session:
        yield session


async def call(http: aiohttp.ClientSession, pc: FakePinecone, path: str, body: Any,
               headers: dict[str, str] | None = None) -> tuple[int, Any]:
    async with http.post(pc.url(path), json=body, headers=AUTH if headers is None else headers) as r:
        return r.status, await r.json(content_type=None)


def unit(i: int, dim: int = 64) -> list[float]:
    """Basis vector i (cosine 0 to every other basis vector)."""
    return [1.0 if j == i else 0.0 for j in range(dim)]


def mix(*weights: tuple[int, float]) -> list[float]:
    v = [0.0] * 64
    for i, w in weights:
        v[i] = w
    return v


async def upsert(http: aiohttp.ClientSession, pc: FakePinecone, vectors: list[dict[str, Any]], namespace: str = "") -> None:
    status, body = await call(http, pc, "/vectors/upsert", {"vectors": vectors, "namespace": namespace})
    assert (status, body) == (200, {"upsertedCount": len(vectors)})


# --------------------------------------------------------------------------- upsert / query


async def test_upsert_then_query_best_match_first(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    # GIVEN three vectors
    await upsert(http, pinecone, [{"id": "a", "values": unit(0)}, {"id": "b", "values": mix((0, 1), (1, 1))},
                                  {"id": "c", "values": unit(1)}])
    # WHEN querying with a's own vector
    status, body = await call(http, pinecone, "/query", {"vector": unit(0), "topK": 10})
    # THEN a comes first with score ~1.0, then b (cos 45 degrees), then c (orthogonal)
    assert status == 200
    assert [m["id"] for m in body["matches"]] == ["a", "b", "c"]
    assert [m["score"] for m in body["matches"]] == pytest.approx([1.0, 2**-0.5, 0.0])
    assert body["matches"][0]["values"] == [] and "metadata" not in body["matches"][0]
    assert body["namespace"] == "" and body["usage"] == {"readUnits": 1}


async def test_top_k_and_query_by_id(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    await upsert(http, pinecone, [{"id": f"v{i}", "values": mix((0, 1), (1, i / 10))} for i in range(6)])
    _, body = await call(http, pinecone, "/query", {"vector": unit(0), "topK": 2})
    assert [m["id"] for m in body["matches"]] == ["v0", "v1"]
    _, body = await call(http, pinecone, "/query", {"id": "v5", "topK": 1})
    assert body["matches"][0]["id"] == "v5" and body["matches"][0]["score"] == pytest.approx(1.0)
    for bad in (0, 10_001, "3", None):
        status, err = await call(http, pinecone, "/query", {"vector": unit(0), "topK": bad})
        assert status == 400 and err["code"] == 3 and "topK" in err["message"]


async def test_namespaces_are_isolated(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    await upsert(http, pinecone, [{"id": "x", "values": unit(0), "metadata": {"ns": "one"}}], namespace="one")
    await upsert(http, pinecone, [{"id": "x", "values": unit(1), "metadata": {"ns": "two"}}], namespace="two")
    _, body = await call(http, pinecone, "/query", {"namespace": "one", "vector": unit(0), "topK": 5, "includeMetadata": True})
    assert body["namespace"] == "one" and [(m["id"], m["metadata"]) for m in body["matches"]] == [("x", {"ns": "one"})]
    _, body = await call(http, pinecone, "/query", {"vector": unit(0), "topK": 5})  # default namespace ""
    assert body["matches"] == []
    assert pinecone.index.namespaces() == ["one", "two"] and pinecone.index.vectors("two")["x"].values == unit(1)


async def test_filter(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    await upsert(http, pinecone, [
        {"id": "gpt", "values": unit(0), "metadata": {"model": "gpt-4o", "temp": 0, "tags": ["x", "y"]}},
        {"id": "gpt-hot", "values": unit(0), "metadata": {"model": "gpt-4o", "temp": 1}},
        {"id": "claude", "values": unit(0), "metadata": {"model": "claude", "temp": 0, "cached": True}},
        {"id": "bare", "values": unit(0)},
    ])

    async def ids(flt: Any) -> list[str]:
        status, body = await call(http, pinecone, "/query", {"vector": unit(0), "topK": 10, "filter": flt})
        assert status == 200, body
        return sorted(m["id"] for m in body["matches"])

    assert await ids({"model": {"$eq": "gpt-4o"}}) == ["gpt", "gpt-hot"]
    assert await ids({"model": "gpt-4o"}) == ["gpt", "gpt-hot"]  # shorthand
    assert await ids({"$and": [{"model": "gpt-4o"}, {"temp": {"$eq": 0}}]}) == ["gpt"]
    assert await ids({"model": "gpt-4o", "temp": 1}) == ["gpt-hot"]  # several fields: implicit and
    assert await ids({"$or": [{"model": "claude"}, {"temp": {"$gt": 0.5}}]}) == ["claude", "gpt-hot"]
    assert await ids({"model": {"$in": ["claude", "other"]}}) == ["claude"]
    assert await ids({"model": {"$ne": "gpt-4o"}}) == ["bare", "claude"]  # a missing field matches $ne
    assert await ids({"tags": "y"}) == ["gpt"]  # a list field matches if an element does
    assert await ids({"cached": {"$exists": True}}) == ["claude"]
    assert await ids({"cached": 1}) == []  # booleans never equal numbers

    status, err = await call(http, pinecone, "/query", {"vector": unit(0), "topK": 1, "filter": {"m": {"$regex": "x"}}})
    assert status == 400 and err["code"] == 3 and "$regex" in err["message"]


async def test_include_values_and_metadata(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    v = mix((3, 0.6), (4, 0.8))
    await upsert(http, pinecone, [{"id": "m", "values": v, "metadata": {"response": "{\"id\": 1}", "n": 2.5}},
                                  {"id": "no-md", "values": unit(5)}])
    q = {"vector": v, "topK": 2, "includeValues": True, "includeMetadata": True}
    _, body = await call(http, pinecone, "/query", q)
    first, second = body["matches"]
    assert first == {"id": "m", "score": pytest.approx(1.0), "values": v, "metadata": {"response": "{\"id\": 1}", "n": 2.5}}
    assert second == {"id": "no-md", "score": 0.0, "values": unit(5)}  # no metadata key without metadata
    _, body = await call(http, pinecone, "/query", {**q, "includeValues": False, "includeMetadata": False})
    assert body["matches"][0] == {"id": "m", "score": pytest.approx(1.0), "values": []}


async def test_upsert_replaces_whole_vector(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    await upsert(http, pinecone, [{"id": "k", "values": unit(0), "metadata": {"a": "1"}}])
    await upsert(http, pinecone, [{"id": "k", "values": unit(1)}])
    assert pinecone.index.vectors()["k"].metadata is None and pinecone.index.vectors()["k"].values == unit(1)


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("headers", [{}, {"Api-Key": "wrong"}, {"Authorization": f"Bearer {KEY}"}])
async def test_auth_failure(pinecone: FakePinecone, http: aiohttp.ClientSession, headers: dict[str, str]) -> None:
    status, body = await call(http, pinecone, "/vectors/upsert", {"vectors": [{"id": "a", "values": unit(0)}]}, headers)
    assert status == 401
    assert body["code"] == 16 and body["details"] == [] and isinstance(body["message"], str) and body["message"]
    assert pinecone.index.namespaces() == []  # nothing stored


async def test_dimension_and_validation_errors(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    status, body = await call(http, pinecone, "/vectors/upsert", {"vectors": [{"id": "a", "values": [0.1, 0.2, 0.3]}]})
    assert status == 400
    assert body == {"code": 3, "message": "Vector dimension 3 does not match the dimension of the index 64", "details": []}
    status, body = await call(http, pinecone, "/query", {"vector": [1.0] * 65, "topK": 1})
    assert (status, body["code"]) == (400, 3)
    assert body["message"] == "Query vector dimension 65 does not match the dimension of the index 64"

    good = {"id": "ok", "values": unit(0)}
    bad_bodies = [
        {"vectors": [good, {"id": "z", "values": [0.0] * 64}]},  # all zeros (cosine)
        {"vectors": [good, {"id": "", "values": unit(1)}]},
        {"vectors": [good, {"id": "n", "values": unit(1), "metadata": {"nested": {"a": 1}}}]},
        {"vectors": [good, {"id": "n", "values": unit(1), "metadata": {"null": None}}]},
        {"vectors": [good, {"id": "big", "values": unit(1), "metadata": {"text": "x" * 41_000}}]},
        {"vectors": []},
    ]
    for bad in bad_bodies:
        status, body = await call(http, pinecone, "/vectors/upsert", bad)
        assert (status, body["code"], body["details"]) == (400, 3, []), bad
    assert pinecone.index.namespaces() == []  # a rejected request changes nothing, not even its good vectors

    async with http.post(pinecone.url("/query"), data=b"{not json", headers=AUTH) as r:
        assert r.status == 400 and (await r.json())["code"] == 3
    status, body = await call(http, pinecone, "/describe_index_stats", {})
    assert status == 404 and body["code"] == 5


# --------------------------------------------------------------------------- delete


async def test_delete(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    vecs = [{"id": i, "values": unit(n), "metadata": {"model": m}} for n, (i, m) in enumerate(
        [("a", "x"), ("b", "x"), ("c", "y"), ("d", "y")])]
    await upsert(http, pinecone, vecs)
    await upsert(http, pinecone, vecs, namespace="other")

    assert await call(http, pinecone, "/vectors/delete", {"ids": ["a", "missing"]}) == (200, {})
    assert sorted(pinecone.index.vectors()) == ["b", "c", "d"]
    assert await call(http, pinecone, "/vectors/delete", {"filter": {"model": "y"}}) == (200, {})
    assert sorted(pinecone.index.vectors()) == ["b"]
    assert await call(http, pinecone, "/vectors/delete", {"deleteAll": True, "namespace": "other"}) == (200, {})
    assert pinecone.index.namespaces() == [""]  # only the named namespace was emptied
    _, body = await call(http, pinecone, "/query", {"vector": unit(1), "topK": 5, "namespace": "other"})
    assert body["matches"] == []

    status, body = await call(http, pinecone, "/vectors/delete", {"namespace": ""})  # nothing chosen
    assert (status, body["code"]) == (400, 3)


# --------------------------------------------------------------------------- failure injection, delays, recording


async def test_fail_next(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    # GIVEN two injected 503s, then a 429 with its own message
    pinecone.fail_next(2, 503)
    pinecone.fail_next(1, 429, message="Too many requests, slow down")
    up = {"vectors": [{"id": "a", "values": unit(0)}]}
    # WHEN requests arrive
    results = [await call(http, pinecone, "/vectors/upsert", up) for _ in range(4)]
    # THEN the first three fail in Pinecone's error shape without being applied; the fourth works
    assert results[0] == results[1] == (503, {"code": 14, "message": "Service Unavailable", "details": []})
    assert results[2] == (429, {"code": 8, "message": "Too many requests, slow down", "details": []})
    assert results[3] == (200, {"upsertedCount": 1})
    assert [r.status for r in pinecone.requests] == [503, 503, 429, 200] and pinecone.pending_failures() == 0

    pinecone.fail_next(drop=True)  # a dropped connection: no HTTP answer at all
    with pytest.raises(aiohttp.ClientError):
        await call(http, pinecone, "/query", {"vector": unit(0), "topK": 1})
    assert pinecone.requests[-1].status is None
    assert (await call(http, pinecone, "/query", {"vector": unit(0), "topK": 1}))[0] == 200


async def test_delay_and_abandoned(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    pinecone.delay(0.15, count=1)
    t0 = time.monotonic()
    assert (await call(http, pinecone, "/query", {"vector": unit(0), "topK": 1}))[0] == 200
    assert time.monotonic() - t0 >= 0.15
    t0 = time.monotonic()
    await call(http, pinecone, "/query", {"vector": unit(0), "topK": 1})
    assert time.monotonic() - t0 < 0.1  # count=1: only the first answer was delayed

    # A client that gives up during the delay: the upsert still lands (applied before the wait).
    pinecone.delay(1.0)
    with pytest.raises(asyncio.TimeoutError):
        async with http.post(pinecone.url("/vectors/upsert"), json={"vectors": [{"id": "slow", "values": unit(0)}]},
                             headers=AUTH, timeout=aiohttp.ClientTimeout(total=0.1)):
            pass
    deadline = time.monotonic() + 2
    while not pinecone.abandoned and time.monotonic() < deadline:
        await asyncio.sleep(0.01)
    assert [r.path for r in pinecone.abandoned] == ["/vectors/upsert"] and "slow" in pinecone.index.vectors()
    pinecone.delay(0)


async def test_recorded_requests(pinecone: FakePinecone, http: aiohttp.ClientSession) -> None:
    body = {"vectors": [{"id": "a", "values": unit(0)}], "namespace": "ns"}
    await call(http, pinecone, "/vectors/upsert", body)
    await call(http, pinecone, "/query", {"vector": unit(0), "topK": 1}, {"Api-Key": KEY})
    first, second = pinecone.requests
    assert (first.method, first.path, first.json, first.status) == ("POST", "/vectors/upsert", body, 200)
    assert first.api_key == KEY and first.api_version == "2025-04" and first.headers["api-key"] == KEY
    assert second.api_version is None and pinecone.requests_for("/query") == [second]
    assert second.received_at >= first.received_at
    pinecone.reset()
    assert pinecone.requests == [] and pinecone.index.namespaces() == []


def test_sync_use_and_restart() -> None:
    import json
    import urllib.request

    with FakePinecone(api_key="k", dimension=3) as pc:
        url = pc.base_url
        assert url.startswith("http://127.0.0.1:")
        req = urllib.request.Request(pc.url("/vectors/upsert"), method="POST", headers={"Api-Key": "k"},
                                     data=json.dumps({"vectors": [{"id": "a", "values": [1, 2, 3]}]}).encode())
        with urllib.request.urlopen(req, timeout=5) as r:
            assert json.loads(r.read()) == {"upsertedCount": 1} and r.headers["x-pinecone-request-id"] == "1"
    with pytest.raises(RuntimeError):
        _ = pc.base_url
    with pytest.raises(ValueError):
        PineconeIndex(0)


# --------------------------------------------------------------------------- with the semantic embedding


async def test_semantic_cache_round_trip(pinecone: FakePinecone, fake_provider: FakeProvider,
                                         http: aiohttp.ClientSession) -> None:
    # GIVEN prompts embedded by the fake provider's semantic model, stored with their answers
    async def vectors(texts: list[str]) -> list[list[float]]:
        async with http.post(fake_provider.url("/v1/embeddings"), headers={"Authorization": "Bearer sk-test"},
                             json={"model": SEMANTIC_EMBEDDING_MODEL, "input": texts}) as r:
            return [d["embedding"] for d in (await r.json())["data"]]

    hello, sky = await vectors(["Hello, World!", "Why is the sky blue?"])
    await upsert(http, pinecone, [{"id": "h", "values": hello, "metadata": {"answer": "hi"}},
                                  {"id": "s", "values": sky, "metadata": {"answer": "Rayleigh"}}], namespace="cache")
    # WHEN the same words come back in another case and punctuation
    (query,) = await vectors(["hello world"])
    _, body = await call(http, pinecone, "/query", {"namespace": "cache", "vector": query, "topK": 2, "includeMetadata": True})
    # THEN the stored answer matches with score 1.0 and the unrelated one scores low
    best, other = body["matches"]
    assert (best["id"], best["metadata"]["answer"]) == ("h", "hi") and best["score"] == pytest.approx(1.0)
    assert other["id"] == "s" and other["score"] < 0.3
    assert query == embed("Hello, World!")
