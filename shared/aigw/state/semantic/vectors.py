"""Vector stores for the semantic cache: Pinecone over its data-plane HTTP API, or an in-process
index (``make run``'s default; per execution environment on Lambda).

A vector's id is the exact-cache key of the answer it points to; a namespace holds the vectors
of one scope (provider key or organisation, cache namespace, target and model), so a lookup can
only ever find answers its own scope stored.
"""

from __future__ import annotations

import math
import operator
from array import array
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

from aigw.upstream.json_call import post_json
from aigw.upstream.transport import Transport, TransportError

PINECONE_API_VERSION = "2025-04"


class VectorStoreFailed(Exception):
    """The vector store did not answer: the semantic lookup is skipped."""


class VectorStore(Protocol):
    async def nearest(self, vector: list[float], namespace: str, top_k: int) -> list[tuple[str, float]]:
        """The ``top_k`` closest vectors' ids and cosine similarities, best first. (A Pinecone
        index for this cache must use the cosine metric and the embedder's dimension.)"""
        ...

    async def add(self, vector_id: str, vector: list[float], namespace: str) -> None: ...


class PineconeVectorStore:
    def __init__(self, transport: Callable[[], Transport], base_url: str, api_key: str, timeout_s: float) -> None:
        self._transport, self._base = transport, base_url.rstrip("/")
        self._headers = {"api-key": api_key, "x-pinecone-api-version": PINECONE_API_VERSION}
        self._timeout_s = timeout_s

    async def _call(self, path: str, payload: object) -> object:
        try:
            status, body = await post_json(self._transport(), self._base + path, self._headers, payload,
                                           self._timeout_s)
        except TransportError as exc:
            raise VectorStoreFailed(str(exc)) from None
        if status != 200:
            raise VectorStoreFailed(f"pinecone answered {status}")
        return body

    async def nearest(self, vector: list[float], namespace: str, top_k: int) -> list[tuple[str, float]]:
        body = await self._call("/query", {"namespace": namespace, "vector": vector, "topK": top_k,
                                           "includeValues": False, "includeMetadata": False})
        matches = body.get("matches") if isinstance(body, dict) else None
        if not isinstance(matches, list):
            raise VectorStoreFailed("pinecone answered without matches")
        found = []
        for match in matches:
            if not isinstance(match, dict) or not isinstance(match.get("id"), str) \
                    or not isinstance(match.get("score"), (int, float)):
                raise VectorStoreFailed("pinecone answered a match without id or score")
            found.append((match["id"], float(match["score"])))
        return sorted(found, key=lambda m: -m[1])

    async def add(self, vector_id: str, vector: list[float], namespace: str) -> None:
        await self._call("/vectors/upsert", {"namespace": namespace, "vectors": [{"id": vector_id, "values": vector}]})


def _unit(vector: list[float]) -> array[float]:
    norm = math.sqrt(sum(x * x for x in vector)) or 1.0
    return array("f", (x / norm for x in vector))


class MemoryVectorStore:
    """Exact cosine search, per namespace, over at most ``max_vectors`` in all (oldest dropped
    first). Unit vectors are kept as 32-bit floats (6 KiB for 1536 dimensions), so a score is
    one dot product (C-speed ``math.sumprod``): 1000 vectors of 1536 dimensions cost ~6 MiB and
    a full scan ~10 ms. For more, use Pinecone."""

    def __init__(self, max_vectors: int = 1000) -> None:
        self._max = max_vectors
        self._order: OrderedDict[tuple[str, str], None] = OrderedDict()
        self._spaces: dict[str, dict[str, array[float]]] = {}

    async def nearest(self, vector: list[float], namespace: str, top_k: int) -> list[tuple[str, float]]:
        query = _unit(vector)
        scored = [(vector_id, _dot(query, stored)) for vector_id, stored in self._spaces.get(namespace, {}).items()
                  if len(stored) == len(query)]
        scored.sort(key=lambda m: -m[1])
        return scored[:top_k]

    async def add(self, vector_id: str, vector: list[float], namespace: str) -> None:
        self._spaces.setdefault(namespace, {})[vector_id] = _unit(vector)
        self._order[(namespace, vector_id)] = None
        self._order.move_to_end((namespace, vector_id))
        while len(self._order) > self._max:
            (ns, old), _ = self._order.popitem(last=False)
            space = self._spaces[ns]
            del space[old]
            if not space:
                del self._spaces[ns]


def _dot(a: array[float], b: array[float]) -> float:
    sumprod = getattr(math, "sumprod", None)  # Python 3.12+: one C loop
    if sumprod is not None:
        return float(sumprod(a, b))
    return float(sum(map(operator.mul, a, b)))
