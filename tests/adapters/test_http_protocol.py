"""The bounded uvicorn protocol against real sockets: body and write deadlines.

A trivial ASGI app (not the gateway) served by uvicorn through ``bounded_protocol`` on a
free loopback port in a thread, with short deadlines. No test asserts a timing beyond
"closed within a generous bound".
"""

from __future__ import annotations

import asyncio
import json
import select
import socket
import threading
import time

import pytest
import uvicorn

from aigw.adapters.http_protocol import bounded_protocol

BODY_TIMEOUT_S = 0.5
WRITE_TIMEOUT_S = 1.0
BOUND_S = 15.0  # "within a generous bound"
CHUNK = 64 * 1024


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class App:
    """Records what each request (``?<id>``) saw, for the test thread to wait on."""

    def __init__(self) -> None:
        self.events: dict[str, list[str]] = {}
        self.cond = threading.Condition()

    def record(self, rid: str, what: str) -> None:
        with self.cond:
            self.events.setdefault(rid, []).append(what)
            self.cond.notify_all()

    def wait_for(self, rid: str, what: str, timeout: float = BOUND_S) -> bool:
        with self.cond:
            return self.cond.wait_for(lambda: what in self.events.get(rid, []), timeout)

    @staticmethod
    async def wait_gone(receive) -> None:
        while (await receive())["type"] != "http.disconnect":
            pass

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return
        rid = scope["query_string"].decode()
        path = scope["path"]
        if path == "/echo":  # reads the whole body (after an optional delay), answers its length
            if rid.startswith("late"):
                await asyncio.sleep(3 * BODY_TIMEOUT_S)
            size = 0
            while True:
                message = await receive()
                if message["type"] == "http.disconnect":
                    self.record(rid, "disconnect")
                    return
                size += len(message["body"])
                if not message["more_body"]:
                    break
            answer = str(size).encode()
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % len(answer))]})
            await send({"type": "http.response.body", "body": answer})
            self.record(rid, "answered")
        elif path == "/early":  # starts its answer before reading the body
            await send({"type": "http.response.start", "status": 200, "headers": []})
            await send({"type": "http.response.body", "body": b"partial", "more_body": True})
            await self.wait_gone(receive)
            self.record(rid, "disconnect")
        elif path == "/big":  # one large body in one send
            size = int(rid.split("-")[1])
            await send({"type": "http.response.start", "status": 200, "headers": [(b"content-length", b"%d" % size)]})
            await send({"type": "http.response.body", "body": b"x" * size})
            self.record(rid, "sent")
        elif path == "/stream":  # a streamed answer, watching for the client leaving as the gateway does
            size = int(rid.split("-")[1])
            gone = asyncio.ensure_future(self.wait_gone(receive))
            await send({"type": "http.response.start", "status": 200, "headers": []})
            sent = 0
            while sent < size:
                await send({"type": "http.response.body", "body": b"y" * CHUNK, "more_body": True})
                sent += CHUNK
                if gone.done():
                    self.record(rid, "disconnect")
                    return
            await send({"type": "http.response.body", "body": b""})
            gone.cancel()
            self.record(rid, "sent")


class Server:
    def __init__(self) -> None:
        self.app = App()
        self.pauses: dict[int, int] = {}  # client port -> pause_writing calls
        self.lost: set[int] = set()  # client ports whose connection ended
        pauses, lost = self.pauses, self.lost

        class Observed(bounded_protocol(16 * 1024, header_timeout_s=2.0, body_timeout_s=BODY_TIMEOUT_S,
                                        write_timeout_s=WRITE_TIMEOUT_S)):
            def connection_made(self, transport):
                # A small kernel send buffer, so that flow control engages after little data.
                transport.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 16 * 1024)
                super().connection_made(transport)

            def pause_writing(self):
                pauses[self.client[1]] = pauses.get(self.client[1], 0) + 1
                super().pause_writing()

            def connection_lost(self, exc):
                lost.add(self.client[1])
                super().connection_lost(exc)

        self.port = free_port()
        config = uvicorn.Config(self.app, host="127.0.0.1", port=self.port, loop="uvloop", http=Observed,
                                log_level="warning", access_log=False, lifespan="off", ws="none")
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def connect(self, rcvbuf: int | None = None) -> socket.socket:
        s = socket.socket()
        if rcvbuf is not None:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        s.connect(("127.0.0.1", self.port))
        return s

    def wait_lost(self, s: socket.socket) -> bool:
        port = s.getsockname()[1]
        deadline = time.monotonic() + BOUND_S
        while port not in self.lost and time.monotonic() < deadline:
            time.sleep(0.02)
        return port in self.lost


@pytest.fixture(scope="module")
def server():
    srv = Server()
    srv.thread.start()
    deadline = time.monotonic() + 10
    while not srv.server.started:
        assert time.monotonic() < deadline and srv.thread.is_alive(), "server did not start"
        time.sleep(0.01)
    yield srv
    srv.server.should_exit = True
    srv.thread.join(timeout=10)


def read_to_end(s: socket.socket, timeout: float = BOUND_S) -> bytes:
    """Everything until the server closes (EOF or reset); fails if it does not within ``timeout``."""
    s.settimeout(timeout)
    data = b""
    try:
        while chunk := s.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    except TimeoutError:
        pytest.fail("the server did not close the connection")
    return data


