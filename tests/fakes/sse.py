"""Server-sent-events helpers for the fake provider and for tests.

Builders (for ``Reply(sse=...)``):
  * ``openai_sse(chunks, done=True)``  -> ``data: <json>\\n\\n`` frames (+ ``data: [DONE]``)
  * ``anthropic_sse(events)``          -> ``event: <name>\\ndata: <json>\\n\\n`` frames
Parser (for asserting on gateway output):
  * ``parse_sse(raw)`` -> list of ``SSEEvent(event, data)``; ``SSEEvent.json()`` decodes data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

DONE = b"data: [DONE]\n\n"


def _dumps(obj: Any) -> str:
    # Compact JSON, like the real providers emit.
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def sse_frame(data: Any, event: str | None = None) -> bytes:
    """One SSE frame. ``data`` may be a JSON-able object, or str/bytes sent verbatim."""
    if isinstance(data, bytes):
        payload = data.decode()
    elif isinstance(data, str):
        payload = data
    else:
        payload = _dumps(data)
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {payload}\n\n".encode()


def openai_sse(chunks: list[Any], done: bool = True) -> list[bytes]:
    """OpenAI-style stream: one ``data:`` frame per chunk, then ``data: [DONE]`` if ``done``.

    Dict chunks are JSON-encoded; str/bytes chunks are sent as raw data (e.g. malformed JSON).
    """
    frames = [sse_frame(c) for c in chunks]
    if done:
        frames.append(DONE)
    return frames


def anthropic_sse(events: list[tuple[str, dict[str, Any]]]) -> list[bytes]:
    """Anthropic-style stream: ``event: <name>`` + ``data: <json>`` per event.

    ``"type": <name>`` is added to the data when missing, as Anthropic always includes it.
    """
    return [sse_frame({"type": name, **data}, event=name) for name, data in events]


@dataclass(frozen=True)
class SSEEvent:
    event: str | None
    data: str

    def json(self) -> Any:
        return json.loads(self.data)


def parse_sse(raw: bytes | str) -> list[SSEEvent]:
    """Parse an SSE body into events (multi-line ``data:`` joined by ``\\n``; comments skipped)."""
    text = raw.decode() if isinstance(raw, bytes) else raw
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    out: list[SSEEvent] = []
    for block in text.split("\n\n"):
        event: str | None = None
        data: list[str] = []
        for line in block.split("\n"):
            if not line or line.startswith(":"):
                continue
            name, _, value = line.partition(":")
            value = value[1:] if value.startswith(" ") else value
            if name == "event":
                event = value
            elif name == "data":
                data.append(value)
        if data or event:
            out.append(SSEEvent(event, "\n".join(data)))
    return out
