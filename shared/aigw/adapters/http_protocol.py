"""uvicorn's httptools protocol with the limits it lacks, and its protocol-level 400 in the
OpenAI error shape.

- Header size: httptools buffers a request's header block without bound (13 MB of one
  header was accepted here before the app saw the request). The bytes received while the
  header block is incomplete are counted and answered 431 past ``max_header_bytes``.
- Header time: a connection whose header block is not complete within ``header_timeout_s``
  is closed.
- Body time: a request body not complete within ``body_timeout_s`` of its headers is
  answered 408 (or, if the app already started its answer, the connection is just closed);
  the app's pending ``receive()`` gets ``http.disconnect`` so its work is cancelled. The
  deadline waits anew while the server itself stopped reading (the app has not consumed
  what was buffered, or the request is pipelined behind another).
- Write time: a client that stops reading makes the transport pause writing (uvicorn's
  flow control); paused for longer than ``write_timeout_s``, the connection is aborted,
  which drops the buffered answer, and the app is told (``http.disconnect``; a send waiting
  for drain returns). Without this a client that never reads pins its answer for ever.

Hot path: a request whose body arrives with its headers arms no body timer; a client that
keeps up arms no write timer (one is armed on the first pause only and re-armed lazily).
(h11 bounds the header size, but measured slower on the hot path; neither bounds the time.)
A request that is not parseable HTTP gets OpenAI's error JSON, not uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from aigw.errors import GatewayError, HeadersTooLarge, InvalidRequest, RequestBodyTimeout, render_error

_ERROR = (
    b"HTTP/1.1 %s\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: %d\r\n\r\n%s"
)


def _error(status_line: bytes, exc: GatewayError) -> bytes:
    """A whole HTTP answer with ``exc`` in the OpenAI error shape, written before any app runs."""
    body = render_error(exc)
    return _ERROR % (status_line, len(body), body)


_400 = _error(b"400 Bad Request", InvalidRequest("malformed HTTP request", code="malformed_request"))


def bounded_protocol(
    max_header_bytes: int,
    header_timeout_s: float = 30.0,
    body_timeout_s: float = 30.0,
    write_timeout_s: float = 30.0,
) -> type[HttpToolsProtocol]:
    """uvicorn's ``http=`` protocol class with these bounds (see the module docstring)."""
    response_431 = _error(b"431 Request Header Fields Too Large",
                          HeadersTooLarge(f"request headers exceed {max_header_bytes} bytes"))
    response_408 = _error(b"408 Request Timeout",
                          RequestBodyTimeout(f"request body not received within {body_timeout_s:g} s"))

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_headers = True
            self._header_bytes = 0
            self._header_timer: asyncio.TimerHandle | None = None
            self._body_pending = False  # headers complete, body not yet
            self._body_due: float | None = None  # loop time by which the pending body must be complete
            self._body_timer: asyncio.TimerHandle | None = None
            self._write_paused_at: float | None = None
            self._write_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_header_timer()

        # -- header size and time ------------------------------------------------------

        def _arm_header_timer(self) -> None:
            if self._header_timer is None:
                self._header_timer = self.loop.call_later(header_timeout_s, self._header_deadline)

        def _header_deadline(self) -> None:
            self._header_timer = None
            if self._in_headers and not self.transport.is_closing():
                self.transport.close()

        def on_message_begin(self) -> None:
            super().on_message_begin()
            self._in_headers = True
            self._header_bytes = 0
            self._arm_header_timer()

        def on_headers_complete(self) -> None:
            self._in_headers = False
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            before = self.cycle
            super().on_headers_complete()
            # A new cycle means an HTTP request whose body is now awaited (a websocket
            # upgrade creates none and leaves the transport to another protocol).
            self._body_pending = self.cycle is not before

        def on_message_complete(self) -> None:
            self._body_pending = False
            self._body_due = None  # a running timer finds nothing due and ends
            super().on_message_complete()

        def data_received(self, data: bytes) -> None:
            began_in_headers = self._in_headers
            super().data_received(data)
            if self._in_headers:
                # Count only chunks that begin and end inside a header block: a chunk that
                # also carries a body (or a whole request) is never refused here.
                if began_in_headers and not self.transport.is_closing():
                    self._header_bytes += len(data)
                    if self._header_bytes > max_header_bytes:
                        self.transport.write(response_431)
                        self.transport.close()
            elif self._body_pending and self._body_due is None and not self.transport.is_closing():
                # Only when a chunk ends with the body incomplete: a request that arrives
                # whole never pays for this. One timer per connection at most, left running
                # when the body completes (cancelling and re-arming per request measured
                # ~2 us under uvloop; a stale timer just re-arms for what is due, if anything).
                self._body_due = self.loop.time() + body_timeout_s
                if self._body_timer is None:
                    self._body_timer = self.loop.call_later(body_timeout_s, self._body_deadline)

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_400)
            self.transport.close()

        # -- body time -----------------------------------------------------------------

        def _body_deadline(self) -> None:
            self._body_timer = None
            due = self._body_due
            if due is None or self.transport.is_closing():
                return
            now = self.loop.time()
            if due <= now and (self.flow.read_paused or self.pipeline):
                # The server stopped reading (the app has not taken what is buffered, or
                # this request waits behind a pipelined one): not the client's delay.
                due = self._body_due = now + body_timeout_s
            if due > now:
                self._body_timer = self.loop.call_later(due - now, self._body_deadline)
                return
            cycle = self.cycle
            if not cycle.response_started:
                self.transport.write(response_408)
            self._tell_app_gone()
            self.transport.close()

        # -- write time ----------------------------------------------------------------

        def pause_writing(self) -> None:
            super().pause_writing()
            self._write_paused_at = self.loop.time()
            if self._write_timer is None:
                self._write_timer = self.loop.call_later(write_timeout_s, self._write_deadline)

        def resume_writing(self) -> None:
            # The timer is left running; when it fires it finds the transport writable
            # (or paused more recently) and re-arms for what is left, if anything.
            self._write_paused_at = None
            super().resume_writing()

        def _write_deadline(self) -> None:
            self._write_timer = None
            paused_at = self._write_paused_at
            if paused_at is None:
                return
            left = paused_at + write_timeout_s - self.loop.time()
            if left > 0:
                self._write_timer = self.loop.call_later(left, self._write_deadline)
                return
            self._tell_app_gone()
            self.transport.abort()  # drops the buffered answer; close() would wait to flush it

        # -- both ----------------------------------------------------------------------

        def _tell_app_gone(self) -> None:
            """What uvicorn's connection_lost tells the app, at once: a pending receive()
            gets http.disconnect, a send waiting for drain returns, later sends are dropped."""
            cycle = self.cycle
            if cycle is not None:
                if not cycle.response_complete:
                    cycle.disconnected = True
                cycle.message_event.set()
            self.flow.resume_writing()

        def connection_lost(self, exc: Exception | None) -> None:
            for timer in (self._header_timer, self._body_timer, self._write_timer):
                if timer is not None:
                    timer.cancel()
            self._header_timer = self._body_timer = self._write_timer = None
            super().connection_lost(exc)

    return BoundedHttpToolsProtocol
