"""Embeddings for the semantic cache: OpenAI's embeddings API (``OPENAI_API_KEY``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

from aigw.upstream.json_call import post_json
from aigw.upstream.transport import Transport, TransportError


class EmbeddingFailed(Exception):
    """No embedding: the semantic lookup is skipped (the request goes on as a cache miss)."""


class EmbeddingRefused(EmbeddingFailed):
    """The embedder refused this text (400, 413, 422): a miss for this request, not an outage."""


class Embedder(Protocol):
    async def embed(self, text: str) -> list[float]: ...


class OpenAIEmbedder:
    def __init__(self, transport: Callable[[], Transport], base_url: str, api_key: str, model: str,
                 timeout_s: float) -> None:
        self._transport, self._url = transport, base_url.rstrip("/") + "/embeddings"
        self._headers = {"authorization": f"Bearer {api_key}"}
        self._model, self._timeout_s = model, timeout_s

    async def embed(self, text: str) -> list[float]:
        try:
            status, body = await post_json(self._transport(), self._url, self._headers,
                                           {"model": self._model, "input": text}, self._timeout_s)
        except TransportError as exc:
            raise EmbeddingFailed(str(exc)) from None
        if status in (400, 413, 422):
            raise EmbeddingRefused(f"embeddings refused the text ({status})")
        try:
            vector = body["data"][0]["embedding"] if status == 200 else None
        except (KeyError, IndexError, TypeError):
            vector = None
        if not isinstance(vector, list) or not vector or not all(isinstance(x, (int, float)) for x in vector):
            raise EmbeddingFailed(f"embeddings answered {status} without a vector")
        return [float(x) for x in vector]
