"""Which egress proxy, if any, a request goes through: HTTP(S)_PROXY honouring NO_PROXY.

NO_PROXY is comma-separated hosts or domain suffixes (leading dot optional), or "*": the
convention curl and aiohttp's trust_env follow. Both transports use this one reading, so
they agree on which calls are proxied. The environment is read once per transport (an
execution environment's variables do not change): per request, the lookups would cost
more than the rest of the proxy path. (urllib.request has this, at ~25 ms of import.)

The proxy is configured egress, not user input: its own address is never SSRF-checked.
"""

from __future__ import annotations

import os
from base64 import b64encode
from collections.abc import Mapping
from typing import NamedTuple
from urllib.parse import unquote, urlsplit

# NamedTuple and a plain class rather than dataclasses: ~1 ms less of cold start each.


class Proxy(NamedTuple):
    url: str  # as configured, credentials included (aiohttp takes it whole)
    host: str
    port: int
    authorization: str | None  # "Basic ..." from the URL's user:password, for http.client


class ProxySettings:
    __slots__ = ("http", "https", "no_proxy", "hosts")

    def __init__(self, http: Proxy | None = None, https: Proxy | None = None, no_proxy: tuple[str, ...] = ()) -> None:
        self.http, self.https, self.no_proxy = http, https, no_proxy
        # The proxies' own names: a resolver must not refuse them as it would a custom host's.
        self.hosts = frozenset(p.host for p in (http, https) if p is not None)

    def __bool__(self) -> bool:
        return self.http is not None or self.https is not None

    def select(self, scheme: str, host: str) -> Proxy | None:
        proxy = self.https if scheme == "https" else self.http
        if proxy is None:
            return None
        host = host.lower().rstrip(".")
        for entry in self.no_proxy:
            if entry == "*" or host == entry or host.endswith("." + entry):
                return None
        return proxy


def _env(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name.lower()) or env.get(name.upper()) or None


def _proxy(value: str | None) -> Proxy | None:
    if not value:
        return None
    url = value if "://" in value else "http://" + value  # "proxy:3128", as curl reads it
    parts = urlsplit(url)
    if not parts.hostname:
        raise ValueError("HTTP(S)_PROXY must be a URL such as http://proxy:3128")
    authorization = None
    if parts.username is not None:
        credentials = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
        authorization = "Basic " + b64encode(credentials).decode("ascii")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return Proxy(url, parts.hostname, port, authorization)


def from_env(env: Mapping[str, str] = os.environ) -> ProxySettings:
    no_proxy = tuple(
        entry for entry in ((e.strip().lower().lstrip(".")) for e in (_env(env, "no_proxy") or "").split(",")) if entry
    )
    return ProxySettings(_proxy(_env(env, "http_proxy")), _proxy(_env(env, "https_proxy")), no_proxy)
