"""Server-Sent Events: an incremental decoder and a one-event encoder.

Written by hand because the SSE packages on PyPI are HTTP client wrappers (they own the
connection and iterate a response), while the gateway already holds the bytes and needs a
push-style decoder it can feed chunks of any size, split anywhere.

Decoding follows the WHATWG event-stream rules: lines end in ``\\r\\n``, ``\\n`` or ``\\r``;
``:`` starts a comment; ``data:`` lines of one event are joined with ``\\n``; one space after
the colon is dropped; a blank line dispatches the event; an event without data is dropped.
"""

from __future__ import annotations

import re
from typing import NamedTuple

import orjson

_EOL = re.compile(rb"\r\n|\r|\n")
_BOM = "\ufeff"


class SSEEvent(NamedTuple):
    event: str | None  # the `event:` field, None when the event had none
    data: str


class SSEDecoder:
    """Feed bytes as they arrive; get back each event as soon as its blank line is seen."""

    __slots__ = ("_buf", "_skip_lf", "_event", "_data", "_first_line")

    def __init__(self) -> None:
        self._buf = b""  # an incomplete line (no terminator yet)
        self._skip_lf = False  # the last chunk ended in "\r": a leading "\n" belongs to it
        self._event: str | None = None
        self._data: list[str] = []
        self._first_line = True

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        buf = self._buf + chunk if self._buf else chunk
        if not buf:
            return []
        pos = 0
        if self._skip_lf and buf[:1] == b"\n":
            pos = 1
        self._skip_lf = False
        out: list[SSEEvent] = []
        for match in _EOL.finditer(buf, pos):
            self._line(buf[pos : match.start()], out)
            pos = match.end()
        if pos == len(buf) and buf.endswith(b"\r"):
            self._skip_lf = True
        self._buf = buf[pos:]
        return out

    def flush(self) -> list[SSEEvent]:
        """The stream ended: dispatch a last event that lacked its closing blank line.

        The spec drops such an event; providers that omit the final blank line still mean
        it, so the gateway keeps it.
        """
        out: list[SSEEvent] = []
        if self._buf:
            self._line(self._buf, out)
            self._buf = b""
        self._line(b"", out)
        return out

    def _line(self, raw: bytes, out: list[SSEEvent]) -> None:
        # "\r" and "\n" never occur inside a multi-byte UTF-8 sequence, so lines decode alone.
        line = raw.decode("utf-8", "replace")
        if self._first_line:
            self._first_line = False
            line = line.removeprefix(_BOM)
        if not line:
            if self._data:
                out.append(SSEEvent(self._event, "\n".join(self._data)))
            self._event, self._data = None, []
            return
        if line[0] == ":":
            return
        name, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if name == "data":
            self._data.append(value)
        elif name == "event":
            self._event = value
        # `id` and `retry` matter only to reconnecting browsers; the gateway never reconnects.


def sse_event(data: bytes | str) -> bytes:
    """One ``data:`` event; a payload with newlines becomes several ``data:`` lines."""
    payload = data if isinstance(data, bytes) else data.encode()
    if b"\n" not in payload and b"\r" not in payload:
        return b"data: " + payload + b"\n\n"
    lines = _EOL.split(payload)
    return b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def sse_error_event(message: str, *, type: str | None = "api_error", code: str | None = "stream_interrupted",
                    provider: str | None = None) -> bytes:
    """The event that ends a stream which broke after its first byte (never a silent clean end)."""
    body: dict[str, object] = {"error": {"message": message, "type": type, "param": None, "code": code}}
    if provider is not None:
        body["provider"] = provider
    return sse_event(orjson.dumps(body))
