"""Streams and the response cache: an answer replayed as OpenAI SSE, and a stream assembled into
the answer it amounts to (so that a completed stream can be stored and served to either kind of
request).

Replay sends what a live stream of the same answer would: a first chunk with the role, the
content in pieces of ``PIECE`` characters, tool calls whole, a last chunk with the finish
reason, the usage chunk when the request asked for it (``stream_options.include_usage``), then
``data: [DONE]``. Only a stream that ended with ``[DONE]``, no error, and a finish reason for every
choice is assembled.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncGenerator, Awaitable, Callable, Mapping
from typing import Any

import orjson

from aigw.aclose import aclose
from aigw.calls.assembly import StreamAssembler
from aigw.calls.stream import EventStream
from aigw.errors import GatewayError
from aigw.upstream.sse import sse_event

log = logging.getLogger("aigw")
PIECE = 500  # characters of content per replayed chunk
DONE = b"data: [DONE]\n\n"


def _chunk(answer: Mapping[str, Any], choices: list[dict[str, Any]], obj: str) -> bytes:
    chunk: dict[str, Any] = {"id": answer.get("id"), "object": obj, "created": answer.get("created"),
                             "model": answer.get("model"), "choices": choices}
    if answer.get("system_fingerprint") is not None:
        chunk["system_fingerprint"] = answer["system_fingerprint"]
    return sse_event(orjson.dumps(chunk))


def replay_events(answer: Mapping[str, Any], include_usage: bool) -> list[bytes]:
    """The SSE events of a live stream of ``answer`` (a chat or text completion)."""
    choices = answer.get("choices") or []
    text = answer.get("object") == "text_completion"
    obj = "text_completion" if text else "chat.completion.chunk"
    events: list[bytes] = []
    for choice in choices:
        index = choice.get("index", 0)
        if text:
            content = choice.get("text") or ""
            for start in range(0, max(len(content), 1), PIECE):
                events.append(_chunk(answer, [{"index": index, "text": content[start:start + PIECE],
                                                "logprobs": None, "finish_reason": None}], obj))
        else:
            message = choice.get("message") or {}
            content = message.get("content") or ""
            events.append(_chunk(answer, [{"index": index, "delta": {"role": message.get("role", "assistant"),
                                                                     "content": ""}, "finish_reason": None}], obj))
            for start in range(0, len(content), PIECE):
                events.append(_chunk(answer, [{"index": index, "delta": {"content": content[start:start + PIECE]},
                                                "finish_reason": None}], obj))
            if message.get("tool_calls"):
                calls = [{**call, "index": i} for i, call in enumerate(message["tool_calls"])]
                events.append(_chunk(answer, [{"index": index, "delta": {"tool_calls": calls},
                                                "finish_reason": None}], obj))
        last: dict[str, Any] = {"index": index, "finish_reason": choice.get("finish_reason") or "stop"}
        if text:
            last.update(text="", logprobs=None)
        else:
            last["delta"] = {}
        events.append(_chunk(answer, [last], obj))
    if include_usage and answer.get("usage") is not None:
        usage_chunk = orjson.loads(_chunk(answer, [], obj)[6:-2])
        usage_chunk["usage"] = answer["usage"]
        events.append(sse_event(orjson.dumps(usage_chunk)))
    events.append(DONE)
    return events


class ReplayStream:
    """A cached answer as the attempt's stream."""

    def __init__(self, answer: Mapping[str, Any], include_usage: bool) -> None:
        self._events = replay_events(answer, include_usage)

    async def events(self, on_error: Callable[[GatewayError], None] | None = None) -> AsyncGenerator[bytes, None]:
        for event in self._events:
            yield event

    def close(self) -> None:
        pass


class RecordingStream:
    """Passes a live stream on and, once it completed cleanly, hands its answer to ``store``."""

    def __init__(self, inner: EventStream, store: Callable[[dict[str, Any]], Awaitable[None] | None]) -> None:
        self._inner, self._store = inner, store

    async def events(self, on_error: Callable[[GatewayError], None] | None = None) -> AsyncGenerator[bytes, None]:
        assembler = StreamAssembler()
        failed = False

        def note_error(error: GatewayError) -> None:
            nonlocal failed
            failed = True
            if on_error is not None:
                on_error(error)

        source = self._inner.events(on_error=note_error)
        try:
            async for event in source:
                assembler.feed(event)
                yield event
        finally:
            await aclose(source)
        if failed:
            return
        try:
            answer = assembler.answer()
            if answer is not None:
                stored = self._store(answer)  # after the last event: the client already has it all
                if stored is not None:
                    await stored
        except Exception as exc:  # storing is best effort: never an error after a complete stream
            log.error("could not store a completed stream in the cache: %s", type(exc).__name__)

    def close(self) -> None:
        self._inner.close()
