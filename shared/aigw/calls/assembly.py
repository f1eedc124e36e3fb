"""A stream of OpenAI SSE events folded back into the answer it amounts to: what the response
cache stores of a completed stream, and what the log record keeps of a streamed response."""

from __future__ import annotations

from typing import Any

import orjson


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