def read_response(s: socket.socket) -> tuple[bytes, bytes]:
    """One content-length response from a keep-alive connection."""
    s.settimeout(BOUND_S)
    data = b""
    while b"\r\n\r\n" not in data:
        data += s.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(next(line for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")).split(b":")[1])
    while len(body) < length:
        body += s.recv(65536)
    return head, body


def post_head(path: str, length: int) -> bytes:
    return b"POST %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n" % (path.encode(), length)


def trickle_until_answered(s: socket.socket, gap_s: float = 0.1) -> None:
    """Send one body byte every ``gap_s`` until the server answers or closes."""
    for _ in range(int(BOUND_S / gap_s)):
        try:
            s.sendall(b"x")
        except OSError:
            return
        if select.select([s], [], [], gap_s)[0]:
            return
    pytest.fail("the server never answered the slow body")


def test_a_slow_body_gets_a_408_and_the_app_sees_a_disconnect(server):
    # GIVEN a client that sends its headers, then its body one byte every 0.1 s
    s = server.connect()
    s.sendall(post_head("/echo?slow", 1000) + b"x")
    trickle_until_answered(s)
    # THEN it gets a 408 in the OpenAI error shape, and the connection is closed
    head, _, body = read_to_end(s).partition(b"\r\n\r\n")
    s.close()
    assert head.startswith(b"HTTP/1.1 408 ")
    assert b"connection: close" in head.lower() and b"content-type: application/json" in head.lower()
    assert json.loads(body) == {"error": {
        "message": f"request body not received within {BODY_TIMEOUT_S:g} s", "type": "invalid_request_error",
        "param": None, "code": "request_body_timeout"}}
    # AND the app's pending receive() got http.disconnect, and it never answered
    assert server.app.wait_for("slow", "disconnect")
    assert "answered" not in server.app.events["slow"]


def test_a_body_that_completes_in_time_is_served_and_the_deadline_ends_with_it(server):
    # GIVEN a body sent in three pieces, well within the deadline
    s = server.connect()
    s.sendall(post_head("/echo?intime", 30) + b"a" * 10)
    for _ in range(2):
        time.sleep(BODY_TIMEOUT_S / 5)
        s.sendall(b"b" * 10)
    # THEN it is served
    head, body = read_response(s)
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"30"
    # AND the connection, idle past the body deadline, still serves the next request
    time.sleep(2 * BODY_TIMEOUT_S)
    s.sendall(post_head("/echo?next", 3) + b"abc")
    head, body = read_response(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"3"


def test_a_body_the_app_has_not_read_yet_is_not_timed_out(server):
    # GIVEN a large body sent at once to an app that reads it only after three body deadlines
    # (the server stops reading once it buffered 64 KiB: the delay is not the client's)
    s = server.connect()
    s.sendall(post_head("/echo?late", 1_000_000) + b"z" * 1_000_000)
    # THEN it is served
    head, body = read_response(s)
    s.close()
    assert head.startswith(b"HTTP/1.1 200 ") and body == b"1000000"


def test_a_slow_body_after_the_answer_started_just_closes(server):
    # GIVEN an app that starts its answer before reading the body, and a client that stalls
    s = server.connect()
    s.sendall(post_head("/early?early", 1000) + b"x")
    # THEN the connection is closed without a 408 (the answer had started)
    data = read_to_end(s)
    s.close()
    assert data.startswith(b"HTTP/1.1 200 ") and b"partial" in data and b" 408 " not in data
    # AND the app was told
    assert server.app.wait_for("early", "disconnect")


def test_a_client_that_never_reads_a_stream_is_cut_off_and_the_apps_send_returns(server):
    # GIVEN a client that asks for a 64 MiB streamed answer and never reads
    s = server.connect(rcvbuf=4096)
    port = s.getsockname()[1]
    s.sendall(b"GET /stream?never-%d HTTP/1.1\r\nHost: x\r\n\r\n" % (64 << 20))
    # THEN the app's send (waiting for drain) returns and the app sees the disconnect
    assert server.app.wait_for(f"never-{64 << 20}", "disconnect")
    # AND the connection is closed
    assert server.wait_lost(s)
    assert server.pauses.get(port, 0) >= 1
    assert len(read_to_end(s)) < (64 << 20)
    s.close()


@pytest.mark.parametrize("connection", [b"", b"Connection: close\r\n"], ids=["keep-alive", "close"])
def test_a_client_that_never_reads_one_large_body_is_cut_off(server, connection):
    # GIVEN a client that asks for a 16 MiB answer sent in one piece, and never reads (with
    # "Connection: close" uvicorn closes the transport after the answer, which would wait
    # for ever to flush it)
    s = server.connect(rcvbuf=4096)
    port = s.getsockname()[1]
    rid = f"once{port}-{16 << 20}"
    s.sendall(b"GET /big?%s HTTP/1.1\r\nHost: x\r\n%s\r\n" % (rid.encode(), connection))
    assert server.app.wait_for(rid, "sent")
    # THEN the server paused writing, and closed the connection (dropping the buffered answer)
    assert server.wait_lost(s)
    assert server.pauses.get(port, 0) >= 1
    assert len(read_to_end(s)) < (16 << 20)
    s.close()


def test_a_slow_but_reading_client_is_not_cut_off(server):
    # GIVEN a client that reads a 3 MiB stream at about 2 MB/s: longer in total than the
    # write timeout, while each pause of the server's writing is much shorter
    size = 3 << 20
    s = server.connect(rcvbuf=4096)
    port = s.getsockname()[1]
    s.sendall(b"GET /stream?slow-%d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % size)
    s.settimeout(BOUND_S)
    data = b""
    while chunk := s.recv(65536):
        data += chunk
        time.sleep(len(chunk) / 2e6)
    s.close()
    # THEN it gets the whole answer, although the server paused writing many times
    assert data.endswith(b"0\r\n\r\n") and data.count(b"y") == size
    assert server.app.wait_for(f"slow-{size}", "sent")
    assert server.pauses.get(port, 0) >= 2
