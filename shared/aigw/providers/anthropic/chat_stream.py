"""Anthropic's Messages stream -> OpenAI ``chat.completion.chunk`` SSE, event by event.

message_start      -> first chunk: delta {role: assistant, content: ""}
content_block_*    -> a chunk each: text as content, tool_use as a tool_calls delta, its
                      input_json_delta as argument fragments (other blocks: an empty delta)
message_delta      -> finish chunk: finish_reason mapped, usage
message_stop       -> data: [DONE]
error              -> data: {"error": {...}} and nothing after it
ping, content_block_stop -> nothing

Each output chunk leaves as soon as its input event is complete; only one incomplete event
is ever held. Chunk shapes, the ``anthropic-<ms>`` id and usage follow the reference gateway.
Errors deliberately do not: the reference turns an error event into a chunk whose
finish_reason is the error type, then ``[DONE]``, and ends a cut stream silently; here both
end in an OpenAI error event (the gateway's rule: a stream never ends silently on failure).
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

import orjson

from aigw.config.model import Target
from aigw.providers.anthropic.chat import PROVIDER_NAME, finish_reason, obj
from aigw.providers.base import Json
from aigw.upstream.sse import SSEDecoder, SSEEvent, sse_error_event, sse_event

DONE = b"data: [DONE]\n\n"


def _error_event(message: str, etype: str | None, code: str | None, *, provider: bool) -> bytes:
    return sse_error_event(message, type=etype, code=code, provider=PROVIDER_NAME if provider else None)


def _present(fields: Json) -> Json:
    # The reference builds these objects in JavaScript, where an absent value drops the key.
    return {k: v for k, v in fields.items() if v is not None}


class AnthropicChatStream:
    def __init__(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        self._decoder = SSEDecoder()
        # As the reference: one id for the whole stream, "anthropic-<ms>", not the message id.
        self._id = f"{PROVIDER_NAME}-{int(now * 1000)}"
        self._model = ""
        self._created = int(now)
        self._prompt_usage: Json = {}  # from message_start, repeated in the finish chunk
        self._tool_index = -1  # OpenAI numbers tool calls 0.. across the message
        self._tool_of_block: dict[Any, int] = {}  # Anthropic block index -> tool call index
        self._ended = False  # message_stop or error seen: the stream is complete

    def feed(self, chunk: bytes) -> list[bytes]:
        if self._ended:
            return []
        return self._handle(self._decoder.feed(chunk))

    def close(self) -> list[bytes]:
        out = [] if self._ended else self._handle(self._decoder.flush(), at_end=True)
        if not self._ended:
            self._ended = True
            # Shaped like the relay's own interruption event, which a broken connection gets.
            message = f"{PROVIDER_NAME} stream ended before message_stop"
            out.append(_error_event(message, "api_error", "stream_interrupted", provider=False))
        return out

    def _handle(self, events: list[SSEEvent], at_end: bool = False) -> list[bytes]:
        out: list[bytes] = []
        for event in events:
            if self._ended:
                break
            out.extend(self._on_event(event, at_end))
        return out

    def _on_event(self, event: SSEEvent, at_end: bool = False) -> list[bytes]:
        try:
            data = orjson.loads(event.data)
        except orjson.JSONDecodeError:
            if at_end:
                return []  # the cut-off tail of a truncated stream: close() reports the cut
            self._ended = True
            return [_error_event(f"{PROVIDER_NAME} sent an unreadable stream event", "api_error", "invalid_stream_event", provider=True)]
        if not isinstance(data, dict):
            return []
        kind = data.get("type") or event.event
        if kind in ("ping", "content_block_stop"):
            return []
        if kind == "message_stop":
            self._ended = True
            return [DONE]
        if kind == "error":
            self._ended = True
            err = obj(data.get("error"))
            etype = err.get("type") if isinstance(err.get("type"), str) else None
            return [_error_event(f"{PROVIDER_NAME} error: {err.get('message', '')}", etype, None, provider=True)]
        if kind == "message_start":
            return [self._start(data.get("message"))]
        if kind == "message_delta":
            return [self._finish(data)]
        if kind == "content_block_start":
            return [self._block_start(data)]
        if kind == "content_block_delta":
            return [self._block_delta(data)]
        return []  # event types newer than this code carry nothing a chat chunk can say

    def _chunk(self, choice: Json, usage: Json | None = None) -> bytes:
        chunk: Json = {
            "id": self._id,
            "object": "chat.completion.chunk",
            "created": self._created,
            "model": self._model,
            "provider": PROVIDER_NAME,
            "choices": [choice],
        }
        if usage is not None:
            chunk["usage"] = usage
        return sse_event(orjson.dumps(chunk))

    @staticmethod
    def _delta(delta: Json) -> Json:
        return {"delta": delta, "index": 0, "logprobs": None, "finish_reason": None}

    def _start(self, message: Any) -> bytes:
        msg = obj(message)
        self._model = str(msg.get("model") or "")
        u = obj(msg.get("usage"))
        read, created = u.get("cache_read_input_tokens"), u.get("cache_creation_input_tokens")
        self._prompt_usage = _present({"prompt_tokens": u.get("input_tokens")})
        if read or created:
            self._prompt_usage.update(_present({"cache_read_input_tokens": read, "cache_creation_input_tokens": created}))
        return self._chunk(self._delta({"content": "", "role": "assistant"}))

    def _finish(self, data: Mapping[str, Any]) -> bytes:
        delta = obj(data.get("delta"))
        u = obj(data.get("usage"))
        p = self._prompt_usage
        output = u.get("output_tokens")
        total = sum(p.get(k) or 0 for k in ("prompt_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")) + (output or 0)
        usage: Json = {
            **p,
            **_present({"completion_tokens": output}),
            "total_tokens": total,
            "prompt_tokens_details": {"cached_tokens": p.get("cache_read_input_tokens") or 0},
        }
        choice = {"index": 0, "delta": {}, "finish_reason": finish_reason(delta.get("stop_reason"))}
        return self._chunk(choice, usage)

    def _block_start(self, data: Mapping[str, Any]) -> bytes:
        block = obj(data.get("content_block"))
        if block.get("type") != "tool_use":
            return self._chunk(self._delta({}))  # text/thinking starts carry no OpenAI content
        self._tool_index += 1
        self._tool_of_block[data.get("index")] = self._tool_index
        call = {"index": self._tool_index, "id": block.get("id"), "type": "function", "function": {"name": block.get("name"), "arguments": ""}}
        return self._chunk(self._delta({"tool_calls": [call]}))

    def _block_delta(self, data: Mapping[str, Any]) -> bytes:
        delta = obj(data.get("delta"))
        if delta.get("partial_json") is not None:
            index = self._tool_of_block.get(data.get("index"), self._tool_index)
            return self._chunk(self._delta({"tool_calls": [{"index": index, "function": {"arguments": delta["partial_json"]}}]}))
        text = delta.get("text")
        return self._chunk(self._delta({"content": text} if text is not None else {}))


def make_transformer(target: Target, request_body: Json) -> AnthropicChatStream:
    return AnthropicChatStream()
