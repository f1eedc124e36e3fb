"""The semantic side of the response cache: similar chat requests share an answer.

What is compared: the system prompt(s) and the last user message, embedded together; the model,
the target and the scope (provider key or organisation, cache namespace) must be the same, so
they name the vector namespace instead of being embedded. A match at or above the similarity
threshold points (by id) to an exact-cache entry, which holds the answer. Embedder or vector
store failures are logged once per outage (``Availability``) and the lookup is skipped: the
request goes on as a miss, never fails.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Callable, Mapping
from typing import Any

import orjson

from aigw.calls.spec import CallSpec
from aigw.config.model import Target
from aigw.state.availability import Availability
from aigw.state.semantic.embedder import Embedder, EmbeddingRefused
from aigw.state.semantic.vectors import VectorStore

# Stored requests looked at per lookup: the best one's answer may have expired, a live one
# further down still answers.
CANDIDATES = 5

MAX_TEXT_CHARS = 8_000  # under the embedding models' input limit (8 191 tokens) even for CJK text
_NOT_IN_NAMESPACE = frozenset({"messages", "stream", "stream_options"})


def _plain_text(content: Any) -> str | None:
    """A message's text; None when it holds anything else (an image, audio, a file)."""
    if isinstance(content, str):
        return content
    if content is None:
        return ""
    if isinstance(content, list) and all(isinstance(p, Mapping) and p.get("type") == "text"
                                         and isinstance(p.get("text"), str) for p in content):
        return "\n".join(p["text"] for p in content)
    return None


def _semantic_parts(body: Mapping[str, Any]) -> tuple[list[str], str, list[Any]] | None:
    """(system prompts, last user message, the turns before it) when the request can be matched
    by meaning: text only, and ending with the user's turn (a request that ends with a tool
    result or an assistant turn continues a conversation, and is never answered by similarity)."""
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return None
    last = messages[-1]
    if not isinstance(last, Mapping) or last.get("role") != "user":
        return None
    question = _plain_text(last.get("content"))
    if question is None or not question.strip() or len(question) > MAX_TEXT_CHARS:
        return None
    system: list[str] = []
    earlier: list[Any] = []
    for message in messages[:-1]:
        if not isinstance(message, Mapping):
            return None
        text = _plain_text(message.get("content"))
        if text is None:
            return None
        if message.get("role") in ("system", "developer"):
            system.append(text)
        else:
            earlier.append(message)  # matched exactly, through the namespace
    return system, question, earlier


def semantic_text(body: Mapping[str, Any]) -> str | None:
    """What is embedded: the system prompt(s), cut to leave room, and the whole last user message;
    None when the request is not matched by meaning (see ``_semantic_parts``)."""
    parts = _semantic_parts(body)
    if parts is None:
        return None
    system, question, _ = parts
    user = f"user: {question}"
    room = MAX_TEXT_CHARS - len(user) - 1
    head = "\n".join(f"system: {s}" for s in system if s)[:max(room, 0)]
    return f"{head}\n{user}" if head else user


def semantic_namespace(scope: Mapping[str, Any], target: Target, spec: CallSpec) -> str:
    """The vector namespace: the exact cache's scope (``target_scope``), and everything of the
    request that is matched exactly: every parameter but the messages (overrides applied: the
    model, response_format, tools, temperature...) and the conversation before the last user
    message."""
    params = {k: v for k, v in spec.body.items() if k not in _NOT_IN_NAMESPACE}
    params.update((k, v) for k, v in target.override_params.items() if k not in _NOT_IN_NAMESPACE)
    parts = _semantic_parts(spec.body)
    earlier = parts[2] if parts is not None else None
    material = orjson.dumps({**scope, "params": params, "earlier": earlier}, option=orjson.OPT_SORT_KEYS,
                            default=str)
    return hashlib.sha256(material).hexdigest()[:32]


class SemanticIndex:
    def __init__(self, embedder: Embedder, vectors: VectorStore, threshold: float, clock: Callable[[], float]) -> None:
        self._embedder, self._vectors, self._threshold = embedder, vectors, threshold
        self.availability = Availability("semantic-cache", clock)

    async def lookup(self, text: str, namespace: str,
                     time_left_s: float | None = None) -> tuple[list[str], list[float] | None]:
        """The ids (exact-cache keys) of similar enough stored requests, best first, and this
        text's vector (to remember it by after a miss). ([], None) when the lookup could not be
        made. ``time_left_s``: the request's own time (the lookup never outlasts it)."""
        if not self.availability.usable() or (time_left_s is not None and time_left_s <= 0):
            return [], None
        try:
            async with asyncio.timeout(time_left_s):
                vector = await self._embedder.embed(text)
                matches = await self._vectors.nearest(vector, namespace, CANDIDATES)
        except EmbeddingRefused:
            return [], None  # this request's text (too long, say): a miss for it alone, no outage
        except TimeoutError:
            return [], None  # the request's time, not the service's fault
        except Exception as exc:  # whatever the embedder or the vector store did: a miss, never a failure
            self.availability.failed(exc)
            return [], None
        self.availability.succeeded()
        return [vector_id for vector_id, score in matches if score >= self._threshold], vector

    async def remember(self, vector: list[float], namespace: str, key: str) -> None:
        if not self.availability.usable():
            return
        try:
            await self._vectors.add(key, vector, namespace)
        except Exception as exc:  # a miss next time, never a failure now
            self.availability.failed(exc)
            return
        self.availability.succeeded()
