"""Real ``redis-server`` processes on free loopback ports, for the cache-store tests.

- ``RedisServer``: one server; plaintext, or TLS-only (``tls=make_tls_files(...)``); ``kill`` and
  ``restart`` (same port, empty data) for outage tests.
- ``RedisCluster``: three cluster-enabled masters, no replicas, the 16384 slots split between them.
- ``make_tls_files``: a throwaway CA and a server certificate for 127.0.0.1 and localhost.

Each server gets a temp dir of its own (removed by ``stop``). On Linux a server is started with
PR_SET_PDEATHSIG, so it dies with the test process even when teardown never runs.
"""

from __future__ import annotations

import ctypes
import datetime
import ipaddress
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Self

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

HOST = "127.0.0.1"
START_TIMEOUT_S = 10.0
CLUSTER_TIMEOUT_S = 20.0
CLUSTER_SLOTS = 16384
PORT_ATTEMPTS = 5


class RedisNotInstalled(RuntimeError):
    pass


class PortTaken(RuntimeError):
    pass


def redis_server_binary() -> str:
    path = shutil.which("redis-server")
    if path is None:
        raise RedisNotInstalled("redis-server is not on PATH: `make test` installs it "
                                "(Debian packages redis-server and redis-tools)")
    return path


def free_port() -> int:
    """A loopback port nothing listens on right now (another process may still take it: retry)."""
    with socket.socket() as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def no_retries() -> Retry:
    """redis-py retries a failed command 10 times by default: a down server should fail at once."""
    return Retry(NoBackoff(), 0)


@dataclass(frozen=True)
class TlsFiles:
    ca_file: Path
    cert_file: Path
    key_file: Path


def _san(name: str) -> Any:
    from cryptography import x509

    try:
        return x509.IPAddress(ipaddress.ip_address(name))
    except ValueError:
        return x509.DNSName(name)


def make_tls_files(directory: Path, names: tuple[str, ...] = (HOST, "localhost")) -> TlsFiles:
    """A self-signed CA and a server certificate it signed, for ``names`` (IP addresses and DNS
    names; by default IP 127.0.0.1 and DNS localhost). Carries the key identifiers Python 3.13's
    VERIFY_X509_STRICT asks for."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.UTC)
    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "aigw test redis CA")])
    usage = dict(content_commitment=False, data_encipherment=False, encipher_only=False, decipher_only=False)

    def builder(subject: x509.Name, public_key: ec.EllipticCurvePublicKey) -> x509.CertificateBuilder:
        return (x509.CertificateBuilder().subject_name(subject).issuer_name(ca_name).public_key(public_key)
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=2))
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False))

    ca = (builder(ca_name, ca_key.public_key())
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       key_encipherment=False, key_agreement=False, **usage), critical=True)
          .sign(ca_key, hashes.SHA256()))
    cert = (builder(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]), key.public_key())
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=False, crl_sign=False,
                                         key_encipherment=False, key_agreement=True, **usage), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.SubjectAlternativeName([_san(name) for name in names]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    files = TlsFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    files.ca_file.write_bytes(ca.public_bytes(pem))
    files.cert_file.write_bytes(cert.public_bytes(pem))
    files.key_file.write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    return files


def _die_with_parent() -> Callable[[], None] | None:
    """A preexec_fn asking the kernel to SIGKILL the child when the thread that started it ends.
    Only from the main thread: a worker thread (asyncio.to_thread) ends long before the test does."""
    if sys.platform != "linux" or threading.current_thread() is not threading.main_thread():
        return None
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def preexec() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL)

    return preexec


class _StartedInContext:
    """``with X() as x``: started on entry (stopped again if starting fails), stopped on exit."""

    def start(self) -> Self:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError

    def __enter__(self) -> Self:
        try:
            return self.start()
        except BaseException:
            self.stop()
            raise

    def __exit__(self, *exc: object) -> None:
        self.stop()


class RedisServer(_StartedInContext):
    """One redis-server on 127.0.0.1, no persistence. ``start`` picks free ports; ``restart`` reuses them."""

    def __init__(self, *, tls: TlsFiles | None = None, cluster: bool = False) -> None:
        self.tls = tls
        self.cluster = cluster
        self.port = 0
        self.bus_port = 0  # the cluster bus (cluster nodes only)
        self.directory = Path(tempfile.mkdtemp(prefix="aigw-redis-"))
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"{'rediss' if self.tls else 'redis'}://{HOST}:{self.port}"

    @property
    def ca_file(self) -> str:
        """The CA that signed a TLS server's certificate (for SSL_CERT_FILE or ``ssl_ca_certs``)."""
        if self.tls is None:
            raise AttributeError("a plaintext RedisServer has no ca_file")
        return str(self.tls.ca_file)

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def client(self, **kwargs: Any) -> redis.Redis:
        """A sync client without retries (``kwargs`` override), verifying TLS against ``ca_file``
        (the chain only: a test may give its server another host's name, to see a client refuse it)."""
        tls: dict[str, Any] = {"ssl_ca_certs": self.ca_file, "ssl_check_hostname": False} if self.tls else {}
        options = {"socket_timeout": 5, "retry": no_retries(), **tls, **kwargs}
        return redis.Redis.from_url(self.url, **options)

    def start(self) -> RedisServer:
        """Start on free ports, picking others when one was taken between the look-up and the bind."""
        if self._process is not None:
            raise RuntimeError("this RedisServer already runs: kill() or restart() it")
        for _ in range(PORT_ATTEMPTS):
            self.port = free_port()
            self.bus_port = free_port() if self.cluster else 0
            try:
                self._launch()
                return self
            except PortTaken:
                continue
        raise RuntimeError(f"redis-server found no free port in {PORT_ATTEMPTS} attempts")

    def kill(self) -> None:
        """SIGKILL, as a crash would; the port stays reserved for ``restart``."""
        if self._process is not None:
            self._process.kill()
            self._process.wait()
            self._process = None

    def restart(self) -> None:
        """Start again on the same port(s), with empty data (killing the server first if it runs)."""
        self.kill()
        for child in self.directory.iterdir():
            child.unlink()
        self._launch()

    def stop(self) -> None:
        """End the server and remove its temp dir. SIGKILL too: nothing is persisted, and a SIGTERM
        waits for the next server cron tick (up to 100 ms)."""
        self.kill()
        shutil.rmtree(self.directory, ignore_errors=True)


    def _arguments(self) -> list[str]:
        args = [redis_server_binary(), "--bind", HOST, "--save", "", "--appendonly", "no", "--dir", str(self.directory)]
        if self.tls is None:
            args += ["--port", str(self.port)]
        else:
            args += ["--port", "0", "--tls-port", str(self.port), "--tls-cert-file", str(self.tls.cert_file),
                     "--tls-key-file", str(self.tls.key_file), "--tls-ca-cert-file", str(self.tls.ca_file),
                     "--tls-auth-clients", "no"]
        if self.cluster:
            # A 2 s node timeout (15 s by default) also caps the delay a master waits before
            # serving again after it saw itself in a minority.
            args += ["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf",
                     "--cluster-port", str(self.bus_port), "--cluster-announce-ip", HOST,
                     "--cluster-node-timeout", "2000"]
        return args

    def _launch(self) -> None:
        log = self.directory / "redis.log"
        with log.open("wb") as out:
            self._process = subprocess.Popen(self._arguments(), stdin=subprocess.DEVNULL, stdout=out,
                                             stderr=subprocess.STDOUT, cwd=self.directory,
                                             preexec_fn=_die_with_parent())
        try:
            self._wait_for_ping(log)
        except BaseException:
            self.kill()
            raise

    def _wait_for_ping(self, log: Path) -> None:
        """Until the server answers PING, and it is this process answering: another server on the
        port (ours then fails to bind) would answer too."""
        assert self._process is not None
        deadline = time.monotonic() + START_TIMEOUT_S
        with self.client(socket_timeout=1, socket_connect_timeout=1) as client:
            while True:
                try:
                    if client.ping() and client.info("server")["process_id"] == self._process.pid:
                        return
                except redis.RedisError:  # not up yet, or someone else's server: wait for ours to exit
                    pass
                if self._process.poll() is not None:
                    text = log.read_text(errors="replace")
                    if "Address already in use" in text:
                        ports = f"{self.port} or {self.bus_port}" if self.cluster else str(self.port)
                        raise PortTaken(f"port {ports} is taken:\n{text[-2000:]}")
                    raise RuntimeError(f"redis-server exited with {self._process.returncode}:\n{text[-2000:]}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"redis-server did not answer PING in {START_TIMEOUT_S} s:\n"
                                       f"{log.read_text(errors='replace')[-2000:]}")
                time.sleep(0.005)


