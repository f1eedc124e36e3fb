"""A raw HTTP/1.1 server on loopback, in threads, that counts connections and requests and can
misbehave on purpose (never answer, close idle keep-alives, drop a request after reading it)."""

from __future__ import annotations

import socket
import time

from tests.support.egress_servers import OK, ThreadedServer, header, read_head

# Announces more body than it sends: the reader is left waiting mid-body.
PARTIAL = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n" + b"x" * 100


class RawServer(ThreadedServer):
    """Answers each request with OK. ``close_after``: closes a connection after that many answers
    without saying so (a stale keep-alive). ``hang``: never answers. ``partial``: answers part of
    a body, then nothing. ``drop_at``: the drop_at-th request (counted from 1) is read in full,
    then its connection is closed without an answer (it reached the provider, no reply came)."""

    def __init__(self, close_after: int | None = None, hang: bool = False, delay_s: float = 0.0,
                 drop_at: int | None = None, partial: bool = False, host: str = "127.0.0.1") -> None:
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.close_after, self.hang, self.delay_s = close_after, hang, delay_s
        self.drop_at, self.partial = drop_at, partial
        super().__init__(host)

    @property
    def methods(self) -> list[str]:
        return [head.split(b" ", 1)[0].decode() for head, _ in self.requests]

    def handle(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        answered = 0
        buf = b""
        while True:
            head, buf = read_head(conn, buf)
            if not head:
                return
            length = int(header(head, b"content-length") or 0)
            while len(buf) < length:
                data = conn.recv(65536)
                if not data:
                    return
                buf += data
            body, buf = buf[:length], buf[length:]
            with self.lock:
                self.requests.append((head, body))
                number = len(self.requests)
            if self.drop_at == number:
                return
            if self.hang:
                continue
            time.sleep(self.delay_s)
            conn.sendall(PARTIAL if self.partial else OK)
            answered += 1
            if self.close_after and answered >= self.close_after:
                return
