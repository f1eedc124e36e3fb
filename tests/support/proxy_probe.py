"""Run inside a fresh network and mount namespace (only loopback up) whose /etc/hosts says
``127.0.0.2 evil.test`` and ``127.0.0.3 good.test``: calls custom hosts through an egress
proxy (and directly) with both transports and prints, as JSON, what each call returned and
what the proxy and the origins saw.

evil.test stands for a public-looking name whose DNS points at a private address: the SSRF
guard (nothing trusted) must refuse it before any byte goes to the proxy or to it. Inside the
namespace nothing but loopback is reachable, so a guard that failed shows up as a connection
recorded by the listener on 127.0.0.2, never as traffic leaving the machine.
"""

from __future__ import annotations

import asyncio
import datetime
import json
import os
import ssl
import sys
import tempfile
from pathlib import Path
from typing import Any

from tests.support.egress_servers import ForwardProxy, Origin

CLIENTS = ("stdlib", "aiohttp")
PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy")


def make_tls(directory: Path) -> ssl.SSLContext | None:
    """A CA (made the only trusted one through SSL_CERT_FILE) and a certificate for good.test;
    None without the ``cryptography`` package."""
    try:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
    except ImportError:
        return None
    now = datetime.datetime.now(datetime.UTC)

    def cert(subject: str, key: Any, issuer: str, signer: Any, ca: bool) -> Any:
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer)]))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1)).not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if ca:
            builder = builder.add_extension(x509.KeyUsage(
                digital_signature=True, key_cert_sign=True, crl_sign=True, content_commitment=False,
                key_encipherment=False, data_encipherment=False, key_agreement=False, encipher_only=False,
                decipher_only=False), critical=True)
        else:
            builder = (builder.add_extension(x509.SubjectAlternativeName([x509.DNSName(subject)]), critical=False)
                       .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False))
        return builder.sign(signer, hashes.SHA256())

    ca_key, leaf_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca = cert("probe CA", ca_key, "probe CA", ca_key, True)
    leaf = cert("good.test", leaf_key, "probe CA", ca_key, False)
    pem = serialization.Encoding.PEM
    (directory / "ca.pem").write_bytes(ca.public_bytes(pem))
    (directory / "leaf.pem").write_bytes(leaf.public_bytes(pem))
    (directory / "leaf.key").write_bytes(leaf_key.private_bytes(
        pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))
    os.environ["SSL_CERT_FILE"] = str(directory / "ca.pem")  # before any client builds its TLS context
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(directory / "leaf.pem", directory / "leaf.key")
    return context


async def fetch(transport: Any, url: str) -> str:
    from aigw.upstream.transport import TransportError

    try:
        async with asyncio.timeout(10):
            response = await transport.request("GET", url, {}, None)
            body = b""
            while chunk := await response.next_chunk():
                body += chunk
        return f"{response.status} {body.decode()}"
    except TransportError:
        return "TransportError"


async def main() -> dict[str, Any]:
    from aigw.upstream.transport import make_transport

    tls = make_tls(Path(tempfile.mkdtemp()))
    proxy = ForwardProxy()
    evil, good = Origin("127.0.0.2"), Origin("127.0.0.3")
    good_tls = Origin("127.0.0.3", tls) if tls is not None else None
    names = {str(proxy.port): "PROXY", str(evil.port): "EVIL", str(good.port): "GOOD"}
    if good_tls is not None:
        names[str(good_tls.port)] = "GOOD_TLS"

    def symbolic(text: str) -> str:
        for port, name in names.items():
            text = text.replace(f":{port}", f":{name}")
        return text

    # name -> (trusted hosts, NO_PROXY or None for no proxy at all, URL)
    cases: dict[str, tuple[frozenset[str] | None, str | None, str]] = {
        "refused_http": (frozenset(), "", f"http://evil.test:{evil.port}/v1/models"),
        "refused_https": (frozenset(), "", f"https://evil.test:{evil.port}/v1/models"),
        "allowed_http": (frozenset({"127.0.0.3"}), "", f"http://good.test:{good.port}/v1/models"),
        "no_proxy": (frozenset({"127.0.0.3"}), "good.test", f"http://good.test:{good.port}/v1/models"),
        "guarded_direct": (frozenset(), None, f"http://evil.test:{evil.port}/v1/models"),
        "unguarded_direct": (None, None, f"http://evil.test:{evil.port}/v1/models"),
        "unguarded_proxied": (None, "", f"http://evil.test:{evil.port}/v1/models"),
    }
    if good_tls is not None:
        cases["allowed_https"] = (frozenset({"127.0.0.3"}), "", f"https://good.test:{good_tls.port}/v1/models")
    results: dict[str, Any] = {"tls": tls is not None}
    for client in CLIENTS:
        for case, (trusted, no_proxy, url) in cases.items():
            for name in PROXY_VARS:
                os.environ.pop(name, None)
            if no_proxy is not None:  # the transports read the environment once, when built
                os.environ["HTTP_PROXY"] = os.environ["HTTPS_PROXY"] = f"http://127.0.0.1:{proxy.port}"
                os.environ["NO_PROXY"] = no_proxy
            for server in (proxy, evil, good, good_tls):
                if server is not None:
                    server.reset()
            transport = make_transport(client, trusted_hosts=trusted, pool_size=8, pool_per_host=4,
                                       connect_timeout_s=5)
            outcome = await fetch(transport, url)
            await transport.close()
            results[f"{client}:{case}"] = {
                "outcome": outcome,
                "proxy": [symbolic(r) for r in proxy.requests],
                "evil_connections": evil.connections,
                "good_hosts": [symbolic(h) for h in good.hosts + (good_tls.hosts if good_tls else [])],
            }
    return results


if __name__ == "__main__":
    json.dump(asyncio.run(main()), sys.stdout)
