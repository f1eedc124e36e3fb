"""The semantic side of the response cache: similar chat requests share an answer.

What is compared: the system prompt(s) and the last user message, embedded together; the model,
the target and the scope (provider key or organisation, cache namespace) must be the same, so
they name the vector namespace instead of being embedded. A match at or above the similarity
threshold points (by id) to an exact-cache entry, which holds the answer. Embedder or vector
store failures are logged once per outage (``Availability``) and the lookup is skipped: the
request goes on as a miss, never fails.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from aigw.calls.spec import CallSpec
from aigw.config.model import Target
from aigw.state.availability import Availability
from aigw.state.semantic.embedder import Embedder, EmbeddingFailed
from aigw.state.semantic.vectors import VectorStore, VectorStoreFailed

MAX_TEXT_CHARS = 16_000  # well under the embedding models' input limit (8 191 tokens)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # content parts: only the text ones count
        return "\n".join(p["text"] for p in content if isinstance(p, Mapping) and isinstance(p.get("text"), str))
    return ""


def semantic_text(body: Mapping[str, Any]) -> str | None:
    """The system prompt(s) and the last user message; None when there is no user message."""
    messages = body.get("messages")
    if not isinstance(messages, list):
        return None
    system = [_text_of(m.get("content")) for m in messages
              if isinstance(m, Mapping) and m.get("role") in ("system", "developer")]
    users = [m for m in messages if isinstance(m, Mapping) and m.get("role") == "user"]
    if not users:
        return None
    last = _text_of(users[-1].get("content"))
    if not last.strip():
        return None
    return "\n".join([*(f"system: {s}" for s in system if s), f"user: {last}"])[:MAX_TEXT_CHARS]


def semantic_namespace(scope: Mapping[str, Any], target: Target, spec: CallSpec) -> str:
    """The vector namespace: the exact cache's scope (``target_scope``) and the model."""
    model = target.override_params.get("model", spec.body.get("model"))
    material = orjson.dumps({**scope, "model": model}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(material).hexdigest()[:32]


class SemanticIndex:
    def __init__(self, embedder: Embedder, vectors: VectorStore, threshold: float, clock: Callable[[], float]) -> None:
        self._embedder, self._vectors, self._threshold = embedder, vectors, threshold
        self.availability = Availability("semantic-cache", clock)

    async def lookup(self, text: str, namespace: str) -> tuple[str | None, list[float] | None]:
        """The id (an exact-cache key) of a similar enough stored request, and this text's vector
        (to remember it by after a miss). (None, None) when the lookup could not be made."""
        if not self.availability.usable():
            return None, None
        try:
            vector = await self._embedder.embed(text)
            match = await self._vectors.nearest(vector, namespace)
        except (EmbeddingFailed, VectorStoreFailed) as exc:
            self.availability.failed(exc)
            return None, None
        self.availability.succeeded()
        if match is not None and match[1] >= self._threshold:
            return match[0], vector
        return None, vector

    async def remember(self, vector: list[float], namespace: str, key: str) -> None:
        if not self.availability.usable():
            return
        try:
            await self._vectors.add(key, vector, namespace)
        except VectorStoreFailed as exc:
            self.availability.failed(exc)
            return
        self.availability.succeeded()
