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


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError("content that is not text")  # a shape this cache does not rebuild: not stored
    return value


class StreamAssembler:
    """Folds the OpenAI SSE events of a chat or text completion stream into its answer."""

    def __init__(self, max_bytes: int = 4 * 1024 * 1024) -> None:
        self._max_bytes, self._seen = max_bytes, 0
        self._pending = b""
        self._meta: dict[str, Any] = {}
        self._choices: dict[int, dict[str, Any]] = {}
        self._usage: Any = None
        self.done = False
        self.broken = False

    def feed(self, event: bytes) -> None:
        if self.broken:
            return
        self._seen += len(event)
        if self._seen > self._max_bytes:  # too large to store: stop keeping a second copy
            self.broken, self._choices, self._pending = True, {}, b""
            return
        data = self._pending + event
        lines = data.split(b"\n")
        self._pending = lines.pop()  # an unfinished line waits for the next event
        for line in lines:
            line = line.rstrip(b"\r")
            if not line.startswith(b"data:"):
                continue
            payload = line[5:].strip()
            if payload == b"[DONE]":
                self.done = True
                continue
            try:
                chunk = orjson.loads(payload)
            except orjson.JSONDecodeError:
                self.broken = True
                continue
            self._take(chunk)

    def _take(self, chunk: Any) -> None:
        """One chunk folded in; a shape it does not expect makes the stream not storable (it is
        passed on as it is all the same)."""
        try:
            self._fold(chunk)
        except (AttributeError, TypeError, KeyError, ValueError):
            self.broken = True

    def _fold(self, chunk: Any) -> None:
        if not isinstance(chunk, dict) or "error" in chunk:
            self.broken = True
            return
        for key in ("id", "created", "model", "system_fingerprint", "object"):
            if chunk.get(key) is not None:
                self._meta.setdefault(key, chunk[key])
        if chunk.get("usage") is not None:
            self._usage = chunk["usage"]
        for choice in chunk.get("choices") or []:
            index = choice.get("index", 0)
            if not isinstance(index, int):
                raise TypeError("choice index")
            into = self._choices.setdefault(index, {"content": [], "tool_calls": {}, "role": None, "finish": None})
            if choice.get("finish_reason"):
                into["finish"] = choice["finish_reason"]
            if "text" in choice:
                into["content"].append(_text(choice.get("text")))
            delta = choice.get("delta") or {}
            if delta.get("role"):
                into["role"] = delta["role"]
            if delta.get("content"):
                into["content"].append(_text(delta["content"]))
            for call in delta.get("tool_calls") or []:
                position = call.get("index", 0)
                if not isinstance(position, int):
                    raise TypeError("tool call index")
                slot = into["tool_calls"].setdefault(position, {"function": {"arguments": []}})
                for key in ("id", "type"):
                    if call.get(key):
                        slot[key] = call[key]
                function = call.get("function") or {}
                if function.get("name"):
                    slot["function"]["name"] = function["name"]
                if function.get("arguments"):
                    slot["function"]["arguments"].append(_text(function["arguments"]))

    def answer(self) -> dict[str, Any] | None:
        """The answer the stream amounts to; None unless it ended cleanly with [DONE]."""
        if not self.done or self.broken or not self._choices:
            return None
        if any(c["finish"] is None for c in self._choices.values()):
            return None  # a choice never finished: the stream was cut (the gateway ends such a stream with [DONE])
        text = self._meta.get("object") == "text_completion"
        choices = []
        for index in sorted(self._choices):
            c = self._choices[index]
            content = "".join(c["content"])
            if text:
                choices.append({"index": index, "text": content, "logprobs": None, "finish_reason": c["finish"]})
                continue
            message: dict[str, Any] = {"role": c["role"] or "assistant", "content": content or None}
            if c["tool_calls"]:
                message["tool_calls"] = [
                    {**{k: v for k, v in slot.items() if k != "function"},
                     "function": {**slot["function"], "arguments": "".join(slot["function"]["arguments"])}}
                    for _, slot in sorted(c["tool_calls"].items())]
            choices.append({"index": index, "message": message, "logprobs": None, "finish_reason": c["finish"]})
        answer: dict[str, Any] = {"id": self._meta.get("id"), "object": "text_completion" if text else "chat.completion",
                                  "created": self._meta.get("created"), "model": self._meta.get("model"),
                                  "choices": choices}
        if self._meta.get("system_fingerprint") is not None:
            answer["system_fingerprint"] = self._meta["system_fingerprint"]
        if self._usage is not None:
            answer["usage"] = self._usage
        return answer


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
