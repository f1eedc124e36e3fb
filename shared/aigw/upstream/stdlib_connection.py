"""One ``http.client`` connection to a provider, opened in a worker thread: resolved and
SSRF-checked, directly or through an egress proxy.

Through a proxy, the target's name is resolved and its addresses checked here, before the
proxy is even contacted, and the proxy is asked for the checked address (``CONNECT ip:port``,
or for plain http an absolute-form URL naming the IP): a proxy left to resolve the name
itself would follow its DNS to 10.x or to the metadata address. TLS still verifies the
certificate against the name, and ``Host`` still names it. Without a guard
(``trusted=None``: the gateway's own infrastructure) the proxy is asked for the name, as usual.
"""

from __future__ import annotations

import http.client
import socket
import ssl
from typing import Any

from aigw.custom_host import allowed_addresses
from aigw.upstream.proxy_env import Proxy

# getaddrinfo's entries; the address tuple's shape depends on the family.
AddrInfo = tuple[socket.AddressFamily, socket.SocketKind, int, str, Any]
_MAX_LINE, _MAX_HEADERS = 8192, 100
_DONTWAIT: int = getattr(socket, "MSG_DONTWAIT", 0)  # Linux and macOS; elsewhere non-blocking mode instead


def authority(host: str, port: int) -> str:
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def connect_request(host: str, port: int, authorization: str | None) -> bytes:
    """The request asking a proxy for a tunnel to ``host:port``."""
    target = authority(host, port)
    auth = f"Proxy-Authorization: {authorization}\r\n" if authorization else ""
    return f"CONNECT {target} HTTP/1.1\r\nHost: {target}\r\n{auth}\r\n".encode("ascii")


def open_tunnel(sock: socket.socket, host: str, port: int, authorization: str | None) -> None:
    """CONNECT through the proxy on ``sock``; OSError unless it answers 2xx."""
    sock.sendall(connect_request(host, port, authorization))
    # Unbuffered: a buffered reader could swallow the first bytes of what follows the answer.
    reply = sock.makefile("rb", buffering=0)
    try:
        status = reply.readline(_MAX_LINE + 1)
        parts = status.split(None, 2)
        if len(parts) < 2 or not parts[0].startswith(b"HTTP/"):
            raise OSError("the egress proxy's answer to CONNECT is not HTTP")
        for _ in range(_MAX_HEADERS):
            line = reply.readline(_MAX_LINE + 1)
            if line in (b"\r\n", b"\n"):
                break
            if not line:
                raise OSError("the egress proxy closed the connection during CONNECT")
        else:
            raise OSError("the egress proxy's answer to CONNECT has too many header lines")
    finally:
        reply.close()
    if not parts[1].startswith(b"2"):
        raise OSError(f"the egress proxy refused the tunnel ({parts[1].decode('ascii', 'replace')})")


def resolve(host: str, port: int, trusted: frozenset[str] | None) -> list[AddrInfo]:
    """The addresses of ``host`` the SSRF guard allows (all of them when unguarded); OSError if none."""
    infos: list[AddrInfo] = list(socket.getaddrinfo(host, port, type=socket.SOCK_STREAM))
    if trusted is None:
        return infos
    allowed = set(allowed_addresses(host, [str(info[4][0]) for info in infos], trusted))
    return [info for info in infos if info[4][0] in allowed]


def dial(infos: list[AddrInfo], timeout: float | None) -> socket.socket:
    """Connect to the first address that answers; ``timeout`` bounds each connect."""
    last: OSError | None = None
    for family, kind, proto, _, address in infos:
        sock = socket.socket(family, kind, proto)
        sock.settimeout(timeout)
        try:
            sock.connect(address)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            return sock
        except OSError as exc:
            sock.close()
            last = exc
    raise last or OSError("no address to connect to")


class UpstreamConnection(http.client.HTTPConnection):
    # Set by the transport when the caller gave up: a thread still connecting must not send.
    abandoned = False

    def __init__(self, scheme: str, host: str, port: int, *, timeout: float, trusted: frozenset[str] | None,
                 proxy: Proxy | None, context: ssl.SSLContext | None) -> None:
        super().__init__(host, port, timeout=timeout)
        # The automatic Host header is then "host" or "host:port" as in the URL, through a proxy too.
        self.default_port = 443 if scheme == "https" else 80
        self._context = context if scheme == "https" else None
        self._trusted, self._proxy = trusted, proxy
        self._absolute = ""  # "http://ip:port" when plain http goes through a proxy (absolute form)
        self._proxy_headers: dict[str, str] = {}

    def connect(self) -> None:
        proxy = self._proxy
        if proxy is None:
            sock = dial(resolve(self.host, self.port, self._trusted), self.timeout)
        else:
            # Checked before the proxy is contacted (the proxy, configured egress, is never checked).
            # A tunnel goes to one address: the first allowed one.
            target = self.host if self._trusted is None else resolve(self.host, self.port, self._trusted)[0][4][0]
            sock = dial(list(socket.getaddrinfo(proxy.host, proxy.port, type=socket.SOCK_STREAM)), self.timeout)
            if self._context is not None:
                try:
                    open_tunnel(sock, target, self.port, proxy.authorization)
                except BaseException:
                    sock.close()
                    raise
            else:
                self._absolute = "http://" + authority(target, self.port)
                # http.client would take Host from the absolute URL, i.e. the IP: it names the target.
                name = f"[{self.host}]" if ":" in self.host else self.host
                self._proxy_headers = {"Host": name if self.port == 80 else f"{name}:{self.port}"}
                if proxy.authorization:
                    self._proxy_headers["Proxy-Authorization"] = proxy.authorization
        if self._context is not None:
            try:
                sock = self._context.wrap_socket(sock, server_hostname=self.host.rstrip("."))
            except BaseException:
                sock.close()
                raise
        sock.settimeout(None)  # the connect timeout must not stay on as a read timeout: models think for minutes
        self.sock = sock
        if self.abandoned:
            self.close()
            raise ConnectionAbortedError("request abandoned by the gateway")

    def send_request(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> None:
        if self.abandoned:  # the caller gave up before this thread got to run
            raise ConnectionAbortedError("request abandoned by the gateway")
        if self.sock is None:
            self.connect()
        if self._absolute:
            path = self._absolute + path
            extra = self._proxy_headers
            if any(name.lower() == "host" for name in headers):  # the caller's Host wins, never two
                extra = {name: value for name, value in extra.items() if name != "Host"}
            headers = {**extra, **headers}
        self.request(method, path, body=body, headers=headers)


def idle_alive(conn: UpstreamConnection) -> bool:
    """Is an idle keep-alive connection still usable? A non-blocking peek, cheap enough for the
    loop thread. Nothing to read: alive. End of stream (the server closed it, e.g. while the
    function was frozen), bytes nobody asked for (a 408, a TLS alert) or an error: not reusable,
    and nothing was sent on it, so a new connection is safe for any method."""
    sock = conn.sock
    if sock is None:
        return False
    if isinstance(sock, ssl.SSLSocket) and sock.pending():
        return False
    if not _DONTWAIT:
        sock.setblocking(False)
    try:
        socket.socket.recv(sock, 1, socket.MSG_PEEK | _DONTWAIT)  # the raw socket's: TLS refuses flags
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        if not _DONTWAIT:
            sock.settimeout(None)
    return False


def abort(conn: UpstreamConnection) -> None:
    """Close a connection another thread may be blocked on (shutdown wakes a blocked recv; the
    flag stops a thread still connecting from sending the request afterwards)."""
    conn.abandoned = True
    sock = conn.sock
    if sock is not None:
        try:
            sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
    conn.close()
