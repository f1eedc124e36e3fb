"""A raw HTTP/1.1 server on loopback, in threads, that counts connections and requests and can
misbehave on purpose (never answer, close idle keep-alives, drop a request after reading it)."""

from __future__ import annotations

import socket
import threading
import time

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"
# Announces more body than it sends: the reader is left waiting mid-body.
PARTIAL = b"HTTP/1.1 200 OK\r\ncontent-length: 1000000\r\n\r\n" + b"x" * 100


class RawServer:
    """Answers each request with OK. ``close_after``: closes a connection after that many answers
    without saying so (a stale keep-alive). ``hang``: never answers. ``partial``: answers part of
    a body, then nothing. ``drop_at``: the drop_at-th request (counted from 1) is read in full,
    then its connection is closed without an answer (it reached the provider, no reply came)."""

    def __init__(self, close_after: int | None = None, hang: bool = False, delay_s: float = 0.0,
                 drop_at: int | None = None, partial: bool = False, host: str = "127.0.0.1") -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self.requests: list[tuple[bytes, bytes]] = []  # (head, body)
        self.close_after, self.hang, self.delay_s = close_after, hang, delay_s
        self.drop_at, self.partial = drop_at, partial
        self._lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    @property
    def methods(self) -> list[str]:
        return [head.split(b" ", 1)[0].decode() for head, _ in self.requests]

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        answered = 0
        with conn:
            buf = b""
            while True:
                while b"\r\n\r\n" not in buf:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                head, buf = buf.split(b"\r\n\r\n", 1)
                length = _content_length(head)
                while len(buf) < length:
                    try:
                        data = conn.recv(65536)
                    except OSError:
                        return
                    if not data:
                        return
                    buf += data
                body, buf = buf[:length], buf[length:]
                with self._lock:
                    self.requests.append((head, body))
                    number = len(self.requests)
                if self.drop_at == number:
                    return
                if self.hang:
                    continue
                time.sleep(self.delay_s)
                try:
                    conn.sendall(PARTIAL if self.partial else OK)
                except OSError:
                    return
                answered += 1
                if self.close_after and answered >= self.close_after:
                    return

    def close(self) -> None:
        self.sock.close()


def _content_length(head: bytes) -> int:
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            return int(value)
    return 0
