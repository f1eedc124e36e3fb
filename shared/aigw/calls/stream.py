"""A provider stream after routing committed to it: OpenAI SSE events, bounded in time.

The first chunk was read before routing committed (a provider that fails before sending a
byte can still be retried or fallen back from). From then on the stream belongs to the
client: each later chunk must come within the idle timeout (the target's ``request_timeout``
if shorter, and never past the request's deadline), and a stream that breaks or stalls ends
with an error event, never silently and never retried. A provider that streams OpenAI's
format is passed through line by line (``sse_passthrough``); others are transformed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Protocol

import orjson

from aigw.aclose import aclose
from aigw.calls.watch import Watch
from aigw.errors import ErrorFormat, GatewayError, StreamInterrupted, StreamStalled, render_stream_error
from aigw.providers.base import StreamTransformer
from aigw.upstream.sse_passthrough import passthrough_sse
from aigw.upstream.transport import TransportError, UpstreamResponse

# The sniffed start of an SSE stream: anything else (a JSON error with status 200) is no stream.
_SSE_STARTS = (b"data:", b"event:", b"id:", b"retry:", b":")


def is_sse_start(chunk: bytes) -> bool:
    return chunk.lstrip(b"\xef\xbb\xbf\r\n \t").startswith(_SSE_STARTS)


def first_event_error(chunk: bytes) -> str | None:
    """What a stream's first event says when it is an error (``event: error`` or a JSON ``error``
    object): a provider that fails before its first token, with status 200. Such a stream is a
    failed attempt, so retries and fallbacks move on. None for anything else."""
    head, sep, _ = chunk.partition(b"\n\n")
    if not sep:
        head = chunk
    lines = head.splitlines()
    named_error = any(line.strip() == b"event: error" or line.strip() == b"event:error" for line in lines)
    for line in lines:
        if line.startswith(b"data:"):
            try:
                data = orjson.loads(line[5:])
            except orjson.JSONDecodeError:
                return "an unreadable error event" if named_error else None
            if isinstance(data, dict) and (named_error or "error" in data):
                error = data.get("error")
                message = error.get("message") if isinstance(error, dict) else error
                return str(message)[:200] if message else "an error event"
            return None
    return None


def _is_sse_start(chunk: bytes) -> bool:
    return chunk.lstrip(b"\xef\xbb\xbf\r\n \t").startswith(_SSE_STARTS)


class EventStream(Protocol):
    """What an attempt streams: a provider's live stream, or an answer replayed from the cache."""

    def events(self, on_error: Callable[[GatewayError], None] | None = None) -> AsyncGenerator[bytes, None]: ...

    def close(self) -> None: ...


class ProviderStream:
    def __init__(self, response: UpstreamResponse, first_chunk: bytes, provider: str,
                 transformer: StreamTransformer | None, idle_timeout_s: float, deadline: float | None) -> None:
        self._response: UpstreamResponse | None = response
        self._first = first_chunk
        self._provider = provider
        self._transformer = transformer
        self._idle_s = idle_timeout_s
        self._deadline = deadline

    def close(self) -> None:
        if self._response is not None:
            self._response.close()
            self._response = None

    async def _raw(self) -> AsyncIterator[bytes]:
        response = self._response
        assert response is not None
        loop_deadline = None
        if self._deadline is not None:  # monotonic seconds -> the loop's clock
            loop_deadline = asyncio.get_running_loop().time() + (self._deadline - time.monotonic())
        watch = Watch(loop_deadline, self._idle_s)
        try:
            chunk = self._first
            while chunk:
                yield chunk
                with watch:  # not watch.wait(): a coroutine per chunk costs on the hot path
                    chunk = await response.next_chunk()
        finally:
            watch.close()

    async def _transformed(self, transformer: StreamTransformer) -> AsyncIterator[bytes]:
        async for chunk in self._raw():
            for event in transformer.feed(chunk):
                yield event
        for event in transformer.close():
            yield event

    async def events(self, on_error: Callable[[GatewayError], None] | None = None) -> AsyncGenerator[bytes, None]:
        """The stream as OpenAI SSE events (the gateway's own stream format; an ingress format of
        another shape converts from it). ``on_error`` learns of an error that ended it."""
        source = passthrough_sse(self._raw()) if self._transformer is None else self._transformed(self._transformer)
        tail = b"\n\n"
        try:
            async for event in source:
                if event:
                    tail = (tail + event)[-2:]
                    yield event
        except (TimeoutError, TransportError) as exc:
            error: GatewayError
            if isinstance(exc, TimeoutError):
                error = StreamStalled(f"{self._provider} sent nothing for {round(self._idle_s * 1000)} ms "
                                      f"or the request's time ran out", provider=self._provider)
            else:
                error = StreamInterrupted(f"{self._provider} stream interrupted: {exc}", provider=self._provider)
            if on_error is not None:
                on_error(error)
            yield self._ending(tail, error)
        finally:
            await aclose(source)
            self.close()

    @staticmethod
    def _ending(tail: bytes, error: GatewayError) -> bytes:
        # A break may fall between an event's lines: a blank line first ends that event, so the
        # error event is never glued onto a half-sent one.
        prefix = b"" if tail == b"\n\n" else b"\n"
        return prefix + render_stream_error(error, ErrorFormat.OPENAI)
