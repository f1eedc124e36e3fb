"""Loopback servers for the egress tests: a forward/CONNECT proxy and an origin that records
every connection and the Host it was asked for. Threads and raw sockets, nothing else."""

from __future__ import annotations

import socket
import ssl
import threading
from urllib.parse import urlsplit

OK = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}"


def read_head(conn: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes]:
    """(head without its blank line, bytes read past it), starting from ``buf`` already read;
    (b"", b"") at end of stream."""
    while b"\r\n\r\n" not in buf:
        data = conn.recv(65536)
        if not data:
            return b"", b""
        buf += data
    head, rest = buf.split(b"\r\n\r\n", 1)
    return head, rest


def header(head: bytes, name: bytes) -> str:
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode()
    return ""


def _pipe(src: socket.socket, dst: socket.socket) -> None:
    try:
        while data := src.recv(65536):
            dst.sendall(data)
    except OSError:
        pass
    finally:
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


class ThreadedServer:
    """A loopback TCP server handling each connection in a thread of its own (``handle``)."""

    def __init__(self, host: str) -> None:
        self.sock = socket.create_server((host, 0))
        self.port = self.sock.getsockname()[1]
        self.lock = threading.Lock()
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._guarded_handle, args=(conn,), daemon=True).start()

    def _guarded_handle(self, conn: socket.socket) -> None:
        try:
            self.handle(conn)
        except OSError:
            pass
        finally:
            conn.close()

    def handle(self, conn: socket.socket) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self.sock.close()


class Origin(ThreadedServer):
    """Answers every request 200 ``{}``; records each connection and each request's Host."""

    def __init__(self, host: str, context: ssl.SSLContext | None = None) -> None:
        self.connections = 0
        self.hosts: list[str] = []
        self.context = context
        super().__init__(host)

    def reset(self) -> None:
        with self.lock:
            self.connections, self.hosts = 0, []

    def handle(self, conn: socket.socket) -> None:
        with self.lock:
            self.connections += 1
        if self.context is not None:
            conn = self.context.wrap_socket(conn, server_side=True)
        while True:
            head, _ = read_head(conn)
            if not head:
                return
            with self.lock:
                self.hosts.append(header(head, b"host"))
            conn.sendall(OK)


class ForwardProxy(ThreadedServer):
    """An egress proxy: CONNECT tunnels and absolute-form forwarding to whatever it is asked
    for (resolving names itself). Records "request line | Host" of each request to it."""

    def __init__(self, host: str = "127.0.0.1") -> None:
        self.requests: list[str] = []
        super().__init__(host)

    def reset(self) -> None:
        with self.lock:
            self.requests = []

    def handle(self, conn: socket.socket) -> None:
        head, rest = read_head(conn)
        if not head:
            return
        line = head.split(b"\r\n", 1)[0].decode()
        with self.lock:
            self.requests.append(f"{line} | Host: {header(head, b'host')}")
        method, target, _ = line.split(" ", 2)
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            upstream = socket.create_connection((host.strip("[]"), int(port)), timeout=5)
            conn.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        else:
            url = urlsplit(target)
            upstream = socket.create_connection((url.hostname, url.port or 80), timeout=5)
            path = (url.path or "/") + (f"?{url.query}" if url.query else "")
            upstream.sendall(head.replace(target.encode(), path.encode(), 1) + b"\r\n\r\n")
        upstream.settimeout(None)
        if rest:
            upstream.sendall(rest)
        back = threading.Thread(target=_pipe, args=(upstream, conn), daemon=True)
        back.start()
        _pipe(conn, upstream)
        back.join(5)
        upstream.close()
