"""uvicorn's httptools protocol with the two limits it lacks (header size and header time),
and its protocol-level 400 in the OpenAI error shape.

httptools buffers a request's header block without bound (13 MB of one header was
accepted here before the app saw the request), and uvicorn has no deadline for the
header block, so a slow client could hold memory indefinitely. This subclass counts the
bytes received while the header block is incomplete and answers 431 past the limit, and
closes a connection whose header block is not complete within ``header_timeout_s``.
(h11 bounds the size, but measured slower on the hot path; neither bounds the time.)
A request that is not parseable HTTP gets OpenAI's error JSON, not uvicorn's plain text.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

_431 = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-type: application/json\r\n"
    b"connection: close\r\ncontent-length: %d\r\n\r\n%s"
)
_400_BODY = (
    b'{"error":{"message":"malformed HTTP request","type":"invalid_request_error","param":null,'
    b'"code":"malformed_request"}}'
)
_400 = (
    b"HTTP/1.1 400 Bad Request\r\ncontent-type: application/json\r\nconnection: close\r\n"
    b"content-length: %d\r\n\r\n%s" % (len(_400_BODY), _400_BODY)
)


def bounded_protocol(max_header_bytes: int, header_timeout_s: float = 30.0) -> type[HttpToolsProtocol]:
    body = (
        b'{"error":{"message":"request headers exceed %d bytes","type":"invalid_request_error",'
        b'"param":null,"code":"headers_too_large"}}' % max_header_bytes
    )
    response = _431 % (len(body), body)

    class BoundedHttpToolsProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._in_headers = True
            self._header_bytes = 0
            self._header_timer: asyncio.TimerHandle | None = None

        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._arm_timer()

        def _arm_timer(self) -> None:
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
            self._arm_timer()

        def on_headers_complete(self) -> None:
            self._in_headers = False
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().on_headers_complete()

        def data_received(self, data: bytes) -> None:
            began_in_headers = self._in_headers
            super().data_received(data)
            # Count only chunks that begin and end inside a header block: a chunk that also
            # carries a body (or a whole request) is never refused here.
            if began_in_headers and self._in_headers and not self.transport.is_closing():
                self._header_bytes += len(data)
                if self._header_bytes > max_header_bytes:
                    self.transport.write(response)
                    self.transport.close()

        def send_400_response(self, msg: str) -> None:
            self.transport.write(_400)
            self.transport.close()

        def connection_lost(self, exc: Exception | None) -> None:
            if self._header_timer is not None:
                self._header_timer.cancel()
                self._header_timer = None
            super().connection_lost(exc)

    return BoundedHttpToolsProtocol