class RedisCluster(_StartedInContext):
    """Cluster-enabled masters (no replicas) owning contiguous slot ranges; ``url`` is the first node,
    the configuration endpoint a client starts from."""

    def __init__(self, size: int = 3) -> None:
        self.nodes = [RedisServer(cluster=True) for _ in range(size)]

    @property
    def url(self) -> str:
        return self.nodes[0].url

    def start(self) -> RedisCluster:
        for node in self.nodes:
            node.start()
        self._form()
        return self

    def kill(self) -> None:
        for node in self.nodes:
            node.kill()

    def restart(self) -> None:
        """Every node again on its ports, with new node ids, empty data and the same slot ranges."""
        self.kill()  # all first: a surviving old node would gossip to the new ones on its ports
        for node in self.nodes:
            node.restart()
        self._form()

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()

    def healthy(self) -> bool:
        try:
            return all(node.running and _cluster_state_ok(node) for node in self.nodes)
        except redis.RedisError:
            return False

    def reset(self) -> None:
        """Ready for the next test: restarted if a node is down or the cluster failed, then emptied."""
        if not self.healthy():
            self.restart()
        for node in self.nodes:
            with node.client() as client:
                client.flushall()


    def _form(self) -> None:
        """Each node takes its slot range and epoch and meets every other node (waiting for gossip
        to introduce them can take seconds). A master reports cluster_state:ok no sooner than 2 s
        after it started."""
        bounds = [CLUSTER_SLOTS * i // len(self.nodes) for i in range(len(self.nodes) + 1)]
        for i, node in enumerate(self.nodes):
            with node.client() as client:
                client.execute_command("CLUSTER", "ADDSLOTSRANGE", bounds[i], bounds[i + 1] - 1)
                client.execute_command("CLUSTER", "SET-CONFIG-EPOCH", i + 1)
        for i, node in enumerate(self.nodes):
            with node.client() as client:
                for other in self.nodes[i + 1:]:
                    client.execute_command("CLUSTER", "MEET", HOST, other.port, other.bus_port)
        deadline = time.monotonic() + CLUSTER_TIMEOUT_S
        while not all(_cluster_state_ok(node) for node in self.nodes):
            if time.monotonic() > deadline:
                raise RuntimeError(f"redis cluster not ok after {CLUSTER_TIMEOUT_S} s")
            time.sleep(0.05)


def _cluster_state_ok(node: RedisServer) -> bool:
    with node.client() as client:
        info: dict[str, Any] = client.cluster("INFO")
    return str(info.get("cluster_state")) == "ok"
